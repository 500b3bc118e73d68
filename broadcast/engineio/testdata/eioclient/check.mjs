// Drives a Go engine.io server with the official engine.io-client, the
// transport layer of socket.io-client 4.x: websocket-only, polling-only,
// polling then upgrade, binary both ways, and heartbeats. Prints one line
// per case and exits non-zero if any fails. Usage: node check.mjs URL PATH
import { Socket } from "engine.io-client";

const [url, path] = process.argv.slice(2);

function run(name, opts, done) {
  return new Promise((resolve) => {
    const s = new Socket(url, { path, ...opts });
    const got = [];
    let upgraded = false;
    const timer = setTimeout(() => {
      console.log(`${name} FAIL timeout got=${JSON.stringify(got)}`);
      s.close();
      resolve(false);
    }, 5000);
    s.on("upgrade", () => {
      upgraded = true;
      s.send("after-upgrade");
    });
    s.on("open", () => {
      s.send("hello");
      s.send(Uint8Array.from([1, 2, 3]));
    });
    s.on("message", (m) => {
      got.push(typeof m === "string" ? m : Array.from(new Uint8Array(m)).join(","));
      if (done(got, upgraded)) {
        clearTimeout(timer);
        console.log(`${name} OK got=${JSON.stringify(got)} transport=${s.transport.name}`);
        s.close();
        resolve(true);
      }
    });
  });
}

const echoed = (got) => got.includes("hello") && got.includes("1,2,3");
let ok = true;
ok = (await run("websocket-only", { transports: ["websocket"] }, echoed)) && ok;
ok = (await run("polling-only", { transports: ["polling"] }, echoed)) && ok;
ok = (await run("polling-then-upgrade", {}, (got, up) => echoed(got) && up && got.includes("after-upgrade"))) && ok;
ok =
  (await new Promise((resolve) => {
    // The test server pings every 50ms; the client must survive many.
    const s = new Socket(url, { path });
    let pings = 0;
    s.on("ping", () => pings++);
    s.on("close", (reason) => {
      console.log(`heartbeat FAIL closed: ${reason}`);
      resolve(false);
    });
    setTimeout(() => {
      s.off("close");
      console.log(`heartbeat ${pings >= 5 ? "OK" : "FAIL"} pings=${pings} transport=${s.transport.name}`);
      s.close();
      resolve(pings >= 5);
    }, 1000);
  })) && ok;
process.exit(ok ? 0 : 1);
