// malformed: raw WebSocket connections send packets the official client
// never would. Each must close that connection (or, for a bad CONNECT, be
// refused); the official client connected alongside keeps working and a
// new one can still connect.
//   node malformed.mjs   (cases come from the table below)

import assert from "node:assert/strict";
import WebSocket from "ws";
import { url, path, connect, connected, ack, main, out } from "./lib.mjs";

// Each case: the frames sent after the Engine.IO open and the Socket.IO
// CONNECT to "/" succeeded (or, with beforeConnect, instead of the CONNECT).
// Binary frames are Buffers.
const cases = [
  { name: "event with bad JSON", frames: ["42{bad"] },
  { name: "event data not an array", frames: ['42"just a string"'] },
  { name: "event data an object", frames: ['42{"a":1}'] },
  { name: "event with an empty array", frames: ["42[]"] },
  { name: "event name not a string", frames: ["42[{}]"] },
  { name: "event name reserved", frames: ['42["disconnect"]'] },
  { name: "unknown Socket.IO type", frames: ['49["x"]'] },
  { name: "ack id out of range", frames: ["4399999999999999999999999[1]"] },
  { name: "unknown Engine.IO type", frames: ["9hello"] },
  { name: "binary event placeholder out of range", frames: ['451-["x",{"_placeholder":true,"num":5}]', Buffer.from([1, 2, 3])] },
  { name: "binary event bad attachment count", frames: ['45x-["x"]'] },
  { name: "unexpected binary frame", frames: [Buffer.from([0xde, 0xad])] },
  { name: "too many attachments declared", frames: ['45999-["x",{"_placeholder":true,"num":0}]'] },
  { name: "placeholder num not a number", frames: ['451-["x",{"_placeholder":true,"num":"0"}]', Buffer.from([1])] },
  // Sent instead of the CONNECT to "/":
  { name: "CONNECT with bad JSON", frames: ["40{bad"], beforeConnect: true },
  { name: "CONNECT payload not an object", frames: ['40"token"'], beforeConnect: true },
];

const wsURL = url.replace(/^http/, "ws") + path + "?EIO=4&transport=websocket";

// raw opens a WebSocket, completes the Engine.IO handshake and the
// Socket.IO CONNECT, sends frames, then resolves with how the connection
// ended ({closed, code, ms}) or {closed:false} after ms.
function raw({ frames, beforeConnect }, ms = 3000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsURL);
    const started = Date.now();
    let stage = "open";
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ closed: false, stage });
    }, ms);
    ws.on("error", () => {}); // the close event reports the outcome
    ws.on("close", (code) => {
      clearTimeout(timer);
      if (stage !== "sent") reject(new Error(`closed during ${stage}`));
      else resolve({ closed: true, code, ms: Date.now() - started });
    });
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? null : data.toString();
      if (stage === "open") {
        assert.ok(text && text.startsWith("0{"), `Engine.IO open packet, got ${text}`);
        if (beforeConnect) {
          stage = "sent";
          for (const f of frames) ws.send(f);
          return;
        }
        stage = "connect";
        ws.send("40");
      } else if (stage === "connect") {
        if (text === "2") return ws.send("3");
        assert.ok(text && text.startsWith("40{"), `Socket.IO CONNECT ack, got ${text}`);
        stage = "sent";
        for (const f of frames) ws.send(f);
      } else if (text === "2") {
        ws.send("3");
      }
    });
  });
}

// The same over HTTP long-polling: a bad packet in a POST ends the session,
// so a following GET answers with a close packet ("1") or 400 (unknown sid).
const pollingCases = [
  { name: "polling: event with bad JSON", body: "42{bad" },
  { name: "polling: event data not an array", body: '42"just a string"' },
  { name: "polling: bad packet after a good one in one payload", body: '42["ok"]\x1e42{bad' },
];

const pollURL = url + path + "?EIO=4&transport=polling";

