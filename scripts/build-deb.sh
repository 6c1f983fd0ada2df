#!/usr/bin/env bash
# Builds the Debian package target/deb/vigil_<version>_<arch>.deb with
# cargo-deb (metadata: [package.metadata.deb] in debian/Cargo.toml):
# binaries, systemd units with dh_installsystemd's maintainer scripts,
# sysusers/tmpfiles files, example configs, the Grafana dashboard and the
# Prometheus rules, and the man pages (vigil.toml(5) included) and shell
# completions, generated here from the binaries themselves.
#   VIGIL_DEB_PROFILE=release (default) | dev   which cargo profile to package
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${VIGIL_DEB_PROFILE:-release}"
command -v cargo-deb >/dev/null || { echo "build-deb: cargo-deb is missing; run scripts/install-deps.sh" >&2; exit 2; }
BINS=(vigil-snapshot vigil-restore vigil-notify vigil-health vigil-quota vigil-journal vigild vigil)
# (vigild's crate also builds vigil-generator; `vigil` is crate vigil-status's,
# since the package metadata crate is called vigil.)
pkgs=(-p vigil-status); for b in "${BINS[@]}"; do [ "$b" = vigil ] || pkgs+=(-p "$b"); done
cargo build --locked --profile "$PROFILE" "${pkgs[@]}"
case "$PROFILE" in dev) BIN=target/debug ;; *) BIN="target/$PROFILE" ;; esac

# Assets cargo-deb takes from target/<profile>/deb-assets/ (see the Cargo.toml).
A="$BIN/deb-assets"
rm -rf "$A"
mkdir -p "$A"/{man1,man5,bash,zsh,fish}
gen="$(mktemp -d)"; trap 'rm -rf "$gen"' EXIT
for b in "${BINS[@]}"; do
  # Man pages and completions come from the binary itself (hidden `__generate`).
  "$BIN/$b" __generate "$gen/$b" >/dev/null
  cp "$gen/$b"/man/*.1 "$A/man1/"
  cp "$gen/$b/completions/bash/$b" "$A/bash/$b"
  cp "$gen/$b/completions/zsh/_$b" "$A/zsh/_$b"
  cp "$gen/$b/completions/fish/$b.fish" "$A/fish/$b.fish"
done
cp "$gen/vigil-snapshot/man/vigil.toml.5" "$A/man5/"
gzip -9n "$A"/man1/*.1 "$A"/man5/*.5
# The units cargo-deb's systemd-units entries pick up by name (templates
# and the sysusers/tmpfiles files are plain assets).
rm -rf target/deb-units
mkdir -p target/deb-units
cp systemd/*.service systemd/*.timer target/deb-units/

VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
ARCH="$(dpkg --print-architecture)"
OUT="target/deb/vigil_${VERSION}_${ARCH}.deb"
mkdir -p target/deb
# --no-build: built above (the `vigil` crate itself has nothing to build).
# --strip: the package carries no debug info (as before cargo-deb). CI
# packages the dev profile (no second, cold build; cargo-deb warns that it
# is meant for release profiles) and compresses it fast.
fast=(); [ "$PROFILE" = dev ] && fast=(--fast)
cargo deb --locked --no-build --strip --profile "$PROFILE" -p vigil "${fast[@]}" --output "$OUT" >/dev/null

# cargo-deb 3 writes no md5sums (dpkg --verify and debsums read them): add
# them to the control archive, from the data archive as packaged.
work="$(mktemp -d)"; trap 'rm -rf "$gen" "$work"' EXIT
(
  cd "$work"
  ar x "$OLDPWD/$OUT"
  ctl=$(ls control.tar.*) data=$(ls data.tar.*)
  mkdir c d
  tar -xaf "$ctl" -C c
  tar -xaf "$data" -C d
  (cd d && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > c/md5sums
  rm "$ctl"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -caf "$ctl" -C c .
  ar r "$OLDPWD/$OUT" "$ctl"
)
echo "$OUT"
