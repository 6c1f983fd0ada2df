# Box helpers: boot a throwaway overlay copy of the base with systemd as PID 1,
# run commands inside, tear it down. Sourced by tests/box/run.sh.

BOX_PASSED=0 BOX_FAILED=0 BOX_SKIPPED=0
pass() { BOX_PASSED=$((BOX_PASSED + 1)); echo "box: PASS: $*"; }
fail() { BOX_FAILED=$((BOX_FAILED + 1)); echo "box: FAIL: $*"; }
skip() { BOX_SKIPPED=$((BOX_SKIPPED + 1)); echo "box: SKIP: $*"; }
note() { echo "box: $*" >&2; }

# check NAME CMD...: one PASS/FAIL line from a command run on the host side.
check() {
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then pass "$name"; else fail "$name"; printf '%s\n' "$out" | tail -25 | sed 's/^/    /'; fi
}

BOX_NAME="" BOX_DIR="" BOX_NSPAWN_PID="" BOX_PID="" BOX_ROOT=""

# box_boot NAME BASE_ROOT: overlay + systemd-nspawn --boot; waits for the system to run.
box_boot() {
  BOX_NAME="$1"; local base="$2"
  BOX_DIR="$BOX_WORK/$BOX_NAME"
  rm -rf "$BOX_DIR"; mkdir -p "$BOX_DIR"/{upper,work,merged}
  mount -t overlay -o "lowerdir=$base,upperdir=$BOX_DIR/upper,workdir=$BOX_DIR/work" overlay "$BOX_DIR/merged"
  BOX_ROOT="$BOX_DIR/merged"
  systemd-nspawn -q -D "$BOX_ROOT" --boot --register=no --keep-unit -M "$BOX_NAME" \
    >"$BOX_DIR/console.log" 2>&1 </dev/null &
  BOX_NSPAWN_PID=$!
  local i
  for i in $(seq 1 200); do
    BOX_PID="$(pgrep -P "$BOX_NSPAWN_PID" -x systemd 2>/dev/null | head -1 || true)"
    [ -n "$BOX_PID" ] && break
    kill -0 "$BOX_NSPAWN_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$BOX_PID" ]; then note "$BOX_NAME: no systemd came up"; tail -30 "$BOX_DIR/console.log" >&2; return 1; fi
  local state=""
  for i in $(seq 1 120); do
    state="$(box_sh 'systemctl is-system-running 2>/dev/null' || true)"
    case "$state" in running|degraded) break ;; esac
    sleep 0.5
  done
  case "$state" in
    running) note "$BOX_NAME: booted (systemd pid $BOX_PID on the host)" ;;
    degraded) note "$BOX_NAME: booted degraded: $(box_sh 'systemctl --failed --no-legend --plain | cut -d" " -f1 | tr "\n" " "')" ;;
    *) note "$BOX_NAME: system state '$state' after 60 s"; tail -30 "$BOX_DIR/console.log" >&2; return 1 ;;
  esac
}

# box_sh SCRIPT: runs SCRIPT with bash as root inside the box, in a clean login-like env.
box_sh() {
  nsenter -t "$BOX_PID" -a -- /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 /bin/bash -c "$1"
}

# box_check NAME SCRIPT: PASS/FAIL line from a script run inside the box.
box_check() { check "$1" box_sh "$2"; }

# box_down: poweroff, wait, unmount. Safe to call twice and on a half-booted box.
box_down() {
  [ -n "$BOX_DIR" ] || return 0
  if [ -n "$BOX_NSPAWN_PID" ] && kill -0 "$BOX_NSPAWN_PID" 2>/dev/null; then
    if [ -n "$BOX_PID" ] && [ -n "${BOX_LOGS:-}" ]; then
      # For a look afterwards: the box's journal, the Slack messages, the config as installed.
      mkdir -p "$BOX_LOGS/$BOX_NAME"
      box_sh 'journalctl -b --no-pager -o short-precise' > "$BOX_LOGS/$BOX_NAME/journal.txt" 2>&1 || true
      cp "$BOX_ROOT/srv/box-slack/messages.jsonl" "$BOX_LOGS/$BOX_NAME/slack.jsonl" 2>/dev/null || true
      cp "$BOX_ROOT/etc/vigil/vigil.toml" "$BOX_LOGS/$BOX_NAME/vigil.toml" 2>/dev/null || true
      cp "$BOX_DIR/console.log" "$BOX_LOGS/$BOX_NAME/console.log" 2>/dev/null || true
    fi
    [ -n "$BOX_PID" ] && box_sh 'systemctl poweroff --no-block' >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 100); do kill -0 "$BOX_NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$BOX_NSPAWN_PID" 2>/dev/null; then
      note "$BOX_NAME: did not power off in 20 s; killing nspawn"
      kill -KILL "$BOX_NSPAWN_PID" 2>/dev/null || true
    fi
    wait "$BOX_NSPAWN_PID" 2>/dev/null || true
  fi
  mountpoint -q "$BOX_DIR/merged" && { umount "$BOX_DIR/merged" || umount -l "$BOX_DIR/merged"; }
  [ -n "${BOX_KEEP:-}" ] || rm -rf "$BOX_DIR"
  BOX_DIR="" BOX_NSPAWN_PID="" BOX_PID="" BOX_ROOT=""
}
