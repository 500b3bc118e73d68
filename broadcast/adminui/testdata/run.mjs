// run.mjs: logs in to a walcast Socket.IO server from the official Admin UI
// (the ui/dist of @socket.io/admin-ui, served by the Go test) in Debian's
// headless Chromium through playwright-core, and reports what its Sockets
// page lists, one JSON line per step, for TestAdminUIInChromium:
//
//   node run.mjs <UI URL> <server URL> <username> <password> <user-data-dir> <socket ids, comma-separated> <server id>
//
// Lines: {"kind":"refused","text":...} after a wrong password,
// {"kind":"listed","rows":[...]} once every expected id is on the Sockets
// page, {"kind":"server","rows":[...]} once the Servers page lists the
// server id, or {"kind":"fail","error":...}.
import { launchChromium } from "../../../internal/browsertest/chromium.mjs";

const [uiURL, serverURL, username, password, userDataDir, idList, serverID] = process.argv.slice(2);
const ids = idList.split(",");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const context = await launchChromium(userDataDir);
try {
  // index.html links web fonts and icons from CDNs this machine cannot
  // reach; the UI works without them.
  await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
  const page = await context.newPage();
  page.on("console", (msg) => out({ kind: "console", text: msg.text() }));
  page.on("pageerror", (err) => out({ kind: "pageerror", error: err.message }));
  await page.goto(uiURL);

  const login = async (pw) => {
    await page.getByLabel("Server URL").fill(serverURL);
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password").fill(pw);
    await page.getByRole("button", { name: "Connect" }).click();
  };
  await login(password + "-wrong");
  await page.getByText("Invalid credentials").waitFor({ timeout: 30000 });
  out({ kind: "refused", text: "Invalid credentials" });

  await login(password);
  await page.getByRole("dialog").waitFor({ state: "hidden", timeout: 30000 });
  await page.goto(uiURL + "#/sockets/");
  for (const id of ids) {
    await page.getByText(id, { exact: true }).first().waitFor({ timeout: 30000 });
  }
  const rows = await page.locator("table tbody tr").allInnerTexts();
  out({ kind: "listed", rows });

  await page.goto(uiURL + "#/servers/");
  const server = page.locator("table tbody tr", { hasText: serverID });
  await server.first().waitFor({ timeout: 30000 });
  out({ kind: "server", rows: await server.allInnerTexts() });
} catch (err) {
  out({ kind: "fail", error: String((err && err.stack) || err) });
  process.exitCode = 1;
} finally {
  await context.close();
}
