// Stand-in for `k6/data`: a SharedArray is the array its function builds.
export class SharedArray {
  constructor(name, build) {
    if (typeof build !== 'function') throw new TypeError(`SharedArray ${name}: expected a function`);
    const items = build();
    if (!Array.isArray(items)) throw new TypeError(`SharedArray ${name}: the function must answer an array`);
    return items;
  }
}

export default { SharedArray };
