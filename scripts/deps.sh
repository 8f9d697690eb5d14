# shellcheck shell=bash
# Installs what lbd needs to build, test, demo and benchmark, from Debian 12's packages.
# Usage: . scripts/deps.sh; lbd_install_deps [bench]
# Packages that ship a service (nginx, haproxy) must not start it on the host: while this
# installs, a policy-rc.d refuses service starts, and it is removed again afterwards
# (unless the machine already had one, which is then left as it was).

LBD_BUILD_DEPS="build-essential cmake ninja-build pkg-config nlohmann-json3-dev libpcap-dev libnl-3-dev
  libnl-route-3-dev libnl-genl-3-dev libnetfilter-queue-dev libbpf-dev clang libboost-program-options-dev libboost-dev libssl-dev libfmt-dev catch2
  libbenchmark-dev libnftables-dev libsystemd-dev"
LBD_RUN_DEPS="iproute2 nftables ethtool procps"
LBD_TEST_DEPS="nginx-light socat curl tcpdump iputils-ping wrk mariadb-server mariadb-client python3-scapy
  libclang-rt-14-dev systemd dpkg-dev util-linux netbase libfaketime keepalived bird2 prometheus
  chromium python3-websocket fonts-dejavu-core dnsmasq-base iptables"
LBD_BENCH_DEPS="iperf3 haproxy"

lbd_install_deps() {
  local pkgs="$LBD_BUILD_DEPS $LBD_RUN_DEPS $LBD_TEST_DEPS"
  [ "${1:-}" = bench ] && pkgs="$pkgs $LBD_BENCH_DEPS"
  # shellcheck disable=SC2086
  if dpkg-query -W -f='${Status}\n' $pkgs 2>/dev/null | grep -vq "install ok installed" ||
     [ "$(dpkg-query -W -f='${Status}\n' $pkgs 2>/dev/null | wc -l)" -ne "$(echo $pkgs | wc -w)" ]; then
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      made_policy=1
    fi
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
    local rc=$?
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    return $rc
  fi
}

# Builds into build/ (Release with debug info, warnings as errors).
lbd_build() {
  local top; top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cmake -S "$top" -B "$top/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLBD_WERROR=ON \
    -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
  cmake --build "$top/build" -j "$(nproc)"
}

# The demos' start: dependencies, the build, and the lab's binaries (LBD_BIN, ...) from it.
lbd_demo_ready() {
  lbd_install_deps
  lbd_build
  local top; top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  export LBD_BIN=$top/build/lbd LBADM_BIN=$top/build/lbadm LBD_DECAP_BIN=$top/build/lbd-decap
}
