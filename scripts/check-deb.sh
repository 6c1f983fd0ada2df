#!/usr/bin/env bash
# Installs the package built by scripts/build-deb.sh on this machine (as root)
# and checks what an administrator relies on: files, the vigil user, the
# directories, and the installed units (systemd-analyze verify and security).
set -euo pipefail
cd "$(dirname "$0")/.."
DEB="${1:-$(ls -t target/deb/vigil_*.deb | head -1)}"
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "check-deb: ok: $*"; }

# The metrics dir is created by the package if missing; leave the machine as found.
had_textdir=0; [ -d /var/lib/prometheus/node-exporter ] && had_textdir=1
dpkg -i "$DEB" >/dev/null
ok "dpkg -i $DEB"
for b in vigil-snapshot vigil-restore vigil-notify vigil-health vigil-quota vigild; do
  [ -x "/usr/bin/$b" ] || fail "/usr/bin/$b missing"
  "/usr/bin/$b" --version >/dev/null || fail "$b --version"
done
ok "binaries"
for b in vigil-snapshot vigil-restore vigil-notify vigild; do
  [ -s "/usr/share/man/man1/$b.1.gz" ] || fail "man page of $b missing"
  zcat "/usr/share/man/man1/$b.1.gz" | grep -q '^\.TH' || fail "man page of $b is not roff"
  [ -s "/usr/share/bash-completion/completions/$b" ] || fail "bash completion of $b missing"
  [ -s "/usr/share/zsh/vendor-completions/_$b" ] || fail "zsh completion of $b missing"
  [ -s "/usr/share/fish/vendor_completions.d/$b.fish" ] || fail "fish completion of $b missing"
done
[ -s /usr/share/man/man1/vigil-snapshot-run.1.gz ] || fail "subcommand man pages missing"
bash -n /usr/share/bash-completion/completions/vigil-snapshot || fail "bash completion does not parse"
ok "man pages and completions"
for f in /usr/lib/sysusers.d/vigil.conf /usr/lib/tmpfiles.d/vigil.conf \
         /usr/share/doc/vigil/examples/rke2.toml /usr/share/doc/vigil/README.md \
         /usr/share/vigil/grafana-dashboard.json /usr/share/vigil/prometheus-rules.yml; do
  [ -s "$f" ] || fail "$f missing"
done
ok "config examples, dashboard, rules"

getent passwd vigil >/dev/null || fail "no vigil user"
[ "$(getent passwd vigil | cut -d: -f7)" = /usr/sbin/nologin ] || fail "vigil has a login shell"
[ "$(getent passwd vigil | cut -d: -f3)" -lt 1000 ] || fail "vigil is not a system user"
ok "user $(getent passwd vigil)"
[ "$(stat -c '%U %a' /var/lib/vigil)" = "vigil 700" ] || fail "/var/lib/vigil: $(stat -c '%U %a' /var/lib/vigil)"
[ "$(stat -c '%U %a' /var/lib/vigil/state)" = "vigil 700" ] || fail "/var/lib/vigil/state"
[ "$(stat -c '%U %G %a' /etc/vigil)" = "root vigil 750" ] || fail "/etc/vigil: $(stat -c '%U %G %a' /etc/vigil)"
for c in snapshot drill health quota notify; do
  [ "$(stat -c '%U %a' /etc/vigil/credentials/$c)" = "root 700" ] || fail "/etc/vigil/credentials/$c"
done
[ -d /var/lib/prometheus/node-exporter ] || fail "no textfile-collector dir"
if getfacl -p /var/lib/prometheus/node-exporter 2>/dev/null | grep -q '^user:vigil:rwx'; then
  ok "metrics dir ACL for vigil"
else
  echo "check-deb: note: no ACL on /var/lib/prometheus/node-exporter (filesystem without ACLs?)"
fi
ok "directories"

units=(/lib/systemd/system/vigil-*.service /lib/systemd/system/vigil-*.timer)
[ "${#units[@]}" -ge 22 ] || fail "expected 22 units, found ${#units[@]}"
# Templates are verified as an instance, the way an administrator enables them.
inst="$(mktemp -d)"; trap 'rm -rf "$inst"' EXIT
plain=()
for u in "${units[@]}"; do
  n="$(basename "$u")"
  if [[ "$n" == *@.* ]]; then cp "$u" "$inst/${n/@./@prod.}"; plain+=("$inst/${n/@./@prod.}"); else plain+=("$u"); fi
done
out="$(systemd-analyze verify --man=no "${plain[@]}" 2>&1)" || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
ok "systemd-analyze verify (${#plain[@]} units)"
for u in "${plain[@]}"; do
  [[ "$u" == *.service ]] || continue
  line="$(systemd-analyze security --offline=true "$u" 2>&1 | grep 'Overall exposure level')"
  score="$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')"
  awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || fail "$line"
  echo "check-deb: ok: $line"
done
dpkg -r vigil >/dev/null
[ ! -e /usr/bin/vigil-snapshot ] || fail "dpkg -r left binaries"
[ -d /var/lib/vigil ] || fail "dpkg -r removed /var/lib/vigil (archives must stay)"
ok "dpkg -r keeps /var/lib/vigil"
[ "$had_textdir" = 1 ] || rm -rf /var/lib/prometheus/node-exporter
echo "check-deb: 1 passed, 0 failed"
