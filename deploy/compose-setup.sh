#!/bin/sh
# The compose stack's one-shot `setup` service: creates an account, a webhook
# endpoint pointing at the `receiver` service and a link, then sends a test
# event and follows the link once, so `docker compose logs -f receiver` shows
# webhooks arriving. Every run makes a new account (API keys are shown once).
set -eu

RELURL=${RELURL:-http://relurl:8080}
RECEIVER=${RECEIVER:-http://receiver:4000}
SHARED=${SHARED:-/setup}
: "${RELURL_ADMIN_TOKEN:?set RELURL_ADMIN_TOKEN}"

# Prints one field of the JSON read on stdin: `... | json .id`.
json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s)$1))"; }

# POST path body token: the answer on stdout; fails on a non-2xx status.
post() { curl -sS --fail-with-body -X POST "$RELURL$1" -H "Authorization: Bearer $3" -d "$2"; }

echo "setup: waiting for relurl at $RELURL"
until curl -sf "$RELURL/readyz" > /dev/null; do sleep 2; done

KEY=$(post /v1/accounts '{"name":"compose demo"}' "$RELURL_ADMIN_TOKEN" | json .api_key)
ENDPOINT_JSON=$(post /v1/webhooks "{\"url\":\"$RECEIVER/webhooks/relurl\",\"events\":[\"*\"]}" "$KEY")
ENDPOINT=$(echo "$ENDPOINT_JSON" | json .id)
# Written whole, then renamed: the receiver never reads half a secret.
echo "$ENDPOINT_JSON" | json .secret > "$SHARED/secret.tmp"
mv "$SHARED/secret.tmp" "$SHARED/secret"

echo "setup: waiting for the receiver at $RECEIVER"
until curl -sf "$RECEIVER/received" > /dev/null; do sleep 1; done

post "/v1/webhooks/$ENDPOINT/test" '' "$KEY"
echo
CODE=$(post /v1/links '{"destination":"https://example.com/hello"}' "$KEY" | json .code)
curl -sS -o /dev/null -w "setup: GET /$CODE answered %{http_code}\n" "$RELURL/$CODE"

echo "setup: done. API key: $KEY"
echo "setup: short link: http://localhost:8080/$CODE, webhook endpoint: $ENDPOINT"
echo "setup: deliveries: curl -s http://localhost:8080/v1/webhooks/$ENDPOINT/deliveries -H 'Authorization: Bearer $KEY'"
