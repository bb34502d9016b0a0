// Runs one k6 script once under Node with the stand-in k6 modules (started by
// check.mjs as `node --import ./register.mjs run-one.mjs <script>`): loads it,
// checks its options, runs setup(), one iteration of each scenario's exec
// function, teardown() and handleSummary() against fake responses, and checks
// every request against the OpenAPI document. Prints one JSON line
// {script, kind, requests, errors}; exits 1 when there are errors.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { state } from './state.mjs';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const BASE_URL = 'http://relurl.test:8080';
const SINK_URL = 'http://sink.test:9999';
const ITERATIONS = 4;

// examples/sink.rs: any POST is a delivery; /stats reads and resets its counts.
const SINK_ROUTES = [['get', /^\/stats$/], ['delete', /^\/stats$/], ['post', /^\//]];

const EXECUTORS = ['shared-iterations', 'per-vu-iterations', 'constant-vus', 'ramping-vus',
  'constant-arrival-rate', 'ramping-arrival-rate', 'externally-controlled'];
const BUILTIN_METRICS = ['vus', 'vus_max', 'iterations', 'iteration_duration', 'dropped_iterations', 'checks',
  'data_sent', 'data_received', 'http_reqs', 'http_req_duration', 'http_req_failed', 'http_req_blocked',
  'http_req_connecting', 'http_req_tls_handshaking', 'http_req_sending', 'http_req_waiting', 'http_req_receiving'];
const AGGREGATION = /^(avg|min|max|med|count|rate|value|p\(\d+(\.\d+)?\))\s*(<|<=|>|>=|==|===|!=)\s*-?\d+(\.\d+)?$/;

/** Operations of the OpenAPI document as [method, regex, template]. */
export function operations(openapi) {
  const ops = [];
  const add = (method, template) => {
    const pattern = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+');
    ops.push([method, new RegExp(`^${pattern}$`), template]);
  };
  for (const [template, item] of Object.entries(openapi.paths)) {
    for (const method of Object.keys(item)) add(method, template);
  }
  return ops;
}

/** Problems with the requests: each must be an operation of its server. */
export function checkRequests(requests, ops) {
  const errors = [];
  for (const r of requests) {
    const method = r.method.toLowerCase();
    if (r.origin === new URL(BASE_URL).origin) {
      if (!ops.some(([m, re]) => m === method && re.test(r.path))) {
        errors.push(`${r.method} ${r.path}: no such operation in docs/openapi.json`);
      }
    } else if (r.origin === new URL(SINK_URL).origin) {
      if (!SINK_ROUTES.some(([m, re]) => m === method && re.test(r.path))) errors.push(`${r.method} ${r.path}: not a route of examples/sink.rs`);
    } else {
      errors.push(`${r.method} ${r.url}: neither BASE_URL nor SINK_URL`);
    }
  }
  return [...new Set(errors)];
}

/** Problems with `options`: executors, exec functions, threshold metrics and expressions. */
function checkOptions(options, exports) {
  const errors = [];
  const scenarios = options.scenarios || { default: { executor: 'shared-iterations' } };
  for (const [name, s] of Object.entries(scenarios)) {
    if (!EXECUTORS.includes(s.executor)) errors.push(`scenario ${name}: executor "${s.executor}"`);
    const exec = s.exec || 'default';
    if (typeof exports[exec] !== 'function') errors.push(`scenario ${name}: exec "${exec}" is not an exported function`);
  }
  for (const [key, list] of Object.entries(options.thresholds || {})) {
    const metric = /^([A-Za-z_][A-Za-z0-9_]*)(\{[^{}:]+(:[^{}]*)?\})?$/.exec(key);
    if (!metric) errors.push(`threshold "${key}": not a metric name with an optional {tag:value}`);
    else if (!BUILTIN_METRICS.includes(metric[1]) && !state.metrics.has(metric[1])) errors.push(`threshold "${key}": no metric ${metric[1]}`);
    for (const t of list) {
      const expr = typeof t === 'string' ? t : t.threshold;
      if (!AGGREGATION.test(String(expr).trim())) errors.push(`threshold "${key}": "${expr}" is not an aggregation compared to a number`);
    }
  }
  return [scenarios, errors];
}

/** handleSummary's data, shaped as k6 passes it: every threshold passed. */
function fakeSummary(options) {
  const metrics = {};
  const metric = (name, type) => (metrics[name] ||= { type, contains: 'default', values: { count: 1, rate: 1, value: 1, avg: 1, 'p(99)': 2 }, thresholds: {} });
  for (const name of BUILTIN_METRICS) metric(name, 'trend');
  for (const [name, m] of state.metrics) metric(name, m.type);
  for (const [key, list] of Object.entries(options.thresholds || {})) {
    const target = metric(key, 'trend');
    for (const t of list) target.thresholds[typeof t === 'string' ? t : t.threshold] = { ok: true };
  }
  return { metrics, root_group: { name: '', path: '', groups: [], checks: [] }, options: { summaryTrendStats: options.summaryTrendStats || [] }, state: { isStdOutTTY: false, testRunDurationMs: 1 } };
}

async function run(script, env) {
  globalThis.__ENV = { BASE_URL, SINK_URL, API_KEY: 'rk_fake', ...env };
  globalThis.__VU = 0;
  globalThis.__ITER = 0;
  globalThis.open = (path) => readFileSync(resolve(dirname(script), path), 'utf8');
  state.baseOrigin = new URL(globalThis.__ENV.BASE_URL).origin;
  const exports = await import(pathToFileURL(script).href);
  if (!exports.options && !exports.default) return { kind: 'module', errors: [] };
  const options = exports.options || {};
  state.discardResponseBodies = Boolean(options.discardResponseBodies);
  const [scenarios, errors] = checkOptions(options, exports);
  if (errors.length) return { kind: 'script', errors };
  // setup's answer crosses to the VUs as JSON, as in k6.
  const data = exports.setup ? JSON.parse(JSON.stringify(exports.setup() ?? null)) : undefined;
  globalThis.__VU = 1;
  for (const [name, s] of Object.entries(scenarios)) {
    state.scenario = name;
    // Iterations alternate low and high Math.random draws, so both sides of a
    // `Math.random() < p` branch run.
    for (let i = 0; i < ITERATIONS; i++) {
      globalThis.__ITER = i;
      const draws = i % 2 === 0 ? [0.1, 0.3] : [0.9, 0.7];
      let n = 0;
      Math.random = () => draws[n++ % draws.length];
      exports[s.exec || 'default'](data);
    }
  }
  state.scenario = null;
  globalThis.__VU = 0;
  if (exports.teardown) exports.teardown(data);
  if (exports.handleSummary) {
    const out = exports.handleSummary(fakeSummary(options));
    if (!out || typeof out !== 'object') errors.push('handleSummary: must answer an object of outputs');
    else {
      for (const [key, value] of Object.entries(out)) if (typeof value !== 'string') errors.push(`handleSummary: output ${key} is not a string`);
      if (!('stdout' in out)) errors.push('handleSummary: no stdout output (the text summary)');
    }
  }
  for (const c of state.checks) if (!c.ok) errors.push(`check "${c.name}" failed on a fake response (scenario ${c.scenario})`);
  const openapi = JSON.parse(readFileSync(resolve(ROOT, 'docs/openapi.json'), 'utf8'));
  errors.push(...checkRequests(state.requests, operations(openapi)));
  return { kind: 'script', errors };
}

const script = resolve(process.argv[2]);
// The script's own console output goes to stderr: stdout carries the result.
const out = console.log.bind(console);
console.log = console.info = console.debug = console.error;
let result;
try {
  result = await run(script, JSON.parse(process.env.K6_CHECK_ENV || '{}'));
} catch (error) {
  result = { kind: 'script', errors: [`${error.name}: ${error.message}`] };
}
out(JSON.stringify({ script, kind: result.kind, requests: state.requests.map((r) => `${r.method} ${r.path}`), errors: result.errors }));
process.exitCode = result.errors.length ? 1 : 0;
