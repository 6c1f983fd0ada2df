#!/usr/bin/env bash
# CI stage "the bastion in a box" (issue 13 point 7). Boots Debian 12 with
# systemd as PID 1 (systemd-nspawn --boot) from a debootstrapped base that is
# built once and cached (tests/box/base.sh), installs the freshly built .deb
# and follows README.md's "Install on a bastion" steps LITERALLY: the ```sh
# blocks of that section are extracted (tests/box/readme_blocks.py) and run in
# order as root. The harness knows only what README tells an administrator;
# the administrator's own hand work is two shims in the box's /usr/local/bin:
# `editor` (writes the box's config / the webhook URL) and `scp` (the "server
# node" files are at RKE2's paths inside the box). ```console blocks (building
# the package on a build host) are not run: the harness built the package.
# Then it starts the units and checks what they did against a real 3-member
# etcd (mTLS, RKE2 layout) and a Slack-like receiver, all on loopback.
#
#   bash tests/box/run.sh [DEB]     as root; DEB defaults to the newest target/deb/vigil_*.deb
#   BOX_SCENARIOS="timers vigild"   which scenarios to run (default both)
#   BOX_KEEP=1                      keep each scenario's overlay dir for a look afterwards
# Ends with `box: N passed, M failed, K skipped`; exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
HERE="$REPO/tests/box"
start_time=$SECONDS
[ "$(id -u)" = 0 ] || { echo "box: FAIL: needs root (debootstrap, overlayfs, systemd-nspawn)"; echo "box: 0 passed, 1 failed, 0 skipped"; exit 1; }
for t in debootstrap systemd-nspawn nsenter age-keygen python3 dpkg-deb; do
  command -v "$t" >/dev/null || { echo "box: FAIL: $t missing (scripts/install-deps.sh installs it)"; echo "box: 0 passed, 1 failed, 0 skipped"; exit 1; }
done
DEB="${1:-$(ls -t target/deb/vigil_*.deb 2>/dev/null | head -1)}"
[ -n "$DEB" ] && [ -f "$DEB" ] || { echo "box: FAIL: no package (build it with scripts/build-deb.sh)"; echo "box: 0 passed, 1 failed, 0 skipped"; exit 1; }
# A copy of the package as it is now: a concurrent build may rewrite target/deb.
mkdir -p "$REPO/target/box/pkg"; rm -f "$REPO/target/box/pkg/"*.deb
cp "$DEB" "$REPO/target/box/pkg/" && DEB="$REPO/target/box/pkg/$(basename "$DEB")"
dpkg-deb -I "$DEB" >/dev/null || { echo "box: FAIL: $DEB is not a readable package"; echo "box: 0 passed, 1 failed, 0 skipped"; exit 1; }
BOX_WORK="$REPO/target/box/run"
BOX_LOGS="$REPO/target/box/logs"   # each scenario's journal and Slack messages, kept after the run
rm -rf "$BOX_LOGS"
. "$HERE/lib.sh"
# Leftovers of a run that was killed outright: overlays no nspawn uses any more.
for m in "$BOX_WORK"/*/merged; do
  mountpoint -q "$m" 2>/dev/null || continue
  pgrep -f "systemd-nspawn -q -D $m " >/dev/null && continue
  note "unmounting the leftover overlay $m"; umount "$m" || umount -l "$m"
done
trap 'box_down' EXIT
trap 'box_down; exit 130' INT TERM

BASE="$(bash "$HERE/base.sh")" || { fail "debootstrap the Debian 12 base"; echo "box: $BOX_PASSED passed, $BOX_FAILED failed, $BOX_SKIPPED skipped"; exit 1; }
note "base $BASE ($((SECONDS - start_time)) s)"

# The upgrade: the same package with a higher version (what the next release looks like to dpkg).
mkdir -p "$REPO/target/box"
VER="$(dpkg-deb -f "$DEB" Version)"
UPG="$REPO/target/box/upgrade/vigil_${VER}+box1_$(dpkg-deb -f "$DEB" Architecture).deb"
rm -rf "$REPO/target/box/upgrade"; mkdir -p "$REPO/target/box/upgrade"
x="$REPO/target/box/upgrade/x"
dpkg-deb -R "$DEB" "$x" && sed -i "s/^Version: .*/Version: ${VER}+box1/" "$x/DEBIAN/control" &&
  dpkg-deb -Zxz -b "$x" "$UPG" >/dev/null && rm -rf "$x" || note "could not repack $DEB as an upgrade"

