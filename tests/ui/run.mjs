// The dashboard at /ui/ in headless Chromium against a live relurl, with a
// loopback webhook receiver whose answer the test chooses. Every page is
// exercised; screenshots go to target/ui-screenshots/.
//
//   node tests/ui/run.mjs <path to relurl binary>
//   env: CHROMIUM (default /usr/bin/chromium)
//
// Waits are conditions with deadlines, never fixed sleeps. The whole run is
// bounded by HARD_TIMEOUT_MS; on failure it exits 1 with the failed step.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const HARD_TIMEOUT_MS = 4 * 60 * 1000;
const WAIT_MS = 20000;
const ADMIN = 'admin-token-for-the-ui-tests-0123456789';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = join(ROOT, 'target/ui-screenshots');
const PHONE = { width: 375, height: 812, deviceScaleFactor: 1, isMobile: true, hasTouch: true };
const DESKTOP = { width: 1280, height: 900 };

const binary = process.argv[2] ?? process.env.RELURL_BIN;
if (!binary) throw new Error('usage: node run.mjs <relurl binary>');
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';

const cleanups = [];
const hard = setTimeout(() => fail(new Error(`suite exceeded ${HARD_TIMEOUT_MS / 1000}s`)), HARD_TIMEOUT_MS);
let step = 'start';

let current = null; // the page, for a failure's screenshot and notices

async function fail(error) {
  console.error(`ui test FAILED at step "${step}": ${error.stack ?? error}`);
  if (current) {
    try {
      await current.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true });
      const notices = await current.$$eval('.notice', (ns) => ns.map((n) => n.textContent));
      console.error(`at ${current.url()}; notices: ${JSON.stringify(notices)}; screenshot: target/ui-screenshots/failure.png`);
    } catch {
      // the browser may be gone already
    }
  }
  await cleanup();
  process.exit(1);
}

async function cleanup() {
  clearTimeout(hard);
  for (const f of cleanups.reverse()) {
    try {
      // Each step gets a few seconds: a hung close must not keep the suite alive.
      await Promise.race([f(), new Promise((r) => setTimeout(r, 5000).unref())]);
    } catch {
      // best effort: the process is ending
    }
  }
}

