// disconnect:
//   server: the server disconnects the socket (Socket.IO DISCONNECT); the
//           client sees "io server disconnect" and does not reconnect.
//   drop:   the server closes the Engine.IO session (transport only, here
//           by overflowing its send queue); the client sees a
//           transport-level reason, reconnects by itself and gets a new
//           socket id.
//   node disconnect.mjs server|drop websocket|polling

import assert from "node:assert/strict";
import { connect, connected, once, ack, main, sleep } from "./lib.mjs";

const mode = process.argv[2];
const transport = process.argv[3] || "websocket";
if (mode !== "server" && mode !== "drop") {
  console.error("usage: disconnect.mjs server|drop websocket|polling");
  process.exit(2);
}

main(`disconnect/${mode}/${transport}`, async () => {
  const socket = connect("/", {
    transports: [transport],
    reconnection: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
    randomizationFactor: 0,
  });
  let connects = 0;
  socket.on("connect", () => connects++);
  await connected(socket);
  const firstID = socket.id;
  const firstSID = socket.io.engine.id;

  const disconnected = once(socket, "disconnect", 10000);
  if (mode === "server") {
    socket.emit("disconnect-me");
    const [reason] = await disconnected;
    assert.equal(reason, "io server disconnect");
    // Well past the reconnection delay: a reconnect would have happened.
    await sleep(500);
    assert.equal(socket.connected, false);
    assert.equal(socket.active, false, "no automatic reconnection after a server disconnect");
    assert.equal(connects, 1, "connected exactly once");
    socket.close();
    return { firstID, reason };
  }

  // The server floods this socket until its bounded send queue overflows
  // and the session closes its transport. Over WebSocket the client stops
  // reading (its TCP socket is paused) so the overflow happens however fast
  // the server writes; a second connection asks the server when the socket
  // is gone, then reading resumes and the client finds the close.
  const watcher = connect("/", { transports: ["websocket"] });
  await connected(watcher);
  const reconnected = once(socket, "connect", 10000);
  socket.emit("drop-me");
  const tcp = transport === "websocket" ? socket.io.engine.transport.ws._socket : null;
  if (tcp) tcp.pause();
  for (;;) {
    const [alive] = await ack(watcher, "is-connected", firstID);
    if (!alive) break;
    await sleep(20);
  }
  if (tcp) tcp.resume();
  const [reason] = await disconnected;
  assert.ok(["transport close", "transport error", "ping timeout"].includes(reason), `transport-level reason, got "${reason}"`);
  assert.equal(socket.active, true, "client keeps trying after a dropped transport");
  await reconnected;
  assert.equal(connects, 2);
  assert.notEqual(socket.id, firstID, "a new socket id after reconnecting");
  assert.notEqual(socket.io.engine.id, firstSID, "a new Engine.IO session after reconnecting");
  assert.deepStrictEqual(await ack(socket, "message-with-ack", "after reconnect"), ["after reconnect"]);
  const result = { firstID, secondID: socket.id, watcherID: watcher.id, reason };
  socket.disconnect();
  watcher.disconnect();
  return result;
});
