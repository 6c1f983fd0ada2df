#!/usr/bin/env bash
# A throwaway single-node Ceph (mon, mgr, memstore OSD, MDS) with a CephFS
# volume and a ceph-fuse mount of it, on 127.0.0.1, for the quota tests.
# No systemd, no disk, no kernel module; everything in DIR.
# The shared part lives in lib.sh.
#
# Usage: start-cephfs.sh DIR MON_V2_PORT MON_V1_PORT PORT_MIN PORT_MAX [VOLUME]
#   prints "ready" when the volume's MDS is active and DIR/mnt is mounted;
#   stop with stop-cephfs.sh DIR.
set -euo pipefail
DIR=$1; MON_V2_PORT=$2; MON_V1_PORT=$3; PORT_MIN=$4; PORT_MAX=$5; VOL=${6:-vol1}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
trap 'echo "start-cephfs.sh: failed at line $LINENO; logs in $DIR/log" >&2' ERR
EXTRA_CONF="[mds]
mds data = $DIR/mds/\$cluster-\$id
keyring = $DIR/mds/\$cluster-\$id/keyring"
ceph_core
mkdir -p "$DIR"/{mds,mnt}
mgr_up() { ceph -c "$CONF" mgr stat -f json | grep -Eq '"available": ?true'; }
wait_until 120 "mgr available" mgr_up
mkdir -p "$DIR/mds/ceph-a"
ceph -c "$CONF" auth get-or-create mds.a mon 'allow profile mds' osd 'allow rwx' mds 'allow *' mgr 'allow profile mds' -o "$DIR/mds/ceph-a/keyring"
ceph-mds -c "$CONF" -i a
# the volumes module may need a moment after the mgr becomes available
wait_until 60 "fs volume create $VOL" ceph -c "$CONF" fs volume create "$VOL"
mds_active() { ceph -c "$CONF" fs status "$VOL" -f json | grep -Eq '"state": ?"active"'; }
wait_until 120 "mds active for $VOL" mds_active
ceph-fuse -c "$CONF" --client_fs "$VOL" "$DIR/mnt" >>"$DIR/log/ceph-fuse.out" 2>&1
wait_until 30 "ceph-fuse mount at $DIR/mnt" grep -q " $DIR/mnt fuse" /proc/mounts
echo ready
