// fanout: clients on every transport (websocket, polling, polling then
// upgrade) receive the same broadcasts, text and binary, byte for byte and
// in order. The server encodes each broadcast once and shares it between
// transports, so this is where a shared encoding would show a mistake.
//   node fanout.mjs [clientsPerTransport]

import assert from "node:assert/strict";
import { connect, connected, ack, main, normalize } from "./lib.mjs";

const perTransport = Number(process.argv[2] || 4);
const kinds = { websocket: ["websocket"], polling: ["polling"], upgrade: ["polling", "websocket"] };

function bytes(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

main("fanout", async () => {
  const clients = [];
  for (const [kind, transports] of Object.entries(kinds)) {
    for (let i = 0; i < perTransport; i++) {
      const s = connect("/", { transports });
      const got = [];
      s.on("fan", (...args) => got.push(normalize(args)));
      // Each broadcast is followed by a fence to everyone; per-socket order
      // means the last fence arrives after every "fan".
      const fenced = new Promise((resolve) => s.on("fence", (n) => n === 4 && resolve()));
      clients.push({ kind, s, got, fenced });
    }
  }
  await Promise.all(clients.map((c) => connected(c.s)));

  const sends = [
    ["text", { n: 1, s: "é✓\u2028", list: [null, true, 1.5] }],
    ["binary", bytes(3, 1)],
    ["nested", { file: bytes(100000, 2), meta: { parts: [bytes(0, 0), bytes(10, 3)] } }, "tail"],
    ["text-after-binary", "plain"],
  ];
  const sender = clients[0].s;
  for (const [i, args] of sends.entries()) {
    await ack(sender, "broadcast", { from: "server", to: [], except: [], event: "fan", args, fence: i + 1 });
  }
  assert.equal(sends.length, 4, "the fence number above");
  await Promise.all(clients.map((c) => c.fenced));
  const want = sends.map((a) => normalize(a));
  const transportsSeen = {};
  for (const c of clients) {
    assert.deepStrictEqual(c.got, want, `${c.kind} client ${c.s.id}: broadcasts received exactly, in order`);
    const name = c.s.io.engine.transport.name;
    transportsSeen[name] = (transportsSeen[name] || 0) + 1;
  }
  assert.equal(transportsSeen.polling, perTransport, "polling-only clients stayed on polling");
  for (const c of clients) c.s.disconnect();
  return { clients: clients.length, transports: transportsSeen };
});
