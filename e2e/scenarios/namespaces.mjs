// namespaces: "/custom" connects (alone and multiplexed with "/" over one
// Engine.IO connection), its handlers are its own, and an unknown namespace
// is refused with the client seeing the reference server's message.
//   node namespaces.mjs websocket|polling

import assert from "node:assert/strict";
import { Manager } from "socket.io-client";
import { url, path, connect, connected, connectError, once, ack, main } from "./lib.mjs";

const transport = process.argv[2] || "websocket";

main(`namespaces/${transport}`, async () => {
  // Alone: the server greets a /custom connection with the handshake auth.
  const custom = connect("/custom", { transports: [transport], auth: { who: "custom" } });
  const welcome = once(custom, "auth");
  await connected(custom);
  assert.deepStrictEqual(await welcome, [{ who: "custom" }], "/custom emits auth on connection");
  assert.deepStrictEqual(await ack(custom, "message-with-ack", "x"), ["custom", "x"], "/custom has its own handler");

  // Multiplexed: one Manager, so "/" and "/custom" share one Engine.IO session.
  const manager = new Manager(url, { path, transports: [transport], reconnection: false });
  const root = manager.socket("/");
  const other = manager.socket("/custom", { auth: { who: "mux" } });
  root.connect();
  other.connect();
  await Promise.all([connected(root), connected(other)]);
  assert.notEqual(root.id, other.id, "one socket id per namespace");
  assert.deepStrictEqual(await ack(root, "message-with-ack", "x"), ["x"]);
  assert.deepStrictEqual(await ack(other, "message-with-ack", "x"), ["custom", "x"]);

  // Unknown namespace on the same connection: refused, the others stay up.
  const nope = manager.socket("/nope");
  nope.connect();
  const err = await connectError(nope);
  assert.equal(err.message, "Invalid namespace");
  assert.equal(nope.connected, false);
  assert.ok(root.connected && other.connected, "refusing one namespace keeps the others");
  assert.deepStrictEqual(await ack(root, "message-with-ack", "still"), ["still"]);

  // Unknown namespace on its own connection.
  const alone = connect("/nope", { transports: [transport] });
  assert.equal((await connectError(alone)).message, "Invalid namespace");

  const result = { custom: custom.id, root: root.id, muxCustom: other.id, unknownError: err.message };
  for (const s of [custom, root, other, nope, alone]) s.disconnect();
  return result;
});
