#!/usr/bin/env bash
# Single-node Apache Cassandra 5.0.x on 127.0.0.1:9042 for relurl's integration tests.
#
#   scripts/cql-server.sh start              # (re)start with a fresh, empty data dir
#   scripts/cql-server.sh restart-keep-data  # stop, then start on the SAME data (fault tests)
#   scripts/cql-server.sh stop               # TERM, then KILL after a grace period; idempotent
#   scripts/cql-server.sh status             # exit 0 iff 127.0.0.1:$PORT accepts connections
#
# Environment (all optional):
#   RELURL_CQL_VERSION    Cassandra version                        (default 5.0.9)
#   RELURL_CQL_CACHE      download/unpack cache                    (default ~/.cache/relurl-cql)
#   RELURL_CQL_DATA       per-run data dir, wiped on start         (default /tmp/relurl-cql-data)
#   RELURL_CQL_KEEP_DATA  1 = don't wipe the data dir on start     (default 0)
#   RELURL_CQL_PORT       native (CQL) port                        (default 9042)
#   RELURL_CQL_STORAGE_PORT  internode port, bound to 127.0.0.1    (default 7000)
#   RELURL_CQL_TIMEOUT    seconds to wait for CQL readiness        (default 240)
#   RELURL_CQL_STOP_GRACE seconds between TERM and KILL            (default 60)
#   MAX_HEAP_SIZE         JVM heap (-Xms/-Xmx)                     (default 2G)
#   HEAP_NEWSIZE          young gen (-Xmn); empty = let G1 decide  (default empty)
#   JAVA                  java binary (Java 11 or 17)              (default: java on PATH)
#
# Where it comes from: Maven Central. First tried is the binary tarball
# org.apache.cassandra:apache-cassandra:<ver>:tar.gz:bin (Central stops publishing it at
# 4.0-alpha2, so for 5.0.x this fails), then org.apache.cassandra:cassandra-all:<ver> with its
# runtime dependencies. Either way the result is a directory of jars, run directly with
# org.apache.cassandra.service.CassandraDaemon and a cassandra.yaml/logback.xml generated here.
set -euo pipefail

VERSION="${RELURL_CQL_VERSION:-5.0.9}"
CACHE="${RELURL_CQL_CACHE:-${HOME:-/root}/.cache/relurl-cql}"
DATA="${RELURL_CQL_DATA:-/tmp/relurl-cql-data}"
KEEP_DATA="${RELURL_CQL_KEEP_DATA:-0}"
HOST=127.0.0.1
PORT="${RELURL_CQL_PORT:-9042}"
STORAGE_PORT="${RELURL_CQL_STORAGE_PORT:-7000}"
TIMEOUT="${RELURL_CQL_TIMEOUT:-240}"
STOP_GRACE="${RELURL_CQL_STOP_GRACE:-60}"
HEAP="${MAX_HEAP_SIZE:-2G}"
NEWSIZE="${HEAP_NEWSIZE:-}"
JAVA="${JAVA:-java}"

# pidfile and log live beside the data dir, so wiping the data never loses track of a process.
PIDFILE="${DATA%/}.pid"
LOG="${DATA%/}.log"
INSTALL="$CACHE/cassandra-$VERSION"   # holds lib/*.jar and a .complete marker

log() { echo "cql-server: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port_open() {
  # bash's /dev/tcp, bounded so a black-holed connect can't hang us.
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
}

# Prints the pid from the pidfile iff that process is alive and is our CassandraDaemon.
our_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PIDFILE" 2>/dev/null || true)"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse: it must be a JVM running CassandraDaemon
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'org.apache.cassandra.service.CassandraDaemon' || return 1
  echo "$pid"
}

