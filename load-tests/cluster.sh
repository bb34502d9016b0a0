#!/usr/bin/env bash
# Two relurl nodes in cluster mode on one fresh keyspace of the CQL server at
# 127.0.0.1:9042 (scripts/cql-server.sh start): wrk drives clicks round-robin
# (one wrk per node, half the connections each), every click becomes a
# `link.clicked` delivered by whichever node holds that endpoint's lease, each
# endpoint to its own sink (examples/sink.rs, which counts the event ids it
# saw). Reports clicks persisted/s (both nodes' counters summed), deliveries/s
# at the sinks and duplicates (an event id seen twice by one endpoint's sink).
#
#   load-tests/cluster.sh                      # 4 endpoints, 16 connections, 10 s
#   ENDPOINTS=8 CONNECTIONS=32 DURATION=20s load-tests/cluster.sh
#
# Needs wrk (Debian: apt-get install wrk). Builds release binaries first. The
# keyspace (relurl_cluster_load_<time>) is left behind; it is named at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. load-tests/lib.sh

ENDPOINTS=${ENDPOINTS:-4} # several, so rendezvous spreads their leases over both nodes
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-10s}
CQL=${CQL:-127.0.0.1:9042}
NODES=(127.0.0.1:18081 127.0.0.1:18082)
SINK_PORT=18100 # endpoint i's sink listens on SINK_PORT + i
ADMIN=loadtest-admin-token-0123456789
KEYSPACE="relurl_cluster_load_$(date +%s)"

command -v wrk >/dev/null || { echo "load-tests: wrk not found (apt-get install wrk)" >&2; exit 1; }
(echo >"/dev/tcp/${CQL%:*}/${CQL#*:}") 2>/dev/null \
    || { echo "load-tests: no CQL server on $CQL (scripts/cql-server.sh start)" >&2; exit 1; }
echo "load-tests: building release binaries" >&2
cargo build --release --bin relurl --example sink 2>&1 | tail -1 >&2

DATA=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$DATA"
}
trap cleanup EXIT
# Sum of one metric (every label set) over both nodes.
metric_sum() {
    local total=0 value
    for node in "${NODES[@]}"; do
        value=$(curl -sf "http://$node/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d", s}')
        total=$((total + value))
    done
    echo "$total"
}
# Every sink's /stats, one line each, read once (deliveries keep arriving).
sink_stats() {
    for i in $(seq 1 "$ENDPOINTS"); do curl -sf "http://127.0.0.1:$((SINK_PORT + i))/stats"; done
}
# Sum of one numeric field over sink_stats lines on stdin.
field_sum() {
    sed -E "s/.*\"$1\":([0-9]+).*/\\1/" | awk '{s += $1} END {printf "%d", s}'
}

for i in $(seq 1 "$ENDPOINTS"); do
    target/release/examples/sink "127.0.0.1:$((SINK_PORT + i))" 2>/dev/null &
    PIDS+=($!)
    wait_ready "http://127.0.0.1:$((SINK_PORT + i))/stats"
done
export RELURL_STORE__BACKEND=scylla RELURL_STORE__SCYLLA_NODES="[\"$CQL\"]" \
    RELURL_STORE__SCYLLA_KEYSPACE=$KEYSPACE RELURL_AUTH__ADMIN_TOKEN=$ADMIN \
    RELURL_CLUSTER__HEARTBEAT=1s RELURL_FRAUD__ENABLED=false \
    RELURL_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true \
    RELURL_WEBHOOKS__MAX_IN_FLIGHT_PER_ENDPOINT=${IN_FLIGHT:-64} RELURL_LOG=warn
for i in "${!NODES[@]}"; do
    # The first node creates the keyspace; the second starts once it exists.
    RELURL_SERVER__LISTEN=${NODES[$i]} RELURL_SERVER__PUBLIC_BASE_URL="http://${NODES[$i]}" \
        RELURL_STORE__PATH="$DATA/store$i" \
        target/release/relurl >/dev/null 2>"$DATA/relurl$i.log" &
    PIDS+=($!)
    wait_ready "http://${NODES[$i]}/readyz"
done

