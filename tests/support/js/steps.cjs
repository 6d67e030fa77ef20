// What the Node scripts that drive the official `phoenix` client share: one JSON line per
// fact on stdout, a failure as {"error": ...} with exit code 1, and promises with a timeout
// for joins and pushes.
"use strict";

function say(fact) {
  process.stdout.write(JSON.stringify(fact) + "\n");
}

function fail(error) {
  say({ error: String(error && error.stack ? error.stack : error) });
  process.exit(1);
}

function within(ms, what, executor) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    executor(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

// Resolves with the join's reply; a refused join rejects with the reason attached.
function join(channel, what) {
  return within(5000, what, (resolve, reject) => {
    channel
      .join()
      .receive("ok", resolve)
      .receive("error", (reason) =>
        reject(Object.assign(new Error(`${what}: ${JSON.stringify(reason)}`), { reason })),
      )
      .receive("timeout", () => reject(new Error(`${what}: join timeout`)));
  });
}

// Resolves with {status, response} for an ok or error reply.
function push(channel, event, payload) {
  return within(5000, `push ${event}`, (resolve, reject) => {
    channel
      .push(event, payload)
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => reject(new Error(`push ${event}: timeout`)));
  });
}

module.exports = { say, fail, within, join, push };
