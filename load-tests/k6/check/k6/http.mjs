// Stand-in for `k6/http`: records every request (method, URL, params) and
// answers a fake one. On the relurl address: `/{code}` redirects (302, the
// query kept in Location), POST answers 201, DELETE 204, anything else 200, with
// one JSON body carrying the fields the scripts read. The sink's /stats answers
// its counts. Unknown params are refused, as typos would silently do nothing.
import { state } from '../state.mjs';

const PARAMS = ['headers', 'tags', 'redirects', 'responseType', 'timeout', 'cookies', 'auth', 'compression',
  'jar', 'responseCallback'];
const RESPONSE_TYPES = ['text', 'binary', 'none'];

function body(url) {
  return {
    code: 'k6fake', api_key: 'rk_fake', id: 'wh_fake', secret: 'whsec_fake', click_count: 3,
    items: [], next_cursor: url.searchParams.has('cursor') ? null : 'cursor-1',
    total: 0, series: [],
    deliveries: 3, distinct_events: 3, latency_ms: { p50: 1, p90: 2, p99: 3, max: 4 },
  };
}

function select(object, selector) {
  return selector.split('.').reduce((value, key) => (value == null ? undefined : value[key]), object);
}

function respond(method, url, params) {
  let status = method === 'POST' ? 201 : method === 'DELETE' ? 204 : 200;
  const headers = { 'Content-Type': 'application/json' };
  const segments = url.pathname.split('/').filter(Boolean);
  if (url.origin === state.baseOrigin && segments.length === 1 && segments[0] !== 'metrics' && (method === 'GET' || method === 'HEAD')) {
    status = 302;
    headers.Location = `https://example.com/landing${url.search}`;
  }
  const discard = params.responseType === 'none' || (state.discardResponseBodies && params.responseType === undefined);
  const text = status === 204 || discard ? null : JSON.stringify(body(url));
  return {
    status, headers, body: text, url: url.href, error: '', error_code: 0,
    timings: { duration: 1, waiting: 1, sending: 0, receiving: 0, blocked: 0, connecting: 0 },
    request: { method, url: url.href, headers: params.headers || {} },
    json(selector) {
      if (text === null) throw new Error(`${method} ${url.pathname}: json() on a response without a body (responseType or discardResponseBodies)`);
      const parsed = JSON.parse(text);
      return selector === undefined ? parsed : select(parsed, selector);
    },
  };
}

export function request(method, url, payload, params = {}) {
  if (typeof method !== 'string') throw new TypeError(`http.request: method ${method}`);
  const parsed = new URL(url); // throws on a URL k6 would refuse
  if (payload !== null && payload !== undefined && typeof payload !== 'string' && typeof payload !== 'object') {
    throw new TypeError(`${method} ${url}: body must be a string, an object or null`);
  }
  for (const key of Object.keys(params || {})) {
    if (!PARAMS.includes(key)) throw new Error(`${method} ${url}: unknown request param "${key}"`);
  }
  if (params && params.responseType !== undefined && !RESPONSE_TYPES.includes(params.responseType)) {
    throw new Error(`${method} ${url}: responseType "${params.responseType}"`);
  }
  const upper = method.toUpperCase();
  state.requests.push({ method: upper, url: parsed.href, origin: parsed.origin, path: parsed.pathname, scenario: state.scenario, tags: (params && params.tags) || {} });
  return respond(upper, parsed, params || {});
}

const httpGet = (url, params) => request('GET', url, null, params);
export const head = (url, params) => request('HEAD', url, null, params);
export const post = (url, payload, params) => request('POST', url, payload, params);
export const put = (url, payload, params) => request('PUT', url, payload, params);
export const patch = (url, payload, params) => request('PATCH', url, payload, params);
export const del = (url, payload, params) => request('DELETE', url, payload, params);
export const options = (url, payload, params) => request('OPTIONS', url, payload, params);
export function batch(requests) {
  return requests.map((r) => (Array.isArray(r) ? request(r[0], r[1], r[2], r[3]) : request(r.method, r.url, r.body, r.params)));
}

export { httpGet as get };
export default { request, get: httpGet, head, post, put, patch, del, options, batch };
