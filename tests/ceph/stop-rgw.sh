#!/usr/bin/env bash
# Stops what start-rgw.sh started (only the PIDs it recorded) and removes DIR.
set -uo pipefail
DIR=$1
pids=()
for f in "$DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f")
  case "$(cat /proc/"$p"/comm 2>/dev/null)" in ceph-*|radosgw) kill -KILL "$p" 2>/dev/null && pids+=("$p");; esac
done
for _ in $(seq 1 50); do
  alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break; sleep 0.1
done
rm -rf "$DIR"
