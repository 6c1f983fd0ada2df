#!/usr/bin/env bash
# Shared by start-rgw.sh and start-cephfs.sh: a throwaway single-node Ceph
# (mon, mgr, memstore OSD) on 127.0.0.1, everything in DIR. Adapted from
# shared/lab/ceph/start-ceph.sh (Debian 12, Ceph 16.2.x).
#
# The caller sets DIR, MON_V2_PORT, MON_V1_PORT, PORT_MIN, PORT_MAX and
# EXTRA_CONF (ceph.conf sections for its own daemons), then calls ceph_core.

# wait_until SECONDS DESCRIPTION CMD...: poll CMD, fail on timeout.
wait_until() {
  local limit=$1 desc=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then echo "timeout after ${limit}s waiting for: $desc (logs in $DIR/log)" >&2; return 1; fi
    sleep 0.3
  done
}

ceph_core() {
rm -rf "$DIR"; mkdir -p "$DIR"/{run,log,mon,mgr,osd,crash}
FSID=$(uuidgen); CONF=$DIR/ceph.conf; export CEPH_CONF=$CONF
cat > "$CONF" <<CONF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_V2_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind port min = $PORT_MIN
ms bind port max = $PORT_MAX
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/\$name.keyring
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
[client]
admin socket = $DIR/run/\$name.\$pid.\$cctid.asok
[mon]
mon data = $DIR/mon/\$cluster-\$id
keyring = $DIR/mon/\$cluster-\$id/keyring
mon cluster log file = $DIR/log/cluster.log
auth allow insecure global id reclaim = false
[mgr]
mgr data = $DIR/mgr/\$cluster-\$id
keyring = $DIR/mgr/\$cluster-\$id/keyring
[osd]
osd data = $DIR/osd/\$cluster-\$id
keyring = $DIR/osd/\$cluster-\$id/keyring
osd objectstore = memstore
memstore device bytes = 2147483648
osd memory target = 1073741824
osd class dir = /usr/lib/x86_64-linux-gnu/rados-classes
osd crush update on start = true
$EXTRA_CONF
CONF
ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$DIR/client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/client.admin.keyring" >/dev/null
monmaptool --create --clobber --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_V2_PORT,v1:127.0.0.1:$MON_V1_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
ceph-mon -c "$CONF" -i a
wait_until 60 "mon quorum" ceph -c "$CONF" --connect-timeout 5 mon stat
mkdir -p "$DIR/mgr/ceph-x"
ceph -c "$CONF" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$DIR/mgr/ceph-x/keyring"
ceph-mgr -c "$CONF" -i x
OSD_UUID=$(uuidgen); mkdir -p "$DIR/osd/ceph-0"
OSD_ID=$(ceph -c "$CONF" osd new "$OSD_UUID")
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --mkkey --no-mon-config --osd-uuid "$OSD_UUID" 2>>"$DIR/log/osd-mkfs.log"
ceph -c "$CONF" auth add "osd.$OSD_ID" osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' -i "$DIR/osd/ceph-$OSD_ID/keyring" >/dev/null 2>&1
ceph-osd -c "$CONF" -i "$OSD_ID"
osd_up() { ceph -c "$CONF" osd stat -f json | grep -Eq '"num_up_osds": ?1[,}]'; }
wait_until 120 "osd up" osd_up
}
