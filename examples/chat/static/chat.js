// The chat page's client: the official phoenix and phoenix_live_view clients (served from the
// npm packages), with the chat's hooks:
//
// * Messages (the message pane): stays at the newest message while the reader is at the
//   bottom; otherwise a "new messages" marker appears, and clicking it scrolls down. Times are
//   shown in the reader's own time zone, with a line at each change of day.
// * Composer: Enter sends (the text, the files picked, or both), Shift+Enter starts a new
//   line; the text survives refusals (the server renders it back) and is cleared by the
//   server's "sent" event; while the socket is down the box is read-only and keeps its text.
// * EditBox: takes focus; Escape cancels the edit.
// * Mention: @-completion of the room's members' names (the list the page carries).
//
// Also: `data-confirm` asks before a click goes on (what phoenix_html does for Phoenix apps),
// a "reconnecting…" banner while the socket is down, and the drawers of the phone layout.
import { Socket } from "/assets/phoenix/phoenix.mjs";
import { LiveSocket } from "/assets/phoenix_live_view/phoenix_live_view.esm.js";

const NEAR_BOTTOM_PX = 48;
const dayFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "long", year: "numeric", month: "long", day: "numeric",
});
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

/** Every <time datetime> under root, in the reader's time zone. */
function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (isNaN(when)) continue;
    const short = el.dataset.format === "full" ? fullFormat.format(when) : timeFormat.format(when);
    if (el.textContent !== short) el.textContent = short;
    el.title = fullFormat.format(when);
  }
}

/** Mark each message that starts a day (in the reader's time zone) with that day. */
function daySeparators(pane) {
  let previous = null;
  for (const item of pane.children) {
    const time = item.querySelector("time[datetime]");
    if (!time) continue;
    const day = dayFormat.format(new Date(time.getAttribute("datetime")));
    if (day !== previous) {
      if (item.dataset.day !== day) item.dataset.day = day;
    } else if (item.dataset.day !== undefined) {
      delete item.dataset.day;
    }
    previous = day;
  }
}

// On the pane (the scrolling box) around the stream (#messages): the stream's own element
// carries LiveView's infinite-scroll hook (phx-viewport-top), so this one watches the stream's
// children with a MutationObserver.
const Messages = {
  mounted() {
    this.list = this.el.querySelector("[phx-update=stream]");
    this.marker = document.getElementById("new-messages");
    this.stick = true;
    this.last = this.lastId();
    this.el.addEventListener("scroll", () => {
      this.stick = this.nearBottom();
      if (this.stick) this.hideMarker();
    });
    this.marker?.addEventListener("click", () => this.toBottom());
    this.observer = new MutationObserver(() => this.changed());
    this.observer.observe(this.list, { childList: true, subtree: true, characterData: true });
    // The pane shrinks when the composer grows or a phone's keyboard opens: stay at the end.
    this.resizer = new ResizeObserver(() => this.stick && this.toBottom());
    this.resizer.observe(this.el);
    this.decorate();
    this.toBottom();
    // A notification's link names its message: scroll to it and mark it for a moment.
    this.handleEvent("show_message", ({ id }) => {
      requestAnimationFrame(() => {
        const item = document.getElementById(id);
        if (!item) return;
        item.scrollIntoView({ block: "center" });
        this.stick = this.nearBottom();
        item.classList.add("shown");
        setTimeout(() => item.classList.remove("shown"), 2000);
      });
    });
  },
  destroyed() {
    this.observer?.disconnect();
    this.resizer?.disconnect();
  },
  changed() {
    this.decorate();
    const newest = this.lastId();
    if (newest === this.last) return; // an edit, a delete, or older messages above
    this.last = newest;
    const mine = this.list.lastElementChild?.classList.contains("mine");
    if (this.stick || mine) {
      this.toBottom();
    } else {
      this.showMarker();
    }
  },
  reconnected() {
    this.decorate();
    if (this.stick) this.toBottom();
  },
  lastId() {
    const last = this.list.lastElementChild;
    return last ? last.id : null;
  },
  nearBottom() {
    const el = this.el;
    return el.scrollHeight - el.scrollTop - el.clientHeight <= NEAR_BOTTOM_PX;
  },
  toBottom() {
    this.el.scrollTop = this.el.scrollHeight;
    this.stick = true;
    this.hideMarker();
  },
  showMarker() {
    if (this.marker) this.marker.hidden = false;
  },
  hideMarker() {
    if (this.marker) this.marker.hidden = true;
  },
  decorate() {
    this.observer?.disconnect(); // its own changes are not news
    localTimes(this.list);
    daySeparators(this.list);
    this.observer?.observe(this.list, { childList: true, subtree: true, characterData: true });
  },
};

const LocalTimes = {
  mounted() { localTimes(this.el); },
  updated() { localTimes(this.el); },
};