# --------------------------------------------------------------------------- fetch / cache
fetch() {
  if [[ -f "$INSTALL/.complete" ]]; then
    log "using cached Cassandra $VERSION ($INSTALL)"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch Cassandra $VERSION)"
  mkdir -p "$CACHE"
  local tmp
  tmp="$(mktemp -d "$CACHE/.fetch-$VERSION.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT

  log "fetching Cassandra $VERSION from Maven Central (one-time, cached in $INSTALL)"
  if mvn -q -B dependency:copy \
        -Dartifact="org.apache.cassandra:apache-cassandra:$VERSION:tar.gz:bin" \
        -DoutputDirectory="$tmp/dl" >"$tmp/mvn-tarball.log" 2>&1 \
     && compgen -G "$tmp/dl/*.tar.gz" >/dev/null; then
    log "got the binary tarball; unpacking"
    mkdir -p "$tmp/unpacked"
    tar -xzf "$tmp"/dl/*.tar.gz -C "$tmp/unpacked"
    local lib
    lib="$(find "$tmp/unpacked" -maxdepth 2 -type d -name lib | head -n1)"
    [[ -n "$lib" ]] || die "tarball has no lib/ directory"
    mkdir -p "$tmp/install"
    mv "$lib" "$tmp/install/lib"
    echo "tarball org.apache.cassandra:apache-cassandra:$VERSION:tar.gz:bin" >"$tmp/install/.source"
  else
    log "no binary tarball for $VERSION on Maven Central; using cassandra-all + dependencies"
    mkdir -p "$tmp/pom"
    cat >"$tmp/pom/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>relurl</groupId>
  <artifactId>relurl-cql-server</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    if ! mvn -q -B -f "$tmp/pom/pom.xml" dependency:copy-dependencies \
          -DincludeScope=runtime -DoutputDirectory="$tmp/install/lib" >"$tmp/mvn-jars.log" 2>&1; then
      tail -n 40 "$tmp/mvn-jars.log" >&2 || true
      die "could not fetch org.apache.cassandra:cassandra-all:$VERSION with Maven"
    fi
    echo "jars org.apache.cassandra:cassandra-all:$VERSION (+ runtime deps)" >"$tmp/install/.source"
  fi
  compgen -G "$tmp/install/lib/*.jar" >/dev/null || die "no jars fetched"
  touch "$tmp/install/.complete"
  rm -rf "$INSTALL"
  mv "$tmp/install" "$INSTALL"
  rm -rf "$tmp"
  trap - EXIT
  log "cached $(ls "$INSTALL/lib" | wc -l) jars in $INSTALL/lib ($(cat "$INSTALL/.source"))"
}

# --------------------------------------------------------------------------- config
write_config() {
  local conf="$DATA/conf"
  mkdir -p "$conf" "$DATA/data" "$DATA/commitlog" "$DATA/saved_caches" "$DATA/hints" "$DATA/cdc_raw" "$DATA/triggers"
  cat >"$conf/cassandra.yaml" <<EOF
# generated by scripts/cql-server.sh -- single test node, not for production
cluster_name: relurl-test
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
auto_bootstrap: false
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$STORAGE_PORT"
endpoint_snitch: SimpleSnitch
listen_address: $HOST
storage_port: $STORAGE_PORT
rpc_address: $HOST
start_native_transport: true
native_transport_port: $PORT
data_file_directories:
  - $DATA/data
commitlog_directory: $DATA/commitlog
saved_caches_directory: $DATA/saved_caches
hints_directory: $DATA/hints
cdc_raw_directory: $DATA/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
# tests create/drop/truncate a lot; snapshots on every drop/truncate just cost time and disk
auto_snapshot: false
hinted_handoff_enabled: false
concurrent_compactors: 1
storage_compatibility_mode: CASSANDRA_4
EOF
  cat >"$conf/logback.xml" <<'EOF'
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra" level="INFO"/>
</configuration>
EOF
}

jvm_opts() {
  local opts=(
    -Xms"$HEAP" -Xmx"$HEAP"
    -Xss256k
    -ea -da:net.openhft...
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300
    -XX:+UseThreadPriorities -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem
    -XX:+ExitOnOutOfMemoryError -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$DATA"
    -XX:ErrorFile="$DATA/hs_err_%p.log"
    -Djava.net.preferIPv4Stack=true
    # JPMS opens/exports, as in Cassandra 5.0's conf/jvm17-server.options
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    # Cassandra itself
    -Dcassandra.config="file://$DATA/conf/cassandra.yaml"
    -Dlogback.configurationFile="file://$DATA/conf/logback.xml"
    -Dcassandra.storagedir="$DATA"
    -Dcassandra.logdir="$DATA/logs"
    -Dcassandra.triggers_dir="$DATA/triggers"
    -Dcassandra-foreground=yes
    -Dcassandra.available_processors="$(nproc 2>/dev/null || echo 2)"
    # single node: don't wait for gossip/ring to settle
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=1000
    -Dcassandra.superuser_setup_delay_ms=0
    -Dcassandra.shutdown_announce_in_ms=0
    # marker so a human can tell which process this is (stop uses the pidfile only)
    -Drelurl.cql.data="$DATA"
  )
  [[ -n "$NEWSIZE" ]] && opts+=(-Xmn"$NEWSIZE")
  local jamm
  jamm="$(compgen -G "$INSTALL/lib/jamm-*.jar" | head -n1 || true)"
  [[ -n "$jamm" ]] && opts+=(-javaagent:"$jamm")
  printf '%s\n' "${opts[@]}"
}

# --------------------------------------------------------------------------- CQL probe
# A real CQL round trip (native protocol v4: STARTUP, then QUERY on system.local) with only
# the Python standard library. Prints the server's release_version; non-zero exit if not ready.
cql_probe() {
  python3 - "$HOST" "$PORT" <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])

def frame(stream, opcode, body):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf

def read_frame(s):
    _ver, _flags, _stream, opcode, length = struct.unpack(">BBhBi", recv_exact(s, 9))
    return opcode, recv_exact(s, length)

def string(b, i):
    n = struct.unpack_from(">H", b, i)[0]
    return b[i + 2:i + 2 + n].decode(), i + 2 + n

def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)

def error_of(body):
    code = struct.unpack_from(">i", body, 0)[0]
    return "0x%04x %s" % (code, string(body, 4)[0])

with socket.create_connection((host, port), timeout=10) as s:
    k, v = b"CQL_VERSION", b"3.0.0"
    s.sendall(frame(1, 0x01, struct.pack(">H", 1) + struct.pack(">H", len(k)) + k
                    + struct.pack(">H", len(v)) + v))
    op, body = read_frame(s)
    if op == 0x00:
        fail("STARTUP error " + error_of(body))
    if op != 0x02:
        fail("STARTUP: unexpected opcode %d (auth enabled?)" % op)
    q = b"SELECT release_version FROM system.local"
    s.sendall(frame(2, 0x07, struct.pack(">i", len(q)) + q + struct.pack(">HB", 0x0001, 0)))
    op, body = read_frame(s)
    if op == 0x00:
        fail("QUERY error " + error_of(body))
    kind = struct.unpack_from(">i", body, 0)[0]
    if op != 0x08 or kind != 2:
        fail("QUERY: unexpected reply opcode=%d kind=%d" % (op, kind))
    flags, ncols = struct.unpack_from(">ii", body, 4)
    i = 12
    if flags & 0x0002:  # paging state
        n = struct.unpack_from(">i", body, i)[0]; i += 4 + max(n, 0)
    if not flags & 0x0004:  # column specs present
        if flags & 0x0001:
            _, i = string(body, i); _, i = string(body, i)
        for _ in range(ncols):
            if not flags & 0x0001:
                _, i = string(body, i); _, i = string(body, i)
            _, i = string(body, i)
            i += 2  # type id: varchar, no sub-options
    nrows = struct.unpack_from(">i", body, i)[0]; i += 4
    if nrows < 1:
        fail("system.local is empty")
    n = struct.unpack_from(">i", body, i)[0]
    print(body[i + 4:i + 4 + n].decode())
PY
}

# --------------------------------------------------------------------------- commands
cmd_stop() {
  local pid
  if ! pid="$(our_pid)"; then
    if [[ -f "$PIDFILE" ]]; then log "not running (removing stale pidfile)"; rm -f "$PIDFILE"
    else log "not running"; fi
    return 0
  fi
  log "stopping pid $pid (TERM; KILL after ${STOP_GRACE}s)"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= STOP_GRACE * 10 )); then
      log "still alive after ${STOP_GRACE}s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  # wait for the port to be released (a killed JVM can linger briefly as a zombie-less exit)
  local n=0
  while port_open && (( n < 100 )); do sleep 0.1; n=$((n + 1)); done
  rm -f "$PIDFILE"
  log "stopped"
}

cmd_start() {
  local t0 pid
  t0=$(date +%s)
  command -v "$JAVA" >/dev/null || die "java not found"

  # Idempotent: a server of ours that is still running gets stopped first.
  if our_pid >/dev/null; then
    log "a previous server is still running; stopping it first"
    cmd_stop
  fi
  t0=$(date +%s)   # measure our own start only, not the stop above
  if port_open; then
    die "$HOST:$PORT is already taken by a process this script did not start; stop it first"
  fi

  fetch

  if [[ "$KEEP_DATA" == 1 && -d "$DATA/data" ]]; then
    log "keeping existing data in $DATA"
    echo "----- restart $(date -Is) -----" >>"$LOG"
  else
    log "fresh data dir $DATA"
    rm -rf "$DATA"
    : >"$LOG"
  fi
  write_config

  local -a opts
  mapfile -t opts < <(jvm_opts)
  log "starting Cassandra $VERSION on $HOST:$PORT (heap $HEAP, log $LOG)"
  (
    cd "$DATA"
    export MALLOC_ARENA_MAX=4
    # own session: not hit by signals sent to the caller's process group; stdin detached.
    exec setsid "$JAVA" "${opts[@]}" -cp "$INSTALL/lib/*" \
      org.apache.cassandra.service.CassandraDaemon </dev/null >>"$LOG" 2>&1
  ) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "pid $pid (pidfile $PIDFILE)"

  local deadline=$(( t0 + TIMEOUT )) have_python=1 version=""
  command -v python3 >/dev/null || have_python=0
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "Cassandra exited during startup; last log lines:"
      tail -n 60 "$LOG" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if port_open; then
      if (( have_python )); then
        if version="$(cql_probe 2>>"$DATA/probe.err")"; then break; fi
      elif grep -q "Starting listening for CQL clients" "$LOG"; then
        version="(unverified: no python3; port open + log line)"
        break
      fi
    fi
    if (( $(date +%s) >= deadline )); then
      log "timed out after ${TIMEOUT}s waiting for CQL on $HOST:$PORT; last log lines:"
      tail -n 60 "$LOG" >&2 || true
      [[ -s "$DATA/probe.err" ]] && { log "last CQL probe error:"; tail -n 3 "$DATA/probe.err" >&2; }
      cmd_stop || true
      exit 1
    fi
    sleep 0.5
  done
  log "CQL answers: release_version $version"
  log "cql server ready in $(( $(date +%s) - t0 )) s"
}

cmd_status() {
  if port_open; then
    log "up: $HOST:$PORT accepts connections$(our_pid >/dev/null && echo " (pid $(our_pid))")"
    return 0
  fi
  log "down: nothing accepts connections on $HOST:$PORT"
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop; cmd_start ;;
  restart-keep-data) cmd_stop; KEEP_DATA=1; cmd_start ;;
  fetch) fetch ;;
  *) echo "usage: $0 {start|stop|status|restart|restart-keep-data|fetch}" >&2; exit 2 ;;
esac
