// Reference server for the fan-out benchmark: socket.io@4 with default
// settings except what the benchmark needs to be comparable with walcast
// (websocket transport allowed, perMessageDeflate off, which is the default
// in socket.io 4 too, stated here so a future default change cannot skew it).
//
// Control (same on the walcast bench server):
//   GET /bench/stats                 -> {"sockets":N, ...memory figures}
//   POST /bench/broadcast?rate=R&duration_ms=D&rung=K&size=B
//        broadcasts R events/s for D ms to every socket (io.emit) and answers
//        {"sent":N} when done. Each event is ["tick",{...}] whose JSON object
//        is exactly B bytes (bench/fanout/tick documents the layout).
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 0);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  perMessageDeflate: false,
  cors: { origin: "*" },
});

// Wall clock in ns: the probes run in other processes, so a shared clock
// (CLOCK_REALTIME) is needed; performance.now adds sub-ms resolution to the
// time origin. As a JS number it keeps ~256 ns precision, plenty here.
function nowNs() {
  return Math.floor((performance.timeOrigin + performance.now()) * 1e6);
}

const pads = new Map();
function pad(n) {
  let p = pads.get(n);
  if (p === undefined) {
    p = "x".repeat(n);
    pads.set(n, p);
  }
  return p;
}

// Keep in step with bench/fanout/tick: same field order and the same total
// size, so both servers send byte-for-byte comparable events.
function tick(rung, seq, size) {
  const ts = nowNs();
  const fixed = `{"rung":${rung},"seq":${seq},"ts":${ts},"pad":""}`.length;
  return { rung, seq, ts, pad: pad(Math.max(0, size - fixed)) };
}

function broadcast(rate, durationMs, rung, size) {
  return new Promise((resolve) => {
    const total = Math.floor((rate * durationMs) / 1000);
    const start = performance.now();
    let sent = 0;
    // Catch-up pacing: each timer tick emits whatever is due by now, so a
    // busy event loop shows up as bursts, not as a lower offered rate.
    const step = () => {
      const elapsed = performance.now() - start;
      let due = elapsed >= durationMs ? total : Math.floor((rate * elapsed) / 1000);
      while (sent < due) {
        io.emit("tick", tick(rung, sent, size));
        sent++;
      }
      if (sent >= total) {
        resolve(sent);
        return;
      }
      setTimeout(step, 5);
    };
    step();
  });
}

httpServer.on("request", (req, res) => {
  if (req.url.startsWith("/socket.io/")) return; // engine.io answers these
  const url = new URL(req.url, "http://x");
  const reply = (code, obj) => {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(obj));
  };
  if (url.pathname === "/bench/stats") {
    // Where idle memory goes, beside the RSS the driver reads from /proc.
    const m = process.memoryUsage();
    reply(200, {
      sockets: io.of("/").sockets.size,
      heap_used: m.heapUsed,
      external: m.external,
      array_buffers: m.arrayBuffers,
    });
    return;
  }
  if (url.pathname === "/bench/broadcast" && req.method === "POST") {
    const rate = Number(url.searchParams.get("rate"));
    const durationMs = Number(url.searchParams.get("duration_ms"));
    const rung = Number(url.searchParams.get("rung"));
    const size = Number(url.searchParams.get("size") || 300);
    if (!(rate > 0) || !(durationMs > 0) || !Number.isInteger(rung) || rung < 0 || !(size > 0)) {
      reply(400, { error: "rate, duration_ms, size must be > 0 and rung an integer >= 0" });
      return;
    }
    broadcast(rate, durationMs, rung, size).then((sent) => reply(200, { sent }));
    return;
  }
  reply(404, { error: "not found" });
});

httpServer.listen(port, "127.0.0.1", () => {
  // The driver reads this line to learn the port.
  process.stdout.write(`listening ${httpServer.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
