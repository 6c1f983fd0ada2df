#!/usr/bin/env bash
# A throwaway single-node Ceph (mon, mgr, memstore OSD) with radosgw on
# 127.0.0.1, for the S3 sink tests. No systemd, no disk, everything in DIR.
# The shared part lives in lib.sh.
#
# Usage: start-rgw.sh DIR RGW_PORT MON_PORT_BASE
#   prints "ready" when radosgw answers; stop with stop-rgw.sh DIR.
set -euo pipefail
DIR=$1; RGW_PORT=$2; BASE=$3
MON_V2_PORT=$BASE; MON_V1_PORT=$((BASE + 1)); PORT_MIN=$((BASE + 10)); PORT_MAX=$((BASE + 60))
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
trap 'echo "start-rgw.sh: failed at line $LINENO; logs in $DIR/log" >&2' ERR
EXTRA_CONF="[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $DIR/rgw
keyring = $DIR/rgw/keyring
log file = $DIR/log/\$name.log
rgw dns name = localhost"
ceph_core
mkdir -p "$DIR/rgw"
ceph -c "$CONF" auth get-or-create client.rgw.test mon 'allow rw' osd 'allow rwx' mgr 'allow rw' -o "$DIR/rgw/keyring"
radosgw -c "$CONF" -n client.rgw.test
wait_until 120 "radosgw on 127.0.0.1:$RGW_PORT" curl -sf -o /dev/null "http://127.0.0.1:$RGW_PORT/"
radosgw-admin -c "$CONF" user create --uid=vigil --display-name=vigil --access-key=VIGILTESTKEY --secret-key=VIGILTESTSECRET >/dev/null
echo ready
