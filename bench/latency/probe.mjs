// probe.mjs: official socket.io-client sockets for bench/latency. Each
// prints, for every donation:update CREATE, the id the writer put in the
// row's notes and the wall-clock time it arrived (epoch ms, microsecond
// resolution), so the Go side can subtract the writer's COMMIT time.
//
//   WALCAST_E2E_DIR=<e2e dir> node probe.mjs <url> <token> <count>
//
// socket.io-client is taken from e2e/node_modules (pinned there).
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.WALCAST_E2E_DIR, "package.json"));
const { io } = require("socket.io-client");

const [url, token, countArg] = process.argv.slice(2);
const count = Number(countArg || 4);
const now = () => performance.timeOrigin + performance.now();
let connected = 0;

for (let i = 0; i < count; i++) {
  const s = io(url, { auth: { token }, transports: ["websocket"], forceNew: true, reconnection: false });
  s.on("connect", () => {
    if (++connected === count) process.stdout.write("ready\n");
  });
  s.on("connect_error", (err) => {
    process.stderr.write(`probe ${i}: connect_error ${err.message}\n`);
    process.exit(1);
  });
  s.on("donation:update", (p) => {
    const at = now();
    if (p && p.type === "CREATE") process.stdout.write(`${i} ${p.data.notes} ${at.toFixed(3)}\n`);
  });
}
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
