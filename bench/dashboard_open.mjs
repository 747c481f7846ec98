// Keeps a dashboard page open in headless Chromium, logged in, for
// bench/dashboard.sh: prints "open" once the page shows live data, then
// stays until it is ended (or for 30 minutes at most).
// Usage: node dashboard_open.mjs NODE_MODULES_DIR CHROMIUM URL TOKEN [HASH]
import { createRequire } from 'node:module';
import path from 'node:path';

const [modules, chromiumPath, url, token, hash = '#/'] = process.argv.slice(2);
const { chromium } = createRequire(path.resolve(modules, 'package.json'))('playwright-core');
const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const stop = async () => {
  await browser.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const page = await browser.newPage();
page.setDefaultTimeout(60_000);
await page.goto(`${url}/${hash}`);
if (token) {
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
}
await page.locator('#live.is-live').waitFor();
console.log('open');
setTimeout(stop, 30 * 60 * 1000);
