// slow: a raw WebSocket joins "/" and then stops reading (its TCP socket
// is paused), while an official client asks for broadcast batches to
// everyone. Once the kernel buffers and the server's bounded send queue
// for the stalled socket are full, the server must cut that socket's
// transport; the broadcaster keeps going (every batch is acked) and the
// official client receives every event exactly once, in order.
//   node slow.mjs [batchSize] [payloadBytes]

import assert from "node:assert/strict";
import WebSocket from "ws";
import { url, path, connect, connected, ack, main } from "./lib.mjs";

const batchSize = Number(process.argv[2] || 500);
const size = Number(process.argv[3] || 1000);
const maxBatches = 400; // 200 MB at the defaults: far beyond any socket buffer

// stalled joins "/" over a raw WebSocket, then pauses reading.
function stalled() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws") + path + "?EIO=4&transport=websocket");
    ws.on("error", reject);
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.startsWith("0{")) ws.send("40");
      else if (text.startsWith("40{")) {
        ws._socket.pause(); // ws has no public "stop reading"; its net.Socket does
        resolve({ ws, id: JSON.parse(text.slice(2)).sid });
      }
    });
  });
}

main("slow", async () => {
  const reader = connect("/", { transports: ["websocket"] });
  await connected(reader);
  let expectBatch = 0;
  let expectIndex = 0;
  let received = 0;
  reader.on("flood-item", (batch, i, payload) => {
    assert.equal(batch, expectBatch, "batches in order");
    assert.equal(i, expectIndex, "events in order, none lost or repeated");
    assert.equal(payload.length, size);
    received++;
    if (++expectIndex === batchSize) {
      expectIndex = 0;
      expectBatch++;
    }
  });

  const slow = await stalled();
  let cutAfter = -1;
  let batch = 0;
  for (; batch < maxBatches; batch++) {
    // The ack comes after the batch on the same socket, so the reader has
    // every event of this batch once the ack is in: its queue stays bounded.
    const [sockets] = await ack(reader, "flood", { n: batchSize, size, batch }).catch((err) => {
      throw new Error(`batch ${batch}: the broadcaster never finished (${err.message}); a stalled socket must not block a broadcast`);
    });
    assert.equal(received, (batch + 1) * batchSize, `reader has all of batch ${batch}`);
    if (sockets === 1) {
      cutAfter = batch;
      break;
    }
    assert.equal(sockets, 2, "reader and stalled socket connected");
  }
  assert.ok(cutAfter >= 0, `the stalled socket was never cut after ${maxBatches} batches`);
  assert.ok(reader.connected, "the reader stays connected");

  // Resumed, the stalled socket finds its connection closed by the server.
  const closed = new Promise((resolve) => slow.ws.on("close", resolve));
  slow.ws._socket.resume();
  await closed;
  const readerID = reader.id; // cleared by disconnect()
  reader.disconnect();
  return { stalledID: slow.id, readerID, cutAfterBytes: (cutAfter + 1) * batchSize * size, received };
});
