// Node peers for the interop tests, driven by redisadapter's Go tests.
//
//   node peer.mjs server <redis-url> <streams|pubsub>
//       a socket.io@4 server on a free port with the official Redis adapter;
//       prints {"ready":port}, then runs one JSON command per stdin line:
//       {"op":"emit","event":..,"args":[..],"rooms":[..],"except":[..],"bin":bool}
//       and answers each with {"done":n}; also {"op":"fetch"} (fetchSockets,
//       answered with {"done":n,"sockets":[..]}) and {"op":"emitWithAck"}
//       ({"done":n,"acks":[..]}).
//   node peer.mjs emitter <redis-url>
//       @socket.io/redis-emitter; same stdin commands (plus "join").
//   node peer.mjs clients <json [{name,url,rooms}]>
//       official socket.io-client sockets, each with a token in its auth
//       ({rooms, token: "secret-token-<name>"}) and Cookie and Authorization
//       headers holding "secret-cookie-<name>" and "secret-bearer-<name>",
//       and X-Client-Name: <name>;
//       prints {"connected":name} for each,
//       then {"client":name,"event":..,"args":[..]} per received event
//       (binary arguments as {"$bin":base64}); events asking for an
//       acknowledgement are answered with "ack:<name>".
import { createInterface } from "node:readline";
import { createServer } from "node:http";

const [mode, ...rest] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + "\n");

function commands(handle) {
  let n = 0;
  const rl = createInterface({ input: process.stdin });
  rl.on("line", async (line) => {
    if (!line.trim()) return;
    try {
      const extra = await handle(JSON.parse(line));
      out({ done: ++n, ...extra });
    } catch (e) {
      out({ error: String(e) });
    }
  });
  rl.on("close", () => process.exit(0));
}

function args(cmd) {
  const a = cmd.args || [];
  return cmd.bin ? [...a, Buffer.from("bin:" + cmd.event)] : a;
}

function select(target, cmd) {
  let op = target;
  for (const r of cmd.rooms || []) op = op.to(r);
  if ((cmd.except || []).length) op = op.except(cmd.except);
  return op;
}

if (mode === "server") {
  const [url, kind] = rest;
  const { Server } = await import("socket.io");
  const { createClient } = await import("redis");
  const pub = createClient({ url });
  await pub.connect();
  let adapter;
  if (kind === "streams") {
    const { createAdapter } = await import("@socket.io/redis-streams-adapter");
    adapter = createAdapter(pub);
  } else {
    const { createAdapter } = await import("@socket.io/redis-adapter");
    const sub = pub.duplicate();
    await sub.connect();
    adapter = createAdapter(pub, sub);
  }
  const http = createServer();
  const io = new Server(http, { adapter });
  io.on("connection", (socket) => {
    socket.join(socket.handshake.auth.rooms || []);
  });
  http.listen(0, "127.0.0.1", () => out({ ready: http.address().port }));
  commands(async (cmd) => {
    if (cmd.op === "fetch") {
      const sockets = await select(io, cmd).fetchSockets();
      return { sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], address: s.handshake.address, auth: s.handshake.auth, handshake: s.handshake })) };
    }
    if (cmd.op === "emitWithAck") {
      const acks = await select(io, cmd).timeout(3000).emitWithAck(cmd.event, ...args(cmd));
      return { acks };
    }
    if (cmd.op === "join") select(io, cmd).socketsJoin(cmd.join);
    if (cmd.op === "leave") select(io, cmd).socketsLeave(cmd.leave);
    if (cmd.op === "emit") select(io, cmd).emit(cmd.event, ...args(cmd));
    // The adapter queued its XADD/PUBLISH on pub; a PING behind it returns
    // once Redis has processed it, so the Go side can order what follows.
    await pub.ping();
  });
} else if (mode === "emitter") {
  const [url] = rest;
  const { Emitter } = await import("@socket.io/redis-emitter");
  const { createClient } = await import("redis");
  const client = createClient({ url });
  await client.connect();
  const emitter = new Emitter(client);
  out({ ready: 0 });
  commands(async (cmd) => {
    if (cmd.op === "emit") select(emitter, cmd).emit(cmd.event, ...args(cmd));
    if (cmd.op === "join") select(emitter, cmd).socketsJoin(cmd.join);
    await client.ping();
  });
} else if (mode === "clients") {
  const { io } = await import("socket.io-client");
  const specs = JSON.parse(rest[0]);
  const enc = (v) =>
    Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)
      ? { $bin: Buffer.from(v).toString("base64") }
      : v;
  for (const { name, url, rooms } of specs) {
    const socket = io(url, {
      auth: { rooms: rooms || [], token: "secret-token-" + name },
      extraHeaders: { cookie: "sid=secret-cookie-" + name, authorization: "Bearer secret-bearer-" + name, "x-client-name": name },
      transports: ["websocket"],
      reconnection: false,
    });
    socket.on("connect", () => out({ connected: name }));
    socket.on("connect_error", (e) => out({ client: name, error: e.message }));
    socket.on("disconnect", (reason) => out({ disconnected: name, reason }));
    socket.onAny((event, ...a) => {
      if (typeof a[a.length - 1] === "function") a.pop()("ack:" + name);
      out({ client: name, event, args: a.map(enc) });
    });
  }
  createInterface({ input: process.stdin }).on("close", () => process.exit(0));
} else {
  console.error("unknown mode " + mode);
  process.exit(2);
}