# Waits until `condition` (a function) holds; fails with the nodes' logs if not.
settle() { # what condition
    for _ in $(seq 1 300); do "$2" && return 0; sleep 0.2; done
    echo "load-tests: $1 never happened" >&2
    tail -n 20 "$DATA"/relurl*.log >&2
    exit 1
}
both_live() { [[ $(metric_sum relurl_cluster_live_nodes) -eq 4 ]]; }
# Every endpoint lease (and the expiry singleton) held, no lease moved for three
# heartbeats, and the second node answers the link (HEAD: no click): the run
# measures steady state, not the handover of a joining node.
HANDOVERS=-1 QUIET=0
steady() {
    local now
    now=$(metric_sum relurl_cluster_handovers_total)
    if [[ $now -eq $HANDOVERS ]]; then QUIET=$((QUIET + 1)); else QUIET=0 HANDOVERS=$now; fi
    [[ $QUIET -ge 15 && $(metric_sum relurl_cluster_leases_held) -eq $((ENDPOINTS + 1)) \
        && $(curl -s -o /dev/null -w '%{http_code}' -I "http://${NODES[1]}/load") == 302 ]]
}

# Endpoints made once both nodes are live go straight to their owners.
settle "both nodes live" both_live
KEY=$(create_account "${NODES[0]}")
for i in $(seq 1 "$ENDPOINTS"); do
    create_endpoint "${NODES[0]}" "$KEY" "http://127.0.0.1:$((SINK_PORT + i))/hook"
done
create_link "${NODES[0]}" "$KEY"
settle "a steady lease spread" steady
for i in $(seq 1 "$ENDPOINTS"); do curl -sf -X DELETE "http://127.0.0.1:$((SINK_PORT + i))/stats" >/dev/null; done

PERSISTED_BEFORE=$(metric_sum relurl_clicks_persisted_total)
echo "2 nodes, keyspace $KEYSPACE, wrk -t1 -c$((CONNECTIONS / 2)) -d$DURATION per node, $ENDPOINTS endpoint(s), $(nproc) cores"
WRK_PIDS=()
for node in "${NODES[@]}"; do
    wrk -t1 -c"$((CONNECTIONS / 2))" -d"$DURATION" "http://$node/load" >"$DATA/wrk-$node.out" &
    WRK_PIDS+=($!)
done
for pid in "${WRK_PIDS[@]}"; do wait "$pid"; done
for node in "${NODES[@]}"; do
    echo "  $node: $(awk '/Requests\/sec/ {print $2}' "$DATA/wrk-$node.out") redirects/s"
done
SECS=${DURATION%s}
DURING=$(($(metric_sum relurl_clicks_persisted_total) - PERSISTED_BEFORE))
# Drained when every click handed to the pipeline was written or shed.
for _ in $(seq 1 600); do
    [[ $(($(metric_sum relurl_clicks_persisted_total) + $(metric_sum relurl_clicks_shed_total))) \
        -ge $(metric_sum relurl_clicks_received_total) ]] && break
    sleep 0.5
done
CLICKS=$(($(metric_sum relurl_clicks_persisted_total) - PERSISTED_BEFORE))
echo "clicks persisted per second, both nodes: $((DURING / SECS)) ($DURING during ${SECS}s; $CLICKS once drained, $(metric_sum relurl_clicks_shed_total) shed)"

# Deliveries: wait until every endpoint's sink has seen every click's event.
WANT=$((CLICKS * ENDPOINTS))
for _ in $(seq 1 600); do
    [[ $(sink_stats | field_sum distinct_events) -ge "$WANT" ]] && break
    sleep 0.5
done
STATS=$(sink_stats)
DELIVERIES=$(field_sum deliveries <<<"$STATS")
DISTINCT=$(field_sum distinct_events <<<"$STATS")
echo "events expected: $WANT ($CLICKS clicks x $ENDPOINTS endpoints), delivered: $DISTINCT"
echo "deliveries per second at the sinks: $(field_sum per_sec <<<"$STATS") (each sink from its first delivery to its last)"
echo "duplicates at the sinks: $((DELIVERIES - DISTINCT)) of $DELIVERIES deliveries, lease handovers since the run began: $(($(metric_sum relurl_cluster_handovers_total) - HANDOVERS))"
echo "sinks:"
while IFS= read -r line; do echo "  $line"; done <<<"$STATS"
for node in "${NODES[@]}"; do
    echo "$node:"
    curl -sf "http://$node/metrics" \
        | grep -E '^relurl_(webhook_deliveries_total|cluster_leases_held|cluster_handovers_total|clicks_persisted_total)' \
        | sed 's/^/  /' || true
done
echo "keyspace left behind: $KEYSPACE"
