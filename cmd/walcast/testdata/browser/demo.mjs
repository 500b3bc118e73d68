// demo.mjs: drives the `walcast demo` page in Debian's headless Chromium
// through playwright-core for cmd/walcast's TestDemoPage. It does what the
// test asks, one JSON command a line on stdin, and answers each with one
// JSON line on stdout; what the page shows is judged by the Go test.
//
//   node demo.mjs <page URL> <user-data-dir>
//
// Commands:
//   {"op":"click","selector":"button[data-action=donate-ann]"}  -> {"ok":true}
//   {"op":"snapshot"}             -> {"ok":true,"snapshot":{...}} (see snapshot below)
//   {"op":"screenshot","path":P}  -> {"ok":true}: the whole page as a PNG
//   {"op":"close"}                -> {"ok":true}, then the browser closes and the script exits
// A failed command answers {"ok":false,"error":...}; page errors and console
// lines arrive as {"kind":"pageerror"|"console",...}.
import { createInterface } from "node:readline";
import { launchChromium } from "../../../../internal/browsertest/chromium.mjs";

const [pageURL, userDataDir] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// snapshot reads what each pane shows, from the DOM only.
function snapshot() {
  const text = (root, field) => root.querySelector(`[data-field="${field}"]`)?.textContent ?? null;
  const panes = {};
  for (const el of document.querySelectorAll("[data-pane]")) {
    panes[el.dataset.pane] = {
      state: text(el, "state"),
      sid: text(el, "sid"),
      transport: text(el, "transport"),
      recovered: text(el, "recovered"),
      error: text(el, "error"),
      badge: text(el, "badge"),
      ack: text(el, "ack"),
      cutNote: text(el, "cut-note"),
      events: [...el.querySelectorAll("[data-field=events] li")].map((li) => ({
        event: li.dataset.event,
        type: li.dataset.type,
        tag: li.dataset.tag ?? "",
        row: li.querySelector(".row")?.textContent ?? "",
      })),
    };
  }
  const actions = [...document.querySelectorAll("button[data-action]")].map((b) => ({
    name: b.dataset.action,
    label: b.textContent,
    row: b.closest("tr").textContent,
  }));
  return { about: document.getElementById("about")?.textContent ?? null, audiences: document.getElementById("audiences")?.textContent ?? null, lastWrite: text(document, "last-write"), panes, actions };
}

const context = await launchChromium(userDataDir, { viewport: { width: 1400, height: 1000 } });
try {
  const page = await context.newPage();
  page.on("console", (msg) => out({ kind: "console", text: msg.text() }));
  page.on("pageerror", (err) => out({ kind: "pageerror", error: err.message }));
  await page.goto(pageURL);
  out({ kind: "loaded" });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    let cmd;
    try {
      cmd = JSON.parse(line);
      if (cmd.op === "click") {
        await page.click(cmd.selector, { timeout: 10000 });
        out({ ok: true });
      } else if (cmd.op === "snapshot") {
        out({ ok: true, snapshot: await page.evaluate(snapshot) });
      } else if (cmd.op === "screenshot") {
        await page.screenshot({ path: cmd.path, fullPage: true });
        out({ ok: true });
      } else if (cmd.op === "close") {
        out({ ok: true });
        break;
      } else {
        out({ ok: false, error: `unknown op ${cmd.op}` });
      }
    } catch (err) {
      out({ ok: false, error: String((err && err.stack) || err) });
    }
  }
} catch (err) {
  out({ kind: "fail", error: String((err && err.stack) || err) });
  process.exitCode = 1;
} finally {
  await context.close();
}
