#!/usr/bin/env bash
# Installs the package built by scripts/build-deb.sh on this machine (as root)
# and checks what an administrator relies on: files, the vigil user, the
# directories, the installed units (systemd-analyze verify and security),
# the package metadata (md5sums, changelog, $auto dependencies, gzipped man
# pages) and the maintainer scripts through install, upgrade, remove, purge.
set -euo pipefail
cd "$(dirname "$0")/.."
DEB="${1:-$(ls -t target/deb/vigil_*.deb | head -1)}"
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "check-deb: ok: $*"; }

# The metrics dir is created by the package if missing; leave the machine as found.
had_textdir=0; [ -d /var/lib/prometheus/node-exporter ] && had_textdir=1
dpkg -i "$DEB" >/dev/null
ok "dpkg -i $DEB"
ver="$(dpkg-deb -f "$DEB" Version)"
[ "$(dpkg-query -W -f='${Status} ${Version}' vigil)" = "install ok installed $ver" ] || fail "dpkg -s vigil: not installed as $ver"
deps="$(dpkg-query -W -f='${Depends}' vigil)"
# $auto: dpkg-shlibdeps' libc6 with a version, plus the declared systemd.
[[ "$deps" =~ libc6\ \(\>=\ [0-9] ]] || fail "Depends has no \$auto libc6: $deps"
[[ "$deps" == *systemd* ]] || fail "Depends lacks systemd: $deps"
ok "Depends: $deps"
[ -s /var/lib/dpkg/info/vigil.md5sums ] || fail "no md5sums"
md5_files="$(wc -l < /var/lib/dpkg/info/vigil.md5sums)"
pkg_files="$(dpkg-deb -c "$DEB" | grep -c '^-')"
[ "$md5_files" = "$pkg_files" ] || fail "md5sums lists $md5_files of $pkg_files files"
out="$(dpkg --verify vigil 2>&1)" || fail "dpkg --verify: $out"
[ -z "$out" ] || fail "dpkg --verify: $out"
ok "md5sums ($md5_files files, dpkg --verify clean)"
cl=/usr/share/doc/vigil/changelog.Debian.gz
gzip -t "$cl" 2>/dev/null || fail "$cl missing or not gzip"
[ "$(zcat "$cl" | dpkg-parsechangelog -l- -SVersion)" = "$ver" ] || fail "changelog's newest entry is not $ver"
ok "changelog ($ver)"
for b in vigil-snapshot vigil-restore vigil-notify vigil-health vigil-quota vigil-journal vigild vigil; do
  [ -x "/usr/bin/$b" ] || fail "/usr/bin/$b missing"
  "/usr/bin/$b" --version >/dev/null || fail "$b --version"
done
g=/usr/lib/systemd/system-generators/vigil-generator
[ -x "$g" ] || fail "$g missing"
ok "binaries, $g"
for b in vigil-snapshot vigil-restore vigil-notify vigil-journal vigild vigil; do
  [ -s "/usr/share/man/man1/$b.1.gz" ] || fail "man page of $b missing"
  grep -q "^\.TH" <(zcat "/usr/share/man/man1/$b.1.gz") || fail "man page of $b is not roff"
  [ -s "/usr/share/bash-completion/completions/$b" ] || fail "bash completion of $b missing"
  [ -s "/usr/share/zsh/vendor-completions/_$b" ] || fail "zsh completion of $b missing"
  [ -s "/usr/share/fish/vendor_completions.d/$b.fish" ] || fail "fish completion of $b missing"
done
[ -s /usr/share/man/man1/vigil-snapshot-run.1.gz ] || fail "subcommand man pages missing"
while read -r f; do
  [[ "$f" == *.gz ]] && gzip -t "$f" 2>/dev/null || fail "man page $f is not gzipped"
done < <(dpkg -L vigil | grep '^/usr/share/man/man[0-9]/.')
m5=/usr/share/man/man5/vigil.toml.5.gz
# Read once: `zcat | grep -q` fails under pipefail when grep stops early (SIGPIPE).
m5_text=$(zcat "$m5")
grep -q '^\.TH VIGIL\.TOML 5' <<<"$m5_text" || fail "vigil.toml(5) missing"
for k in age_recipients webhook_url_file textfile_dir drill_identity_file keep_last; do
  grep -q "^\.BR $k " <<<"$m5_text" || fail "vigil.toml(5) does not document $k"
done
if command -v man >/dev/null; then
  warn="$(MANWIDTH=80 man -l "$m5" 2>&1 >/dev/null)"
  [ -z "$warn" ] || fail "man warns on vigil.toml(5): $warn"
fi
bash -n /usr/share/bash-completion/completions/vigil-snapshot || fail "bash completion does not parse"
ok "man pages and completions"
for f in /usr/lib/sysusers.d/vigil.conf /usr/lib/tmpfiles.d/vigil.conf \
         /usr/share/doc/vigil/examples/rke2.toml /usr/share/doc/vigil/README.md \
         /usr/share/vigil/grafana-dashboard.json /usr/share/vigil/grafana-dashboard-influxdb.json \
         /usr/share/vigil/prometheus-rules.yml; do
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
[ "$(stat -c '%U %a' /etc/vigil/credentials)" = "root 700" ] || fail "/etc/vigil/credentials: $(stat -c '%U %a' /etc/vigil/credentials)"
[ -d /var/lib/prometheus/node-exporter ] || fail "no textfile-collector dir"
if getfacl -p /var/lib/prometheus/node-exporter 2>/dev/null | grep -q '^user:vigil:rwx'; then
  ok "metrics dir ACL for vigil"
else
  echo "check-deb: note: no ACL on /var/lib/prometheus/node-exporter (filesystem without ACLs?)"
fi
ok "directories"

# Every unit of systemd/ is installed, in /usr/lib/systemd/system.
units=()
for u in systemd/*.service systemd/*.timer; do
  f="/usr/lib/systemd/system/$(basename "$u")"
  [ -s "$f" ] || fail "$f missing"
  cmp -s "$u" "$f" || fail "$f differs from $u"
  units+=("$f")
done
ok "${#units[@]} units installed"
post=/var/lib/dpkg/info/vigil.postinst
grep -q 'deb-systemd-helper update-state vigil-notify.service' "$post" || fail "postinst has no deb-systemd-helper snippets"
grep -q 'deb-systemd-invoke try-restart vigil-notify.service' "$post" || fail "postinst does not restart vigil-notify on upgrade"
grep -q 'deb-systemd-invoke try-restart vigil-journal.service' "$post" || fail "postinst does not restart vigil-journal on upgrade"
grep -q 'deb-systemd-helper purge' /var/lib/dpkg/info/vigil.postrm || fail "postrm does not purge the units' state"
# Nothing enabled or started on install: only the "was it enabled before"
# form of enable (dh_installsystemd's --no-enable), no start.
if grep -qE 'deb-systemd-invoke (start|restart) |_dh_action=start' "$post"; then fail "postinst starts units"; fi
[ "$(grep -c 'deb-systemd-helper enable' "$post")" = "$(grep -c 'deb-systemd-helper debian-installed' "$post")" ] ||
  fail "postinst enables units on install"
if ls /etc/systemd/system/*.wants/vigil* >/dev/null 2>&1; then fail "units enabled on install"; fi
ok "maintainer scripts: deb-systemd-helper, nothing enabled or started, vigil-notify and vigil-journal restarted on upgrade"
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
# Upgrade path (configure with the old version as $2), then remove and purge.
dpkg -i "$DEB" >/dev/null || fail "reinstall (upgrade) failed"
ok "upgrade over $ver"
dpkg -r vigil >/dev/null
[ ! -e /usr/bin/vigil-snapshot ] || fail "dpkg -r left binaries"
[ -d /var/lib/vigil ] || fail "dpkg -r removed /var/lib/vigil (archives must stay)"
ok "dpkg -r keeps /var/lib/vigil"
dpkg --purge vigil >/dev/null
[ -d /var/lib/vigil ] || fail "dpkg --purge removed /var/lib/vigil (archives must stay)"
if ls -R /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q vigil; then fail "purge left enablement state"; fi
st="$(dpkg-query -W -f='${db:Status-Status}' vigil 2>/dev/null || true)"
[ -z "$st" ] || [ "$st" = not-installed ] || fail "vigil is $st after purge"
ok "dpkg --purge keeps /var/lib/vigil, removes the units' state"
[ "$had_textdir" = 1 ] || rm -rf /var/lib/prometheus/node-exporter
echo "check-deb: 1 passed, 0 failed"
