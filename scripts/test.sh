#!/usr/bin/env bash
# Sets up and runs every test: the one command for CI and for developers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked -- --test-threads="${VIGIL_TEST_THREADS:-2}"
