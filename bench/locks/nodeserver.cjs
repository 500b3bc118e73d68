// Reference server for bench/locks: Node socket.io 4.8 (bench/fanout/node's
// install) answering the contract's three lock events from a Map in the
// same process: no store round trip, so its ack time is the Socket.IO floor
// of this machine and client. The token is read, not verified (a benchmark
// on loopback).
//   PORT=3000 node nodeserver.cjs
const { createRequire } = require("node:module");
const path = require("node:path");
const req = createRequire(path.join(__dirname, "../fanout/node/package.json"));
const { Server } = req("socket.io");

const locks = new Map(); // "type:id" -> {userId, username, acquiredAt}
const io = new Server(Number(process.env.PORT), {});
io.use((socket, next) => {
  try {
    const claims = JSON.parse(Buffer.from(socket.handshake.auth.token.split(".")[1], "base64url"));
    socket.data.user = { id: claims.id, username: claims.username };
    next();
  } catch (err) {
    next(new Error("Authentication error: Invalid token"));
  }
});
io.on("connection", (socket) => {
  const me = socket.data.user;
  const key = (p) => `${p.resourceType}:${p.resourceId}`;
  socket.on("lock:acquire", (p, ack) => {
    const cur = locks.get(key(p));
    if (cur && cur.userId !== me.id) return ack({ success: false, lockedBy: cur.username });
    if (!cur) {
      locks.set(key(p), { userId: me.id, username: me.username, acquiredAt: Date.now() });
      io.emit(`lock:update:${key(p)}`, { isLocked: true, lockedBy: me.username });
    }
    ack({ success: true, lockedBy: me.username });
  });
  socket.on("lock:release", (p, ack) => {
    const cur = locks.get(key(p));
    if (cur && cur.userId !== me.id) return ack({ success: false, lockedBy: cur.username });
    if (cur) {
      locks.delete(key(p));
      io.emit(`lock:update:${key(p)}`, { isLocked: false, lockedBy: null });
    }
    ack({ success: true });
  });
  socket.on("lock:check", (p, ack) => {
    const cur = locks.get(key(p));
    ack(cur ? { isLocked: true, lockedBy: cur.username, acquiredAt: cur.acquiredAt } : { isLocked: false });
  });
});
console.log("listening");
