// acks: acknowledgements in both directions.
//  - client emit with ack callback gets the server's ack arguments
//    (several, none, nested);
//  - server emit with ack: the client emits "ask" {event, args, timeoutMs};
//    the server emits <event> with an ack and a timeout, and acks "ask" with
//    {answer} or {error} once the client answered or the timeout fired.
//   node acks.mjs websocket|polling

import assert from "node:assert/strict";
import { connect, connected, ack, main } from "./lib.mjs";

const transport = process.argv[2] || "websocket";

main(`acks/${transport}`, async () => {
  const socket = connect("/", { transports: [transport] });
  await connected(socket);

  // Client -> server, with the callback style and the promise style.
  const cb = await new Promise((resolve) => socket.emit("message-with-ack", 1, "two", { three: [3] }, (...args) => resolve(args)));
  assert.deepStrictEqual(cb, [1, "two", { three: [3] }], "callback ack args");
  assert.deepStrictEqual(await ack(socket, "message-with-ack"), [], "ack with no arguments");
  assert.deepStrictEqual(await ack(socket, "message-with-ack", null), [null], "ack with null");

  // Acks are matched by id: many in flight at once all come back right.
  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => ack(socket, "message-with-ack", i)));
  assert.deepStrictEqual(many, Array.from({ length: 50 }, (_, i) => [i]), "concurrent acks matched to their ids");

  // Server -> client with ack: the client answers.
  let questions = 0;
  socket.on("question", (q, reply) => {
    questions++;
    assert.equal(typeof reply, "function", "server emit carries an ack id");
    reply({ answer: q.n * 2 }, "second");
  });
  const [answered] = await ack(socket, "ask", { event: "question", args: [{ n: 21 }], timeoutMs: 2000 });
  assert.deepStrictEqual(answered, { answer: [{ answer: 42 }, "second"] }, "server got the client's ack args");
  assert.equal(questions, 1);

  // Server -> client with ack: the client never answers, the server times out.
  let silentCalls = 0;
  let lateReply;
  socket.on("silent", (_payload, reply) => {
    silentCalls++;
    assert.equal(typeof reply, "function");
    lateReply = reply;
  });
  const [timedOut] = await ack(socket, "ask", { event: "silent", args: [{ x: 1 }], timeoutMs: 300 });
  assert.ok(timedOut.error, `server ack must time out, got ${JSON.stringify(timedOut)}`);
  assert.equal(timedOut.answer, undefined);
  assert.equal(silentCalls, 1);

  // An answer after the timeout is dropped by the server, not an error.
  lateReply("too late");

  // The connection is still healthy after a timed-out and a late ack.
  assert.deepStrictEqual(await ack(socket, "message-with-ack", "after"), ["after"]);
  const result = { id: socket.id, serverTimeoutError: timedOut.error };
  socket.disconnect();
  return result;
});
