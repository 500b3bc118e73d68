// recovery: connection state recovery with the official client.
//
//   node recovery.mjs recover   transport cut while the server broadcasts:
//                               the client comes back with recovered === true,
//                               the same id, and exactly the missed events
//   node recovery.mjs expired   away longer than the window: recovered === false
//   node recovery.mjs foreign   bob presents alice's pid/offset with his own
//                               token: he gets a fresh session; alice still
//                               recovers hers
//
// The Go server (e2e/recovery_test.go) authenticates auth.token, joins
// "user:<token>" and "chat"; on "arm" it answers, and when this socket next
// disconnects it broadcasts missed-1 (all), missed-2 (room chat), other
// (room elsewhere), missed-3 (user:<token>).
import assert from "node:assert/strict";
import { io, url, path, out } from "./lib.mjs";

const mode = process.argv[2];
const delay = mode === "expired" ? 2500 : 1500;

function connect(auth) {
  return io(url, {
    path, forceNew: true, transports: ["websocket"], auth,
    reconnectionDelay: delay, reconnectionDelayMax: delay, randomizationFactor: 0,
  });
}

function once(s, ev) {
  return new Promise((resolve) => s.once(ev, (...a) => resolve(a)));
}

const timeout = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 20000);

async function cutAndCollect(s) {
  const events = [];
  s.onAny((ev, ...args) => events.push({ ev, args }));
  await once(s, "welcome"); // offset-bearing broadcast at connect
  await s.timeout(3000).emitWithAck("arm");
  const id = s.id;
  const pid = s._pid, offset = s._lastOffset;
  assert.equal(typeof pid, "string", "CONNECT carried a pid");
  assert.equal(typeof offset, "string", "a broadcast carried an offset");
  events.length = 0;
  const gone = once(s, "disconnect"), back = once(s, "connect");
  s.io.engine.close(); // transport cut; the client reconnects by itself
  await gone;
  await back;
  await new Promise((r) => setTimeout(r, 300)); // let replayed events arrive
  return { id, pid, offset, events };
}

if (mode === "recover" || mode === "expired") {
  const s = connect({ token: "alice" });
  const r = await cutAndCollect(s);
  const names = r.events.map((e) => e.ev).filter((e) => e !== "welcome");
  out({ kind: "result", recovered: s.recovered, sameId: s.id === r.id, names,
    payloads: r.events.filter((e) => e.ev.startsWith("missed")).map((e) => e.args[0]),
    offsets: r.events.map((e) => e.args[e.args.length - 1]) });
  s.close();
} else if (mode === "foreign") {
  const alice = connect({ token: "alice" });
  const events = [];
  await once(alice, "welcome");
  await alice.timeout(3000).emitWithAck("arm");
  const pid = alice._pid, offset = alice._lastOffset, aliceId = alice.id;
  const gone = once(alice, "disconnect"), back = once(alice, "connect");
  alice.io.engine.close();
  await gone;
  // bob connects during alice's absence with alice's session credentials
  const bob = io(url, { path, forceNew: true, transports: ["websocket"], reconnection: false,
    auth: { token: "bob", pid, offset } });
  bob.onAny((ev) => events.push(ev));
  await once(bob, "connect");
  await new Promise((r) => setTimeout(r, 300));
  const bobResult = { recovered: bob.recovered, sameId: bob.id === aliceId, events };
  bob.close();
  await back;
  out({ kind: "result", bob: bobResult, aliceRecovered: alice.recovered, aliceSameId: alice.id === aliceId });
  alice.close();
} else {
  console.error("mode: recover | expired | foreign");
  process.exit(2);
}
clearTimeout(timeout);
