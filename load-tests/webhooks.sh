#!/usr/bin/env bash
# Webhook delivery throughput and click→webhook latency, end to end on loopback:
# wrk drives redirects (each one a click), relurl delivers `link.clicked` to a
# local sink (examples/sink.rs) that counts deliveries and measures latency from
# each payload's timestamp.
#
#   ENDPOINTS=1 load-tests/webhooks.sh      # one endpoint, high rate limit
#   ENDPOINTS=5 load-tests/webhooks.sh      # five endpoints of one account
#   CONNECTIONS=8 DURATION=10s ...          # the redirect load (wrk, as fast as it goes)
#   RATE=2000 DURATION=10s ...              # paced clicks, for latency below saturation
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/lib.sh

ENDPOINTS=${ENDPOINTS:-1}
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-10s}
RELURL_ADDR=127.0.0.1:18080
SINK_ADDR=127.0.0.1:18099
ADMIN=loadtest-admin-token-0123456789

command -v wrk >/dev/null || { echo "load-tests: wrk not found (apt-get install wrk)" >&2; exit 1; }
echo "load-tests: building release binaries" >&2
cargo build --release --bin relurl --example sink --example paced_load 2>&1 | tail -1 >&2

DATA=$(mktemp -d)
cleanup() {
    [[ -n "${SINK_PID:-}" ]] && kill "$SINK_PID" 2>/dev/null || true
    [[ -n "${RELURL_PID:-}" ]] && kill -TERM "$RELURL_PID" 2>/dev/null && wait "$RELURL_PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT

target/release/examples/sink "$SINK_ADDR" 2>/dev/null &
SINK_PID=$!
RELURL_SERVER__LISTEN=$RELURL_ADDR RELURL_STORE__PATH=$DATA/store RELURL_AUTH__ADMIN_TOKEN=$ADMIN \
    RELURL_FRAUD__ENABLED=false RELURL_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true \
    RELURL_WEBHOOKS__MAX_IN_FLIGHT_PER_ENDPOINT=${IN_FLIGHT:-64} RELURL_LOG=warn \
    target/release/relurl >/dev/null 2>"$DATA/relurl.log" &
RELURL_PID=$!
wait_port "$SINK_ADDR"; wait_port "$RELURL_ADDR"

KEY=$(create_account "$RELURL_ADDR")
for i in $(seq 1 "$ENDPOINTS"); do
    create_endpoint "$RELURL_ADDR" "$KEY" "http://$SINK_ADDR/hook/$i"
done
create_link "$RELURL_ADDR" "$KEY"
curl -sf -X DELETE "http://$SINK_ADDR/stats" >/dev/null

if [[ -n "${RATE:-}" ]]; then
    # Paced clicks: latency below saturation.
    echo "paced: $RATE clicks/s for ${DURATION%s} s, $ENDPOINTS endpoint(s), $(nproc) cores"
    target/release/examples/paced_load "http://$RELURL_ADDR/load" "$RATE" "${DURATION%s}"
else
    echo "wrk -t${THREADS:-2} -c$CONNECTIONS -d$DURATION, $ENDPOINTS endpoint(s), $(nproc) cores"
    wrk -t"${THREADS:-2}" -c"$CONNECTIONS" -d"$DURATION" "http://$RELURL_ADDR/load" | grep -E 'Requests/sec'
fi
# Let the backlog drain: wait until the sink has seen every click's delivery.
CLICKS=$(curl -sf "http://$RELURL_ADDR/v1/links/load" -H "Authorization: Bearer $KEY" | sed -E 's/.*"click_count":([0-9]+).*/\1/')
WANT=$((CLICKS * ENDPOINTS))
for _ in $(seq 1 600); do
    GOT=$(curl -sf "http://$SINK_ADDR/stats" | sed -E 's/.*"deliveries":([0-9]+).*/\1/')
    [[ "$GOT" -ge "$WANT" ]] && break
    sleep 0.5
done
echo "clicks: $CLICKS, deliveries expected: $WANT"
echo "sink: $(curl -sf "http://$SINK_ADDR/stats")"
curl -sf "http://$RELURL_ADDR/metrics" | grep -E '^relurl_webhook_(deliveries_total|spilled_total|dead)' || true
