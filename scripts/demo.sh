#!/usr/bin/env bash
# Quick start: installs only what the demo needs (etcd, etcdctl, age, zstd,
# protoc for the build), starts a throwaway three-member etcd on loopback
# with some data, makes a demo age key, and shows both sides: vigil-snapshot
# archiving every member, vigil-restore listing and fetching an archive, and
# an alert (one member stopped) queued by the job and delivered by
# vigil-notify to a file. Everything, metrics and state included, lives in
# $VIGIL_DEMO_DIR (default /tmp/vigil-demo); nothing is written elsewhere.
#   VIGIL_DEMO_PROFILE=release (default) | dev   which cargo profile to build
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt-install.sh
. scripts/apt-install.sh
DEMO_PACKAGES=(etcd-server etcd-client age zstd protobuf-compiler libprotobuf-dev)
# A C compiler for the bundled SQLite, zstd and ring, if the machine has none.
command -v cc >/dev/null || DEMO_PACKAGES+=(gcc libc6-dev)
apt_install "${DEMO_PACKAGES[@]}"
PROFILE="${VIGIL_DEMO_PROFILE:-release}"
cargo build --locked --profile "$PROFILE" -p vigil-snapshot -p vigil-restore -p vigil-notify
case "$PROFILE" in dev) BIN="$PWD/target/debug" ;; *) BIN="$PWD/target/$PROFILE" ;; esac
DEMO="${VIGIL_DEMO_DIR:-/tmp/vigil-demo}"
rm -rf "$DEMO"; mkdir -p "$DEMO"; cd "$DEMO"
# Relative secret file names would resolve here, not in /etc/vigil/credentials.
export VIGIL_CREDENTIALS_DIR="$DEMO/credentials"
mkdir -m 0700 "$VIGIL_CREDENTIALS_DIR" metrics

pids=()
cleanup() { [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
cluster="cp-1=http://127.0.0.1:12380,cp-2=http://127.0.0.1:22380,cp-3=http://127.0.0.1:32380"
for i in 1 2 3; do
  etcd --name "cp-$i" --data-dir "etcd-$i" \
    --listen-client-urls "http://127.0.0.1:${i}2379" --advertise-client-urls "http://127.0.0.1:${i}2379" \
    --listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token vigil-demo \
    --log-level warn >"etcd-$i.log" 2>&1 &
  pids+=($!)
done
export ETCDCTL_API=3
for _ in $(seq 1 50); do
  etcdctl --endpoints http://127.0.0.1:12379 endpoint health >/dev/null 2>&1 && break; sleep 0.2
done
echo "== loading demo data (ConfigMaps and Secrets)"
for i in $(seq 1 100); do
  etcdctl --endpoints http://127.0.0.1:12379 put "/registry/configmaps/default/cm-$i" \
    "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm-$i\"},\"data\":{\"k\":\"$(head -c 300 /dev/urandom | base64 -w0)\"}}" >/dev/null
done

age-keygen -o demo-key.txt 2>/dev/null
RECIPIENT=$(age-keygen -y demo-key.txt)
cat > vigil.toml <<TOML
[cluster]
name = "demo"
members = [
  { name = "cp-1", endpoint = "http://127.0.0.1:12379" },
  { name = "cp-2", endpoint = "http://127.0.0.1:22379" },
  { name = "cp-3", endpoint = "http://127.0.0.1:32379" },
]

[snapshot]
dir = "$DEMO/snapshots"
keep_last = 5
age_recipients = ["$RECIPIENT"]

[state]
dir = "$DEMO/state"

# Textfile-collector metrics here instead of node_exporter's directory, and
# no /metrics listener.
[metrics]
textfile_dir = "$DEMO/metrics"
listen = ""

[[alert.channel]]
name = "local-file"
kind = "file"
path = "$DEMO/alerts.jsonl"
TOML

echo "== vigil-snapshot run"
"$BIN/vigil-snapshot" --config vigil.toml run
echo
echo "== vigil-snapshot list"
"$BIN/vigil-snapshot" --config vigil.toml list
echo
echo "== the restore side: vigil-restore list"
"$BIN/vigil-restore" --config vigil.toml list
echo
echo "== vigil-restore fetch --member cp-1 (newest verified archive, decrypted with the demo key)"
"$BIN/vigil-restore" --config vigil.toml fetch --member cp-1 --identity demo-key.txt --out fetched-cp-1.db
etcdctl snapshot status fetched-cp-1.db -w table
ARCHIVE=$(ls "$DEMO"/snapshots/cp-1/*.age | tail -1)
echo
echo "== the archive format is open: decrypting one by hand, without vigil:"
echo "   age -d -i $DEMO/demo-key.txt $ARCHIVE | zstd -d > $DEMO/cp-1.db"
age -d -i demo-key.txt "$ARCHIVE" | zstd -d -q > cp-1.db
cmp -s cp-1.db fetched-cp-1.db && echo "   (the same bytes as vigil-restore fetch wrote)"
echo
echo "== stopping cp-3, then vigil-snapshot run again (exit 1: the job ran and something failed)"
kill "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true
rc=0; "$BIN/vigil-snapshot" --config vigil.toml run || rc=$?
echo "   exit code $rc"
echo
echo "== the job only queued the alert; vigil-notify delivers it (here: to $DEMO/alerts.jsonl)"
"$BIN/vigil-notify" --config vigil.toml run --once
cat alerts.jsonl
echo
echo "== metrics for node_exporter's textfile collector, in $DEMO/metrics:"
ls metrics
echo
echo "The demo lives in $DEMO (config: $DEMO/vigil.toml). The etcd members stop now."
echo "In production the private key (demo-key.txt here) never stays on the bastion."
