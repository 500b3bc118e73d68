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
import { main, once, reconnectingClient, connectedWithOffset, signalFile, waitFile, waitMissed } from "./lib.mjs";

const mode = process.argv[2] || "cut";
const dir = process.env.RECOVERY_DIR;
const delay = Number(process.env.RECOVERY_DELAY_MS || 5000);
const transports = (process.env.RECOVERY_TRANSPORTS || "websocket").split(",");

main(`recovery-nginx ${mode}`, async () => {
  assert.ok(dir, "RECOVERY_DIR is set");
  const { socket: s, stats } = reconnectingClient({ dir, token: process.env.RECOVERY_TOKEN, transports, delayMs: delay });
  let phase = "before";
  const before = [], after = [];
  s.onAny((ev, ...args) => {
    if (ev !== "walcast:offset") (phase === "before" ? before : after).push({ ev, args });
  });

  await connectedWithOffset(s);
  if (transports.includes("polling") && s.io.engine.transport.name !== "websocket") {
    await once(s.io.engine, "upgrade", 20000);
  }
  const id = s.id, sidBefore = s.io.engine.id, pid = s._pid, offset = s._lastOffset;
  assert.equal(typeof pid, "string", "CONNECT carried a pid");
  assert.equal(typeof offset, "string", "walcast:offset carried an offset");
  const gone = once(s, "disconnect", 30000);
  signalFile(dir, "ready", JSON.stringify({ sid: sidBefore, pid, offset }));
  if (mode === "cut") {
    await waitFile(dir, "go", 20000);
    s.io.engine.close(); // the Manager sees a transport close and reconnects after delay
  }
  const [reason] = await gone;
  phase = "after";
  signalFile(dir, "away", reason);

  await once(s, "connect", 40000);
  if (transports.includes("polling") && s.io.engine.transport.name !== "websocket") {
    await once(s.io.engine, "upgrade", 20000); // the new session upgrades through nginx too
  }
  await waitMissed(after);
  const result = {
    reason, recovered: s.recovered, sameId: s.id === id, sidBefore, sidAfter: s.io.engine.id,
    transportAfter: s.io.engine.transport.name, committedBeforeReconnect: stats.committedBeforeReconnect, connects: stats.connects,
    before: before.map((e) => e.ev), names: after.map((e) => e.ev), payloads: after.map((e) => e.args[0]),
  };
  s.close();
  return result;
});
