// chromium.mjs: Debian's /usr/bin/chromium (or $CHROMIUM) through
// playwright-core, headless, with a fresh profile and no background
// traffic (the machine's network is closed; Chromium would keep dialling
// out). The one launcher of every browser test (cmd/walcast's
// testdata/browser, broadcast/adminui's testdata), imported by relative
// path: "playwright-core" then resolves from this folder's node_modules,
// which browsertest.Require installs.
import { chromium } from "playwright-core";

export function launchChromium(userDataDir, options = {}) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    ...options,
  });
}
