// Webhooks under load: clicks at a paced rate while a receiver counts the
// `link.clicked` deliveries and their click→webhook latency. Afterwards
// (teardown) it waits until deliveries stop arriving, then reports clicks
// recorded against events delivered, and the latency percentiles.
//
// The receiver is examples/sink.rs: it answers every POST with 204, counts
// deliveries and distinct event ids, and measures latency from each payload's
// `timestamp` (the moment of the click) to its arrival; `GET /stats` reports,
// `DELETE /stats` starts over. Run it where relurl can reach it, on a host
// whose clock agrees with relurl's (same host, or NTP):
//
//   cargo run --release --example sink -- 0.0.0.0:9999
//   k6 run -e BASE_URL=https://sho.rt -e API_KEY=rk_... \
//       -e SINK_URL=http://sink-host:9999 load-tests/k6/webhooks.js
//
// relurl refuses webhook URLs on private addresses unless
// `webhooks.allow_private_targets = true`; X-Forwarded-For needs
// `server.trusted_proxies` as for redirects.js (see load-tests/README.md).
//
// Parameters (k6 run -e NAME=value, or the environment):
//   BASE_URL        relurl's address                              http://127.0.0.1:8080
//   API_KEY         an API key of the account under test          (required)
//   SINK_URL        the sink as this load generator reaches it    http://127.0.0.1:9999
//   SINK_HOOK_URL   the sink as relurl reaches it (registered)    SINK_URL + /hook
//   LINKS           links clicked                                 20
//   RANGES          client /24 ranges in X-Forwarded-For          512
//   RATE            clicks per second                             1000
//   DURATION        how long                                      30s
//   VUS, MAX_VUS    virtual users preallocated / at most          100 / 1000
//   DRAIN_TIMEOUT   longest wait for deliveries after the clicks  120s
//   QUIET           deliveries not growing this long: drained     5s
//   LATENCY_P99_MS  threshold on click→webhook p99 (ms)           1000
//   SUMMARY_FILE    where the JSON summary goes                   summary-webhooks.json
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Gauge } from 'k6/metrics';
import {
  TREND_STATS, USER_AGENT, apiKey, checkFraudHeadroom, createLinks, envDuration, envInt,
  randomClientIp, seconds, setupCall, setupTimeout, summary, BASE_URL,
} from './lib.js';

const LINKS = envInt('LINKS', 20, 1);
const RATE = envInt('RATE', 1000, 1);
const DURATION = envDuration('DURATION', '30s');
const VUS = envInt('VUS', 100, 1);
const MAX_VUS = envInt('MAX_VUS', 1000, VUS);
const LATENCY_P99_MS = envInt('LATENCY_P99_MS', 1000, 1);
const DRAIN_SECS = seconds('DRAIN_TIMEOUT', envDuration('DRAIN_TIMEOUT', '120s'));
const QUIET_SECS = seconds('QUIET', envDuration('QUIET', '5s'));
const SINK_URL = (__ENV.SINK_URL || 'http://127.0.0.1:9999').replace(/\/+$/, '');
const SINK_HOOK_URL = __ENV.SINK_HOOK_URL || `${SINK_URL}/hook`;
const KEY = apiKey();

const clicksSent = new Counter('webhooks_clicks_sent'); // redirects answered, seen by k6
const clicksRecorded = new Counter('webhooks_clicks_recorded'); // click_count summed over the links
const delivered = new Counter('webhooks_delivered'); // distinct event ids at the sink
const lost = new Counter('webhooks_lost'); // recorded clicks whose event never arrived
const duplicates = new Counter('webhooks_duplicates'); // deliveries of an event already seen
const latency = {
  p50: new Gauge('webhooks_latency_p50_ms'),
  p90: new Gauge('webhooks_latency_p90_ms'),
  p99: new Gauge('webhooks_latency_p99_ms'),
  max: new Gauge('webhooks_latency_max_ms'),
};

export const options = {
  scenarios: {
    clicks: {
      executor: 'constant-arrival-rate',
      exec: 'click',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: MAX_VUS,
    },
  },
  thresholds: {
    webhooks_lost: ['count==0'],
    webhooks_delivered: ['count>0'],
    webhooks_latency_p99_ms: [`value<${LATENCY_P99_MS}`],
    'http_req_failed{scenario:clicks}': ['rate<0.001'],
    'checks{scenario:clicks}': ['rate>0.999'],
    // Fewer clicks than asked for: the latency was not measured at RATE.
    dropped_iterations: [`count<=${Math.floor((RATE * seconds('DURATION', DURATION)) / 100)}`],
  },
  setupTimeout: setupTimeout(LINKS),
  teardownTimeout: `${DRAIN_SECS + LINKS + 60}s`,
  summaryTrendStats: TREND_STATS,
};

