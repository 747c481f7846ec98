// The dashboard end to end, as a person uses it: a real `ferry server` with
// a token and a real `ferry worker` on loopback, jobs submitted with the
// ferry CLI, and Debian's Chromium (headless) clicking through the pages.
//
// Checks: a wrong token is refused; login; jobs appear live as the CLI
// submits them; a job's output; cancel a running job; retry a failed one;
// filters; the workers page; the overview and a queue action; the flows,
// what a flow's jobs wait on, cancel and retry of a whole flow; a phone's
// width; the token stays in the header (never in a URL or localStorage); an
// idle page asks the server nothing; no console error (a CSP violation is
// one); a server without a token needs no login. Screenshots of each page
// go to SCREENSHOTS.
//
// Every wait is bounded (generous limits that only guard against a hang);
// nothing is timed.
//
// Usage: node dashboard_test.mjs FERRY NODE_MODULES_DIR SCREENSHOTS CHROMIUM

import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const [ferryGiven, modules, screenshotsGiven, chromiumPath] = process.argv.slice(2);
const ferry = path.resolve(ferryGiven);
const screenshots = path.resolve(screenshotsGiven);
const { chromium } = createRequire(path.resolve(modules, 'package.json'))('playwright-core');

const WAIT = 30_000;  // the most any one step may take before the test gives up
const TOKEN = `dash-${process.pid}-${Date.now()}`;
const scratch = mkdtempSync(path.join(tmpdir(), 'ferry-dashboard-'));
mkdirSync(screenshots, { recursive: true });
const started = [];  // processes to end, by pid
// However this script ends, what it started ends with it.
process.on('exit', () => {
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(1));
process.stdout.on('error', () => {});  // a reader that went away is no reason to stop

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A ferry process in the background, its stderr in SCRATCH/NAME.log.
function background(name, args, environment = {}) {
  const log = openSync(path.join(scratch, `${name}.log`), 'a');
  const child = spawn(ferry, args, {
    cwd: scratch,
    env: { ...process.env, ...environment },
    stdio: ['ignore', log, log],
  });
  started.push(child);
  return child;
}

async function startServer(name, token) {
  const address = path.join(scratch, `${name}.address`);
  const args = ['server', '--listen', '127.0.0.1:0', '--db', path.join(scratch, `${name}.db`),
    '--address-file', address];
  background(name, token ? [...args, '--token-file', tokenFile(token)] : args);
  for (let i = 0; i < 400 && !existsSync(address); i += 1) await sleep(50);
  if (!existsSync(address))
    throw new Error(`the server did not start: ${readFileSync(path.join(scratch, `${name}.log`), 'utf8')}`);
  return readFileSync(address, 'utf8').trim();
}

// The token goes to the server in a file, as in production (not in its argv).
function tokenFile(token) {
  const file = path.join(scratch, 'token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

// `ferry ARGS...` against `server` to its end; resolves to its stdout.
function cli(server, args) {
  return new Promise((resolve, reject) => {
    execFile(ferry, args, {
      cwd: scratch,
      timeout: WAIT,
      env: { ...process.env, FERRY_SERVER: server, FERRY_TOKEN: TOKEN },
    }, (error, stdout, stderr) => (error ? reject(new Error(`ferry ${args.join(' ')}: ${stderr}`)) : resolve(stdout.trim())));
  });
}

// One call of the HTTP API with the token; resolves to the answer's JSON.
async function api(server, method, target, body) {
  const answer = await fetch(`${server}${target}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await answer.text();
  if (!answer.ok) throw new Error(`${method} ${target}: ${answer.status} ${text}`);
  return JSON.parse(text);
}

const submit = (server, name, ...command) => cli(server, ['submit', '--name', name, '--', ...command]);

const results = [];
async function check(name, body) {
  try {
    await body();
    results.push([name, null]);
    console.log(`ok - ${name}`);
  } catch (problem) {
    results.push([name, problem]);
    console.log(`not ok - ${name}\n  ${String(problem.stack || problem).replace(/\n/g, '\n  ')}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

async function main() {
  // Created while the marker file is missing, this job fails once, then succeeds.
  const marker = path.join(scratch, 'flaky-marker');
  const url = await startServer('server', TOKEN);
  background('worker', ['worker', '--server', url, '--slots', '3', '--id', 'test-worker'], {
    FERRY_TOKEN: TOKEN,
  });
  for (let i = 0; i < 4; i += 1) await submit(url, `warm-up-${i}`, 'echo', `warming ${i}`);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Playwright gives each launch a fresh --user-data-dir; this machine's
    // network is closed, so Chromium must not try to reach anything.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    const problems = [];
    page.on('console', (message) => {
      if (message.type() === 'error' && !/401 \(Unauthorized\)/.test(message.text()))
        problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(String(error)));
    const requested = [];
    page.on('request', (request) => requested.push(request.url()));

    let answer;
    let alwaysFails;
    await check('the page comes with a strict Content-Security-Policy and no framing', async () => {
      answer = await page.goto(url);
      const headers = answer.headers();
      expect(headers['content-security-policy']?.includes("script-src 'self'"),
        `CSP: ${headers['content-security-policy']}`);
      expect(headers['content-security-policy'].includes("frame-ancestors 'none'"), 'frame-ancestors');
      expect(headers['x-frame-options'] === 'DENY', 'X-Frame-Options');
    });

    await check('a wrong token is refused', async () => {
      await page.locator('#login').waitFor();
      await page.fill('#token', 'not-the-token');
      await page.click('#login button[type=submit]');
      await page.locator('#login-error', { hasText: 'refused' }).waitFor();
      expect(await page.evaluate(() => sessionStorage.length) === 0, 'a refused token was kept');
    });

    await check('the right token logs in, kept in this tab only', async () => {
      await page.fill('#token', TOKEN);
      await page.click('#login button[type=submit]');
      await page.locator('#state-cards .card').first().waitFor();
      expect(await page.evaluate(() => sessionStorage.getItem('ferry.token')) === TOKEN, 'sessionStorage');
      expect(await page.evaluate(() => localStorage.length) === 0, 'localStorage holds something');
    });

    await check('jobs appear live as the CLI submits them', async () => {
      await page.click('nav a[data-page=jobs]');
      await page.locator('#jobs table').waitFor();
      await page.evaluate(() => { window.stillTheSamePage = true; });
      for (let i = 1; i <= 3; i += 1) await submit(url, `live-${i}`, 'echo', `hello from live-${i}`);
      for (let i = 1; i <= 3; i += 1) await page.locator('tr', { hasText: `live-${i}` }).waitFor();
      expect(await page.evaluate(() => window.stillTheSamePage === true), 'the page was reloaded');
    });

    await check('a job shows its output', async () => {
      await page.locator('tr', { hasText: 'live-2' }).locator('td.name a').click();
      await page.locator('#job-state [data-state=succeeded]').waitFor();
      await page.locator('pre[data-stream=stdout]', { hasText: 'hello from live-2' }).waitFor();
      await shot(page, 'job');
    });

    await check('a running job is cancelled', async () => {
      const id = await submit(url, 'long-sleep', 'sleep', '600');
      await page.goto(`${url}/#/jobs/${id}`);
      await page.locator('#job-state [data-state=running]').waitFor();
      await page.click('#cancel');
      await page.locator('#job-state [data-state=cancelled]').waitFor();
      await page.locator('#action-note', { hasText: 'Cancelled' }).waitFor();
      expect(await page.locator('#cancel').isDisabled(), 'cancel still enabled');
    });

    await check('a failed job is retried and then succeeds', async () => {
      const id = await submit(url, 'flaky', 'sh', '-c',
        `if [ -e "${marker}" ]; then echo second try; else touch "${marker}"; echo first try >&2; exit 3; fi`);
      await page.goto(`${url}/#/jobs/${id}`);
      await page.locator('#job-state [data-state=failed]').waitFor();
      await page.locator('pre[data-stream=stderr]', { hasText: 'first try' }).waitFor();
      await page.click('#retry');
      await page.locator('#job-state [data-state=succeeded]').waitFor();
      await page.locator('#attempts h2', { hasText: 'Attempts (2)' }).waitFor();
      await page.locator('pre[data-stream=stdout]', { hasText: 'second try' }).waitFor();
    });

    await check('filters by state and by text', async () => {
      alwaysFails = await submit(url, 'always-fails', 'false');
      await page.goto(`${url}/#/jobs`);
      await page.locator('tr', { hasText: 'always-fails' }).locator('[data-state=failed]').waitFor();
      await page.selectOption('#filter-state', 'failed');
      await page.waitForFunction(() => location.hash.includes('state=failed'));
      await page.locator('tr', { hasText: 'always-fails' }).waitFor();
      await page.waitForFunction(() => [...document.querySelectorAll('#jobs tbody tr')]
        .every((row) => row.querySelector('[data-state=failed]')));
      expect(!(await page.locator('tr', { hasText: 'live-1' }).count()), 'live-1 shown among failed');
      await page.selectOption('#filter-state', '');
      await page.fill('#filter-text', 'live-');
      await page.click('#filters button[type=submit]');
      await page.waitForFunction(() => document.querySelectorAll('#jobs tbody tr').length === 3);
      await page.click('#filters .quiet-link');
      await page.locator('tr', { hasText: 'always-fails' }).waitFor();
      await shot(page, 'jobs');
    });

    await check('the workers page shows the worker and the job it runs', async () => {
      const id = await submit(url, 'busy', 'sleep', '600');
      await page.click('nav a[data-page=workers]');
      await page.locator('tr[data-worker=test-worker]').waitFor();
      await page.locator(`tr[data-worker=test-worker] a.chip`, { hasText: id }).waitFor();
      await shot(page, 'workers');
      await cli(url, ['cancel', id]);
      await page.locator(`tr[data-worker=test-worker] a.chip`, { hasText: id }).waitFor({ state: 'detached' });
    });

    await check('the overview counts the jobs by state and shows the last hour', async () => {
      await page.click('nav a[data-page=overview]');
      await page.locator('#last-hour svg rect.ok').first().waitFor();
      await page.locator('tr[data-queue=default]').waitFor();
      // Drawn after the last change (the busy job's cancel): nothing runs now.
      await page.waitForFunction(() => {
        const shown = (state) => document.querySelector(`.card[data-state=${state}] .card-count`)?.textContent;
        return shown('failed') === '1' && shown('cancelled') === '2' && shown('running') === '0' &&
          shown('queued') === '0';
      });
      await shot(page, 'overview');
    });

    await check('an idle page asks the server nothing', async () => {
      await sleep(1500);  // a read the last event asked for may still be on its way
      const before = requested.length;
      await sleep(3000);
      const asked = requested.slice(before);
      expect(asked.length === 0, `asked: ${asked.join(', ')}`);
    });

    await check('a queue\'s failed jobs are retried from the overview', async () => {
      const retry = page.locator('tr[data-queue=default] button[data-action=retry]');
      await retry.click();
      await retry.click();  // the second click confirms
      await page.locator('#queue-note', { hasText: 'Retried 1 job of default.' }).waitFor();
      await page.goto(`${url}/#/jobs/${alwaysFails}`);
      await page.locator('#attempts h2', { hasText: 'Attempts (2)' }).waitFor();
    });

    await check('a queue is paused and resumed from the overview', async () => {
      await page.click('nav a[data-page=overview]');
      await page.locator('tr[data-queue=default] button[data-action=pause]').click();
      await page.locator('tr[data-queue=default] td.limits', { hasText: 'paused' }).waitFor();
      await page.locator('#queue-note', { hasText: 'Paused default.' }).waitFor();
      expect((await api(url, 'GET', '/v1/queues/default')).paused === true, 'the server has it paused');
      const held = await submit(url, 'held-by-pause', 'true');
      await page.goto(`${url}/#/jobs/${held}`);
      await page.locator('#job-state [data-state=queued]').waitFor();
      await page.locator('dd', { hasText: 'its queue is paused' }).waitFor();
      await page.click('nav a[data-page=overview]');
      await page.locator('tr[data-queue=default] button[data-action=resume]').click();
      await page.locator('tr[data-queue=default] td.limits', { hasText: 'none' }).waitFor();
      expect((await api(url, 'GET', '/v1/queues/default')).paused === false, 'and resumed');
      await page.goto(`${url}/#/jobs/${held}`);
      await page.locator('#job-state [data-state=succeeded]').waitFor();
      expect(await page.locator('dt', { hasText: 'held' }).count() === 0, 'still shown as held');
    });

    await check('a flow: its jobs, what they wait on, cancel and retry of the whole flow', async () => {
      const submitted = await api(url, 'POST', '/v1/jobs', {
        flow: { name: 'release' },
        jobs: [
          { ref: 'build', name: 'flow-build', command: { argv: ['sleep', '600'] } },
          { ref: 'test', name: 'flow-test', after: ['build'], command: { argv: ['echo', 'tested'] } },
        ],
      });
      const [build, test] = submitted.ids;
      await page.click('nav a[data-page=flows]');
      await page.locator(`tr[data-flow="${submitted.flow}"]`, { hasText: 'release' }).waitFor();
      const listed = await page.locator('main').innerText();
      expect(!/null|undefined/.test(listed), `the flows page shows: ${listed}`);
      await shot(page, 'flows');
      await page.locator(`tr[data-flow="${submitted.flow}"] td.name a`).click();
      await page.locator('#flow-state [data-state=running]').waitFor();
      await page.locator(`#flow-jobs tr[data-id="${build}"] [data-state=running]`).waitFor();
      await page.locator(`#flow-jobs tr[data-id="${test}"] [data-state=waiting]`).waitFor();
      await page.locator(`#flow-jobs tr[data-id="${test}"] td.after a.chip`, { hasText: String(build) }).waitFor();
      await shot(page, 'flow');
      await page.locator(`#flow-jobs tr[data-id="${test}"] td.name a`).click();
      await page.locator('#waits-on a.chip', { hasText: String(build) }).waitFor();
      await page.locator('#job-details a', { hasText: `flow ${submitted.flow}` }).click();
      await page.click('#cancel-flow');
      await page.locator('#action-note', { hasText: /cancelled\.$/ }).waitFor();
      await page.locator('#flow-state [data-state=cancelled]').waitFor();
      await page.locator(`#flow-jobs tr[data-id="${test}"] [data-state=cancelled]`).waitFor();
      await page.click('#retry-flow');
      await page.locator('#action-note', { hasText: /queued again\.$/ }).waitFor();
      await page.locator(`#flow-jobs tr[data-id="${build}"] [data-state=running]`).waitFor();
      await page.locator(`#flow-jobs tr[data-id="${test}"] [data-state=waiting]`).waitFor();
      await page.locator('#flow-state [data-state=running]').waitFor();
      await page.click('#cancel-flow');  // leaves the worker's slots free
      await page.locator('#flow-state [data-state=cancelled]').waitFor();
    });

    await check('the token never appears in a URL, and logging out forgets it', async () => {
      expect(requested.length > 10, 'too few requests seen');
      const leaked = requested.filter((address) => address.includes(TOKEN));
      expect(leaked.length === 0, `in URLs: ${leaked.join(', ')}`);
      await page.click('#logout');
      await page.locator('#login').waitFor();
      expect(await page.evaluate(() => sessionStorage.length) === 0, 'the token is still kept');
    });

    await check('usable at a phone\'s width', async () => {
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      const small = await phone.newPage();
      small.setDefaultTimeout(WAIT);
      await small.goto(`${url}/#/jobs`);
      await small.fill('#token', TOKEN);
      await small.click('#login button[type=submit]');
      await small.locator('#jobs table').waitFor();
      const fits = await small.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
      expect(fits, 'the page is wider than the screen');
      await shot(small, 'phone-jobs');
      await phone.close();
    });

    await check('no console errors and no script or style refused by the policy', async () => {
      expect(problems.length === 0, problems.join('\n'));
    });

    await check('a server without a token on loopback needs no login', async () => {
      const open = await startServer('tokenless', '');
      const plain = await browser.newContext();
      const tab = await plain.newPage();
      tab.setDefaultTimeout(WAIT);
      await tab.goto(open);
      await tab.locator('#state-cards .card').first().waitFor();
      expect(!(await tab.locator('#login').count()), 'a login form was shown');
      expect(await tab.locator('#logout').isHidden(), 'a logout button was shown');
      await plain.close();
    });
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (problem) {
  results.push(['setting up', problem]);
  console.log(`not ok - setting up\n  ${problem.stack || problem}`);
} finally {
  for (const child of started) child.kill('SIGTERM');
  await sleep(200);
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  const failed = results.filter(([, problem]) => problem).length;
  if (failed) {
    for (const name of ['server', 'worker'])
      if (existsSync(path.join(scratch, `${name}.log`)))
        console.log(`--- ${name}.log\n${readFileSync(path.join(scratch, `${name}.log`), 'utf8').slice(-4000)}`);
  }
  rmSync(scratch, { recursive: true, force: true });
  console.log(`screenshots in ${screenshots}`);
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}
