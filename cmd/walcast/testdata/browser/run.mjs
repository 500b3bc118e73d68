// run.mjs: opens the test page in Debian's headless Chromium through
// playwright-core and reports what the page's socket.io-client saw, one
// JSON line per step, for cmd/walcast's TestBrowser:
//
//   node run.mjs <page URL> <user-data-dir>
//
// Lines: {"kind":"connected","transport":...} once the socket is up, then
// {"kind":"event",...} for the first member:update, or {"kind":"fail",...}.
import { launchChromium } from "../../../../internal/browsertest/chromium.mjs";

const [pageURL, userDataDir] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const context = await launchChromium(userDataDir);
try {
  const page = await context.newPage();
  page.on("console", (msg) => out({ kind: "console", text: msg.text() }));
  page.on("pageerror", (err) => out({ kind: "pageerror", error: err.message }));
  await page.goto(pageURL);
  await page.waitForFunction(() => window.walcast.connected || window.walcast.errors.length > 0, null, { timeout: 30000 });
  const state = await page.evaluate(() => window.walcast);
  if (!state.connected) {
    out({ kind: "fail", error: "connect_error: " + state.errors.join("; ") });
    process.exitCode = 1;
  } else {
    out({ kind: "connected", transport: state.transport, userAgent: await page.evaluate(() => navigator.userAgent) });
    await page.waitForFunction(() => window.walcast.events.length > 0, null, { timeout: 30000 });
    const ev = await page.evaluate(() => window.walcast.events[0]);
    out({ kind: "event", event: ev.event, payload: ev.payload });
  }
} catch (err) {
  out({ kind: "fail", error: String(err && err.stack || err) });
  process.exitCode = 1;
} finally {
  await context.close();
}
