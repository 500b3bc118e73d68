// recovery-cross: a client leaves instance A and comes back on instance B
// (the official client reconnects to the same URL, so a second client
// object takes over the first one's pid and last offset, exactly the state
// socket.io-client keeps and sends in its CONNECT auth).
//
//   WALCAST_URL=<A> node recovery-cross.mjs <B url> [cut|wait]
//
// Before leaving it emits "arm" to A (unless RECOVERY_ARM=0) and joins the
// room RECOVERY_JOIN with join_room (when set, acked {success: true}); the Go test
// makes events happen while it is away. "cut" closes the transport itself;
// "wait" waits for A to go away (the test kills it; RECOVERY_READY_FILE is
// written once the client is connected and holds an offset). On B it
// collects events for 500 ms, or, with RECOVERY_EVENT and RECOVERY_COUNT,
// until that many such events came, then 500 ms more (to see duplicates).
// Prints {recovered, sameId, names, payloads}.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { io, url, path, out } from "./lib.mjs";

const urlB = process.argv[2];
const mode = process.argv[3] || "cut";
const timeout = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 30000);
const once = (s, ev) => new Promise((resolve) => s.once(ev, (...a) => resolve(a)));
const token = process.env.RECOVERY_TOKEN || "alice";

const a = io(url, { path, forceNew: true, transports: ["websocket"], reconnection: false, auth: { token } });
await once(a, "connect");
if (!a._lastOffset) await once(a, process.env.RECOVERY_WELCOME || "welcome");
if (process.env.RECOVERY_ARM !== "0") await a.timeout(5000).emitWithAck("arm");
if (process.env.RECOVERY_JOIN) {
  assert.deepEqual(await a.timeout(5000).emitWithAck("join_room", process.env.RECOVERY_JOIN), { success: true });
}
const id = a.id, pid = a._pid, offset = a._lastOffset;
assert.equal(typeof pid, "string", "CONNECT carried a pid");
assert.equal(typeof offset, "string", "a broadcast carried an offset");
out({ kind: "armed", id });
const ready = () => process.env.RECOVERY_READY_FILE && writeFileSync(process.env.RECOVERY_READY_FILE, pid);
const gone = once(a, "disconnect");
if (mode === "cut") a.io.engine.close();
else ready(); // the test kills A now
await gone;
if (mode === "cut") ready(); // the test commits now, while this client is away
await new Promise((r) => setTimeout(r, Number(process.env.RECOVERY_AWAY_MS || 1000)));

const b = io(urlB, { path, forceNew: true, transports: ["websocket"], reconnection: false, autoConnect: false, auth: { token } });
b._pid = pid; // what the client library kept from its first connection
b._lastOffset = offset;
const events = [];
b.onAny((ev, ...args) => events.push({ ev, args }));
b.connect();
await once(b, "connect");
const want = process.env.RECOVERY_EVENT, count = Number(process.env.RECOVERY_COUNT || 0);
while (want && events.filter((e) => e.ev === want).length < count) {
  await new Promise((r) => setTimeout(r, 50));
}
await new Promise((r) => setTimeout(r, 500));
const missed = events.filter((e) => e.ev !== "welcome" && e.ev !== "walcast:offset");
out({ kind: "result", recovered: b.recovered, sameId: b.id === id, names: missed.map((e) => e.ev),
  payloads: missed.map((e) => e.args[0]) });
b.close();
clearTimeout(timeout);
