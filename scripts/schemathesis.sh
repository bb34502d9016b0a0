#!/usr/bin/env bash
# schemathesis against a live relurl: every operation of the served
# /v1/openapi.json, with generated valid and invalid requests, stateful
# sequences where the document links operations; fails on any 5xx and on any
# answer the document does not describe (status, content type, headers, schema).
#
#   scripts/schemathesis.sh                       the CI run (under a minute once built)
#   SCHEMATHESIS_MAX_EXAMPLES=200 scripts/schemathesis.sh
#
# Starts the debug binary on a free port with a temporary data directory,
# private webhook targets allowed, and rate limits high enough that
# schemathesis is not throttled; creates an account with the admin token and
# runs as it. schemathesis is installed into target/schemathesis-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
venv="$PWD/target/schemathesis-venv"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
# A hard bound on the run, whatever the examples cost.
max_seconds="${SCHEMATHESIS_MAX_SECONDS:-180}"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$version"; then
    echo "== installing schemathesis $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

echo "== cargo build --bin relurl"
cargo build --quiet --bin relurl

data="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
admin="schemathesis-admin-token-0123456789"
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

RELURL_SERVER__LISTEN="127.0.0.1:$port" \
RELURL_SERVER__PUBLIC_BASE_URL="$base" \
RELURL_STORE__BACKEND=embedded \
RELURL_STORE__PATH="$data/store" \
RELURL_AUTH__ADMIN_TOKEN="$admin" \
RELURL_AUTH__REQUESTS_PER_SEC=100000 \
RELURL_AUTH__BURST=100000 \
RELURL_AUTH__EXPENSIVE_WRITES_PER_SEC=100000 \
RELURL_AUTH__EXPENSIVE_WRITES_BURST=100000 \
RELURL_AUTH__FAILED_AUTH_PER_MIN=100000 \
RELURL_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true \
    target/debug/relurl serve >"$data/relurl.log" 2>&1 &
pid=$!

# Ready within 30 s, or the server's log and a failure.
deadline=$((SECONDS + 30))
until curl -fsS "$base/readyz" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "relurl did not become ready; its log:" >&2
        cat "$data/relurl.log" >&2
        exit 1
    fi
    sleep 0.2
done

# A new account's API key, as the admin.
account_key() {
    curl -fsS -X POST "$base/v1/accounts" \
        -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])'
}
key="$(account_key schemathesis)"
# Key revocations run as a second account with a spare key, so they cannot
# revoke the key every other operation runs with.
revoker="$(account_key revoker)"
curl -fsS -o /dev/null -X POST "$base/v1/keys" \
    -H "Authorization: Bearer $revoker" -H 'Content-Type: application/json' -d '{}'

# An endpoint the /v1/webhooks/{id} operations work on (generated URLs rarely
# resolve): it posts to relurl's own /healthz, which answers 405, so its
# deliveries fail and are retried.
endpoint="$(curl -fsS -X POST "$base/v1/webhooks" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"url\":\"$base/healthz\",\"events\":[\"*\"]}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"

cat >"$data/schemathesis.toml" <<EOF
# A request the document refuses must be refused; 413 (a body past
# server.max_body_bytes) is a refusal too.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 409, 413, 422, 429]

# A code that breaks its schema (a reserved word such as "metrics") is another
# route's path, not a bad redirect: /{code} gets valid codes only.
[[operations]]
include-path = "/{code}"
generation.mode = "positive"

[[operations]]
include-path-regex = '^/v1/webhooks/\{id\}'
exclude-method = "DELETE"
parameters = { "path.id" = "$endpoint" }

[[operations]]
include-path = "/v1/keys/{id}"
headers = { Authorization = "Bearer $revoker" }

[[operations]]
include-path = "/v1/accounts"
headers = { Authorization = "Bearer $admin" }
EOF

checks="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection}"
echo "== schemathesis run $base/v1/openapi.json (max $max_examples examples an operation)"
echo "   checks: $checks"
status=0
# No redirects followed: a short link's destination is somewhere else. One
# worker: hypothesis parsing sources in two threads at once trips CPython
# 3.11's ast ("AST constructor recursion depth mismatch").
# From the temporary directory: schemathesis leaves its cache where it runs.
# The click stream is excluded: an open event stream never ends, so every
# example would wait out the request timeout (tests/live.rs covers it).
(cd "$data" && timeout --signal=INT --kill-after=15 "$max_seconds" \
    "$venv/bin/schemathesis" --config-file "$data/schemathesis.toml" \
    run "$base/v1/openapi.json" \
    --header "Authorization: Bearer $key" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --max-redirects 0 \
    --request-timeout 10 \
    --exclude-path /v1/clicks/stream \
    --workers 1 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --suppress-health-check all \
    --generation-database none \
    --no-color) || status=$?
if [ "$status" -eq 0 ]; then
    echo "schemathesis: every operation passed every check, 0 failures"
else
    echo "schemathesis failed (exit $status); relurl's log ends:" >&2
    tail -n 50 "$data/relurl.log" >&2
fi
exit "$status"
