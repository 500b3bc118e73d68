// binary: Buffers both directions, nested in objects, several attachments
// in one packet, and in acks both ways.
//   node binary.mjs websocket|polling

import assert from "node:assert/strict";
import { connect, connected, once, ack, main, normalize } from "./lib.mjs";

const transport = process.argv[2] || "websocket";

function bytes(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

main(`binary/${transport}`, async () => {
  const socket = connect("/", { transports: [transport] });
  await connected(socket);

  const a = bytes(1, 1);
  const b = bytes(1000, 2);
  const c = bytes(70000, 3); // over 64 KiB: a multi-byte WebSocket length
  const empty = Buffer.alloc(0);
  const nested = {
    file: a,
    meta: { name: "x.bin", parts: [b, { deep: c }], flag: true },
    empty,
    text: "not binary",
  };

  // Client -> server -> client event: the server re-emits the same arguments.
  let back = once(socket, "message-back");
  socket.emit("message", a);
  assert.deepStrictEqual(normalize(await back), [a], "single Buffer argument");

  back = once(socket, "message-back");
  socket.emit("message", "label", nested, b, 5);
  assert.deepStrictEqual(normalize(await back), ["label", nested, b, 5], "nested Buffers, several attachments");

  // Client ack carrying binary back from the server.
  const acked = await ack(socket, "message-with-ack", { blob: c }, a);
  assert.deepStrictEqual(normalize(acked), [{ blob: c }, a], "binary in the server's ack");

  // Server emit with ack whose arguments and answer are binary.
  socket.on("bin-question", (payload, reply) => {
    assert.deepStrictEqual(normalize(payload), { q: b });
    reply({ answer: c }, a);
  });
  const [res] = await ack(socket, "ask", { event: "bin-question", args: [{ q: b }], timeoutMs: 3000 });
  assert.deepStrictEqual(normalize(res), { answer: [{ answer: c }, a] }, "binary in the client's ack to the server");

  // Text after binary: the decoder's attachment state must be reset.
  back = once(socket, "message-back");
  socket.emit("message", "plain");
  assert.deepStrictEqual(await back, ["plain"]);

  const result = { id: socket.id, largest: c.length };
  socket.disconnect();
  return result;
});
