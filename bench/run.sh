#!/usr/bin/env bash
# Benchmarks of issue 9 (see BENCHMARKS.md).
#
#   bench/run.sh --size 1GB [--runs 3] [vigil-bench run options]   time every step
#   bench/run.sh cost --size 300MB [--runs 3] [vigil-bench cost options]
#                                                  what a backup costs a loaded cluster
#   bench/run.sh prove --size 1GB [--runs 3] [vigil-bench prove options]
#                                                  what the restore proof costs a run
#   bench/run.sh journal [--burst 60] [--rate 1000] [--steady 300] [vigil-bench journal options]
#                                                  what the watch journal costs (no Ceph)
#   bench/run.sh report bench/results/*.json [--write BENCHMARKS.md]  render the tables
#
# Builds the release binaries first (cargo build --release --bins) unless
# --no-build is given; --bin-dir chooses where vigil-snapshot, vigil-restore
# and vigil-journal come from (default target/release). VIGIL_BENCH
# overrides the vigil-bench binary itself. Needs root for the throwaway Ceph
# (tests/ceph/start-rgw.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    *) args+=("$a") ;;
  esac
done
if [ "${args[0]:-}" = "report" ]; then
  [ $build = 1 ] && [ -z "${VIGIL_BENCH:-}" ] && cargo build --release -p vigil-bench >&2
  exec "${VIGIL_BENCH:-target/release/vigil-bench}" "${args[@]}"
fi
if [ $build = 1 ]; then
  cargo build --release --bins >&2
fi
case "${args[0]:-}" in
  cost | prove | journal) exec "${VIGIL_BENCH:-target/release/vigil-bench}" "${args[@]}" ;;
esac
exec "${VIGIL_BENCH:-target/release/vigil-bench}" run "${args[@]}"
