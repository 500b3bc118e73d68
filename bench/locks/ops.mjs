// Times lock operations through the official socket.io-client, sequentially:
// each emit waits for its ack before the next. Prints one JSON line:
// {"acquire_free":[µs...], "acquire_held":[...], "release":[...], "check":[...]}
//   node ops.mjs URL HOLDER_TOKEN OTHER_TOKEN N
import { createRequire } from "node:module";
const require = createRequire(new URL("../../e2e/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [url, holderToken, otherToken, nArg] = process.argv.slice(2);
const n = Number(nArg);

function connect(token) {
  return new Promise((resolve, reject) => {
    const s = io(url, { auth: { token }, transports: ["websocket"], reconnection: false });
    s.on("connect", () => resolve(s));
    s.on("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
}

const holder = await connect(holderToken);
const other = await connect(otherToken);
const times = { acquire_free: [], acquire_held: [], release: [], check: [] };

async function timed(kind, sock, event, payload, check) {
  const t0 = process.hrtime.bigint();
  const ack = await sock.timeout(10000).emitWithAck(event, payload);
  times[kind].push(Number(process.hrtime.bigint() - t0) / 1000);
  if (!check(ack)) throw new Error(`${event} ${JSON.stringify(payload)}: unexpected ack ${JSON.stringify(ack)}`);
}

for (let i = 0; i < n; i++) {
  const res = { resourceType: "member", resourceId: `bench-${i}` };
  await timed("acquire_free", holder, "lock:acquire", res, (a) => a.success === true);
  await timed("acquire_held", other, "lock:acquire", res, (a) => a.success === false && a.lockedBy === "holder");
  await timed("check", other, "lock:check", res, (a) => a.isLocked === true);
  await timed("release", holder, "lock:release", res, (a) => a.success === true);
}
console.log(JSON.stringify(times));
holder.close();
other.close();
