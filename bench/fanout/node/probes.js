// Latency probes for the fan-out benchmark: a few official clients in one
// process, socket.io-client v4 (the default) or, for the Centrifuge
// reference server, centrifuge-js subscribed to channel "bench". Each
// records send->receive latency of every tick from the timestamp the server
// embedded, per rung.
//
// usage: node probes.js <url> <count> [socketio|centrifuge]
// stdout: "ready" once every probe is connected, then one JSON line per
// "report <rung>" read on stdin:
//   {"rung":K,"received":N,"p50_ms":..,"p99_ms":..,"max_ms":..,"disconnects":D}
"use strict";

const readline = require("readline");

const [url, countArg, protocol = "socketio"] = process.argv.slice(2);
const count = Number(countArg || 5);
if (!url || !(count > 0) || !["socketio", "centrifuge"].includes(protocol)) {
  process.stderr.write("usage: node probes.js <url> <count> [socketio|centrifuge]\n");
  process.exit(2);
}

function nowNs() {
  return Math.floor((performance.timeOrigin + performance.now()) * 1e6);
}

const latencies = new Map(); // rung -> array of ms
let disconnects = 0;
let connected = 0;

function record(t) {
  const ms = (nowNs() - t.ts) / 1e6;
  let arr = latencies.get(t.rung);
  if (arr === undefined) {
    arr = [];
    latencies.set(t.rung, arr);
  }
  arr.push(ms);
}

function ready() {
  connected++;
  if (connected === count) process.stdout.write("ready\n");
}

function socketIOProbe(i) {
  const { io } = require("socket.io-client");
  const socket = io(url, { transports: ["websocket"], reconnection: false });
  socket.on("connect", ready);
  socket.on("connect_error", (err) => {
    process.stderr.write(`probe ${i} connect_error: ${err.message}\n`);
    process.exit(1);
  });
  socket.on("disconnect", (reason) => {
    disconnects++;
    process.stderr.write(`probe ${i} disconnected: ${reason}\n`);
  });
  socket.on("tick", record);
}

function centrifugeProbe(i) {
  const { Centrifuge } = require("centrifuge");
  const WebSocket = require("ws");
  const client = new Centrifuge(url.replace(/^http/, "ws") + "/connection/websocket", { websocket: WebSocket });
  let subscribed = false;
  const sub = client.newSubscription("bench");
  sub.on("subscribed", () => {
    if (!subscribed) ready();
    subscribed = true;
  });
  sub.on("publication", (ctx) => record(ctx.data));
  sub.on("error", (ctx) => {
    process.stderr.write(`probe ${i} subscription error: ${JSON.stringify(ctx.error)}\n`);
    process.exit(1);
  });
  // centrifuge-js reconnects by itself; like the socket.io probes (which
  // do not), a probe that loses its connection is counted once and stays
  // away.
  let lost = false;
  const lose = (ctx) => {
    if (lost || !subscribed) return;
    lost = true;
    disconnects++;
    process.stderr.write(`probe ${i} lost its connection: ${ctx.code} ${ctx.reason}\n`);
    client.disconnect();
  };
  client.on("connecting", lose);
  client.on("disconnected", lose);
  sub.subscribe();
  client.connect();
}

for (let i = 0; i < count; i++) {
  if (protocol === "centrifuge") centrifugeProbe(i);
  else socketIOProbe(i);
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.max(0, idx)];
}

// "report <rung> <expected>": waits (at most 3 s) until every probe has the
// expected number of events of that rung, so a straggler still in flight is
// not mistaken for a lost message, then answers and forgets the rung.
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const m = /^report (\d+) (\d+)$/.exec(line.trim());
  if (!m) {
    process.stderr.write(`unknown command: ${line}\n`);
    return;
  }
  const rung = Number(m[1]);
  const want = Number(m[2]) * count;
  const deadline = performance.now() + 3000;
  const answer = () => {
    const got = (latencies.get(rung) || []).length;
    if (got < want && performance.now() < deadline) {
      setTimeout(answer, 20);
      return;
    }
    const arr = (latencies.get(rung) || []).slice().sort((a, b) => a - b);
    latencies.delete(rung);
    process.stdout.write(
      JSON.stringify({
        rung,
        received: arr.length,
        p50_ms: quantile(arr, 0.5),
        p99_ms: quantile(arr, 0.99),
        max_ms: arr.length ? arr[arr.length - 1] : null,
        disconnects,
      }) + "\n",
    );
  };
  answer();
}).on("close", () => process.exit(0));
