// takeover: the same session is resumed on instance B while its old socket
// is still connected on instance A (a second client object with the first
// one's pid and last offset, exactly what socket.io-client keeps and sends
// in its CONNECT auth, as in recovery-cross.mjs). A must close the old
// socket promptly: the first client object sees "transport close" (no
// "io server disconnect": a takeover is not a server-side disconnect).
//
//   WALCAST_URL=<A> node takeover.mjs <B url> [events|locks]
//
// Prints {kind:"takeover", closedAfterMs, goneAt, reason, recovered, sameId}
// once A closed the old socket (closedAfterMs counts from the CONNECT to B,
// goneAt is its epoch ms), then
// writes TAKEOVER_READY_FILE. With TAKEOVER_CUT=1 it is an ordinary recovery
// instead: the client closes its transport to A first, then resumes on B
// (which may be A).
//   events: collects TAKEOVER_EVENT events on B until TAKEOVER_COUNT came,
//           then 500 ms more (to see duplicates); result {names, payloads}.
//   locks:  takes the lock TAKEOVER_LOCK (JSON) on A before, and takes it
//           again on B after the resume (the user goes on editing); waits
//           for TAKEOVER_GO_FILE, then closes B's transport for good;
//           result {goneAt} (epoch ms of the close).
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { io, url, path, out } from "./lib.mjs";

const urlB = process.argv[2];
const mode = process.argv[3] || "events";
const timeout = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, Number(process.env.WALCAST_TIMEOUT_MS || 60000));
const once = (s, ev) => new Promise((resolve) => s.once(ev, (...a) => resolve(a)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const token = process.env.TAKEOVER_TOKEN;
const lock = process.env.TAKEOVER_LOCK && JSON.parse(process.env.TAKEOVER_LOCK);

const a = io(url, { path, forceNew: true, transports: ["websocket"], reconnection: false, auth: { token } });
await once(a, "connect");
if (!a._lastOffset) await once(a, "walcast:offset");
if (lock) {
  // resume after the lock:update broadcast, the last one A's socket got
  const update = once(a, `lock:update:${lock.resourceType}:${lock.resourceId}`);
  const ack = await a.timeout(5000).emitWithAck("lock:acquire", lock);
  assert.equal(ack.success, true, `lock:acquire on A: ${JSON.stringify(ack)}`);
  await update;
}
const id = a.id, pid = a._pid, offset = a._lastOffset;
assert.equal(typeof pid, "string", "CONNECT carried a pid");
assert.equal(typeof offset, "string", "a broadcast carried an offset");
const aGone = once(a, "disconnect").then(([reason]) => ({ reason, at: Date.now() }));
const cut = process.env.TAKEOVER_CUT === "1";
if (cut) {
  // an ordinary recovery instead: the transport dies first
  a.io.engine.close();
  await aGone;
  await sleep(500);
}

const b = io(urlB, { path, forceNew: true, transports: ["websocket"], reconnection: false, autoConnect: false, auth: { token } });
b._pid = pid;
b._lastOffset = offset;
const events = [];
b.onAny((ev, ...args) => events.push({ ev, args }));
const start = Date.now();
b.connect();
await once(b, "connect");
const gone = await Promise.race([aGone, sleep(10000).then(() => null)]);
assert.ok(gone, "A did not close the old socket within 10 s of the resume on B");
out({ kind: "takeover", cut, closedAfterMs: gone.at - start, goneAt: gone.at, reason: gone.reason, recovered: b.recovered, sameId: b.id === id });

if (mode === "locks") {
  const ack = await b.timeout(5000).emitWithAck("lock:acquire", lock);
  assert.equal(ack.success, true, `lock:acquire on B after the resume: ${JSON.stringify(ack)}`);
}
if (process.env.TAKEOVER_READY_FILE) writeFileSync(process.env.TAKEOVER_READY_FILE, pid);

if (mode === "locks") {
  while (!existsSync(process.env.TAKEOVER_GO_FILE)) await sleep(50);
  const goneAt = Date.now();
  b.io.engine.close(); // the tab is gone: no DISCONNECT, the session stays recoverable for the window
  out({ kind: "result", goneAt });
} else {
  const want = process.env.TAKEOVER_EVENT, count = Number(process.env.TAKEOVER_COUNT || 0);
  while (want && events.filter((e) => e.ev === want).length < count) await sleep(50);
  await sleep(500);
  const got = events.filter((e) => e.ev !== "walcast:offset");
  out({ kind: "result", names: got.map((e) => e.ev), payloads: got.map((e) => e.args[0]) });
  b.close();
}
a.close();
clearTimeout(timeout);
