#!/usr/bin/env bash
# Builds (once) the Debian 12 root that every box scenario boots a throwaway
# overlay copy of, from Debian's own packages. Cached under target/box/base/<key>,
# keyed by the package list, suite and mirror: a rerun with the same list reuses it.
# Prints the root's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
SUITE=bookworm
# What the box needs: systemd as PID 1, what the .deb depends on (libc6,
# systemd; cargo-deb's $auto adds only libc6/libgcc-s1 for these binaries),
# what README's install steps use (install, scp shim, editor shim, apt), and
# the etcd cluster the jobs talk to (etcd-server, etcd-client, openssl for its PKI).
PACKAGES=(systemd systemd-sysv dbus acl ca-certificates etcd-server etcd-client
  age zstd python3 openssl init-system-helpers libgcc-s1 procps)
mirror() {
  # The first URIs: line of a deb822 source that is not -security.
  local f=/etc/apt/sources.list.d/debian.sources
  [ -r "$f" ] || { echo http://deb.debian.org/debian; return; }
  awk '/^URIs:/ {print $2}' "$f" | grep -v -- -security | head -1
}
MIRROR="${VIGIL_BOX_MIRROR:-$(mirror)}"
key="$(printf '%s\n' "$SUITE" "$MIRROR" "${PACKAGES[@]}" base-v1 | sha256sum | cut -c1-16)"
BASE="$PWD/target/box/base/$key"
if [ -e "$BASE/root/.vigil-box-ready" ]; then echo "$BASE/root"; exit 0; fi

mkdir -p "$PWD/target/box/base"
tmp="$PWD/target/box/base/.build-$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
inc="$(IFS=,; echo "${PACKAGES[*]}")"
if ! debootstrap --variant=minbase --include="$inc" "$SUITE" "$tmp/root" "$MIRROR" >"$tmp/debootstrap.log" 2>&1; then
  tail -30 "$tmp/debootstrap.log" >&2
  echo "box: debootstrap failed (log above)" >&2
  exit 1
fi
r="$tmp/root"
# Debian's etcd-server enables etcd.service on install; the box starts its own
# members (and shares the host's network, where 2379 may be in use).
rm -f "$r"/etc/systemd/system/multi-user.target.wants/etcd.service
ln -sf /dev/null "$r/etc/systemd/system/etcd.service"
# Nothing in the box should reach for the network at boot or wait for it.
ln -sf /dev/null "$r/etc/systemd/system/systemd-networkd-wait-online.service"
ln -sf /dev/null "$r/etc/systemd/system/apt-daily.timer"
ln -sf /dev/null "$r/etc/systemd/system/apt-daily-upgrade.timer"
ln -sf /dev/null "$r/etc/systemd/system/e2scrub_all.timer"
ln -sf /dev/null "$r/etc/systemd/system/fstrim.timer"
echo vigil-box > "$r/etc/hostname"
: > "$r/etc/machine-id"
# apt inside the box installs local .deb files only (no network use, no lists).
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*_Packages 2>/dev/null || true
touch "$r/.vigil-box-ready"
rm -rf "$BASE"; mkdir -p "$BASE"
mv "$r" "$BASE/root"
echo "box: built the Debian $SUITE base in $((SECONDS - start)) s ($BASE)" >&2
echo "$BASE/root"
