// Drives the official `phoenix` client (npm, unmodified) against our server.
//
// Usage: node channels_conformance.cjs <port> <token>
// Prints one JSON line per finished step: {"step": name, ...facts}. Prints {"restart": true}
// when it wants the server restarted on the same port, and exits 0 after the last step. Any
// failure prints {"error": ...} and exits 1. The Python test checks the facts.
"use strict";

const { Socket, Presence } = require("phoenix");
const WebSocket = require("ws");
const { say, fail, within, join, push } = require("../../support/js/steps.cjs");

const [port, token] = process.argv.slice(2);
const url = `ws://127.0.0.1:${port}/socket`;

function open(params, options = {}) {
  const socket = new Socket(url, { transport: WebSocket, params, ...options });
  socket.connect();
  return socket;
}

function next(channel, event, what) {
  return within(5000, what, (resolve) => {
    const ref = channel.on(event, (payload) => {
      channel.off(event, ref);
      resolve(payload);
    });
  });
}

async function main() {
  // 1. Connect with a token, join, push with a reply, and be refused with a bad token.
  const alice = open({ token });
  const aliceRoom = alice.channel("room:lobby", {});
  const joined = await join(aliceRoom, "alice joins room:lobby");
  const echo = await push(aliceRoom, "echo", { text: "héllo" });
  say({ step: "join_and_push", joined, echo });

  const refused = await within(5000, "a forged token is refused", (resolve) => {
    const bad = open({ token: "forged" }, { reconnectAfterMs: () => 60_000 });
    bad.onError(() => {
      bad.disconnect();
      resolve(true);
    });
  });
  say({ step: "bad_token_refused", refused });

  // 2. A broadcast reaches two sockets.
  const bob = open({ token });
  const bobRoom = bob.channel("room:lobby", {});
  await join(bobRoom, "bob joins room:lobby");
  const seenByAlice = next(aliceRoom, "shout", "alice sees the shout");
  const seenByBob = next(bobRoom, "shout", "bob sees the shout");
  await new Promise((resolve) => {
    aliceRoom.push("shout", { text: "to everyone" });
    resolve();
  });
  say({ step: "broadcast", alice: await seenByAlice, bob: await seenByBob });

  // 3. Presence: onJoin, onLeave and onSync driven by presence_state and presence_diff.
  const watcherRoom = alice.channel("room:presence", { track: "alice" });
  const watcher = new Presence(watcherRoom);
  const events = [];
  watcher.onJoin((key, current, _joined) => {
    if (!current) events.push(`join:${key}`);
  });
  watcher.onLeave((key, current, _left) => {
    if (current.metas.length === 0) events.push(`leave:${key}`);
  });
  const synced = (want, what) =>
    within(5000, what, (resolve) => {
      const check = () => {
        const keys = watcher.list((key) => key).sort();
        if (JSON.stringify(keys) === JSON.stringify(want)) resolve(keys);
      };
      watcher.onSync(check);
      check();
    });
  await join(watcherRoom, "alice joins room:presence");
  await synced(["alice"], "alice sees herself");
  const bobPresence = bob.channel("room:presence", { track: "bob" });
  await join(bobPresence, "bob joins room:presence");
  await synced(["alice", "bob"], "alice sees bob arrive");
  await within(5000, "bob leaves", (resolve) => bobPresence.leave().receive("ok", resolve));
  await synced(["alice"], "alice sees bob leave");
  say({ step: "presence", events });

  // 4. A channel crash: phx_error, then phoenix.js rejoins by itself.
  const crashy = alice.channel("room:crashy", {});
  let joins = 0;
  const rejoined = within(8000, "rejoin after a crash", (resolve) => {
    crashy.join().receive("ok", () => {
      joins += 1;
      if (joins === 2) resolve(true);
    });
  });
  await within(5000, "first join", (resolve) => {
    const wait = () => (joins >= 1 ? resolve() : setTimeout(wait, 10));
    wait();
  });
  const errored = within(5000, "onError after the crash", (resolve) => crashy.onError(resolve));
  crashy.push("boom", {});
  await errored;
  await rejoined;
  const afterCrash = await push(crashy, "echo", { again: true });
  const lobbyStillThere = await push(aliceRoom, "echo", { lobby: true });
  say({ step: "crash_and_rejoin", joins, afterCrash, lobbyStillThere });

  // 5. Heartbeats are answered (the ping round trip uses the heartbeat message).
  const rtt = await within(5000, "heartbeat reply", (resolve) => alice.ping(resolve));
  say({ step: "heartbeat", answered: typeof rtt === "number" });

  // 6. The server restarts: the socket reconnects and the channel rejoins on its own.
  let opens = 0;
  alice.onOpen(() => {
    opens += 1;
  });
  let lobbyJoins = 0;
  aliceRoom.joinPush.receive("ok", () => {
    lobbyJoins += 1;
  });
  const closed = within(5000, "the server closes the socket", (resolve) =>
    alice.onClose((event) => resolve(event.code)),
  );
  say({ restart: true });
  const closeCode = await closed;
  await within(15000, "reconnect and rejoin", (resolve) => {
    const wait = () => (opens >= 1 && lobbyJoins >= 1 ? resolve() : setTimeout(wait, 20));
    wait();
  });
  const afterRestart = await push(aliceRoom, "echo", { restarted: true });
  say({ step: "restart_and_reconnect", closeCode, afterRestart });

  for (const socket of [alice, bob]) socket.disconnect();
  process.exit(0);
}

main().catch(fail);
