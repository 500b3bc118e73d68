// Prints every event walcast sends to one socket.
//   node scripts/watch.mjs http://127.0.0.1:8080 <token>
// Uses the official socket.io-client installed by `npm ci --prefix e2e`.
import { createRequire } from "node:module";
const require = createRequire(new URL("../e2e/package.json", import.meta.url));
const { io } = require("socket.io-client");

const [url = "http://127.0.0.1:8080", token] = process.argv.slice(2);
const socket = io(url, { auth: { token }, transports: ["websocket"] });
socket.on("connect", () => console.log(`connected as socket ${socket.id}`));
socket.on("connect_error", (err) => console.log(`connect_error: ${err.message}`));
socket.on("disconnect", (reason) => console.log(`disconnected: ${reason}`));
socket.onAny((event, ...args) => console.log(event, JSON.stringify(args)));
