#!/usr/bin/env bash
# Builds the Debian package target/deb/vigil_<version>_<arch>.deb with dpkg-deb:
# binaries, systemd units, sysusers/tmpfiles files, example configs, man pages
# and shell completions generated from the clap definitions, the Grafana
# dashboard and the Prometheus rules.
#   VIGIL_DEB_PROFILE=release (default) | dev   which cargo profile to package
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${VIGIL_DEB_PROFILE:-release}"
BINS=(vigil-snapshot vigil-restore vigil-notify vigil-health vigil-quota vigild)
pkgs=(); for b in "${BINS[@]}"; do pkgs+=(-p "$b"); done
cargo build --locked --profile "$PROFILE" "${pkgs[@]}"
case "$PROFILE" in dev) BIN=target/debug ;; *) BIN="target/$PROFILE" ;; esac

VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
ARCH="$(dpkg --print-architecture)"
OUT=target/deb
ROOT="$OUT/vigil_${VERSION}_${ARCH}"
rm -rf "$ROOT"
install -d "$ROOT/DEBIAN" "$ROOT/usr/bin" "$ROOT/lib/systemd/system" \
  "$ROOT/usr/lib/sysusers.d" "$ROOT/usr/lib/tmpfiles.d" \
  "$ROOT/usr/share/doc/vigil/examples" "$ROOT/usr/share/vigil" "$ROOT/usr/share/man/man1" \
  "$ROOT/usr/share/bash-completion/completions" "$ROOT/usr/share/zsh/vendor-completions" \
  "$ROOT/usr/share/fish/vendor_completions.d"

gen="$(mktemp -d)"; trap 'rm -rf "$gen"' EXIT
for b in "${BINS[@]}"; do
  install -m 0755 "$BIN/$b" "$ROOT/usr/bin/$b"
  strip --strip-debug "$ROOT/usr/bin/$b" 2>/dev/null || true
  # Man pages and completions come from the binary itself (hidden `__generate`).
  if "$BIN/$b" __generate "$gen/$b" >/dev/null 2>&1; then
    install -m 0644 "$gen/$b"/man/*.1 "$ROOT/usr/share/man/man1/"
    install -m 0644 "$gen/$b/completions/bash/$b" "$ROOT/usr/share/bash-completion/completions/$b"
    install -m 0644 "$gen/$b/completions/zsh/_$b" "$ROOT/usr/share/zsh/vendor-completions/_$b"
    install -m 0644 "$gen/$b/completions/fish/$b.fish" "$ROOT/usr/share/fish/vendor_completions.d/$b.fish"
  else
    echo "build-deb: $b cannot generate its man page and completions yet; packaged without them" >&2
  fi
done
gzip -9n "$ROOT"/usr/share/man/man1/*.1

install -m 0644 systemd/*.service systemd/*.timer "$ROOT/lib/systemd/system/"
install -m 0644 systemd/vigil.sysusers "$ROOT/usr/lib/sysusers.d/vigil.conf"
install -m 0644 systemd/vigil.tmpfiles "$ROOT/usr/lib/tmpfiles.d/vigil.conf"
install -m 0644 config/*.toml "$ROOT/usr/share/doc/vigil/examples/"
install -m 0644 config/grafana-dashboard.json config/prometheus-rules.yml "$ROOT/usr/share/vigil/"
install -m 0644 README.md "$ROOT/usr/share/doc/vigil/README.md"
cat > "$ROOT/usr/share/doc/vigil/copyright" <<'TXT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vigil
License: Apache-2.0
Files: *
Copyright: the vigil authors
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
TXT

SIZE="$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)"
cat > "$ROOT/DEBIAN/control" <<TXT
Package: vigil
Version: $VERSION
Architecture: $ARCH
Maintainer: vigil maintainers <vigil@localhost>
Installed-Size: $SIZE
Depends: libc6, systemd
Recommends: age, zstd, etcd-client
Suggests: prometheus-node-exporter
Section: admin
Priority: optional
Homepage: https://example.invalid/vigil
Description: etcd backup and ops appliance for the bastion of an RKE2 cluster
 vigil snapshots etcd from every member, verifies the stream against etcd's
 sha256 trailer, compresses it with zstd, encrypts it with age, ships it to
 object storage and tape, proves it restores with weekly drills, checks
 health and quotas, and alerts to Slack, Teams, email and Alertmanager.
 Ships hardened systemd units and timers, Prometheus metrics, a Grafana
 dashboard and alert rules.
TXT

cat > "$ROOT/DEBIAN/postinst" <<'TXT'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  systemd-sysusers vigil.conf
  # The ACL for the metrics directory needs a filesystem with ACLs; the rest does not.
  systemd-tmpfiles --create vigil.conf || echo "vigil: systemd-tmpfiles reported a problem (see above)" >&2
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
  if [ ! -e /etc/vigil/vigil.toml ]; then
    echo "vigil: write /etc/vigil/vigil.toml (examples in /usr/share/doc/vigil/examples), then: systemctl enable --now vigil-snapshot.timer vigil-notify.service"
  fi
fi
TXT
cat > "$ROOT/DEBIAN/prerm" <<'TXT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop 'vigil-*.timer' 'vigil-*.service' >/dev/null 2>&1 || true
fi
TXT
cat > "$ROOT/DEBIAN/postrm" <<'TXT'
#!/bin/sh
set -e
# Archives, state and the vigil user stay, even on purge: they may be the last copy.
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
TXT
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$OUT/vigil_${VERSION}_${ARCH}.deb" >/dev/null
echo "$OUT/vigil_${VERSION}_${ARCH}.deb"
