// rooms: join/leave, broadcasts to rooms, to several rooms, except rooms,
// to a socket's own id room, and from a socket (which excludes the sender).
// Every broadcast is followed by a "fence" broadcast to everyone; per-socket
// order means that once every client has the fence, every earlier packet has
// arrived, so the per-client counts are final without any sleep.
//   node rooms.mjs websocket|polling

import assert from "node:assert/strict";
import { connect, connected, once, ack, main } from "./lib.mjs";

const transport = process.argv[2] || "websocket";
const names = ["A", "B", "C", "D", "E"];

main(`rooms/${transport}`, async () => {
  const clients = {};
  // counts[step][name] = how many "room-event" packets of that step arrived
  const counts = {};
  for (const name of names) {
    const s = connect("/", { transports: [transport] });
    s.on("room-event", (step, payload) => {
      assert.equal(payload.from, "broadcaster", "payload intact");
      counts[step] ??= {};
      counts[step][name] = (counts[step][name] || 0) + 1;
    });
    clients[name] = s;
  }
  await Promise.all(Object.values(clients).map((s) => connected(s)));

  const joins = { A: ["r1"], B: ["r1", "r2"], C: ["r2"] };
  for (const [name, rooms] of Object.entries(joins)) await ack(clients[name], "join", rooms);

  let step = 0;
  const steps = [];
  async function broadcast(desc, spec, expected) {
    step++;
    const live = names.filter((n) => clients[n].connected);
    const fences = live.map((n) => waitFence(clients[n], step));
    const sender = clients[spec.sender || "D"];
    await ack(sender, "broadcast", {
      from: spec.sender ? "socket" : "server",
      to: spec.to || [],
      except: spec.except || [],
      event: "room-event",
      args: [step, { from: "broadcaster" }],
      fence: step,
    });
    await Promise.all(fences);
    const got = counts[step] || {};
    const want = Object.fromEntries(expected.map((n) => [n, 1]));
    assert.deepStrictEqual(got, want, `step ${step} (${desc}): receivers and counts`);
    steps.push({ step, desc, receivers: Object.keys(got).sort() });
  }

  await broadcast("server to r1", { to: ["r1"] }, ["A", "B"]);
  await broadcast("server to r1+r2, B in both gets it once", { to: ["r1", "r2"] }, ["A", "B", "C"]);
  await broadcast("server to all except r2", { except: ["r2"] }, ["A", "D", "E"]);
  await broadcast("server to r1+r2 except r1", { to: ["r1", "r2"], except: ["r1"] }, ["C"]);
  await broadcast("server to D's id room", { to: [clients.D.id] }, ["D"]);
  await broadcast("server to unknown room", { to: ["nobody-here"] }, []);
  await broadcast("socket A to all: not A", { sender: "A" }, ["B", "C", "D", "E"]);
  await broadcast("socket B to r1: only A", { sender: "B", to: ["r1"] }, ["A"]);
  await broadcast("socket E to r2 except r1: only C", { sender: "E", to: ["r2"], except: ["r1"] }, ["C"]);

  await ack(clients.B, "leave", "r1");
  await broadcast("server to r1 after B left", { to: ["r1"] }, ["A"]);
  await broadcast("server to r2 after B left r1", { to: ["r2"] }, ["B", "C"]);

  const gone = once(clients.E, "disconnect");
  clients.E.disconnect();
  await gone;
  await broadcast("server to all after E left", {}, ["A", "B", "C", "D"]);

  for (const s of Object.values(clients)) s.disconnect();
  return { steps };
});

function waitFence(socket, step) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no fence ${step} for ${socket.id}`)), 10000);
    socket.on("fence", function onFence(n) {
      if (n === step) {
        clearTimeout(timer);
        socket.off("fence", onFence);
        resolve();
      }
    });
  });
}
