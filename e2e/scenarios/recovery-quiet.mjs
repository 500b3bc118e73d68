// recovery-quiet: a quiet tab. The official client connects, receives no
// event but walcast:offset for RECOVERY_QUIET_MS, then loses its transport
// and reconnects by itself (its library sends pid and last offset).
//
//   WALCAST_URL=<instance> node recovery-quiet.mjs
//
// Environment:
//   RECOVERY_TOKEN          the JWT
//   RECOVERY_QUIET_MS       how long it stays connected and quiet
//   RECOVERY_DELAY_MS       reconnection delay, exact (no randomization)
//   RECOVERY_DIR            files exchanged with the Go test: "away"
//                           (client: the connection is gone), "committed"
//                           (test: the changes are committed)
//   RECOVERY_FORGET_TICKS   "1": the control. Before going away the client
//                           sets its last offset back to the one it got at
//                           connect, as if the periodic walcast:offset had
//                           never come.
//   RECOVERY_EVENT, RECOVERY_COUNT  after coming back, wait for that many
//                           such events, then 500 ms more (to see duplicates)
//
// Prints {recovered, sameId, firstOffset, lastOffset, ticks, quiet,
// committedBeforeReconnect, connects, names, payloads}: ticks are the
// walcast:offset events after the one at connect ({ms after it, offset}),
// quiet the other events received while quiet (there should be none).
import assert from "node:assert/strict";
import { main, once, sleep, reconnectingClient, connectedWithOffset, signalFile, waitMissed } from "./lib.mjs";

const dir = process.env.RECOVERY_DIR;
const delay = Number(process.env.RECOVERY_DELAY_MS || 3000);
const quietMs = Number(process.env.RECOVERY_QUIET_MS || 40000);

main("recovery-quiet", async () => {
  assert.ok(dir, "RECOVERY_DIR is set");
  const { socket: s, stats } = reconnectingClient({ dir, token: process.env.RECOVERY_TOKEN, delayMs: delay });
  let phase = "connecting", t0 = 0;
  const ticks = [], quiet = [], after = [];
  s.onAny((ev, ...args) => {
    if (phase === "quiet" && ev === "walcast:offset") ticks.push({ ms: Date.now() - t0, offset: args[args.length - 1] });
    else if (phase === "quiet") quiet.push(ev);
    else if (phase === "after" && ev !== "walcast:offset") after.push({ ev, args });
  });

  await connectedWithOffset(s);
  const id = s.id, firstOffset = s._lastOffset;
  assert.equal(typeof s._pid, "string", "CONNECT carried a pid");
  assert.equal(typeof firstOffset, "string", "walcast:offset at connect carried an offset");
  // The quiet time counts from the connect offset's arrival, so that offset
  // is at least quietMs + delay old when the client presents it again.
  phase = "quiet";
  t0 = Date.now();
  await sleep(quietMs);
  const lastOffset = s._lastOffset;
  if (process.env.RECOVERY_FORGET_TICKS === "1") s._lastOffset = firstOffset;
  const gone = once(s, "disconnect", 10000);
  s.io.engine.close(); // the Manager sees a transport close and reconnects after delay
  const [reason] = await gone;
  phase = "after";
  signalFile(dir, "away", reason);

  await once(s, "connect", 30000);
  await waitMissed(after);
  const result = {
    reason, recovered: s.recovered, sameId: s.id === id, firstOffset, lastOffset, ticks, quiet,
    committedBeforeReconnect: stats.committedBeforeReconnect, connects: stats.connects,
    names: after.map((e) => e.ev), payloads: after.map((e) => e.args[0]),
  };
  s.close();
  return result;
});
