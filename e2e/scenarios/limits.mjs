// limits: the official client sends what the server's limits refuse. The
// server must drop that connection (the client sees a transport-level
// reason and reconnects by itself), never deliver the packet, and keep
// serving the reconnected socket.
//   node limits.mjs websocket|polling <maxPayload> <maxAttachments> <maxAttachmentBytes>

import assert from "node:assert/strict";
import { connect, connected, once, ack, main } from "./lib.mjs";

const transport = process.argv[2] || "websocket";
const maxPayload = Number(process.argv[3]);
const maxAttachments = Number(process.argv[4]);
const maxAttachmentBytes = Number(process.argv[5]);
assert.ok(maxPayload > 0 && maxAttachments > 0 && maxAttachmentBytes > 0, "usage: limits.mjs websocket|polling <maxPayload> <maxAttachments> <maxAttachmentBytes>");

main(`limits/${transport}`, async () => {
  const socket = connect("/", {
    transports: [transport],
    reconnection: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
    randomizationFactor: 0,
  });
  await connected(socket);

  const cases = [
    { name: "payload over maxPayload", args: ["big", "x".repeat(maxPayload + 1000)] },
    { name: "too many attachments", args: ["many", ...Array.from({ length: maxAttachments + 1 }, (_, i) => Buffer.from([i]))] },
    {
      name: "attachments over their total size",
      args: ["heavy", Buffer.alloc(maxAttachmentBytes / 2 + 1), Buffer.alloc(maxAttachmentBytes / 2 + 1)],
    },
  ];
  const outcomes = [];
  for (const c of cases) {
    const id = socket.id;
    const started = Date.now();
    const gone = once(socket, "disconnect", 10000);
    const back = once(socket, "connect", 10000);
    socket.emit("message", ...c.args);
    const [reason] = await gone;
    assert.ok(["transport close", "transport error"].includes(reason), `${c.name}: transport-level reason, got "${reason}"`);
    await back;
    assert.notEqual(socket.id, id, `${c.name}: a new socket after reconnecting`);
    assert.deepStrictEqual(await ack(socket, "message-with-ack", c.name), [c.name], `${c.name}: the new socket works`);
    outcomes.push({ name: c.name, reason, ms: Date.now() - started });
  }
  // Just under the limits still goes through.
  const fits = once(socket, "message-back");
  const buffers = Array.from({ length: maxAttachments }, (_, i) => Buffer.from([i]));
  socket.emit("message", "fits", ...buffers);
  const [label, ...got] = await fits;
  assert.equal(label, "fits");
  assert.equal(got.length, maxAttachments);
  socket.disconnect();
  return { outcomes };
});
