// Stand-in for `k6/metrics`: names are checked as k6 checks them (and one name,
// one type), added values must be numbers or booleans.
import { state } from '../state.mjs';

class Metric {
  constructor(type, name, isTime = false) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) throw new Error(`metric name "${name}": not a valid k6 metric name`);
    const seen = state.metrics.get(name);
    if (seen && seen.type !== type) throw new Error(`metric ${name}: declared as ${seen.type} and ${type}`);
    state.metrics.set(name, { type, isTime, samples: seen ? seen.samples : 0 });
    this.name = name;
  }

  add(value, tags) {
    if (typeof value !== 'number' && typeof value !== 'boolean') throw new TypeError(`${this.name}.add(${value}): not a number`);
    if (Number.isNaN(value)) throw new TypeError(`${this.name}.add(NaN)`);
    if (tags !== undefined && (typeof tags !== 'object' || Object.values(tags).some((v) => typeof v !== 'string'))) {
      throw new TypeError(`${this.name}.add: tags must map names to strings`);
    }
    state.metrics.get(this.name).samples += 1;
  }
}

export class Counter extends Metric { constructor(name) { super('counter', name); } }
export class Gauge extends Metric { constructor(name) { super('gauge', name); } }
export class Rate extends Metric { constructor(name) { super('rate', name); } }
export class Trend extends Metric { constructor(name, isTime) { super('trend', name, isTime); } }

export default { Counter, Gauge, Rate, Trend };
