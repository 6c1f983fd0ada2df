#!/usr/bin/env bash
# Quick start: installs what is missing, starts a throwaway three-member etcd
# on loopback with some data, makes a demo age key, and runs vigil-snapshot
# on that embedded default. Everything lives in $VIGIL_DEMO_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --bins --locked
BIN="$PWD/target/release"
DEMO="${VIGIL_DEMO_DIR:-/tmp/vigil-demo}"
rm -rf "$DEMO"; mkdir -p "$DEMO"; cd "$DEMO"

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
ARCHIVE=$(ls "$DEMO"/snapshots/cp-1/*.age | tail -1)
echo
echo "== decrypting one archive by hand, without vigil:"
echo "   age -d -i $DEMO/demo-key.txt $ARCHIVE | zstd -d > $DEMO/cp-1.db"
age -d -i demo-key.txt "$ARCHIVE" | zstd -d -q > cp-1.db
echo "   etcdctl snapshot status $DEMO/cp-1.db"
etcdctl snapshot status cp-1.db -w table
echo
echo "The demo lives in $DEMO (config: $DEMO/vigil.toml). The etcd members stop now."
echo "In production the private key (demo-key.txt here) never stays on the bastion."