/** The sink's counts: deliveries, distinct_events and latency_ms percentiles. */
function sinkStats() {
  const res = http.get(`${SINK_URL}/stats`, { responseType: 'text', tags: { phase: 'teardown', name: 'sink GET /stats' } });
  if (res.status !== 200) fail(`sink ${SINK_URL}/stats: ${res.status} (is examples/sink.rs running there?)`);
  return JSON.parse(res.body);
}

/** Clicks relurl counted on the test's links. */
function recordedClicks(codes) {
  let total = 0;
  for (const code of codes) {
    const res = setupCall('GET', `/v1/links/${code}`, KEY, undefined, '/v1/links/{code}');
    if (res.status !== 200) fail(`GET /v1/links/${code}: ${res.status} ${res.body}`);
    total += res.json('click_count');
  }
  return total;
}

export function setup() {
  checkFraudHeadroom(RATE, LINKS);
  sinkStats(); // reachable before anything is created
  const codes = createLinks(KEY, LINKS);
  const endpoint = setupCall('POST', '/v1/webhooks', KEY, {
    url: SINK_HOOK_URL,
    events: ['link.clicked'],
    rate_limit_per_sec: 100000,
    description: 'k6 webhooks.js',
  });
  if (endpoint.status !== 201) fail(`POST /v1/webhooks ${SINK_HOOK_URL}: ${endpoint.status} ${endpoint.body}`);
  const reset = http.del(`${SINK_URL}/stats`, null, { tags: { phase: 'setup', name: 'sink DELETE /stats' } });
  if (reset.status < 200 || reset.status > 299) fail(`sink DELETE /stats: ${reset.status}`);
  return { codes, endpoint: endpoint.json('id') };
}

export function click(data) {
  const code = data.codes[Math.floor(Math.random() * data.codes.length)];
  const res = http.get(`${BASE_URL}/${code}`, {
    redirects: 0,
    responseType: 'none',
    headers: { 'User-Agent': USER_AGENT, 'X-Forwarded-For': randomClientIp() },
    tags: { name: 'redirect' },
  });
  const ok = check(res, { 'status is a redirect': (r) => [301, 302, 307, 308].includes(r.status) });
  if (ok) clicksSent.add(1);
}

export function teardown(data) {
  // Waits (one poll a second) until the sink has an event for every click
  // relurl recorded (that count no longer growing: the last clicks may still
  // be on their way to the store), or the sink's count has not grown for QUIET
  // seconds, or DRAIN_TIMEOUT passed. Polls are counted rather than timed.
  let recorded = recordedClicks(data.codes);
  let stats = sinkStats();
  let quiet = 0;
  let settled = false;
  for (let waited = 0; waited < DRAIN_SECS && quiet < QUIET_SECS; waited++) {
    if (settled && stats.distinct_events >= recorded) break;
    sleep(1);
    const next = sinkStats();
    quiet = next.distinct_events === stats.distinct_events ? quiet + 1 : 0;
    stats = next;
    const now = recordedClicks(data.codes);
    settled = now === recorded;
    recorded = now;
  }
  clicksRecorded.add(recorded);
  delivered.add(stats.distinct_events);
  lost.add(Math.max(0, recorded - stats.distinct_events));
  duplicates.add(stats.deliveries - stats.distinct_events);
  for (const [stat, gauge] of Object.entries(latency)) gauge.add(stats.latency_ms[stat]);
  console.log(`clicks recorded ${recorded}, events delivered ${stats.distinct_events} ` +
    `(${stats.deliveries} deliveries), click→webhook ms p50 ${stats.latency_ms.p50} p99 ${stats.latency_ms.p99}`);
  const removed = setupCall('DELETE', `/v1/webhooks/${data.endpoint}`, KEY, undefined, '/v1/webhooks/{id}');
  if (removed.status !== 204) console.warn(`DELETE /v1/webhooks/${data.endpoint}: ${removed.status}`);
}

export function handleSummary(data) {
  return summary(data, 'summary-webhooks.json');
}
