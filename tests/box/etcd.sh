#!/bin/bash
# Inside the box: a real 3-member etcd cluster with mTLS, laid out like RKE2
# (certificates in /var/lib/rancher/rke2/server/tls/etcd/, the token in
# /var/lib/rancher/rke2/server/token). Each member is a transient systemd unit
# etcd-<name>.service, so a scenario stops one by name.
#   etcd.sh up           PKI, token, three members, wait healthy, seed keys
#   etcd.sh start NAME   (re)start one member on its data dir
#   etcd.sh health       etcdctl endpoint health over mTLS
set -euo pipefail
. /opt/box/env
TLS=/var/lib/rancher/rke2/server/tls/etcd
DATA=/var/lib/box-etcd
declare -A CLIENT=([cp-1]=$C1 [cp-2]=$C2 [cp-3]=$C3) PEER=([cp-1]=$P1 [cp-2]=$P2 [cp-3]=$P3)
ctl() {
  ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$C1,https://127.0.0.1:$C2,https://127.0.0.1:$C3" \
    --cacert $TLS/server-ca.crt --cert $TLS/server-client.crt --key $TLS/server-client.key "$@"
}
pki() {
  install -d -m 0700 $TLS
  cd $TLS
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj /CN=etcd-server-ca -keyout server-ca.key -out server-ca.crt 2>/dev/null
  sign() { # NAME CN EXT
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
      -keyout "$1.key" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA server-ca.crt -CAkey server-ca.key -CAcreateserial \
      -days 825 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
  }
  sign server-client etcd-client "extendedKeyUsage=clientAuth"
  sign serving etcd "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
  chmod 0600 ./*.key
  install -d /var/lib/rancher/rke2/server
  umask 077
  printf 'K10%s::server:%s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 16)" > /var/lib/rancher/rke2/server/token
}
start() {
  local n="$1" cluster="cp-1=https://127.0.0.1:$P1,cp-2=https://127.0.0.1:$P2,cp-3=https://127.0.0.1:$P3"
  systemd-run -q --unit="etcd-$n" -p Restart=no /usr/bin/etcd --name "$n" --data-dir "$DATA/$n" \
    --listen-client-urls "https://127.0.0.1:${CLIENT[$n]}" --advertise-client-urls "https://127.0.0.1:${CLIENT[$n]}" \
    --listen-peer-urls "https://127.0.0.1:${PEER[$n]}" --initial-advertise-peer-urls "https://127.0.0.1:${PEER[$n]}" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token vigil-box \
    --client-cert-auth --trusted-ca-file $TLS/server-ca.crt --cert-file $TLS/serving.crt --key-file $TLS/serving.key \
    --peer-client-cert-auth --peer-trusted-ca-file $TLS/server-ca.crt --peer-cert-file $TLS/serving.crt \
    --peer-key-file $TLS/serving.key --log-level warn
}
health() {
  local i
  for i in $(seq 1 100); do
    ctl endpoint health >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  ctl endpoint health
}
case "$1" in
  up)
    pki
    install -d -m 0700 $DATA
    for n in cp-1 cp-2 cp-3; do start $n; done
    health
    # Some Kubernetes-shaped keys, so the drill has something to sample.
    for i in $(seq 1 40); do
      ctl put "/registry/configmaps/default/box-$i" "$(head -c 2048 /dev/urandom | base64 -w0)" >/dev/null
    done ;;
  start) start "$2"; health ;;
  health) ctl endpoint health ;;
  ctl) shift; ctl "$@" ;;
  *) echo "etcd.sh: up | start NAME | health | ctl ARGS" >&2; exit 2 ;;
esac