async function poll(sidURL) {
  const r = await fetch(sidURL, { signal: AbortSignal.timeout(3000) });
  return { status: r.status, body: await r.text() };
}

async function rawPolling({ body }) {
  const open = await fetch(pollURL).then((r) => r.text());
  assert.ok(open.startsWith("0{"), `Engine.IO open packet, got ${open}`);
  const sidURL = pollURL + "&sid=" + JSON.parse(open.slice(1)).sid;
  assert.equal((await fetch(sidURL, { method: "POST", body: "40" })).status, 200);
  const connectAck = await poll(sidURL);
  assert.ok(connectAck.body.startsWith("40{"), `Socket.IO CONNECT ack, got ${connectAck.body}`);
  await fetch(sidURL, { method: "POST", body });
  for (let i = 0; i < 3; i++) {
    const r = await poll(sidURL);
    if (r.status === 400 || r.body.split("\x1e").includes("1")) return { closed: true, status: r.status, body: r.body };
  }
  return { closed: false };
}

// An EVENT for a namespace the connection has not joined. The reference
// server closes the connection ("invalid state"); ignoring the packet is
// also safe, as long as it never reaches a handler. The event is followed
// by a CONNECT and an acked probe on the same connection: packets of one
// session are handled in order, so once the probe's ack is in, a delivered
// event would already have echoed back.
function eventBeforeConnect() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsURL);
    let outcome = "open";
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`event before CONNECT: no outcome (${outcome})`));
    }, 10000);
    const finish = (result) => {
      clearTimeout(timer);
      ws.terminate();
      resolve(result);
    };
    ws.on("error", () => {});
    ws.on("close", () => finish("closed"));
    ws.on("message", (data) => {
      const text = data.toString();
      if (text.startsWith("0{")) {
        ws.send('42["message","sneaky"]');
        ws.send("40");
      } else if (text.startsWith("40{")) {
        outcome = "connected";
        ws.send('421["message-with-ack","probe"]');
      } else if (text.startsWith('42["message-back"')) {
        clearTimeout(timer);
        ws.terminate();
        reject(new Error(`an event sent before CONNECT reached a handler: ${text}`));
      } else if (text === '431["probe"]') {
        finish("ignored");
      } else if (text === "2") {
        ws.send("3");
      }
    });
  });
}

main("malformed", async () => {
  const bystander = connect("/", { transports: ["websocket"] });
  await connected(bystander);

  const results = [];
  for (const c of pollingCases) {
    const r = await rawPolling(c);
    out({ kind: "case", name: c.name, ...r });
    assert.ok(r.closed, `"${c.name}": the server must end the session`);
    results.push(c.name);
    assert.ok(bystander.connected, `bystander still connected after "${c.name}"`);
  }

  for (const c of cases) {
    const r = await raw(c);
    out({ kind: "case", name: c.name, ...r });
    assert.ok(r.closed, `"${c.name}": the server must close the connection`);
    results.push(c.name);
    assert.ok(bystander.connected, `bystander still connected after "${c.name}"`);
  }

  const beforeConnect = await eventBeforeConnect();
  out({ kind: "case", name: "event before CONNECT", outcome: beforeConnect, closed: beforeConnect === "closed" });
  results.push("event before CONNECT");

  assert.deepStrictEqual(await ack(bystander, "message-with-ack", "still here"), ["still here"]);
  const late = connect("/", { transports: ["websocket"] });
  await connected(late);
  assert.deepStrictEqual(await ack(late, "message-with-ack", "new"), ["new"]);
  const id = bystander.id;
  bystander.disconnect();
  late.disconnect();
  const connectedCases = cases.filter((c) => !c.beforeConnect).length + pollingCases.length;
  // The probe connection of eventBeforeConnect joined "/" when the packet was ignored.
  return { cases: results, connected: connectedCases, probeConnected: beforeConnect === "ignored", eventBeforeConnect: beforeConnect, bystander: id };
});
