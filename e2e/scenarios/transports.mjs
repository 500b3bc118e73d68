// transports: one event round trip (client->server ack, and server->client
// event) over websocket-only, polling-only, or polling then upgrade.
//   node transports.mjs websocket|polling|upgrade

import assert from "node:assert/strict";
import WebSocket from "ws";
import { url, path, connect, connected, once, ack, main, sleep } from "./lib.mjs";

const mode = process.argv[2];
const clientTransports = {
  websocket: ["websocket"],
  polling: ["polling"],
  upgrade: ["polling", "websocket"],
}[mode];
if (!clientTransports) {
  console.error("usage: transports.mjs websocket|polling|upgrade");
  process.exit(2);
}

// roundTrip checks both directions: the server acks "message-with-ack" with
// the same arguments, and re-emits "message" as "message-back".
async function roundTrip(socket, tag) {
  const payload = { tag, n: 42, s: "héllo ✓", list: [1, "two", null, true] };
  const acked = await ack(socket, "message-with-ack", payload, tag);
  assert.deepStrictEqual(acked, [payload, tag], "ack arguments");
  const back = once(socket, "message-back");
  socket.emit("message", tag, payload);
  assert.deepStrictEqual(await back, [tag, payload], "message-back arguments");
}

// secondWebSocket tries to attach another WebSocket to an upgraded
// session; it must be refused (HTTP error, or closed without a packet).
function secondWebSocket(sid) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}${path}?EIO=4&transport=websocket&sid=${sid}`);
    let messages = 0;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error("a second WebSocket for an upgraded session stayed open"));
    }, 5000);
    const done = (outcome) => {
      clearTimeout(timer);
      ws.terminate();
      resolve({ outcome, messages });
    };
    ws.on("message", () => messages++);
    ws.on("open", () => ws.send("2probe"));
    ws.on("unexpected-response", (_req, res) => done(`HTTP ${res.statusCode}`));
    ws.on("error", (err) => done(`error ${err.message}`));
    ws.on("close", (code) => done(`closed ${code}`));
  });
}

main(`transports/${mode}`, async () => {
  const socket = connect("/", { transports: clientTransports, upgrade: mode === "upgrade" });
  // The transport is sampled when the Engine.IO session opens: on loopback
  // the upgrade often completes before the Socket.IO CONNECT round trip.
  let atOpen;
  let engineUpgraded;
  socket.io.once("open", () => {
    atOpen = socket.io.engine.transport.name;
    if (mode === "upgrade") engineUpgraded = once(socket.io.engine, "upgrade", 10000);
  });
  await connected(socket);
  const engine = socket.io.engine;
  const atConnect = atOpen;
  const sid = engine.id;
  assert.ok(socket.id, "socket id set");
  assert.notEqual(socket.id, sid, "Socket.IO id must differ from the Engine.IO session id");

  if (mode === "websocket") assert.equal(atConnect, "websocket");
  else assert.equal(atConnect, "polling", "first transport");

  await roundTrip(socket, "before");

  let afterUpgrade = atConnect;
  let refusedWebSocket;
  if (mode === "upgrade") {
    await engineUpgraded;
    afterUpgrade = engine.transport.name;
    assert.equal(afterUpgrade, "websocket", "transport after upgrade");
    assert.equal(engine.id, sid, "upgrade keeps the Engine.IO session");
    assert.ok(socket.connected, "still connected after upgrade");
    await roundTrip(socket, "after-upgrade");

    // The session now belongs to its WebSocket: another transport for the
    // same sid is refused, and the real one keeps working.
    const poll = await fetch(`${url}${path}?EIO=4&transport=polling&sid=${sid}`, { signal: AbortSignal.timeout(5000) });
    await poll.text();
    assert.equal(poll.status, 400, "a polling request for an upgraded session is refused");
    const second = await secondWebSocket(sid);
    assert.equal(second.messages, 0, `a second WebSocket for the session got packets (${second.outcome})`);
    refusedWebSocket = second.outcome;
    await roundTrip(socket, "after-refusals");
  } else {
    // Give a wrongly offered upgrade a chance to happen, then prove it did not.
    await sleep(300);
    afterUpgrade = engine.transport.name;
    assert.equal(afterUpgrade, atConnect, "transport must not change");
    await roundTrip(socket, "again");
  }
  const result = { id: socket.id, sid, atConnect, afterUpgrade, refusedWebSocket };
  socket.disconnect();
  // Over polling the DISCONNECT rides an HTTP POST: let it land, since the
  // Go side checks the server saw a client disconnect.
  if (afterUpgrade === "polling") await sleep(500);
  return result;
});