const Composer = {
  mounted() {
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        const files = this.el.form.querySelector(".upload"); // a message may be files alone
        if ((this.el.value.trim() !== "" || files) && !this.el.readOnly) {
          this.el.form.requestSubmit();
        }
      }
    });
    this.el.addEventListener("input", () => this.fit());
    this.handleEvent("sent", () => {
      this.el.value = "";
      this.fit();
    });
    this.fit();
  },
  updated() { this.fit(); },
  disconnected() {
    this.el.readOnly = true;
    document.body.classList.add("offline");
  },
  reconnected() {
    this.el.readOnly = false;
    document.body.classList.remove("offline");
  },
  fit() {
    this.el.style.height = "auto";
    this.el.style.height = Math.min(this.el.scrollHeight + 2, 160) + "px";
  },
};

const EditBox = {
  mounted() {
    this.el.focus();
    this.el.setSelectionRange(this.el.value.length, this.el.value.length);
    this.el.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this.pushEvent("cancel_edit", { id: this.el.dataset.id });
      }
    });
  },
};

const Mention = {
  // Completes "@pre" at the caret from the names in data-names (space separated): Tab or
  // Enter picks the first match shown in the list under the composer.
  mounted() {
    this.list = document.getElementById("mention-list");
    this.el.addEventListener("input", () => this.suggest());
    this.el.addEventListener("keydown", (e) => {
      if (!this.matches || this.matches.length === 0) return;
      if (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey)) {
        e.preventDefault();
        e.stopImmediatePropagation();
        this.pick(this.matches[0]);
      } else if (e.key === "Escape") {
        this.close();
      }
    }, true);
    this.list?.addEventListener("mousedown", (e) => {
      const name = e.target.closest("[data-name]")?.dataset.name;
      if (name) { e.preventDefault(); this.pick(name); }
    });
  },
  prefix() {
    const before = this.el.value.slice(0, this.el.selectionStart);
    const found = /(^|\s)@([a-z0-9_]{0,20})$/.exec(before);
    return found ? found[2] : null;
  },
  suggest() {
    const prefix = this.prefix();
    const names = (this.el.dataset.names || "").split(" ").filter(Boolean);
    this.matches = prefix === null ? [] : names.filter((n) => n.startsWith(prefix) && n !== prefix);
    if (!this.list) return;
    if (this.matches.length === 0) return this.close();
    this.list.replaceChildren(...this.matches.slice(0, 6).map((name) => {
      const li = document.createElement("li");
      li.dataset.name = name;
      li.textContent = "@" + name;
      return li;
    }));
    this.list.hidden = false;
  },
  pick(name) {
    const at = this.el.selectionStart;
    const before = this.el.value.slice(0, at).replace(/@([a-z0-9_]*)$/, "@" + name + " ");
    this.el.value = before + this.el.value.slice(at);
    this.el.setSelectionRange(before.length, before.length);
    this.el.dispatchEvent(new Event("input", { bubbles: true }));
    this.close();
  },
  close() {
    this.matches = [];
    if (this.list) this.list.hidden = true;
  },
};

// Composer and Mention share the one textarea: one hook that is both.
const ComposerBox = {
  mounted() { Composer.mounted.call(this); Mention.mounted.call(this); },
  updated() { Composer.updated.call(this); },
  disconnected() { Composer.disconnected.call(this); },
  reconnected() { Composer.reconnected.call(this); },
  fit: Composer.fit, prefix: Mention.prefix, suggest: Mention.suggest,
  pick: Mention.pick, close: Mention.close,
};

// Ask before a click on an element with data-confirm goes on (capturing on window, so it
// runs before LiveView's own click handler, which listens there while bubbling).
window.addEventListener("click", (e) => {
  const el = e.target instanceof Element ? e.target.closest("[data-confirm]") : null;
  if (el && !window.confirm(el.getAttribute("data-confirm"))) {
    e.preventDefault();
    e.stopImmediatePropagation();
  }
}, true);

// The phone layout's drawers (rooms, people): a class on <body>, which LiveView never patches.
document.addEventListener("click", (e) => {
  const toggle = e.target instanceof Element ? e.target.closest("[data-drawer]") : null;
  if (toggle) {
    const name = "drawer-" + toggle.dataset.drawer;
    const open = !document.body.classList.contains(name);
    document.body.classList.remove("drawer-rooms", "drawer-people");
    if (open) document.body.classList.add(name);
  } else if (e.target instanceof Element && e.target.closest(".scrim, .sidebar a")) {
    document.body.classList.remove("drawer-rooms", "drawer-people");
  }
});

const csrfToken = document.querySelector("meta[name='csrf-token']").getAttribute("content");
const liveSocket = new LiveSocket("/live", Socket, {
  params: { _csrf_token: csrfToken },
  hooks: { Messages, LocalTimes, ComposerBox, EditBox },
});
// The banner: shown from the moment the socket drops until it is back.
liveSocket.getSocket().onError(() => document.body.classList.add("offline"));
liveSocket.getSocket().onOpen(() => document.body.classList.remove("offline"));
liveSocket.connect();
window.liveSocket = liveSocket;
