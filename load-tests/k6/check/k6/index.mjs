// Stand-in for `k6`: check records each result, fail throws, sleep returns at once.
import { state } from '../state.mjs';

export function check(value, sets, tags) {
  let all = true;
  for (const [name, predicate] of Object.entries(sets)) {
    const ok = Boolean(typeof predicate === 'function' ? predicate(value) : predicate);
    state.checks.push({ name, ok, scenario: state.scenario, tags });
    all &&= ok;
  }
  return all;
}

export function fail(message) {
  throw new Error(`fail(): ${message}`);
}

export function sleep(secs) {
  if (typeof secs !== 'number' || !(secs >= 0)) throw new TypeError(`sleep(${secs}): expected seconds`);
}

export function group(name, fn) {
  return fn();
}

export function randomSeed() {}

export default { check, fail, sleep, group, randomSeed };
