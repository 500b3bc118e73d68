// client: a generic official socket.io-client driven over stdin/stdout, for
// Go tests that need to control timing themselves (see e2e/sioclient).
//
//   WALCAST_URL=http://127.0.0.1:PORT node client.mjs '<options JSON>'
//
// Options: {"namespace":"/", "count":1, "auth":{...}, "auths":[{...},...],
// "transports":["websocket"], "query":{...}, "extraHeaders":{...},
// "reconnection":false, "path":"/socket.io/"}. "auths" gives client i its
// own auth (e.g. one JWT per user); "auth" is the default for all.
//
// Every line out is JSON with a "kind":
//   connect {client,id,transport} | connect_error {client,message,data}
//   disconnect {client,reason} | event {client,event,args,ackRef?}
//   ack {client,ref,args} or {client,ref,error} | ready {connected,failed}
//   error {error}
// Lines in (commands):
//   {"cmd":"emit","client":0,"event":"e","args":[...],"ref":"r1","timeoutMs":5000}
//       with "ref" the emit asks for an ack, answered by an "ack" line
//   {"cmd":"ack","client":0,"ackRef":3,"args":[...]}  answer a server's ack
//   {"cmd":"flood","client":0,"events":["e1","e2"],"args":[...],"count":N,"window":W,"ref":"r1","timeoutMs":30000}
//       emits count times, all at once or (window > 0) with at most window
//       unanswered, event i being events[i % len], every string "{i}" in
//       args replaced by i, each asking for an ack; once
//       all are answered prints {kind:"flood",client,ref,counts}, counts
//       mapping each distinct ack (its JSON, or "error: <message>") to how
//       many came: a hostile client, as fast as the library sends
//   {"cmd":"disconnect","client":0} | {"cmd":"connect","client":0} | {"cmd":"exit"}
// Binary travels as {"$binary":"<base64>"} both ways.

import { createInterface } from "node:readline";
import { io, url, path as defaultPath, out, fromWire } from "./scenarios/lib.mjs";

let opts;
try {
  opts = JSON.parse(process.argv[2] || "{}");
} catch (err) {
  console.error(`options must be JSON: ${err.message}`);
  process.exit(2);
}

const count = opts.count ?? 1;
const sockets = [];
const pendingAcks = new Map(); // ackRef -> reply function
let nextAckRef = 1;
let settled = 0;
let connectedCount = 0;
let failedCount = 0;

for (let i = 0; i < count; i++) {
  const s = io(url + (opts.namespace || "/"), {
    path: opts.path || defaultPath,
    forceNew: true,
    reconnection: opts.reconnection ?? false,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    transports: opts.transports,
    auth: opts.auths?.[i] ?? opts.auth,
    query: opts.query,
    extraHeaders: opts.extraHeaders,
  });
  let first = true;
  const settle = (ok) => {
    if (!first) return;
    first = false;
    ok ? connectedCount++ : failedCount++;
    if (++settled === count) out({ kind: "ready", connected: connectedCount, failed: failedCount });
  };
  s.on("connect", () => {
    out({ kind: "connect", client: i, id: s.id, transport: s.io.engine.transport.name });
    settle(true);
  });
  s.on("connect_error", (err) => {
    out({ kind: "connect_error", client: i, message: err.message, data: err.data });
    settle(false);
  });
  s.on("disconnect", (reason) => out({ kind: "disconnect", client: i, reason }));
  s.onAny((event, ...args) => {
    const line = { kind: "event", client: i, event };
    if (typeof args[args.length - 1] === "function") {
      const ref = nextAckRef++;
      pendingAcks.set(ref, args.pop());
      line.ackRef = ref;
    }
    line.args = args;
    out(line);
  });
  sockets.push(s);
}
if (count === 0) out({ kind: "ready", connected: 0, failed: 0 });

function run(cmd) {
  const s = sockets[cmd.client ?? 0];
  if (cmd.cmd !== "exit" && !s) throw new Error(`no client ${cmd.client}`);
  switch (cmd.cmd) {
    case "emit": {
      const args = fromWire(cmd.args || []);
      if (cmd.ref === undefined) {
        s.emit(cmd.event, ...args);
        return;
      }
      s.timeout(cmd.timeoutMs ?? 5000).emit(cmd.event, ...args, (err, ...res) => {
        if (err) out({ kind: "ack", client: cmd.client ?? 0, ref: cmd.ref, error: err.message });
        else out({ kind: "ack", client: cmd.client ?? 0, ref: cmd.ref, args: res });
      });
      return;
    }
    case "flood": {
      const counts = {};
      let done = 0;
      const fill = (v, i) =>
        typeof v === "string" ? v.replaceAll("{i}", String(i))
        : Array.isArray(v) ? v.map((x) => fill(x, i))
        : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x, i)]))
        : v;
      let sent = 0;
      const send = () => {
        const i = sent++;
        const event = cmd.events[i % cmd.events.length];
        s.timeout(cmd.timeoutMs ?? 30000).emit(event, ...fill(cmd.args || [], i), (err, ...res) => {
          const key = err ? `error: ${err.message}` : JSON.stringify(res);
          counts[key] = (counts[key] || 0) + 1;
          if (++done === cmd.count) out({ kind: "flood", client: cmd.client ?? 0, ref: cmd.ref, counts });
          else if (sent < cmd.count) send();
        });
      };
      const first = cmd.window > 0 ? Math.min(cmd.window, cmd.count) : cmd.count;
      for (let k = 0; k < first; k++) send();
      return;
    }
    case "ack": {
      const reply = pendingAcks.get(cmd.ackRef);
      if (!reply) throw new Error(`no pending ack ${cmd.ackRef}`);
      pendingAcks.delete(cmd.ackRef);
      reply(...fromWire(cmd.args || []));
      return;
    }
    case "disconnect":
      s.disconnect();
      return;
    case "connect":
      s.connect();
      return;
    case "exit":
      process.exit(0);
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`);
  }
}

createInterface({ input: process.stdin })
  .on("line", (line) => {
    if (!line.trim()) return;
    try {
      run(JSON.parse(line));
    } catch (err) {
      out({ kind: "error", error: err.message });
    }
  })
  .on("close", () => process.exit(0));
