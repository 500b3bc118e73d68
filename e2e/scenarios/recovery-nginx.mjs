// recovery-nginx: one official client, connected through nginx, loses its
// connection and comes back BY ITSELF: the client library's own
// reconnection, which sends its pid and last offset in the CONNECT auth.
// Nothing of the client's recovery state is touched here.
//
//   WALCAST_URL=<nginx url> node recovery-nginx.mjs cut|kill
//
// Environment:
//   RECOVERY_TOKEN       the JWT
//   RECOVERY_TRANSPORTS  "websocket" (default) or "polling,websocket"; with
//                        polling the client first waits for its upgrade, so
//                        the upgrade goes through nginx too
//   RECOVERY_DELAY_MS    reconnection delay, exact (no randomization): how
//                        long the client stays away
//   RECOVERY_DIR         files exchanged with the Go test:
//                          ready      client: connected and holding an
//                                     offset; JSON {sid, pid, offset}
//                          go         test: cut the transport now (cut)
//                          away       client: the connection is gone
//                          committed  test: the changes are committed
//   RECOVERY_EVENT, RECOVERY_COUNT  after coming back, wait for that many
//                        such events, then 500 ms more (to see duplicates)
//
// "cut" closes the transport when the test says go; "kill" waits for the
// test to kill the instance. Prints {recovered, sameId, sidBefore,
// sidAfter, transportAfter, committedBeforeReconnect, connects, before,
// names, payloads}: before are the non-offset events received before the
// connection was lost, names/payloads those received after it.
import assert from "node:assert/strict";
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { io, url, path, main, once, sleep } from "./lib.mjs";

const mode = process.argv[2] || "cut";
const dir = process.env.RECOVERY_DIR;
const delay = Number(process.env.RECOVERY_DELAY_MS || 5000);
const transports = (process.env.RECOVERY_TRANSPORTS || "websocket").split(",");

// waitFile polls for a file the Go test writes.
async function waitFile(name, ms) {
  const deadline = Date.now() + ms;
  while (!existsSync(join(dir, name))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for the test's "${name}" file`);
    await sleep(20);
  }
}


// signal writes a file for the Go test whole (it polls and reads as soon as
// the name exists): write under another name, then rename.
function signal(name, content) {
  writeFileSync(join(dir, "." + name), content);
  renameSync(join(dir, "." + name), join(dir, name));
}

main(`recovery-nginx ${mode}`, async () => {
  assert.ok(dir, "RECOVERY_DIR is set");
  const s = io(url, {
    path, forceNew: true, transports, auth: { token: process.env.RECOVERY_TOKEN },
    reconnection: true, reconnectionDelay: delay, reconnectionDelayMax: delay, randomizationFactor: 0,
  });
  let phase = "before";
  const before = [], after = [];
  s.onAny((ev, ...args) => {
    if (ev !== "walcast:offset") (phase === "before" ? before : after).push({ ev, args });
  });
  let connects = 0;
  s.on("connect", () => connects++);
  let committedBeforeReconnect = null;
  s.io.on("reconnect_attempt", () => {
    if (committedBeforeReconnect === null) committedBeforeReconnect = existsSync(join(dir, "committed"));
  });

  await once(s, "connect", 20000);
  if (!s._lastOffset) await once(s, "walcast:offset", 20000);
  if (transports.includes("polling") && s.io.engine.transport.name !== "websocket") {
    await once(s.io.engine, "upgrade", 20000);
  }
  const id = s.id, sidBefore = s.io.engine.id, pid = s._pid, offset = s._lastOffset;
  assert.equal(typeof pid, "string", "CONNECT carried a pid");
  assert.equal(typeof offset, "string", "walcast:offset carried an offset");
  const gone = once(s, "disconnect", 30000);
  signal("ready", JSON.stringify({ sid: sidBefore, pid, offset }));
  if (mode === "cut") {
    await waitFile("go", 20000);
    s.io.engine.close(); // the Manager sees a transport close and reconnects after delay
  }
  const [reason] = await gone;
  phase = "after";
  signal("away", reason);

  await once(s, "connect", 40000);
  if (transports.includes("polling") && s.io.engine.transport.name !== "websocket") {
    await once(s.io.engine, "upgrade", 20000); // the new session upgrades through nginx too
  }
  const want = process.env.RECOVERY_EVENT, count = Number(process.env.RECOVERY_COUNT || 0);
  const deadline = Date.now() + 30000;
  while (want && after.filter((e) => e.ev === want).length < count && Date.now() < deadline) await sleep(50);
  await sleep(500);
  const result = {
    reason, recovered: s.recovered, sameId: s.id === id, sidBefore, sidAfter: s.io.engine.id,
    transportAfter: s.io.engine.transport.name, committedBeforeReconnect, connects,
    before: before.map((e) => e.ev), names: after.map((e) => e.ev), payloads: after.map((e) => e.args[0]),
  };
  s.close();
  return result;
});