/** Polls `probe` until it returns a truthy value; throws naming `what` after `ms`. */
async function until(what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** relurl on a free port with a temp store; resolves once it logs `listening`. */
async function startRelurl() {
  const dir = mkdtempSync(join(tmpdir(), 'relurl-ui-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = join(dir, 'relurl.toml');
  writeFileSync(config, `[server]
listen = "127.0.0.1:${port}"
public_base_url = "${base}"
trusted_proxies = ["127.0.0.1/32"]  # clicks say where they come from in X-Forwarded-For
[auth]
admin_token = "${ADMIN}"
[store]
path = "${join(dir, 'data')}"
[webhooks]
allow_private_targets = true  # the receiver is on loopback
retry_schedule = []           # one attempt: a refused delivery is failed at once
disable_after_failed_deliveries = 3
[fraud]
threshold = 20                # a flood the test can make quickly
policy = "block_range"
`);
  const child = spawn(binary, ['serve', '--config', config], {
    env: { ...process.env, RELURL_LOG: 'info', RELURL_LOG__FORMAT: 'text' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  cleanups.push(() => child.kill('SIGKILL'));
  let log = '';
  await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`relurl did not listen:\n${log}`)), WAIT_MS);
    child.stderr.on('data', (chunk) => {
      log = (log + chunk).slice(-20000);
      if (log.includes('listening')) {
        clearTimeout(timer);
        res();
      }
    });
    child.on('exit', (code) => rej(new Error(`relurl exited (${code}):\n${log}`)));
  });
  return base;
}

/** A webhook receiver on loopback answering 200, or 500 while `failing`. */
async function startReceiver() {
  const receiver = { events: [], failing: false };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (receiver.failing) {
        res.writeHead(500).end('receiver told to fail');
        return;
      }
      try {
        receiver.events.push(JSON.parse(body));
      } catch {
        receiver.events.push({ type: 'unparsable' });
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  // close() alone waits for relurl's pooled keep-alive connections to go idle.
  cleanups.push(() => new Promise((r) => {
    server.close(r);
    server.closeAllConnections();
  }));
  receiver.url = `http://127.0.0.1:${server.address().port}/hook`;
  return receiver;
}

async function json(method, url, token, body) {
  const res = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

/** A visitor's click from `ip`: the short URL fetched without following the redirect. */
async function click(shortUrl, userAgent, referer, ip = '8.8.8.8') {
  const headers = { 'User-Agent': userAgent, Referer: referer, 'X-Forwarded-For': ip };
  const res = await fetch(shortUrl, { redirect: 'manual', headers });
  if (res.status !== 302) throw new Error(`click on ${shortUrl}: ${res.status}`);
}

const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const DESKTOP_UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  step = 'start relurl and the receiver';
  const base = await startRelurl();
  const receiver = await startReceiver();
  const account = await json('POST', `${base}/v1/accounts`, ADMIN, { name: 'ui-test' });
  const key = account.api_key;

  step = 'launch chromium';
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  cleanups.push(() => browser.close());
  await browser.defaultBrowserContext().overridePermissions(base, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
  const page = await browser.newPage();
  current = page;
  await page.setViewport(DESKTOP);
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const text = (selector) => page.$eval(selector, (e) => e.textContent);
  const waitText = (selector, pattern) =>
    page.waitForFunction((s, p) => [...document.querySelectorAll(s)].some((e) => new RegExp(p).test(e.textContent)), {}, selector, pattern.source ?? pattern);
  const notice = (pattern) => waitText('.notice', pattern);
  const go = async (hash) => {
    await page.evaluate((h) => (location.hash = h), hash);
    await page.waitForFunction((h) => location.hash === h, {}, hash);
  };
  const fill = async (selector, value) => {
    await page.$eval(selector, (e) => {
      e.value = '';
      e.dispatchEvent(new Event('input', { bubbles: true }));
    });
    await page.type(selector, value);
  };

  step = 'sign in';
  const response = await page.goto(`${base}/ui`);
  if (!page.url().endsWith('/ui/')) throw new Error(`/ui did not lead to /ui/: ${page.url()}`);
  const csp = response.headers()['content-security-policy'] ?? '';
  if (!csp.includes("script-src 'self'")) throw new Error(`no strict CSP: ${csp}`);
  await page.waitForSelector('#signin');
  await fill('#api-key', 'rl_not-a-key');
  await page.click('#signin button');
  await notice(/Sign-in failed/);
  await fill('#api-key', key);
  await page.click('#signin button');
  await page.waitForSelector('#create-link');
  await shot('links-empty');

  step = 'create links through the UI';
  const create = async (destination, code, tags) => {
    await fill('#create-link input[name=destination]', destination);
    await fill('#create-link input[name=code]', code);
    await fill('#create-link input[name=tags]', tags);
    await page.click('#create-link button');
    await page.waitForSelector(`#links tr[data-code="${code}"]`);
  };
  await create('https://example.com/launch', 'launch', 'promo, spring');
  await create('https://example.com/other', 'other', 'misc');
  await create('https://example.com/flood', 'flood', 'misc');

  step = 'search and tag filter';
  const codes = () => page.$$eval('#links tr[data-code]', (rows) => rows.map((r) => r.dataset.code).sort().join(','));
  await fill('#filter-links input[name=tag]', 'promo');
  await page.click('#filter-links button');
  await until('only launch tagged promo', async () => (await codes()) === 'launch');
  await fill('#filter-links input[name=tag]', '');
  await fill('#filter-links input[name=q]', 'OTH');
  await page.click('#filter-links button');
  await until('only other matching "OTH"', async () => (await codes()) === 'other');
  await fill('#filter-links input[name=q]', '');
  await page.click('#filter-links button');
  await until('all links', async () => (await codes()) === 'flood,launch,other');

  step = 'copy and QR';
  const row = (code) => `#links tr[data-code="${code}"]`;
  await page.click(`${row('launch')} [data-action=copy]`);
  await notice(/Copied http:\/\/127\.0\.0\.1:\d+\/launch/);
  await page.click(`${row('launch')} [data-action=qr]`);
  await page.waitForFunction(() => document.querySelector('#qr img')?.naturalWidth > 0);
  await shot('links-qr');
  await page.click('#qr button');
  await page.waitForFunction(() => !document.querySelector('#qr'));

  step = 'edit, disable and enable';
  await page.click(`${row('launch')} [data-action=edit]`);
  await fill('.edit-link input[name=destination]', 'https://example.com/relaunch');
  await page.click('.edit-link button[type=submit]');
  await waitText(`${row('launch')} td.url`, /relaunch/);
  await page.click(`${row('launch')} [data-action=toggle]`);
  await waitText(`${row('launch')} td[data-label=State]`, /^disabled/);
  const disabled = await json('GET', `${base}/v1/links/launch`, key);
  if (!disabled.disabled) throw new Error('the UI did not disable the link');
  await page.click(`${row('launch')} [data-action=toggle]`);
  await waitText(`${row('launch')} td[data-label=State]`, /^active/);

  step = 'link page: clicks, count, chart, live clicks';
  await go('#/links/launch');
  await page.waitForSelector('#click-count');
  await waitText('#live-status', /^live$/);
  const short = `${base}/launch`;
  await click(short, IPHONE, 'https://news.example.com/story', '81.2.69.160');
  await click(short, IPHONE, 'https://news.example.com/story', '193.99.144.80');
  await click(short, DESKTOP_UA, '', '8.8.8.8');
  // They arrive live (no reload), and move the count and the chart.
  await page.waitForFunction(() => document.querySelectorAll('#clicks tbody tr').length === 3);
  await waitText('#click-count', /^3$/);
  await waitText('#total', /^3$/);
  await page.waitForFunction(() => document.querySelector('#chart')?.dataset.clicks === '3');
  await waitText('#breakdown-devices', /mobile/);
  await waitText('#breakdown-countries', /US/);
  await waitText('#breakdown-referrers', /news\.example\.com/);
  await page.click('[data-interval=hour]');
  await page.waitForFunction(() => document.querySelector('#chart')?.dataset.clicks === '3' && document.querySelectorAll('#chart rect').length >= 24);
  await page.click('[data-interval=day]');
  await page.waitForFunction(() => document.querySelector('#chart')?.dataset.clicks === '3' && document.querySelectorAll('#chart rect').length <= 31);
  await click(short, IPHONE, '', '81.2.69.160');
  await page.waitForFunction(() => document.querySelectorAll('#clicks tbody tr').length === 4);
  await waitText('#click-count', /^4$/);
  await page.waitForFunction(() => document.querySelector('#chart')?.dataset.clicks === '4');
  step = 'CSV download';
  const clicksNow = Number(await text('#click-count'));
  await page.click('#csv');
  await notice(new RegExp(`Downloaded ${clicksNow} clicks as CSV`));
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('link');

  step = 'account overview';
  await go('#/overview');
  await waitText('#total', new RegExp(`^${clicksNow}$`));
  await shot('overview');

  step = 'fraud incidents: empty, then a flood';
  await go('#/incidents');
  await page.waitForSelector('#incidents-empty');
  await shot('incidents-empty');
  for (let i = 0; i < 30; i++) await click(`${base}/flood`, DESKTOP_UA, '');
  await until('a fraud incident', async () => (await json('GET', `${base}/v1/fraud/incidents`, key)).items.length > 0);
  await page.reload();
  await waitText('#incidents td[data-label=Link]', /^flood$/);
  await shot('incidents');

  step = 'endpoints: create, secret shown once';
  await go('#/webhooks');
  await page.waitForSelector('#create-endpoint');
  await fill('#create-endpoint input[name=url]', receiver.url);
  await fill('#create-endpoint input[name=description]', 'the test receiver');
  await page.click('#create-endpoint button');
  await waitText('#secret code', /^whsec_/);
  const firstSecret = await text('#secret code');
  await page.waitForSelector('#endpoints tr[data-id]');
  const endpointId = await page.$eval('#endpoints tr[data-id]', (r) => r.dataset.id);
  const epRow = `#endpoints tr[data-id="${endpointId}"]`;
  await shot('endpoints-secret');
  await page.click('#secret button');
  await page.waitForFunction(() => !document.querySelector('#secret'));
  await page.reload();
  await page.waitForSelector(epRow);
  if (await page.$('#secret')) throw new Error('the secret is shown again after a reload');

  step = 'endpoints: send test, delivery in the log';
  await page.click(`${epRow} [data-action=test]`);
  await notice(/Test event .* sent/);
  await until('webhook.test at the receiver', () => receiver.events.some((e) => e.type === 'webhook.test'));
  await page.click(`${epRow} [data-action=deliveries]`);
  await page.waitForSelector('#deliveries tr[data-status=succeeded]');
  await waitText('#deliveries td[data-label=Response]', /^200$/);

  step = 'a failed delivery retried from the UI';
  receiver.failing = true;
  const failed = await json('POST', `${base}/v1/webhooks/${endpointId}/test`, key);
  const eventRow = (status) => `#deliveries tr[data-event="${failed.event_id}"][data-status=${status}]`;
  await page.select('#status-filter', 'failed');
  await page.waitForSelector(`${eventRow('failed')} [data-action=retry]`);
  await waitText(`${eventRow('failed')} td[data-label=Response]`, /^500$/);
  await shot('deliveries-failed');
  receiver.failing = false;
  await page.click(`${eventRow('failed')} [data-action=retry]`);
  await notice(/Retrying/);
  await page.select('#status-filter', '');
  await page.waitForSelector(eventRow('succeeded'));
  await until('the retried test event at the receiver', () => receiver.events.filter((e) => e.type === 'webhook.test').length === 2);

  step = 'recover by time range';
  receiver.failing = true;
  const lost = await json('POST', `${base}/v1/webhooks/${endpointId}/test`, key);
  await page.waitForSelector(`#deliveries tr[data-event="${lost.event_id}"][data-status=failed]`);
  receiver.failing = false;
  // datetime-local takes the browser's local time.
  const since = await page.evaluate(() => {
    const d = new Date(Date.now() - 3600e3);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 19);
  });
  await page.$eval('#recover input[name=since]', (e, v) => {
    e.value = v;
    e.dispatchEvent(new Event('input', { bubbles: true }));
  }, since);
  await page.click('#recover button');
  await notice(/Recovered 1 failed deliveries/);
  await page.waitForSelector(`#deliveries tr[data-event="${lost.event_id}"][data-status=succeeded]`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('deliveries');

  step = 'endpoints: rotate secret, disable and enable';
  await go('#/webhooks');
  await page.waitForSelector(epRow);
  await page.click(`${epRow} [data-action=rotate]`);
  await waitText('#secret code', /^whsec_/);
  if ((await text('#secret code')) === firstSecret) throw new Error('rotation showed the old secret');
  await page.click('#secret button');
  await page.click(`${epRow} [data-action=toggle]`);
  await waitText(`${epRow} td[data-label=State]`, /^disabled/);
  await page.click(`${epRow} [data-action=toggle]`);
  await waitText(`${epRow} td[data-label=State]`, /^enabled/);

  step = 'endpoints: disabled automatically, the reason shown, enabled again';
  receiver.failing = true;
  for (let i = 0; i < 3; i++) await json('POST', `${base}/v1/webhooks/${endpointId}/test`, key);
  await until('the endpoint disabled with its reason', async () => {
    await page.reload();
    await page.waitForSelector(epRow);
    return /^disabled: disabled automatically: the last 3 deliveries failed/.test(await text(`${epRow} td[data-label=State]`));
  });
  await shot('endpoints-disabled');
  receiver.failing = false;
  await page.click(`${epRow} [data-action=toggle]`);
  await waitText(`${epRow} td[data-label=State]`, /^enabled/);

  step = 'phone-sized screen';
  // Turning on isMobile reloads the page: wait for the dashboard to be back.
  await page.setViewport(PHONE);
  await page.waitForSelector('#signout');
  for (const [hash, ready, name] of [
    ['#/links', '#links', 'phone-links'],
    ['#/links/launch', '#clicks', 'phone-link'],
    ['#/overview', 'main h1', 'phone-overview'],
    ['#/webhooks', '#endpoints', 'phone-endpoints'],
    [`#/webhooks/${endpointId}`, '#deliveries', 'phone-deliveries'],
    ['#/incidents', '#incidents', 'phone-incidents'],
  ]) {
    step = `phone-sized screen: ${hash}`;
    await go(hash);
    await page.waitForSelector(ready);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    if (width > PHONE.width) throw new Error(`${hash} is ${width}px wide on a ${PHONE.width}px screen`);
    await shot(name);
  }

  step = 'sign out';
  await page.setViewport(DESKTOP);
  await page.waitForSelector('#signout');
  await page.click('#signout');
  await page.waitForSelector('#signin');
  if (await page.evaluate(() => sessionStorage.length)) throw new Error('sign-out left the key in sessionStorage');

  if (problems.length) throw new Error(`browser problems:\n${problems.join('\n')}`);
  console.log(`ui test passed; screenshots in ${SHOTS}`);
}

main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  (e) => fail(e),
);
