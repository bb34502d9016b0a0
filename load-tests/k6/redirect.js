// k6 load test for the redirect path.
//
//   RELURL_URL=http://127.0.0.1:8080 RELURL_ADMIN_TOKEN=rladm_... k6 run load-tests/k6/redirect.js
//
// setup() creates an account and LINKS links through the API; each virtual user
// then follows random links without following the redirect, and checks the
// status and Location header. Thresholds fail the run when p99 latency or the
// error rate regress.
import http from 'k6/http';
import { check, fail } from 'k6';
import { Rate } from 'k6/metrics';

const BASE = __ENV.RELURL_URL || 'http://127.0.0.1:8080';
const ADMIN = __ENV.RELURL_ADMIN_TOKEN || '';
const LINKS = parseInt(__ENV.LINKS || '100', 10);

export const redirectErrors = new Rate('relurl_redirect_errors');

export const options = {
  scenarios: {
    redirects: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '5000', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: parseInt(__ENV.VUS || '200', 10),
    },
  },
  thresholds: {
    http_req_duration: ['p(99)<20'],
    relurl_redirect_errors: ['rate<0.001'],
  },
  discardResponseBodies: true,
};

export function setup() {
  if (!ADMIN) fail('set RELURL_ADMIN_TOKEN to the admin token the server printed');
  const json = { headers: { 'Content-Type': 'application/json' } };
  const account = http.post(`${BASE}/v1/accounts`, JSON.stringify({ name: 'k6' }),
    { headers: { ...json.headers, Authorization: `Bearer ${ADMIN}` }, responseType: 'text' });
  if (account.status !== 201) fail(`account: ${account.status} ${account.body}`);
  const key = account.json('api_key');
  const codes = [];
  for (let i = 0; i < LINKS; i++) {
    const link = http.post(`${BASE}/v1/links`,
      JSON.stringify({ destination: `https://example.com/landing/${i}`, tags: ['k6'] }),
      { headers: { ...json.headers, Authorization: `Bearer ${key}` }, responseType: 'text' });
    if (link.status !== 201) fail(`link: ${link.status} ${link.body}`);
    codes.push(link.json('code'));
  }
  return { codes };
}

export default function (data) {
  const code = data.codes[Math.floor(Math.random() * data.codes.length)];
  const res = http.get(`${BASE}/${code}?utm_source=k6`, {
    redirects: 0,
    headers: { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0' },
  });
  const ok = check(res, {
    'status is 302': (r) => r.status === 302,
    'location carries the query': (r) => (r.headers.Location || '').includes('utm_source=k6'),
  });
  redirectErrors.add(!ok);
}
