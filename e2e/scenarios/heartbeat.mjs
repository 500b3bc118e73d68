// heartbeat, against a server with the given pingInterval/pingTimeout:
//   pings:      the official client answers the server's pings and stays
//               connected on the same socket across several intervals
//               (websocket and polling); a raw WebSocket that joined "/"
//               but never answers a ping is closed by the server.
//   no-connect: a raw WebSocket that never sends a Socket.IO CONNECT is
//               closed by the server's connectTimeout (set below the
//               pingInterval, so no ping comes first).
//   node heartbeat.mjs pings|no-connect <pingIntervalMs> <pingTimeoutMs>

import assert from "node:assert/strict";
import WebSocket from "ws";
import { url, path, connect, connected, ack, main } from "./lib.mjs";

const mode = process.argv[2];
const interval = Number(process.argv[3]);
const timeout = Number(process.argv[4]);
assert.ok(["pings", "no-connect"].includes(mode) && interval > 0 && timeout > 0, "usage: heartbeat.mjs pings|no-connect <pingIntervalMs> <pingTimeoutMs>");

async function survives(transport) {
  const socket = connect("/", { transports: [transport] });
  await connected(socket);
  const id = socket.id;
  const pings = 3;
  await new Promise((resolve, reject) => {
    let n = 0;
    const limit = pings * interval + 10000; // generous: the machine may be loaded
    const timer = setTimeout(() => reject(new Error(`${transport}: ${n} pings in ${limit} ms`)), limit);
    socket.io.on("ping", () => {
      if (++n === pings) {
        clearTimeout(timer);
        resolve();
      }
    });
    socket.on("disconnect", (reason) => reject(new Error(`${transport}: disconnected (${reason}) while answering pings`)));
  });
  assert.equal(socket.id, id, "same socket after the pings");
  assert.deepStrictEqual(await ack(socket, "message-with-ack", transport), [transport]);
  socket.disconnect();
  return pings;
}

// silent opens a raw WebSocket session that never answers "2" (ping);
// with connect it joins "/" first, without it never sends a CONNECT.
function silent({ connect }) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws") + path + "?EIO=4&transport=websocket");
    const started = Date.now();
    let pings = 0;
    const limit = 4 * (interval + timeout) + 10000;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`a silent session (connect: ${connect}) was still open after ${limit} ms`));
    }, limit);
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.startsWith("0{")) {
        const open = JSON.parse(text.slice(1));
        assert.equal(open.pingInterval, interval, "pingInterval in the open packet");
        assert.equal(open.pingTimeout, timeout, "pingTimeout in the open packet");
        if (connect) ws.send("40");
      } else if (text === "2") {
        pings++;
      }
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      clearTimeout(timer);
      resolve({ pings, ms: Date.now() - started });
    });
  });
}

main(`heartbeat/${mode}`, async () => {
  if (mode === "no-connect") {
    const idle = await silent({ connect: false });
    assert.equal(idle.pings, 0, "closed by connectTimeout before the first ping");
    return { noConnectClosedAfterMs: idle.ms };
  }
  const ws = await survives("websocket");
  const polling = await survives("polling");
  const dead = await silent({ connect: true });
  assert.equal(dead.pings, 1, "closed after the first unanswered ping, not later");
  return { websocketPings: ws, pollingPings: polling, unansweredClosedAfterMs: dead.ms };
});
