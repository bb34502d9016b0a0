// API load inside one account: link creation, reads (one link, the listing
// page by page) and click statistics (per link and for the whole account),
// each at its own constant arrival rate. Thresholds are per request name, so
// a slow listing does not hide behind fast reads, and setup's calls count in
// none of them.
//
//   k6 run -e BASE_URL=https://sho.rt -e API_KEY=rk_... load-tests/k6/api.js
//
// Every /v1 request draws on the account's rate limit (auth.requests_per_sec,
// 100/s, bursts of auth.burst, 200) and link creation also on
// auth.expensive_writes_per_sec (10/s, bursts of 50). The defaults below stay
// under them; to go faster raise those on the server, or the run measures 429s
// (counted in http_req_failed and api_rate_limited).
//
// Parameters (k6 run -e NAME=value, or the environment):
//   BASE_URL        relurl's address                           http://127.0.0.1:8080
//   API_KEY         an API key of the account under test       (required)
//   LINKS           links created in setup for reads and stats  50
//   CREATE_RATE     POST /v1/links per second                  5
//   READ_RATE       reads per second (a link, or two listing pages)  40
//   STATS_RATE      stats reads per second (link or account)    10
//   PAGE_SIZE       ?limit= of the listing                     20
//   DURATION        length of every scenario                   30s
//   VUS, MAX_VUS    virtual users preallocated / at most, per scenario  20 / 200
//   P99_MS          threshold on every request's p99 (ms)       200
//   SUMMARY_FILE    where the JSON summary goes                summary-api.json
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import {
  TREND_STATS, apiKey, authHeaders, createLinks, envDuration, envInt, setupTimeout, summary, BASE_URL,
} from './lib.js';

const LINKS = envInt('LINKS', 50, 1);
const DURATION = envDuration('DURATION', '30s');
const VUS = envInt('VUS', 20, 1);
const MAX_VUS = envInt('MAX_VUS', 200, VUS);
const P99_MS = envInt('P99_MS', 200, 1);
const PAGE_SIZE = envInt('PAGE_SIZE', 20, 1);
const KEY = apiKey();

const rateLimited = new Counter('api_rate_limited');

// The request names (tag `name`), each with its own thresholds: POST /v1/links,
// GET /v1/links/{code}, GET /v1/links (two pages), GET /v1/links/{code}/stats,
// GET /v1/stats. Plain words: a threshold's {tag:value} takes no braces.
const NAMES = ['create link', 'read link', 'list links', 'link stats', 'account stats'];

function scenario(exec, rateVar, fallback) {
  return {
    executor: 'constant-arrival-rate',
    exec,
    rate: envInt(rateVar, fallback, 1),
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: VUS,
    maxVUs: MAX_VUS,
  };
}

const thresholds = { api_rate_limited: ['count==0'], dropped_iterations: ['count==0'] };
for (const name of NAMES) {
  thresholds[`http_req_duration{name:${name}}`] = [`p(99)<${P99_MS}`];
  thresholds[`http_req_failed{name:${name}}`] = ['rate<0.01'];
}

export const options = {
  scenarios: {
    create: scenario('create', 'CREATE_RATE', 5),
    read: scenario('read', 'READ_RATE', 40),
    stats: scenario('stats', 'STATS_RATE', 10),
  },
  thresholds,
  setupTimeout: setupTimeout(LINKS),
  summaryTrendStats: TREND_STATS,
};

/** One measured request, named for the thresholds; a 429 is counted too. */
function call(method, path, name, body) {
  const res = http.request(method, `${BASE_URL}${path}`, body === undefined ? null : JSON.stringify(body), {
    headers: authHeaders(KEY),
    tags: { name },
  });
  if (res.status === 429) rateLimited.add(1, { name });
  return res;
}

function pick(codes) {
  return codes[Math.floor(Math.random() * codes.length)];
}

export function setup() {
  rateLimited.add(0); // so its threshold has a sample even when none was limited
  return { codes: createLinks(KEY, LINKS) };
}

export function create() {
  const res = call('POST', '/v1/links', 'create link', {
    destination: `https://example.com/k6/${Date.now()}`,
    tags: ['k6', 'k6-create'],
  });
  check(res, { 'link created': (r) => r.status === 201 });
}

export function read(data) {
  if (Math.random() < 0.5) {
    const res = call('GET', `/v1/links/${pick(data.codes)}`, 'read link');
    check(res, { 'link read': (r) => r.status === 200 });
    return;
  }
  // The first page, then the next one through its cursor.
  const first = call('GET', `/v1/links?limit=${PAGE_SIZE}`, 'list links');
  check(first, { 'links listed': (r) => r.status === 200 });
  const cursor = first.status === 200 ? first.json('next_cursor') : null;
  if (cursor) {
    const next = call('GET', `/v1/links?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(cursor)}`, 'list links');
    check(next, { 'next page listed': (r) => r.status === 200 });
  }
}

export function stats(data) {
  const res = Math.random() < 0.5
    ? call('GET', `/v1/links/${pick(data.codes)}/stats?interval=hour`, 'link stats')
    : call('GET', '/v1/stats', 'account stats');
  check(res, { 'stats read': (r) => r.status === 200 });
}

export function handleSummary(data) {
  return summary(data, 'summary-api.json');
}
