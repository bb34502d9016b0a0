// Runs every k6 script in load-tests/k6/ once under Node with stand-ins for the
// k6 modules (see run-one.mjs), each in its own process: fails when a script
// does not load, when setup/an iteration of each scenario/teardown/handleSummary
// throws, or when a request is not an operation of docs/openapi.json.
//
//   node load-tests/k6/check/check.mjs [script.js ...]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Runs one script; answers run-one.mjs's JSON result (errors filled on a crash). */
export function checkScript(script, env = {}) {
  const run = spawnSync(process.execPath, ['--import', join(HERE, 'register.mjs'), join(HERE, 'run-one.mjs'), script], {
    encoding: 'utf8',
    env: { ...process.env, K6_CHECK_ENV: JSON.stringify(env) },
  });
  const line = run.stdout.trim().split('\n').pop();
  try {
    return { ...JSON.parse(line), status: run.status, stderr: run.stderr };
  } catch {
    return { script, kind: 'script', requests: [], errors: [`run-one crashed (${run.status}): ${run.stderr.trim()}`], status: run.status, stderr: run.stderr };
  }
}

function main(args) {
  const dir = resolve(HERE, '..');
  const scripts = args.length ? args.map((a) => resolve(a)) : readdirSync(dir).filter((f) => f.endsWith('.js')).sort().map((f) => join(dir, f));
  let failed = 0;
  for (const script of scripts) {
    const result = checkScript(script);
    if (result.errors.length || result.status !== 0) {
      failed += 1;
      console.log(`FAIL ${script}`);
      for (const error of result.errors) console.log(`  ${error}`);
    } else {
      const routes = [...new Set(result.requests)].join(', ');
      console.log(`ok   ${script} (${result.kind}${routes ? `: ${result.requests.length} requests, ${routes}` : ''})`);
    }
  }
  if (failed) {
    console.log(`${failed} of ${scripts.length} k6 scripts failed`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
