#!/usr/bin/env bash
# Installs what vigil's build and tests need on a fresh Debian 12 machine.
set -euo pipefail
APT_PACKAGES=(
  protobuf-compiler libprotobuf-dev  # etcd-client's build (protoc and the well-known types, e.g. descriptor.proto)
  etcd-server etcd-client  # real etcd members and etcdctl in tests
  age zstd            # the open archive format, checked with the real CLIs
  openssl             # test CAs and certificates for mTLS
  python3-aiosmtpd    # a real SMTP server (STARTTLS, AUTH) for the email channel tests
  prometheus-alertmanager  # a real Alertmanager for the API v2 channel tests
  ceph-mon ceph-mgr ceph-osd radosgw ceph-common  # a real Ceph radosgw as the S3 sink in tests
  s3cmd               # an independent S3 client to check and corrupt objects behind vigil's back
  bc curl uuid-runtime  # used by the Ceph test harness scripts
  prometheus          # promtool: checks config/prometheus-rules.yml and the metrics files
  acl                 # getfacl: the packaging check looks at the metrics dir ACL
  debootstrap systemd-container  # tests/box: a Debian 12 system container booted with systemd as PID 1
  prometheus-node-exporter  # a real node_exporter on loopback for the vigil-health node metric tests
  time zip            # bench/: /usr/bin/time -f for CPU and peak RSS; zip is RKE2's anchor format
  ceph-mds ceph-fuse  # vigil-quota tests: a real CephFS (MDS) mounted with ceph-fuse
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
