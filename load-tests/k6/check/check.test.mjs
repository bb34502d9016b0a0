// The checker's own tests: it passes a script that keeps to the document and
// fails ones that do not parse or call what relurl does not serve.
//
//   node --test load-tests/k6/check/check.test.mjs
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkScript } from './check.mjs';

const fixture = (name) => join(fileURLToPath(new URL('./fixtures/', import.meta.url)), name);

test('a script on documented routes passes', () => {
  const result = checkScript(fixture('good.js'));
  assert.deepEqual(result.errors, []);
  assert.equal(result.status, 0);
  assert.ok(result.requests.includes('GET /launch'), result.requests.join());
  assert.ok(result.requests.includes('PATCH /v1/links/launch'), result.requests.join());
});

test('a route that is not in docs/openapi.json fails', () => {
  const result = checkScript(fixture('bad-route.js'));
  assert.equal(result.status, 1);
  assert.deepEqual(result.errors, ['GET /v1/nope: no such operation in docs/openapi.json']);
});

test('a script that does not parse fails', () => {
  const result = checkScript(fixture('syntax-error.js'));
  assert.equal(result.status, 1);
  assert.match(result.errors.join('\n'), /SyntaxError/);
});

test('a threshold on an undeclared metric fails', () => {
  const result = checkScript(fixture('bad-threshold.js'));
  assert.equal(result.status, 1);
  assert.deepEqual(result.errors, ['threshold "no_such_metric": no metric no_such_metric']);
});

test('a method the route lacks fails', () => {
  const result = checkScript(fixture('bad-method.js'));
  assert.equal(result.status, 1);
  assert.deepEqual(result.errors, ['PUT /v1/links/abc: no such operation in docs/openapi.json']);
});

test('a request to neither BASE_URL nor SINK_URL fails', () => {
  const result = checkScript(fixture('bad-route.js'), { BASE_URL: 'http://elsewhere.test' });
  assert.equal(result.status, 1);
  assert.match(result.errors.join('\n'), /neither BASE_URL nor SINK_URL/);
});
