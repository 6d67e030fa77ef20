// phoenix.js Presence (npm, unmodified) on clients connected to two different nodes.
//
// Usage: node presence_on_two_nodes.cjs <port of node a> <port of node b>
// alice connects to node a, bob to node b; both join room:lobby and are tracked there. Prints
// one JSON line per finished step ({"step": name, ...facts}); prints {"kill": "b"} when it
// wants node b killed, and exits 0 after the last step. A failure prints {"error": ...}.
"use strict";

const { Socket, Presence } = require("phoenix");
const WebSocket = require("ws");
const { say, fail, within, join } = require("../../support/js/steps.cjs");

const [portA, portB] = process.argv.slice(2);

// A client on the node at `port`: its socket, its channel and its Presence.
function client(port, name) {
  const socket = new Socket(`ws://127.0.0.1:${port}/socket`, {
    transport: WebSocket,
    reconnectAfterMs: () => 60_000,
  });
  socket.connect();
  const channel = socket.channel("room:lobby", { track: name });
  const presence = new Presence(channel);
  const people = () => presence.list((key) => key).sort();
  return { socket, channel, presence, people };
}

// Resolves with the people both clients see once each sees exactly `expected`.
function bothSee(clients, expected, what) {
  const wanted = JSON.stringify(expected);
  return within(10_000, what, (resolve) => {
    const check = () => {
      if (clients.every((c) => JSON.stringify(c.people()) === wanted)) {
        resolve(clients.map((c) => c.people()));
      }
    };
    for (const c of clients) c.presence.onSync(check);
    check();
  });
}

async function main() {
  const alice = client(portA, "alice");
  const bob = client(portB, "bob");
  await join(alice.channel, "alice joins room:lobby on node a");
  await join(bob.channel, "bob joins room:lobby on node b");
  const [seenByAlice, seenByBob] = await bothSee([alice, bob], ["alice", "bob"], "both see both");
  say({ step: "both", alice: seenByAlice, bob: seenByBob });

  await within(5000, "bob leaves", (resolve) => bob.channel.leave().receive("ok", resolve));
  const [afterLeave] = await bothSee([alice], ["alice"], "alice sees bob leave");
  say({ step: "bob_left", alice: afterLeave });

  const bobAgain = client(portB, "bob");
  await join(bobAgain.channel, "bob joins again");
  await bothSee([alice, bobAgain], ["alice", "bob"], "both see both again");
  say({ kill: "b" });
  const [afterKill] = await bothSee([alice], ["alice"], "alice sees bob go with node b");
  say({ step: "node_b_killed", alice: afterKill });

  alice.socket.disconnect();
  bobAgain.socket.disconnect();
  bob.socket.disconnect();
  process.exit(0);
}

main().catch(fail);
