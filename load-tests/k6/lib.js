// Shared by the k6 scripts in this directory (imported, not run): reading
// parameters from __ENV, the setup calls against the relurl API, client
// addresses spread over many /24 ranges, and the end-of-test summary.
import http from 'k6/http';
import { fail, sleep } from 'k6';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');

/** A whole number from __ENV[name] (at least `min`), else `fallback`. */
export function envInt(name, fallback, min = 0) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) fail(`${name}: expected a whole number >= ${min}, got "${raw}"`);
  return value;
}

/** A k6 duration from __ENV[name] ("30s", "2m", "1m30s"), else `fallback`. */
export function envDuration(name, fallback) {
  const text = __ENV[name] || fallback;
  seconds(name, text);
  return text;
}

/** Seconds in a k6 duration string such as "90s", "2m" or "1h2m3s". */
export function seconds(name, text) {
  const parts = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!parts || text === '') fail(`${name}: expected a duration like 30s, 2m or 1m30s, got "${text}"`);
  return (Number(parts[1] || 0) * 60 + Number(parts[2] || 0)) * 60 + Number(parts[3] || 0);
}

/** The account's API key: every script works inside one account. */
export function apiKey() {
  const key = __ENV.API_KEY;
  if (!key) fail('API_KEY: set it to an API key of the account under test (POST /v1/accounts answers one)');
  return key;
}

/** Headers of an authenticated JSON request. */
export function authHeaders(key) {
  return { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
}

/**
 * One setup or teardown call to the API, waiting out 429s (`Retry-After`): link
 * creation is limited per account (auth.expensive_writes_per_sec, 10/s by
 * default). Tagged `phase: setup` and named after the route, so thresholds
 * scoped by scenario or by request name never see it.
 */
export function setupCall(method, path, key, body, route) {
  const params = {
    headers: authHeaders(key),
    responseType: 'text',
    tags: { phase: 'setup', name: `setup ${method} ${(route || path).replace(/[{}]/g, '')}` },
  };
  for (let attempt = 0; attempt < 30; attempt++) {
    const res = http.request(method, `${BASE_URL}${path}`, body === undefined ? null : JSON.stringify(body), params);
    if (res.status !== 429) return res;
    sleep(Number(res.headers['Retry-After']) || 1);
  }
  fail(`${method} ${path}: still rate limited after 30 attempts`);
}

/** Creates `count` links (server-chosen codes, tag `k6`); answers their codes. */
export function createLinks(key, count) {
  const codes = [];
  for (let i = 0; i < count; i++) {
    const res = setupCall('POST', '/v1/links', key, { destination: `https://example.com/landing/${i}`, tags: ['k6'] });
    if (res.status !== 201) fail(`POST /v1/links: ${res.status} ${res.body}`);
    codes.push(res.json('code'));
  }
  return codes;
}

/** Seconds setup may take to create `links` links at 10 per second, plus a margin. */
export function setupTimeout(links) {
  return `${Math.ceil(links / 10) + 60}s`;
}

// Client addresses come from 198.18.0.0/15 (RFC 2544, set aside for benchmarks):
// 512 /24 ranges, so the fraud detector (a threshold per /24 per link) sees each
// range click a link RANGES times less often than one load generator would.
export const RANGES = envInt('RANGES', 512, 1);
if (RANGES > 512) fail(`RANGES: at most 512 /24 ranges fit in 198.18.0.0/15, got ${RANGES}`);

/** A client address in one of RANGES /24 ranges, picked at random. */
export function randomClientIp() {
  const range = Math.floor(Math.random() * RANGES);
  const host = 1 + Math.floor(Math.random() * 254);
  return `198.${18 + (range >> 8)}.${range & 255}.${host}`;
}

/**
 * Fails when `peakRate` clicks per second over `links` links would, on average,
 * take a (link, /24) pair past half the fraud threshold (FRAUD_THRESHOLD clicks
 * per FRAUD_WINDOW seconds: the server's fraud.threshold and fraud.window).
 */
export function checkFraudHeadroom(peakRate, links) {
  const threshold = envInt('FRAUD_THRESHOLD', 200, 1);
  const window = seconds('FRAUD_WINDOW', __ENV.FRAUD_WINDOW || '10s');
  const perPair = (peakRate * window) / (links * RANGES);
  if (perPair > threshold / 2) {
    fail(`${peakRate} clicks/s over ${links} links and ${RANGES} ranges is ${perPair.toFixed(0)} clicks per ` +
      `link and /24 in ${window}s, too close to the fraud threshold ${threshold}: raise LINKS`);
  }
}

/** A browser's User-Agent: clicks count as human, as most real ones do. */
export const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

/**
 * handleSummary's answer: the whole summary as JSON in SUMMARY_FILE (default
 * `fallbackFile`) and a text summary on stdout.
 */
export function summary(data, fallbackFile) {
  const file = __ENV.SUMMARY_FILE || fallbackFile;
  return { stdout: textSummary(data, file), [file]: JSON.stringify(data, null, 2) };
}

function formatValue(metric, stat, value) {
  if (metric.contains === 'time' && metric.type === 'trend' && stat !== 'count') return `${value.toFixed(2)}ms`;
  if (metric.type === 'rate' && stat === 'rate') return `${(value * 100).toFixed(2)}%`;
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

/** The metrics, one line each (thresholds marked ✓/✗), then where the JSON went. */
export function textSummary(data, file) {
  const lines = [''];
  const names = Object.keys(data.metrics).sort();
  const width = Math.max(...names.map((n) => n.length), 10) + 2;
  for (const name of names) {
    const metric = data.metrics[name];
    const values = Object.entries(metric.values || {})
      .map(([stat, value]) => `${stat}=${formatValue(metric, stat, value)}`)
      .join(' ');
    const thresholds = Object.entries(metric.thresholds || {})
      .map(([expr, result]) => `${result.ok ? '✓' : '✗'} ${expr}`)
      .join(', ');
    lines.push(`${name.padEnd(width, '.')} ${values}${thresholds ? `  [${thresholds}]` : ''}`);
  }
  const failed = names.filter((n) => Object.values(data.metrics[n].thresholds || {}).some((t) => !t.ok));
  lines.push('', failed.length ? `thresholds crossed: ${failed.join(', ')}` : 'all thresholds passed');
  lines.push(`summary written to ${file}`, '');
  return lines.join('\n');
}
