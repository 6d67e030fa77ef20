// The official `phoenix` client (npm, unmodified) as a chat client without a browser.
//
// Usage: node chat_user_channel.cjs <port> <alice_token> <alice_id> <bob_token>
// alice joins her user:<id> channel (initial_state) and the lobby; bob mentions her in the
// lobby; alice sees the message, the new_notification and counter_updated, marks all read and
// sees the counter drop to 0; joining bob's user channel is refused. Prints one JSON line per
// step ({"step": name, ...facts}); any failure prints {"error": ...} and exits 1.
"use strict";

const { Socket } = require("phoenix");
const WebSocket = require("ws");
const { say, fail, within, join, push } = require("../../support/js/steps.cjs");

const [port, aliceToken, aliceId, bobToken] = process.argv.slice(2);
const url = `ws://127.0.0.1:${port}/socket`;

function open(token) {
  const socket = new Socket(url, { transport: WebSocket, params: { token } });
  socket.connect();
  return socket;
}

// Resolves with the payload of the next `event` on `channel` that satisfies `test`.
function next(channel, event, test = () => true) {
  return within(5000, `event ${event}`, (resolve) => {
    const ref = channel.on(event, (payload) => {
      if (test(payload)) {
        channel.off(event, ref);
        resolve(payload);
      }
    });
  });
}

async function main() {
  const alice = open(aliceToken);
  const bob = open(bobToken);

  const me = alice.channel(`user:${aliceId}`, {});
  const initial = next(me, "initial_state");
  await join(me, "join own user channel");
  const state = await initial;
  const lobbyRoom = state.rooms.find((room) => room.name === "lobby");
  say({
    step: "initial_state",
    user: state.user,
    counters: state.counters,
    notifications: state.notifications.length,
    hasLobby: Boolean(lobbyRoom),
  });

  const aliceLobby = alice.channel(`room:${lobbyRoom.id}`, {});
  await join(aliceLobby, "alice joins the lobby");
  const bobLobby = bob.channel(`room:${lobbyRoom.id}`, {});
  await join(bobLobby, "bob joins the lobby");

  const seen = next(aliceLobby, "new_message", (m) => m.content.includes("@alice"));
  const noticed = next(me, "new_notification");
  const counted = next(me, "counter_updated", (c) => c.value === 1);
  const sent = await push(bobLobby, "new_message", { content: "hi @alice", client_id: "js-1" });
  const message = await seen;
  const notification = await noticed;
  const counter = await counted;
  say({
    step: "mention",
    sent: sent.status,
    message: { author: message.author, content: message.content, client_id: message.client_id },
    notification: { kind: notification.kind, title: notification.title, read: notification.read },
    counter,
  });

  const refreshed = await push(me, "refresh_counters", {});
  const zero = next(me, "counter_updated", (c) => c.value === 0);
  const allRead = next(me, "all_notifications_read");
  const marked = await push(me, "mark_all_notifications_read", {});
  say({
    step: "mark_all_read",
    refreshed: refreshed.response,
    marked,
    allRead: await allRead,
    counter: await zero,
  });

  let refused = null;
  try {
    await join(alice.channel("user:00000000-0000-0000-0000-000000000000", {}), "foreign");
  } catch (error) {
    refused = error.reason || String(error);
  }
  say({ step: "foreign_user_channel", refused });

  alice.disconnect();
  bob.disconnect();
  process.exit(0);
}

main().catch(fail);
