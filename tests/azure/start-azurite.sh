#!/usr/bin/env bash
# Azurite's blob service (Azure Blob Storage emulator) on 127.0.0.1, for the
# azure sink tests. Installs azurite into /opt/vigil-test/azurite once (npm;
# 3.35.0 is the last release whose engines accept Node 18/20, 3.36+ want >=21).
# Account devstoreaccount1 with the well-known key; path-style URLs:
#   http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/BLOB
#
# Usage: start-azurite.sh PORT DIR     prints the pid once the service answers
#                                       (logs in DIR/azurite.log)
#        start-azurite.sh --install     installs only (scripts/install-deps.sh)
set -euo pipefail
VER=3.35.0; PREFIX=/opt/vigil-test/azurite
BIN=$PREFIX/node_modules/.bin/azurite-blob
if [ "${1:-}" = --install ]; then PORT=; DIR=; else PORT=$1; DIR=$2; mkdir -p "$DIR"; fi
mkdir -p "$PREFIX"
(
  flock 9
  if [ "$("$BIN" --version 2>/dev/null)" != "$VER" ]; then
    command -v npm >/dev/null || { apt-get update -q && apt-get install -y -q nodejs npm; }
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$VER" >&2
  fi
) 9>"$PREFIX.lock"
[ -z "$PORT" ] && exit 0
# --disableTelemetry: otherwise it tries to reach Application Insights.
# --skipApiVersionCheck: object_store sends x-ms-version 2023-11-03; newer
# clients would be refused by an older Azurite.
cd "$DIR"
setsid "$BIN" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$DIR" \
  --skipApiVersionCheck --loose --disableTelemetry >"$DIR/azurite.log" 2>&1 </dev/null &
PID=$!
for _ in $(seq 100); do
  # any HTTP answer (an unsigned request gets 403) means it listens
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/devstoreaccount1?comp=list" || true)
  [ "$code" != 000 ] && { echo "$PID"; exit 0; }
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.2
done
echo "start-azurite.sh: azurite did not answer on 127.0.0.1:$PORT; see $DIR/azurite.log" >&2
kill "$PID" 2>/dev/null || true
exit 1
