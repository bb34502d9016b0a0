#!/usr/bin/env bash
# End-to-end redirect throughput on loopback, as ratios against a bare hyper
# server that only answers 302, measured in the same run on the same machine.
#
#   load-tests/run.sh                 # defaults: 64 connections, 10 s per run
#   CONNECTIONS=128 DURATION=20s load-tests/run.sh
#   STORE=scylla load-tests/run.sh    # clicks go to a CQL server on 127.0.0.1:9042
#                                     # (scripts/cql-server.sh start), fresh keyspace
#
# Needs wrk (Debian: apt-get install wrk). Builds release binaries first.
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/lib.sh

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
BARE_ADDR=127.0.0.1:18090
RELURL_ADDR=127.0.0.1:18080
ADMIN=loadtest-admin-token-0123456789

command -v wrk >/dev/null || { echo "load-tests: wrk not found (apt-get install wrk)" >&2; exit 1; }
echo "load-tests: building release binaries" >&2
cargo build --release --bin relurl --example bare_302 2>&1 | tail -1 >&2

DATA=$(mktemp -d)
cleanup() {
    [[ -n "${BARE_PID:-}" ]] && kill "$BARE_PID" 2>/dev/null || true
    [[ -n "${RELURL_PID:-}" ]] && kill -TERM "$RELURL_PID" 2>/dev/null && wait "$RELURL_PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT


run_wrk() { # label url [script]
    local label=$1 url=$2 script=${3:-}
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
    [[ -n "$script" ]] && args+=(-s "$script")
    local out
    out=$(wrk "${args[@]}" "$url")
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    printf '%-34s %12s req/s   p50 %8s   p99 %8s\n' "$label" "$rps" "$p50" "$p99"
    echo "$rps"  >"$DATA/$label.rps"
}

target/release/examples/bare_302 "$BARE_ADDR" 2>/dev/null &
BARE_PID=$!
if [[ "${STORE:-embedded}" == scylla ]]; then
    export RELURL_STORE__BACKEND=scylla RELURL_STORE__SCYLLA_NODES='["127.0.0.1:9042"]' \
        RELURL_STORE__SCYLLA_KEYSPACE="relurl_load_$(date +%s)"
fi
RELURL_SERVER__LISTEN=$RELURL_ADDR RELURL_STORE__PATH=$DATA/store RELURL_AUTH__ADMIN_TOKEN=$ADMIN \
    RELURL_FRAUD__ENABLED=false RELURL_LOG=warn target/release/relurl >/dev/null 2>"$DATA/relurl.log" &
RELURL_PID=$!
wait_port "$BARE_ADDR"
wait_ready "http://$RELURL_ADDR/readyz"

KEY=$(create_account "$RELURL_ADDR")
create_link "$RELURL_ADDR" "$KEY"

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores, store ${STORE:-embedded}"
run_wrk bare_hyper_302 "http://$BARE_ADDR/load"
run_wrk relurl_get_clicks_recorded "http://$RELURL_ADDR/load"
# Clicks written during the GET run (the pipeline drains for a moment after it).
sleep 2
PERSISTED=$(curl -sf "http://$RELURL_ADDR/metrics" | awk '/^relurl_clicks_persisted_total/ {print $2}')
SECS=${DURATION%s}
echo "clicks persisted per second during the GET run: $(( ${PERSISTED%.*} / SECS )) (${PERSISTED%.*} in ${SECS}s + 2s drain)"
run_wrk relurl_head_no_click "http://$RELURL_ADDR/load" load-tests/head.lua
run_wrk bare_hyper_302_again "http://$BARE_ADDR/load"

CLICKS=$(curl -sf "http://$RELURL_ADDR/v1/links/load" -H "Authorization: Bearer $KEY" \
    | sed -E 's/.*"click_count":([0-9]+).*/\1/')
awk -v bare="$(cat "$DATA/bare_hyper_302.rps")" -v bare2="$(cat "$DATA/bare_hyper_302_again.rps")" \
    -v get="$(cat "$DATA/relurl_get_clicks_recorded.rps")" -v head="$(cat "$DATA/relurl_head_no_click.rps")" \
    'BEGIN {
        ref = (bare + bare2) / 2;
        printf "relurl GET / bare hyper:        %.2f\n", get / ref;
        printf "relurl HEAD / bare hyper:       %.2f\n", head / ref;
        printf "click pipeline on / off:        %.2f\n", get / head;
    }'
echo "clicks counted for the GET run:  $CLICKS"
grep -E '^relurl_clicks_(persisted|shed)_total' <(curl -sf "http://$RELURL_ADDR/metrics") || true
