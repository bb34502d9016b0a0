#!/bin/sh
# The compose stack's `receiver` service: examples/receiver-node, with the
# secret of the endpoint the one-shot `setup` service creates for it.
set -eu

# Paths in the container; the test suite runs this script with its own.
SRC=${SRC:-/src}
WORK=${WORK:-/receiver}
SHARED=${SHARED:-/setup}
READY=${READY:-/tmp/ready}

# A secret left by an earlier run is stale: setup makes a new endpoint each time.
rm -f "$SHARED/secret"
# The healthcheck: setup starts once the stale secret is gone.
touch "$READY"

mkdir -p "$WORK"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/server.js" "$WORK/"
cd "$WORK"
npm ci --omit=dev --no-audit --no-fund

echo "receiver: waiting for the endpoint secret from the setup service"
until [ -s "$SHARED/secret" ]; do sleep 1; done
RELURL_WEBHOOK_SECRET=$(cat "$SHARED/secret")
export RELURL_WEBHOOK_SECRET
exec node server.js
