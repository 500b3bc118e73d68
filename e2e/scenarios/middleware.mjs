// middleware: the server's middleware chain requires auth.token. A missing
// or bad token is refused with CONNECT_ERROR and the client's connect_error
// must carry the exact message (and data); a good token connects, and the
// auth payload, headers and query reach the middleware.
//   node middleware.mjs websocket|polling

import assert from "node:assert/strict";
import { connect, connected, connectError, ack, main, sleep } from "./lib.mjs";

const transport = process.argv[2] || "websocket";

main(`middleware/${transport}`, async () => {
  const opts = { transports: [transport] };

  const none = connect("/", opts);
  const noToken = await connectError(none);
  assert.equal(noToken.message, "Authentication error: No token provided");
  assert.equal(noToken.data, undefined, "no data when the server sent none");
  // A middleware refusal is final: the client must not retry on its own.
  assert.equal(none.active, false, "socket inactive after middleware refusal");
  none.close();

  const bad = connect("/", { ...opts, auth: { token: "bad" } });
  const badToken = await connectError(bad);
  assert.equal(badToken.message, "Authentication error: Invalid token");
  assert.deepStrictEqual(badToken.data, { code: 401, hint: "token rejected" });
  bad.close();

  const auth = { token: "good", user: { id: 7, roles: ["admin", "viewer"] } };
  const good = connect("/", {
    ...opts,
    auth,
    query: { room: "dashboard", n: "1" },
    extraHeaders: { "x-walcast-test": "header-value" },
  });
  await connected(good);
  // The server acks "whoami" with what its middleware saw.
  const [seen] = await ack(good, "whoami");
  assert.deepStrictEqual(seen.auth, auth, "auth payload seen by middleware");
  assert.equal(seen.query.room, "dashboard", "query seen by middleware");
  assert.equal(seen.query.n, "1");
  assert.equal(seen.query.EIO, "4", "Engine.IO query parameters are visible too");
  assert.equal(seen.header, "header-value", "extra header seen by middleware");
  assert.match(seen.remoteAddr, /127\.0\.0\.1/, "remote address seen by middleware");
  assert.equal(seen.id, good.id);

  // Let a stray reconnection attempt of the refused sockets show up server side.
  await sleep(200);
  const result = { id: good.id, noToken: noToken.message, badToken: badToken.message, badData: badToken.data };
  good.disconnect();
  return result;
});
