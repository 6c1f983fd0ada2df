#!/usr/bin/env bash
# `vigil-restore fetch` against the stock pipe, on one local archive
# (BENCHMARKS.md, "Restore: fetch"):
#
#   vigil-restore fetch --source local --identity KEY --out OUT
#   sh -c 'age -d -i KEY ARCHIVE | zstd -d -q > OUT && sync OUT'
#
#   scripts/bench-fetch.sh [--size 1GB] [--runs 3] [--workdir DIR] [--also LABEL=BIN]... [--keep | --reuse]
#
# Starts one throwaway etcd on loopback, fills it with `vigil-bench gen`
# (the dataset of bench/run.sh, seed 1), archives it once with
# `vigil-snapshot run` (local dir only, zstd level 1, age), then times the
# steps interleaved, --runs rounds, each under /usr/bin/time, and prints
# the medians. --also LABEL=BIN also times another vigil-restore binary
# in the same rounds, as fetch_LABEL (a before/after comparison). --keep keeps the work dir
# (etcd stopped), --reuse times again the archive a --keep run left. The
# archive is read from
# the page cache by every step alike; both outputs are synced to disk.
# Needs target/release/{vigil-bench,vigil-snapshot,vigil-restore}, etcd,
# age, zstd and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
size=1GB runs=3 work=/var/tmp/vigil-bench-fetch also=() keep=0 reuse=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift ;;
    --runs) runs=$2; shift ;;
    --workdir) work=$2; shift ;;
    --also) also+=("$2"); shift ;;
    --keep) keep=1 ;;
    --reuse) reuse=1 keep=1 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
bin=$PWD/target/release
if [ $reuse = 0 ]; then
rm -rf "$work"
mkdir -p "$work"
work=$(realpath "$work")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(free_port) pport=$(free_port)
etcd --name cp-1 --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "cp-1=http://127.0.0.1:$pport" --quota-backend-bytes 8589934592 \
  >"$work/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() {
  kill "$etcd_pid" 2>/dev/null || true
  wait "$etcd_pid" 2>/dev/null || true
  [ $keep = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 50); do
  ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$cport" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done

"$bin/vigil-bench" gen --endpoints "http://127.0.0.1:$cport" --size "$size" --seed 1 >&2
age-keygen -o "$work/key.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/key.txt")
cat >"$work/vigil.toml" <<EOF
[cluster]
name = "prod"
members = [ { name = "cp-1", endpoint = "http://127.0.0.1:$cport", peer_url = "http://127.0.0.1:$pport" } ]

[snapshot]
dir = "$work/snapshots"
keep_last = 1
age_recipients = ["$recipient"]
zstd_level = 1

[state]
dir = "$work/state"
EOF
VIGIL_LOG=warn "$bin/vigil-snapshot" --config "$work/vigil.toml" run --json >"$work/report.json"
  kill "$etcd_pid"
  wait "$etcd_pid" 2>/dev/null || true
fi
trap '[ $keep = 1 ] || rm -rf "$work"' EXIT
work=$(realpath "$work")
rm -f "$work"/*.times
archive=$(ls "$work"/snapshots/cp-1/*.db.zst.age)
echo "archive $archive ($(stat -c %s "$archive") bytes)" >&2

# step NAME CMD...: one timed run, appended to $work/NAME.times as "wall cpu maxrss_kib".
step() {
  local name=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S %M" -o "$work/time.out" "$@" >/dev/null 2>"$work/stderr.out" || {
    cat "$work/stderr.out" >&2
    exit 1
  }
  t1=$(date +%s.%N)
  read -r u s m <"$work/time.out"
  echo "$(echo "$t1 - $t0" | bc) $(echo "$u + $s" | bc) $m" >>"$work/$name.times"
  rm -f "$work/out.db"
}
fetch_args=(--config "$work/vigil.toml" fetch --source local --identity "$work/key.txt" --out "$work/out.db")
for r in $(seq "$runs"); do
  echo "== round $r of $runs (load $(cut -d" " -f1-3 /proc/loadavg))" >&2
  step fetch env VIGIL_LOG=warn "$bin/vigil-restore" "${fetch_args[@]}"
  for a in "${also[@]}"; do
    step "fetch_${a%%=*}" env VIGIL_LOG=warn "$(realpath "${a#*=}")" "${fetch_args[@]}"
  done
  step pipe sh -c "age -d -i '$work/key.txt' '$archive' | zstd -d -q > '$work/out.db' && sync '$work/out.db'"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for f in "$work"/*.times; do
  name=$(basename "$f" .times)
  [ -f "$f" ] || continue
  printf '%-13s wall %s s (runs: %s)  cpu %s s  maxrss %s KiB\n' "$name" \
    "$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f1 "$f" | tr '\n' ' ')" \
    "$(cut -d' ' -f2 "$f" | median)" "$(cut -d' ' -f3 "$f" | sort -n | tail -1)"
done
