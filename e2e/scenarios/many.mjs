// many: N official clients (default 1000) in this one process, websocket
// transport, each with its own Engine.IO connection, all receive one server
// broadcast exactly once. A fence broadcast after it proves no duplicate is
// still in flight when counting.
//   node many.mjs [N]

import assert from "node:assert/strict";
import { connect, connected, ack, main, out } from "./lib.mjs";

const n = Number(process.argv[2] || 1000);
const batch = 100; // connecting all at once only measures the listen backlog

main(`many/${n}`, async () => {
  const sockets = [];
  const got = new Array(n).fill(0);
  const fenced = new Array(n).fill(false);
  let fenceCount = 0;
  let onAllFenced;
  const allFenced = new Promise((r) => (onAllFenced = r));

  const t0 = Date.now();
  for (let i = 0; i < n; i += batch) {
    const group = [];
    for (let j = i; j < Math.min(n, i + batch); j++) {
      const s = connect("/", { transports: ["websocket"] });
      s.on("big", (payload) => {
        assert.equal(payload.text.length, 300);
        got[j]++;
      });
      s.on("fence", () => {
        if (!fenced[j]) {
          fenced[j] = true;
          if (++fenceCount === n) onAllFenced();
        }
      });
      sockets.push(s);
      group.push(connected(s, 20000));
    }
    await Promise.all(group);
  }
  const connectMs = Date.now() - t0;
  const ids = new Set(sockets.map((s) => s.id));
  assert.equal(ids.size, n, "every client has its own socket id");
  out({ kind: "connected", clients: n, ms: connectMs });

  const t1 = Date.now();
  const [count] = await ack(sockets[0], "broadcast", {
    from: "server",
    to: [],
    except: [],
    event: "big",
    args: [{ text: "x".repeat(300) }],
    fence: 1,
  });
  await allFenced;
  const deliverMs = Date.now() - t1;

  const missing = got.filter((c) => c === 0).length;
  const dup = got.filter((c) => c > 1).length;
  assert.equal(missing, 0, `${missing} clients did not receive the broadcast`);
  assert.equal(dup, 0, `${dup} clients received the broadcast more than once`);
  assert.ok(sockets.every((s) => s.connected), "all still connected");
  for (const s of sockets) s.disconnect();
  return { clients: n, received: got.length - missing, connectMs, deliverMs, serverAck: count };
});
