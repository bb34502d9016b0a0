'use strict';
// Minimal relurl webhook receiver: verifies both signatures, deduplicates, logs.
const crypto = require('node:crypto');
const express = require('express');
const { Webhook } = require('standardwebhooks');

// Not 3000: Grafana's port in the compose stack.
const PORT = Number(process.env.PORT || 4000);
// Several comma-separated secrets are allowed so you can rotate without downtime:
// list old and new, switch the endpoint in relurl, then drop the old one.
const SECRETS = (process.env.RELURL_WEBHOOK_SECRET || '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
if (SECRETS.length === 0) {
  console.error('RELURL_WEBHOOK_SECRET is required (whsec_..., comma-separated for rotation)');
  process.exit(1);
}
// Built once at startup: the constructor base64-decodes the part after "whsec_"
// and throws on a malformed secret, so a bad config fails fast here.
const STANDARD = SECRETS.map((s) => {
  try {
    return new Webhook(s);
  } catch (err) {
    console.error(`invalid secret in RELURL_WEBHOOK_SECRET (expected whsec_<base64>): ${err.message}`);
    process.exit(1);
  }
});

const MAX_SEEN = 10000;
const seen = new Map(); // event_id -> type, in insertion order (oldest first)
const stats = { rejected: 0, duplicates: 0 };

// X-RELURL-Signature: "sha256=<hex>[,sha256=<hex>...]" = HMAC-SHA256(raw body, secret as UTF-8).
function relurlSignatureOk(rawBody, header) {
  if (!header) return false;
  const given = header
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('sha256='))
    .map((e) => Buffer.from(e.slice('sha256='.length), 'hex'));
  return SECRETS.some((secret) => {
    const expected = crypto.createHmac('sha256', secret).update(rawBody).digest();
    // timingSafeEqual throws on unequal lengths, so guard first; the compare itself
    // takes constant time so an attacker can't learn the signature byte by byte.
    return given.some((g) => g.length === expected.length && crypto.timingSafeEqual(g, expected));
  });
}

// Standard Webhooks: webhook-id / webhook-timestamp / webhook-signature. The library
// also rejects timestamps more than 5 minutes off, which blocks replays of old requests.
function standardSignatureOk(bodyString, req) {
  const headers = {
    'webhook-id': req.get('webhook-id') || '',
    'webhook-timestamp': req.get('webhook-timestamp') || '',
    'webhook-signature': req.get('webhook-signature') || '',
  };
  return STANDARD.some((wh) => {
    try {
      // jsonParse: false, otherwise a bad JSON body would throw here and look like a bad signature.
      wh.verify(bodyString, headers, { jsonParse: false });
      return true;
    } catch {
      return false;
    }
  });
}

function reject(res) {
  stats.rejected += 1;
  return res.status(401).json({ error: 'invalid signature' });
}

const app = express();

// The raw body is needed: HMACs cover the exact bytes sent, and re-serializing
// parsed JSON would change whitespace/key order and break verification.
app.post(['/webhooks/relurl', '/'], express.raw({ type: '*/*', limit: '1mb' }), (req, res) => {
  const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  if (!relurlSignatureOk(rawBody, req.get('x-relurl-signature'))) return reject(res);
  if (!standardSignatureOk(rawBody.toString('utf8'), req)) return reject(res);

  let event;
  try {
    event = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return res.status(400).json({ error: 'malformed JSON' });
  }
  if (!event || typeof event.event_id !== 'string') {
    return res.status(400).json({ error: 'missing event_id' });
  }

  // Delivery is at-least-once (retries after timeouts, etc.), so the same event
  // can arrive twice: acknowledge duplicates with 200 but don't process them again.
  if (seen.has(event.event_id)) {
    stats.duplicates += 1;
    return res.status(200).json({ status: 'duplicate' });
  }
  seen.set(event.event_id, event.type);
  if (seen.size > MAX_SEEN) seen.delete(seen.keys().next().value); // evict oldest

  // "Process" the event. Real apps would do their work (or enqueue it) here.
  console.log(`event ${event.type} ${event.event_id}`);
  return res.status(200).json({ status: 'ok' });
});

// Inspection hook read by relurl's integration test; you can drop it in your own app.
app.get('/received', (req, res) => {
  const events = [...seen].map(([event_id, type]) => ({ event_id, type }));
  res.json({ events, rejected: stats.rejected, duplicates: stats.duplicates });
});

const server = app.listen(PORT, (err) => {
  if (err) throw err;
  console.log(`listening on ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
