// Protocol handling of static/flaskpush.js against a scripted WebSocket:
// replies in order, error replies, reopening after "Not authenticated", and
// reconnecting with growing delays when the socket drops.
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

const SOURCE = fs.readFileSync(path.join(__dirname, "../../flaskpush/static/flaskpush.js"), "utf8");

class FakeSocket {
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.all.push(this);
  }
  open() { this.readyState = FakeSocket.OPEN; this.onopen(); }
  send(text) { this.sent.push(JSON.parse(text)); }
  reply(message) { this.onmessage({ data: JSON.stringify(message) }); }
  close() { this.readyState = 3; this.onclose(); }
}
FakeSocket.OPEN = 1;

/* A window with just what the script touches; timers are recorded, not run. */
function load() {
  FakeSocket.all = [];
  const timers = [];
  const unsubscribed = [];
  const subscription = { endpoint: "https://push.example/1", unsubscribe: async () => unsubscribed.push(1) };
  const registration = { pushManager: { getSubscription: async () => subscription } };
  const window = {
    WebSocket: FakeSocket,
    URL,
    location: { href: "https://app.example/page" },
    document: { readyState: "complete", getElementById: () => null },
    navigator: { serviceWorker: { getRegistration: async () => registration } },
    PushManager: function () {},
    Notification: { permission: "default" },
    setTimeout: (fn, ms) => { timers.push({ fn, ms }); return timers.length; },
    clearTimeout: () => {},
    Math, JSON, Promise, Error, Uint8Array, console,
  };
  window.window = window;
  vm.runInNewContext(SOURCE, window);
  return { flaskpush: window.flaskpush, timers, unsubscribed, sockets: FakeSocket.all };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("opens one socket at load, at the page's host", () => {
  const { sockets } = load();
  assert.strictEqual(sockets.length, 1);
  assert.strictEqual(sockets[0].url, "wss://app.example/ws");
});

test("a command waits for the socket to open, then resolves on its reply", async () => {
  const { flaskpush, sockets, unsubscribed } = load();
  const done = flaskpush.disable();
  await tick();
  assert.deepStrictEqual(sockets[0].sent, []);
  sockets[0].open();
  assert.deepStrictEqual(sockets[0].sent, [{ cmd: "push_unsubscribe", endpoint: "https://push.example/1" }]);
  sockets[0].reply({ cmd: "push_unsubscribed", success: true });
  await done;
  assert.strictEqual(unsubscribed.length, 1);
});

test("an error reply rejects with Error(val)", async () => {
  const { flaskpush, sockets } = load();
  sockets[0].open();
  const done = flaskpush.disable();
  await tick();
  sockets[0].reply({ cmd: "error", src: "push_unsubscribe", val: "Failed to remove subscription" });
  await assert.rejects(done, (e) => e.constructor.name === "Error" && e.message === "Failed to remove subscription");
});

test("Not authenticated reopens the socket and sends the command once more", async () => {
  const { flaskpush, sockets } = load();
  sockets[0].open();
  const done = flaskpush.disable();
  await tick();
  sockets[0].reply({ cmd: "error", src: "push_unsubscribe", val: "Not authenticated" });
  await tick();
  assert.strictEqual(sockets.length, 2);
  sockets[0].reply({ cmd: "push_unsubscribed", success: true }); // late, on the old socket: ignored
  sockets[1].open();
  assert.deepStrictEqual(sockets[1].sent, [{ cmd: "push_unsubscribe", endpoint: "https://push.example/1" }]);
  sockets[1].reply({ cmd: "push_unsubscribed", success: true });
  await done;
});

test("still Not authenticated after reopening rejects", async () => {
  const { flaskpush, sockets } = load();
  sockets[0].open();
  const done = flaskpush.disable();
  await tick();
  sockets[0].reply({ cmd: "error", src: "push_unsubscribe", val: "Not authenticated" });
  await tick();
  sockets[1].open();
  sockets[1].reply({ cmd: "error", src: "push_unsubscribe", val: "Not authenticated" });
  await assert.rejects(done, { message: "Not authenticated" });
});

test("a drop rejects the waiting command and reconnects with growing delays", async () => {
  const { flaskpush, sockets, timers } = load();
  sockets[0].open();
  const done = flaskpush.disable();
  await tick();
  sockets[0].close();
  await assert.rejects(done, { message: "Connection lost" });
  for (let i = 0; i < 8; i++) {
    timers[timers.length - 1].fn(); // the backoff timer fires: a new socket
    sockets[sockets.length - 1].close(); // and it fails too
  }
  const delays = timers.map((t) => t.ms);
  assert.ok(delays[0] >= 250 && delays[0] <= 500, `first delay ${delays[0]}`);
  assert.ok(delays[7] > delays[0] * 16, `delays grow: ${delays}`);
  assert.ok(delays.every((ms) => ms <= 30000), `delays are capped: ${delays}`);
  timers[timers.length - 1].fn();
  sockets[sockets.length - 1].open(); // back: the delay starts small again
  sockets[sockets.length - 1].close();
  assert.ok(timers[timers.length - 1].ms <= 500);
});

test("reconnect() replaces the socket and resolves after it opened", async () => {
  const { flaskpush, sockets } = load();
  sockets[0].open();
  let resolved = false;
  const done = flaskpush.reconnect().then(() => { resolved = true; });
  assert.strictEqual(sockets.length, 2);
  await tick();
  assert.strictEqual(resolved, false);
  sockets[1].open();
  await done;
  assert.strictEqual(sockets.length, 2);
});

test("devices() resolves to the list; removeDevice() sends the id and rejects with val", async () => {
  const { flaskpush, sockets } = load();
  sockets[0].open();
  const listed = flaskpush.devices();
  await tick();
  assert.deepStrictEqual(sockets[0].sent, [{ cmd: "push_list_devices" }]); // not enabled here: no endpoint
  const list = [{ id: 7, push_service: "push.example", user_agent: "", current: false }];
  sockets[0].reply({ cmd: "push_devices", devices: list });
  assert.deepStrictEqual(await listed, list);
  const removed = flaskpush.removeDevice("7");
  assert.deepStrictEqual(sockets[0].sent[1], { cmd: "push_remove_device", id: "7" });
  sockets[0].reply({ cmd: "error", src: "push_remove_device", val: "Invalid device id" });
  await assert.rejects(removed, { message: "Invalid device id" });
});