# Ports for everything (the box shares the host's network): a free block below
# the ephemeral range.
PORTS="$(python3 - <<'PY'
import random, socket
for _ in range(200):
    b = random.randrange(20000, 31990)
    socks = []
    try:
        for p in range(b, b + 8):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(" ".join(str(p) for p in range(b, b + 8))); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)"
read -r C1 C2 C3 P1 P2 P3 SLACK METRICS <<<"$PORTS"
SLACK_LOG=/srv/box-slack/messages.jsonl

# ---- helpers inside the box ----------------------------------------------
# wait_in SECONDS SCRIPT: polls SCRIPT inside the box until it succeeds.
wait_in() {
  local deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ]; do box_sh "$2" >/dev/null 2>&1 && return 0; sleep 1; done
  box_sh "$2"
}
slack_mark() { box_sh "wc -l < $SLACK_LOG"; }
# slack_since MARK: messages after line MARK.
slack_since() { box_sh "tail -n +$(($1 + 1)) $SLACK_LOG"; }
# slack_wait MARK SECONDS PATTERN...: a message after MARK matching every (grep -Ei) PATTERN.
slack_wait() {
  local mark="$1" secs="$2"; shift 2
  local filt="tail -n +$((mark + 1)) $SLACK_LOG" p
  for p in "$@"; do filt+=" | grep -Ei -- '$p'"; done
  wait_in "$secs" "[ -n \"\$($filt)\" ]" >/dev/null 2>&1 && return 0
  echo "no Slack message matching $* within $secs s; received since:"; slack_since "$mark" | cut -c1-400
  return 1
}
unit_ok() { # UNIT: start it and show its result and the tail of its log on failure
  # reset-failed: the harness starts the same job more often than systemd's start
  # rate limit (5 in 10 s) allows; an administrator does not.
  box_sh "systemctl reset-failed $1 2>/dev/null; systemctl start $1" && return 0
  box_sh "systemctl show -p Result -p ExecMainStatus $1 | tr '\n' ' '; echo
    journalctl -q -u $1 -n 60 --no-pager | grep -Ei 'error|fail|denied|read-only|warn' | grep -v 'Triggering OnFailure' | tail -8"
  return 1
}
archived_script() { # DIR: a script that succeeds once every member has an archive (and its manifest) under DIR
  echo "for m in cp-1 cp-2 cp-3; do
    a=\$(find $1 -path \"*\$m*\" -name '*.db.zst.age' 2>/dev/null | head -1)
    [ -n \"\$a\" ] && [ -s \"\$a.json\" ] || { echo \"no archive of \$m under $1:\"; find $1 2>&1 | head -20; exit 1; }
  done"
}
members_archived() { box_sh "$(archived_script "$1")"; }

# box_up SCENARIO: boot, put the harness and the package in, start etcd and the receiver.
box_up() {
  local scenario="$1"
  box_boot "$scenario" "$BASE" || return 1
  local r="$BOX_ROOT"
  install -d -m 0755 "$r/opt/box"
  install -m 0755 "$HERE/etcd.sh" "$HERE/slack.py" "$r/opt/box/"
  install -m 0644 "$HERE/vigil.toml" "$HERE/daemon.toml" "$r/opt/box/"
  install -m 0755 "$HERE/shims/editor" "$HERE/shims/scp" "$r/usr/local/bin/"
  cat > "$r/opt/box/env" <<ENV
SCENARIO=$scenario
C1=$C1 C2=$C2 C3=$C3 P1=$P1 P2=$P2 P3=$P3 SLACK=$SLACK METRICS=$METRICS
ENV
  # The administrator's offline age key: its public half goes into the config, the key stays off the bastion.
  age-keygen -o "$r/opt/box/offline-key.txt" 2>/dev/null
  # The package, copied to the bastion by the administrator (README: `apt install ./vigil_*.deb`).
  install -m 0644 "$DEB" "$r/root/"
  install -d "$r/root/upgrade"; [ -f "$UPG" ] && install -m 0644 "$UPG" "$r/root/upgrade/"
  box_sh '/opt/box/etcd.sh up' >"$BOX_DIR/etcd.log" 2>&1 || { note "etcd did not come up:"; tail -20 "$BOX_DIR/etcd.log" >&2; return 1; }
  box_sh "mkdir -p ${SLACK_LOG%/*} && systemd-run -q --unit=box-slack /usr/bin/python3 /opt/box/slack.py $SLACK $SLACK_LOG" || return 1
  wait_in 10 "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $SLACK), 1)'" >/dev/null || return 1
  note "$scenario: etcd cp-1..3 on https://127.0.0.1:$C1-$C3, Slack receiver on :$SLACK"
}

# readme_install SCENARIO: README's install blocks, in order, as root in /root, bash -eu.
readme_install() {
  local scenario="$1" i=0 body first
  python3 "$HERE/readme_blocks.py" --list README.md "$scenario" | sed 's/^/box:   README /' >&2
  while IFS= read -r -d '' body; do
    i=$((i + 1))
    printf '%s' "$body" > "$BOX_ROOT/opt/box/readme-$i.sh"
    first="$(printf '%s\n' "$body" | grep -v '^\s*#' | grep -v '^\s*$' | head -1 | cut -c1-60)"
    check "$scenario: README install block $i ($first ...)" box_sh "cd /root && bash -eu /opt/box/readme-$i.sh"
  done < <(python3 "$HERE/readme_blocks.py" README.md "$scenario")
  [ "$i" -gt 0 ] || fail "$scenario: no README install blocks found"
}

# hold: with BOX_HOLD=1, waits after the README steps so one can look inside.
hold() {
  [ -n "${BOX_HOLD:-}" ] || return 0
  note "BOX_HOLD: box $BOX_NAME is up (nsenter -t $BOX_PID -a bash); touch $BOX_WORK/continue to go on"
  while [ ! -e "$BOX_WORK/continue" ]; do sleep 1; done
  rm -f "$BOX_WORK/continue"
}

# PROVEN: every member's newest local archive carries a passing restore proof,
# and no proof plaintext is visible outside the unit that made it.
PROVEN='
    for m in cp-1 cp-2 cp-3; do
      j=$(ls /var/lib/vigil/snapshots/$m/*.db.zst.age.json | sort | tail -1)
      python3 -c "import json,sys; m=json.load(open(sys.argv[1])); p=m.get(\"restore_proof\") or {}; ok=p.get(\"result\")==\"proven\" and p.get(\"hash_kv\")==p.get(\"live_hash_kv\") and m.get(\"restore_proven_at\"); print(sys.argv[1], json.dumps(p)); sys.exit(0 if ok else 1)" "$j" || exit 1
    done
    # The proof ran in a tmpfs of the unit alone: the host sees an empty mount point at most.
    [ -z "$(ls -A /run/vigil-proof 2>/dev/null)" ] || { echo "visible outside the unit: /run/vigil-proof:"; ls -la /run/vigil-proof; exit 1; }
    left=$(find /dev/shm -name "vigil-proof-*" 2>/dev/null); [ -z "$left" ] || { echo "left in /dev/shm: $left"; exit 1; }'

# JOURNALED: the journal dir holds segments, each with its manifest.
JOURNALED='
    n=0
    for f in $(find /var/lib/vigil/journal -name "*.jsonl.zst.age" 2>/dev/null); do
      [ -s "$f.json" ] || { echo "no manifest: $f"; exit 1; }; n=$((n + 1))
    done
    echo "$n segment(s)"; [ "$n" -ge 1 ] || { ls -la /var/lib/vigil/journal 2>&1; exit 1; }'

# ---- scenario a: timers ---------------------------------------------------
scenario_timers() {
  local s=timers
  box_up $s || { fail "$s: box up (boot, package, etcd, receiver)"; box_down; return; }
  readme_install $s
  hold

  check "$s: vigil-snapshot.service succeeds" unit_ok vigil-snapshot.service
  check "$s: it archived cp-1, cp-2, cp-3 locally (/var/lib/vigil/snapshots/<member>/)" members_archived /var/lib/vigil/snapshots
  check "$s: and to the dir sink outside /var/lib/vigil (/srv/backuppc-staging/vigil)" members_archived /srv/backuppc-staging/vigil
  box_check "$s: an archive opens without vigil: age -d (offline key) | zstd -d, etcdctl snapshot status" '
    a=$(find /var/lib/vigil/snapshots/cp-1 -name "*.db.zst.age" | sort | tail -1)
    age -d -i /opt/box/offline-key.txt "$a" | zstd -dq > /tmp/snap.db && ETCDCTL_API=3 etcdctl snapshot status /tmp/snap.db -w table'
  check "$s: scrub (vigil-snapshot-scrub.service) succeeds" unit_ok vigil-snapshot-scrub.service
  box_check "$s: no private key on the bastion (only /opt/box, the administrators' side, has one)" '
    found=$(grep -rlI "AGE-SECRET-KEY-" /etc /var/lib/vigil /root /run /dev/shm 2>/dev/null || true)
    [ -z "$found" ] || { echo "private key on the bastion: $found"; exit 1; }'
  box_check "$s: every member's newest archive is proven restorable (restore_proof: hash_kv as the member)" "$PROVEN"
  # Continuous backup: the box's config has a [journal] section; the package enables nothing.
  # Up before the drill, which proves the journal too when there is one.
  box_check "$s: vigil-journal.service is not enabled by the package" '! systemctl is-enabled -q vigil-journal.service'
  box_check "$s: systemctl enable --now vigil-journal.service: active (READY=1), with a watchdog" '
    systemctl enable -q --now vigil-journal.service
    systemctl is-active vigil-journal.service; w=$(systemctl show -P WatchdogUSec vigil-journal.service); echo "WatchdogUSec=$w"; [ "$w" != 0 ] && [ "$w" != infinity ]'
  box_sh 'for i in $(seq 1 20); do /opt/box/etcd.sh ctl put /registry/configmaps/default/journal-$i "v$i" >/dev/null; done'
  check "$s: ... writes segments (*.jsonl.zst.age, each with its *.json manifest) into /var/lib/vigil/journal" \
    wait_in 30 "$JOURNALED"
  box_check "$s: ... the journal dir is vigil's 0700, every file in it 0600" '
    [ "$(stat -c "%U %a" /var/lib/vigil/journal)" = "vigil 700" ] || { stat -c "%n %U %a" /var/lib/vigil/journal; exit 1; }
    bad=$(find /var/lib/vigil/journal -type f ! -perm 0600); [ -z "$bad" ] || { echo "not 0600: $bad"; exit 1; }'
  check "$s: ... and ships them to the dir sink (_journal/)" wait_in 30 '
    [ -n "$(find /srv/backuppc-staging/vigil -path "*_journal*" -name "*.jsonl.zst.age.json")" ]'
  box_check "$s: vigil-journal verify (local) and --source backuppc: the chain is whole" '
    vigil-journal verify && vigil-journal verify --source backuppc'
  box_check "$s: the offline drill by hand, key piped in (runuser -u vigil -- vigil-restore drill --identity -)" '
    runuser -u vigil -- vigil-restore --config /etc/vigil/vigil.toml drill --identity - < /opt/box/offline-key.txt'
  check "$s: vigil-health.service succeeds" unit_ok vigil-health.service
  box_check "$s: vigil-notify.service is active, with a watchdog" '
    systemctl is-active vigil-notify.service; w=$(systemctl show -P WatchdogUSec vigil-notify.service); echo "WatchdogUSec=$w"; [ "$w" != 0 ] && [ "$w" != infinity ]'
  box_check "$s: vigil status (root shell): every member and the backuppc sink from state, the timers from systemd with a next run, the exit code its level" '
    rc=0; vigil status || rc=$?
    rj=0; vigil status --json > /tmp/status.json || rj=$?
    [ "$rc" = "$rj" ] || { echo "exit $rc (text) vs $rj (json)"; exit 1; }
    python3 - "$rj" <<"PY"
import json, sys
s = json.load(open("/tmp/status.json")); c = s["clusters"][0]
code = {"ok": 0, "warning": 1, "critical": 2}[s["level"]]
assert code == int(sys.argv[1]), (code, sys.argv[1])
for m in c["members"]:
    assert m["archive"] and m["age_seconds"] is not None, m
sink = [x for x in c["sinks"] if x["sink"] == "backuppc"][0]
assert sink["newest_copy"] and sink["last_ship"]["ok"], sink
assert c["timers_note"] is None, c["timers_note"]
t = {x["unit"]: x for x in c["timers"]}
snap = t["vigil-snapshot.timer"]
assert snap["active"] == "active", snap
print("vigil-snapshot.timer last", snap["last"], "next", snap["next"])
assert t["vigil-journal.service"]["active"] == "active", t["vigil-journal.service"]
assert c["journal"]["segments"] >= 1, c["journal"]
print("level", s["level"], "problems", c["problems"])
PY'
  box_check "$s: systemctl stop right after a write: the open segment is closed (it holds the cluster revision), no *.partial, a clean exit" '
    /opt/box/etcd.sh ctl put /registry/configmaps/default/journal-last x >/dev/null
    rev=$(/opt/box/etcd.sh ctl endpoint status -w json | python3 -c "import json,sys; print(max(e[\"Status\"][\"header\"][\"revision\"] for e in json.load(sys.stdin)))")
    sleep 1
    systemctl stop vigil-journal.service
    a=$(systemctl show -P ActiveState vigil-journal.service); r=$(systemctl show -P Result vigil-journal.service); echo "ActiveState=$a Result=$r"
    [ "$a" = inactive ] && [ "$r" = success ] || exit 1
    p=$(find /var/lib/vigil/journal -name "*.partial"); [ -z "$p" ] || { echo "left: $p"; exit 1; }
    last=$(vigil-journal verify --json | python3 -c "import json,sys; print(json.load(sys.stdin)[\"last_revision\"])")
    echo "cluster at revision $rev, journal at $last"; [ "$last" -ge "$rev" ]'
  box_check "$s: credentials dir root 0700, its files 0600" '
    [ "$(stat -c "%U %a" /etc/vigil/credentials)" = "root 700" ] || { stat -c "%n %U %a" /etc/vigil/credentials; exit 1; }
    bad=$(find /etc/vigil/credentials -type f ! -perm 0600); [ -z "$bad" ] || { echo "not 0600: $bad"; exit 1; }'
  # Each job opens only its own sections' secrets; check-config names what its unit would miss.
  box_sh 'mv /etc/vigil/credentials/slack-webhook /root/slack-webhook.away'
  box_check "$s: without the webhook secret: vigil-snapshot check-config passes, vigil-notify check-config exits 2 naming it" '
    vigil-snapshot check-config >/dev/null || { echo "vigil-snapshot check-config failed without the webhook"; exit 1; }
    out=$(vigil-notify check-config 2>&1); rc=$?; echo "$out" | tail -3
    [ "$rc" = 2 ] && echo "$out" | grep -q slack-webhook'
  check "$s: ... and vigil-snapshot.service still runs (it never opens the webhook)" unit_ok vigil-snapshot.service
  box_sh 'mv /root/slack-webhook.away /etc/vigil/credentials/slack-webhook'

  # A new writable path needs nothing but daemon-reload; until then check-config says so.
  box_sh 'cp /etc/vigil/vigil.toml /root/vigil.toml.before
    printf "\n[[sink]]\nname = \"ltfs\"\nkind = \"dir\"\npath = \"/srv/ltfs/vigil\"\n" >> /etc/vigil/vigil.toml'
  box_check "$s: a new dir sink, not yet created: check-config exits 2 naming sink[1].path and the stale sandbox" '
    out=$(vigil-snapshot check-config 2>&1); rc=$?; echo "$out" | grep -E "PROBLEM|daemon-reload" | head -5
    [ "$rc" = 2 ] && echo "$out" | grep -q "sink\[1\].path" && echo "$out" | grep -q "systemctl daemon-reload"'
  box_sh 'install -d -o vigil -g vigil -m 0750 /srv/ltfs/vigil && systemctl daemon-reload'
  box_check "$s: ... after install -d and daemon-reload: check-config passes" 'vigil-snapshot check-config >/dev/null'
  check "$s: ... and vigil-snapshot.service writes the new sink" unit_ok vigil-snapshot.service
  check "$s: ... which holds cp-1, cp-2, cp-3" members_archived /srv/ltfs/vigil
  box_sh 'cp /root/vigil.toml.before /etc/vigil/vigil.toml && systemctl daemon-reload'

  local m
  m="$(slack_mark)"
  box_check "$s: vigil-notify test --channel ops-slack (root shell)" 'vigil-notify test --channel ops-slack'
  check "$s: ... and the Slack receiver got it" slack_wait "$m" 10 .

  # kill -9 of a running snapshot: freeze cp-3 so the run waits on it, kill the unit.
  m="$(slack_mark)"
  box_sh 'systemctl kill -s STOP etcd-cp-3.service; systemctl reset-failed vigil-snapshot.service; systemctl start --no-block vigil-snapshot.service'
  if wait_in 15 '[ "$(systemctl show -P ActiveState vigil-snapshot.service)" = activating ] && [ "$(systemctl show -P MainPID vigil-snapshot.service)" != 0 ]' >/dev/null; then
    sleep 1
    box_sh 'systemctl kill -s KILL vigil-snapshot.service'
    wait_in 15 '[ "$(systemctl show -P ActiveState vigil-snapshot.service)" != activating ]' >/dev/null
    box_check "$s: kill -9 of a running vigil-snapshot.service: the unit failed by signal" \
      'r=$(systemctl show -P Result vigil-snapshot.service); echo "Result=$r"; [ "$r" = signal ]'
  else
    fail "$s: kill -9: vigil-snapshot.service never ran long enough to be killed"
  fi
  box_sh 'systemctl kill -s CONT etcd-cp-3.service'
  check "$s: ... reaches Slack (job_unit_failed, naming the job and the signal)" slack_wait "$m" 30 job_unit_failed snapshot 'kill|signal'
  check "$s: after the kill the next run completes" unit_ok vigil-snapshot.service
  box_check "$s: ... and no half archive is visible" '
    left=$(find /var/lib/vigil/snapshots /srv/backuppc-staging/vigil -type f \( -name ".*" -o -name "*tmp*" -o -name "*.part*" \) ! -name "*.lock" || true)
    [ -z "$left" ] || { echo "left over: $left"; exit 1; }
    for a in $(find /var/lib/vigil/snapshots -name "*.db.zst.age"); do [ -s "$a.json" ] || { echo "no manifest: $a"; exit 1; }; done'

  # A member stopped reaches Slack by name; the other two are still archived.
  m="$(slack_mark)"
  local before
  before="$(box_sh 'find /var/lib/vigil/snapshots/cp-1 -name "*.db.zst.age" | wc -l')"
  box_sh 'systemctl stop etcd-cp-2.service; systemctl reset-failed vigil-snapshot.service vigil-health.service; systemctl start vigil-snapshot.service; systemctl start vigil-health.service' >/dev/null 2>&1
  check "$s: etcd-cp-2 stopped: snapshot and health reach Slack naming cp-2" slack_wait "$m" 30 'cp-2'
  box_check "$s: ... and cp-1 was still archived in that run" \
    "[ \$(find /var/lib/vigil/snapshots/cp-1 -name '*.db.zst.age' | wc -l) -gt $before ] || [ \$(find /var/lib/vigil/snapshots/cp-1 -name '*.db.zst.age' | wc -l) -ge 5 ]"
  box_sh '/opt/box/etcd.sh start cp-2' >/dev/null 2>&1 || note "cp-2 did not come back"

  # A package upgrade restarts vigil-notify.
  local before_pid after_pid
  before_pid="$(box_sh 'systemctl show -P MainPID -P ActiveEnterTimestamp vigil-notify.service | tr "\n" " "')"
  if [ -f "$UPG" ]; then
    check "$s: upgrade: apt install ./$(basename "$UPG")" box_sh 'cd /root/upgrade && apt-get install -y -q ./vigil_*.deb'
    box_sh 'sleep 1'
    after_pid="$(box_sh 'systemctl show -P MainPID -P ActiveEnterTimestamp vigil-notify.service | tr "\n" " "')"
    check "$s: ... restarted vigil-notify (MainPID/ActiveEnterTimestamp: $before_pid -> $after_pid)" \
      box_sh "systemctl is-active vigil-notify.service && [ '$before_pid' != '$after_pid' ]"
  else
    fail "$s: upgrade: no upgrade package (repacking $DEB failed)"
  fi

  # A job whose config is missing does nothing and fails nothing.
  box_sh 'mv /etc/vigil/vigil.toml /root/vigil.toml.away; systemctl reset-failed vigil-snapshot.service; systemctl start vigil-snapshot.service' >/dev/null 2>&1
  box_check "$s: without /etc/vigil/vigil.toml vigil-snapshot.service is skipped, not failed (ConditionPathExists=)" '
    c=$(systemctl show -P ConditionResult vigil-snapshot.service); echo "ConditionResult=$c"
    [ "$c" = no ] && ! systemctl is-failed -q vigil-snapshot.service'
  box_sh 'mv /root/vigil.toml.away /etc/vigil/vigil.toml'

  # Purge keeps the archives and removes the units' enablement.
  check "$s: apt purge vigil" box_sh 'apt-get purge -y -q vigil'
  box_check "$s: ... kept the archives in /var/lib/vigil" '
    n=$(find /var/lib/vigil/snapshots -name "*.db.zst.age" | wc -l); echo "$n archives"; [ "$n" -ge 3 ]'
  box_check "$s: ... left no vigil unit enabled (no links in /etc/systemd/system/*.wants)" '
    l=$(find /etc/systemd/system -name "vigil*" 2>/dev/null); [ -z "$l" ] || { echo "left: $l"; exit 1; }'
  skip "$s: vigil-quota: no CephFS in the box (it needs a MON, MDS and OSD); its real-CephFS test runs outside the box (tests/tests/health/quota.rs)"
  box_down
}

# ---- scenario b: vigild as the only service --------------------------------
scenario_vigild() {
  local s=vigild
  box_up $s || { fail "$s: box up (boot, package, etcd, receiver)"; box_down; return; }
  readme_install $s
  hold
  box_check "$s: vigild.service is active and the only vigil unit enabled" '
    systemctl is-active vigild.service
    e=$(systemctl list-unit-files --state=enabled --no-legend "vigil*" | cut -d" " -f1 | tr "\n" " ")
    echo "enabled: $e"; [ "$e" = "vigild.service " ]'
  if ! box_sh 'systemctl is-active -q vigild.service'; then
    fail "$s: every-minute snapshot of cp-1..3, the dir sink, cp-3 down to Slack: not tried, vigild.service is not running"
    box_sh 'journalctl -q -u vigild.service -n 10 --no-pager' | sed 's/^/    /'
    box_down; return
  fi
  check "$s: vigild keeps vigil-journal run running (the config has [journal]), in vigild's cgroup" wait_in 30 '
    pid=$(pgrep -xf "/usr/bin/vigil-journal --config /etc/vigil/vigil.toml run" | head -1)
    [ -n "$pid" ] || { echo "no vigil-journal process"; ps -eo pid,args | grep vigil; exit 1; }
    grep -q "/vigild.service" /proc/$pid/cgroup || { cat /proc/$pid/cgroup; exit 1; }'
  box_sh 'for i in $(seq 1 20); do /opt/box/etcd.sh ctl put /registry/configmaps/default/journal-$i "v$i" >/dev/null; done'
  check "$s: ... which writes segments into /var/lib/vigil/journal" wait_in 30 "$JOURNALED"
  check "$s: its every-minute snapshot archived cp-1, cp-2, cp-3 locally" \
    wait_in 100 "$(archived_script /var/lib/vigil/snapshots)"
  check "$s: ... and to the dir sink" wait_in 20 "$(archived_script /srv/backuppc-staging/vigil)"
  box_check "$s: ... each proven restorable in vigild's own tmpfs, with no private key on the bastion" "$PROVEN"
  local m
  m="$(slack_mark)"
  box_sh 'systemctl stop etcd-cp-3.service'
  check "$s: etcd-cp-3 stopped: vigild's next snapshot reaches Slack naming cp-3" slack_wait "$m" 100 'cp-3'
  # kill -9 of a job vigild started: vigild reports the death as OnFailure= would.
  m="$(slack_mark)"
  local job='^/usr/bin/vigil-snapshot --config /etc/vigil/vigil.toml run'
  box_sh 'systemctl kill -s STOP etcd-cp-2.service'
  if wait_in 90 "pgrep -f '$job' >/dev/null" >/dev/null; then
    sleep 2
    box_sh "pkill -KILL -f '$job'"
    check "$s: kill -9 of the snapshot job vigild started reaches Slack (job_unit_failed, signal)" \
      slack_wait "$m" 60 job_unit_failed snapshot 'kill|signal'
  else
    fail "$s: kill -9: vigild started no snapshot job within 90 s"
  fi
  box_sh 'systemctl kill -s CONT etcd-cp-2.service'
  box_down
}

for sc in ${BOX_SCENARIOS:-timers vigild}; do "scenario_$sc"; done
[ "$BOX_FAILED" = 0 ] || note "journals and Slack messages of each scenario: $BOX_LOGS/"
echo "box: $BOX_PASSED passed, $BOX_FAILED failed, $BOX_SKIPPED skipped ($((SECONDS - start_time)) s)"
[ "$BOX_FAILED" = 0 ]
