// Redirect load: `GET /{code}` at a constant arrival rate, then a ramp to a
// higher one, over many links and many client /24 ranges. Each request is a
// click (counted, stored, sent as a webhook). The redirect is not followed.
//
//   k6 run -e BASE_URL=https://sho.rt -e API_KEY=rk_... load-tests/k6/redirects.js
//
// The server must believe the X-Forwarded-For this script sends, or every click
// counts as the load generator's address and trips the fraud detector within
// seconds: add the load generator's address (and every proxy between it and
// relurl) to `server.trusted_proxies`, e.g.
// RELURL_SERVER__TRUSTED_PROXIES='["192.0.2.10/32"]'. See load-tests/README.md.
//
// Parameters (k6 run -e NAME=value, or the environment):
//   BASE_URL        relurl's address                          http://127.0.0.1:8080
//   API_KEY         an API key of the account the links go to  (required)
//   LINKS           links created in setup                    200
//   RANGES          client /24 ranges in X-Forwarded-For      512 (at most 512)
//   RATE            redirects/s of the constant scenario      2000
//   DURATION        length of the constant scenario           30s
//   RAMP_TO         redirects/s the ramping scenario reaches  2 x RATE
//   RAMP_DURATION   length of the ramp up (then held as long, then down)  30s
//   SCENARIOS       which to run: constant, ramping or both   constant,ramping
//   VUS, MAX_VUS    virtual users preallocated / at most      200 / 2000
//   P99_MS          threshold on p99 redirect latency (ms)    50
//   MAX_DROPPED     threshold on dropped iterations, percent of planned   1
//   FRAUD_THRESHOLD, FRAUD_WINDOW  the server's fraud.threshold / fraud.window
//                   (200 / 10s): setup fails when the rate would come near it
//   SUMMARY_FILE    where the JSON summary goes               summary-redirects.json
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import {
  TREND_STATS, USER_AGENT, apiKey, checkFraudHeadroom, createLinks, envDuration, envInt,
  randomClientIp, seconds, setupTimeout, summary, BASE_URL,
} from './lib.js';

const LINKS = envInt('LINKS', 200, 1);
const RATE = envInt('RATE', 2000, 1);
const DURATION = envDuration('DURATION', '30s');
const RAMP_TO = envInt('RAMP_TO', 2 * RATE, 1);
const RAMP_DURATION = envDuration('RAMP_DURATION', '30s');
const VUS = envInt('VUS', 200, 1);
const MAX_VUS = envInt('MAX_VUS', 2000, VUS);
const P99_MS = envInt('P99_MS', 50, 1);
const MAX_DROPPED = envInt('MAX_DROPPED', 1);
const SCENARIOS = (__ENV.SCENARIOS || 'constant,ramping').split(',').map((s) => s.trim());

const REDIRECT_STATUSES = [301, 302, 307, 308];
const notRedirected = new Counter('redirects_not_redirected');

const constantSecs = seconds('DURATION', DURATION);
const rampSecs = seconds('RAMP_DURATION', RAMP_DURATION);
const all = {
  constant: {
    executor: 'constant-arrival-rate',
    exec: 'redirect',
    rate: RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: VUS,
    maxVUs: MAX_VUS,
  },
  ramping: {
    executor: 'ramping-arrival-rate',
    exec: 'redirect',
    // After the constant scenario (and a few seconds for its last requests).
    startTime: SCENARIOS.includes('constant') ? `${constantSecs + 5}s` : '0s',
    startRate: Math.min(RATE, RAMP_TO),
    timeUnit: '1s',
    preAllocatedVUs: VUS,
    maxVUs: MAX_VUS,
    stages: [
      { target: RAMP_TO, duration: RAMP_DURATION },
      { target: RAMP_TO, duration: RAMP_DURATION },
      { target: 0, duration: `${Math.max(1, Math.ceil(rampSecs / 3))}s` },
    ],
  },
};

const scenarios = {};
const thresholds = {
  // Any redirect answered with something else (404, 410 from the fraud
  // detector, 5xx): nothing else is expected.
  redirects_not_redirected: ['count==0'],
};
let planned = 0;
for (const name of SCENARIOS) {
  if (!all[name]) throw new Error(`SCENARIOS: unknown scenario "${name}" (constant, ramping)`);
  scenarios[name] = all[name];
  // Scoped by scenario: setup's API calls carry no scenario tag.
  thresholds[`http_req_duration{scenario:${name}}`] = [`p(99)<${P99_MS}`];
  thresholds[`http_req_failed{scenario:${name}}`] = ['rate<0.001'];
  thresholds[`checks{scenario:${name}}`] = ['rate>0.999'];
  // The ramp's iterations: up from startRate, held, down over a third as long.
  const ramp = ((all.ramping.startRate + RAMP_TO) / 2 + RAMP_TO + RAMP_TO / 6) * rampSecs;
  planned += name === 'constant' ? RATE * constantSecs : ramp;
}
// Iterations the arrival rate asked for but no VU was free to start: the load
// generator, not the server, fell short, and the rate measured is not RATE.
thresholds.dropped_iterations = [`count<=${Math.floor((planned * MAX_DROPPED) / 100)}`];

export const options = {
  scenarios,
  thresholds,
  setupTimeout: setupTimeout(LINKS),
  discardResponseBodies: true,
  summaryTrendStats: TREND_STATS,
};

export function setup() {
  checkFraudHeadroom(Math.max(RATE, RAMP_TO), LINKS);
  notRedirected.add(0); // so its threshold has a sample even when all went well
  return { codes: createLinks(apiKey(), LINKS) };
}

export function redirect(data) {
  const code = data.codes[Math.floor(Math.random() * data.codes.length)];
  const res = http.get(`${BASE_URL}/${code}?utm_source=k6`, {
    redirects: 0,
    headers: { 'User-Agent': USER_AGENT, 'X-Forwarded-For': randomClientIp() },
    tags: { name: 'redirect' },
  });
  const ok = check(res, {
    'status is a redirect': (r) => REDIRECT_STATUSES.includes(r.status),
    'location carries the query': (r) => (r.headers.Location || '').includes('utm_source=k6'),
  });
  if (!ok) notRedirected.add(1, { status: String(res.status) });
}

export function handleSummary(data) {
  return summary(data, 'summary-redirects.json');
}
