// Shared helpers for the scenario scripts. Each scenario talks to a walcast
// Socket.IO server through the official socket.io-client, asserts with
// node:assert, prints JSON lines on stdout (the Go driver decodes them) and
// exits non-zero on the first failed assertion.

import { existsSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { io } from "socket.io-client";

export { io };

export const url = requireEnv("WALCAST_URL");
export const path = process.env.WALCAST_PATH || "/socket.io/";

function requireEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set: scenarios are started by the Go test driver (go test ./e2e/)`);
    process.exit(2);
  }
  return v;
}

// out prints one JSON line. Binary values become {"$binary": base64} so the
// Go side can tell them from strings.
export function out(obj) {
  process.stdout.write(JSON.stringify(toWire(obj)) + "\n");
}

export function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

// toBuffer normalizes the binary types socket.io-client may hand back
// (Buffer over WebSocket in Node, ArrayBuffer or typed arrays elsewhere).
export function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError(`not binary: ${typeof v}`);
}

// toWire converts received values to JSON-safe values, binary as {"$binary"}.
export function toWire(v) {
  if (v === undefined) return null;
  if (isBinary(v)) return { $binary: toBuffer(v).toString("base64") };
  if (Array.isArray(v)) return v.map(toWire);
  if (v instanceof Error) return { message: v.message, data: toWire(v.data) };
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = toWire(x);
    return o;
  }
  return v;
}

// fromWire is the inverse of toWire: {"$binary": base64} becomes a Buffer.
export function fromWire(v) {
  if (Array.isArray(v)) return v.map(fromWire);
  if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "$binary" && typeof v.$binary === "string") {
      return Buffer.from(v.$binary, "base64");
    }
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = fromWire(x);
    return o;
  }
  return v;
}

// normalize turns every binary value into a Buffer so received payloads can
// be compared with assert.deepStrictEqual against what was sent.
export function normalize(v) {
  if (isBinary(v)) return toBuffer(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = normalize(x);
    return o;
  }
  return v;
}

// connect creates a client with its own Engine.IO connection (forceNew) so
// scenarios never share sessions by accident; reconnection is off unless the
// scenario turns it on.
export function connect(nsp = "/", opts = {}) {
  return io(url + nsp, { path, forceNew: true, reconnection: false, ...opts });
}

// once resolves with the event's arguments, or rejects after ms naming the
// event it waited for, so a hung scenario says what it was waiting on.
export function once(emitter, event, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, handler);
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    function handler(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, handler);
  });
}

// connected resolves once the socket is connected and rejects with the
// connect_error the server sent.
export function connected(socket, ms = 10000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${ms} ms waiting for connect`));
    }, ms);
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    }
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

// connectError resolves with the connect_error the server must send and
// fails if the socket connects instead.
export function connectError(socket, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${ms} ms waiting for connect_error`));
    }, ms);
    const onConnect = () => {
      cleanup();
      reject(new Error(`connected (id ${socket.id}) but a connect_error was expected`));
    };
    const onError = (err) => {
      cleanup();
      resolve(err);
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    }
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ack emits with an acknowledgement and resolves with ALL the ack's
// arguments (emitWithAck keeps only the first). The timeout makes a server
// that never acks fail the scenario with the event name instead of hanging.
export function ack(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(10000).emit(event, ...args, (err, ...res) => {
      if (err) reject(new Error(`ack for "${event}": ${err.message}`));
      else resolve(res);
    });
  });
}

// main runs a scenario: prints {"kind":"result","ok":true,...} with what fn
// returns, or {"kind":"fail","error":...} and exits 1. A scenario-wide
// timeout (WALCAST_TIMEOUT_MS, default 30 s) turns a hang into a failure.
export function main(name, fn) {
  const limit = Number(process.env.WALCAST_TIMEOUT_MS || 30000);
  const timer = setTimeout(() => {
    out({ kind: "fail", scenario: name, error: `scenario timed out after ${limit} ms` });
    process.exit(1);
  }, limit);
  Promise.resolve()
    .then(fn)
    .then(async (details) => {
      clearTimeout(timer);
      out({ kind: "result", scenario: name, ok: true, ...(details || {}) });
      // Over polling, a final disconnect() is an HTTP POST still in flight:
      // give it a moment so the server sees the client leave, not a timeout.
      await sleep(150);
      process.exit(0);
    })
    .catch((err) => {
      clearTimeout(timer);
      out({ kind: "fail", scenario: name, error: String((err && err.stack) || err) });
      process.exit(1);
    });
}

// --- Clients that reconnect by themselves (recovery-nginx, recovery-quiet).
// They exchange files with the Go test in a directory: each side polls for
// the other's files by name.

// signalFile writes a file for the Go test whole (it polls and reads as soon
// as the name exists): write under another name, then rename.
export function signalFile(dir, name, content) {
  writeFileSync(join(dir, "." + name), content);
  renameSync(join(dir, "." + name), join(dir, name));
}

// waitFile polls for a file the Go test writes in dir.
export async function waitFile(dir, name, ms) {
  const deadline = Date.now() + ms;
  while (!existsSync(join(dir, name))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for the test's "${name}" file`);
    await sleep(20);
  }
}

// reconnectingClient connects with the client library's own reconnection
// after exactly delayMs (no randomization), so the test knows how long the
// client stays away; the library then sends its pid and last offset in the
// CONNECT auth by itself. stats.connects counts connects;
// stats.committedBeforeReconnect is whether the test's "committed" file
// existed at the first reconnection attempt (null before one): the changes
// meant to be missed must be committed before the client tries to come back.
export function reconnectingClient({ dir, token, transports = ["websocket"], delayMs }) {
  const socket = io(url, {
    path, forceNew: true, transports, auth: { token },
    reconnection: true, reconnectionDelay: delayMs, reconnectionDelayMax: delayMs, randomizationFactor: 0,
  });
  const stats = { connects: 0, committedBeforeReconnect: null };
  socket.on("connect", () => stats.connects++);
  socket.io.on("reconnect_attempt", () => {
    if (stats.committedBeforeReconnect === null) stats.committedBeforeReconnect = existsSync(join(dir, "committed"));
  });
  return { socket, stats };
}

// connectedWithOffset waits for the socket's first connect and for it to
// hold an offset: the walcast:offset sent at connect, unless a broadcast
// brought one first.
export async function connectedWithOffset(socket, ms = 20000) {
  await once(socket, "connect", ms);
  if (!socket._lastOffset) await once(socket, "walcast:offset", ms);
}

// waitMissed waits, up to 30 s, until events ({ev, args} received since
// the reconnection) holds RECOVERY_COUNT events named RECOVERY_EVENT, then
// 500 ms more, so duplicates would show.
export async function waitMissed(events) {
  const want = process.env.RECOVERY_EVENT, count = Number(process.env.RECOVERY_COUNT || 0);
  const deadline = Date.now() + 30000;
  while (want && events.filter((e) => e.ev === want).length < count && Date.now() < deadline) await sleep(50);
  await sleep(500);
}
