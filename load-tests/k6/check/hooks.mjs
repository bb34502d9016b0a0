// Node module hooks: `k6` and `k6/<module>` resolve to the stand-ins in ./k6/.
const STANDINS = ['k6', 'k6/http', 'k6/metrics', 'k6/execution', 'k6/data'];

export async function resolve(specifier, context, next) {
  if (STANDINS.includes(specifier)) {
    const file = specifier === 'k6' ? 'index' : specifier.slice(3);
    return { url: new URL(`./k6/${file}.mjs`, import.meta.url).href, shortCircuit: true };
  }
  if (specifier.startsWith('k6/') || /^https?:/.test(specifier)) {
    throw new Error(`${specifier}: no stand-in for this module in load-tests/k6/check/k6/ (add one, or avoid the import)`);
  }
  return next(specifier, context);
}
