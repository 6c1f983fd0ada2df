# Sourced by install-deps.sh and demo.sh: apt_install PKG... installs the
# packages that are missing, and keeps Debian's daemons among them (etcd,
# prometheus, alertmanager, node_exporter, ceph) from starting: the tests
# and the demo start their own, on their own ports.
#   - during the apt-get install only, /usr/sbin/policy-rc.d exits 101, so
#     the packages' maintainer scripts start nothing (an existing policy-rc.d
#     is put back afterwards);
#   - on a machine with systemd, the units the new packages enabled are
#     disabled and stopped (so they do not start at the next boot either).
apt_install() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  local policy=/usr/sbin/policy-rc.d saved=""
  if [ -e "$policy" ]; then saved="$(mktemp)"; $sudo cp -p "$policy" "$saved"; fi
  printf '#!/bin/sh\n# vigil install-deps: start no daemons during this apt-get install\nexit 101\n' |
    $sudo tee "$policy" >/dev/null
  $sudo chmod 0755 "$policy"
  local rc=0
  $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
  if [ -n "$saved" ]; then $sudo mv "$saved" "$policy"; else $sudo rm -f "$policy"; fi
  [ "$rc" = 0 ] || return "$rc"
  if [ -d /run/systemd/system ]; then
    local units=()
    for p in "${missing[@]}"; do
      while read -r u; do units+=("$(basename "$u")"); done < <(
        dpkg -L "$p" 2>/dev/null | grep -E '^(/usr)?/lib/systemd/system/[^/@]+\.(service|socket|timer|target)$' || true)
    done
    if [ "${#units[@]}" -gt 0 ]; then
      $sudo systemctl disable --now --quiet "${units[@]}" 2>/dev/null || true
      echo "apt_install: disabled and stopped ${units[*]}" >&2
    fi
  fi
}
