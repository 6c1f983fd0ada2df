#!/usr/bin/env bash
# Stops what start-cephfs.sh started (only the PIDs it recorded, ceph-fuse
# included), unmounts DIR/mnt and removes DIR. KEEP=1 keeps DIR (logs).
set -uo pipefail
DIR=$1
# a lazy unmount first: with the cluster gone a plain umount could hang
if grep -q " $DIR/mnt fuse" /proc/mounts 2>/dev/null; then
  umount -l "$DIR/mnt" 2>/dev/null || fusermount -uz "$DIR/mnt" 2>/dev/null || true
fi
pids=()
for f in "$DIR"/run/*.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f")
  case "$(cat /proc/"$p"/comm 2>/dev/null)" in ceph-*) kill -KILL "$p" 2>/dev/null && pids+=("$p");; esac
done
for _ in $(seq 1 50); do
  alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break; sleep 0.1
done
[ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
