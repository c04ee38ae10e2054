#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for kvmnet: the system tools it drives (iproute2, nftables,
# dnsmasq), the tools its tests use (busybox, socat, curl, QEMU, Debian's Chromium and a font for the
# web page's browser test), iperf3 for the data-plane benchmark, the npm dependencies, and the build
# (bin/kvmnet runs dist/). Needs root and Node.js >= 20.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "kvmnet needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

packages=(iproute2 nftables dnsmasq-base procps kmod busybox-static socat curl qemu-system-x86 cpio xz-utils iputils-ping ifupdown netplan.io python3 python3-gi iptables gir1.2-nm-1.0 chromium fonts-liberation iperf3)
# The packages of "$@" that are not installed, one per line.
not_installed() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}
mapfile -t missing < <(not_installed "${packages[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# libvirt for test/e2e/libvirt.test.ts, which runs libvirtd only inside a lab namespace. The
# policy-rc.d guard keeps the package from starting a daemon in this machine's own namespace.
# (libvirt-daemon-config-network comes along as a dependency; the test keeps its default network
# from autostarting.)
mapfile -t lv_missing < <(not_installed libvirt-daemon-system libvirt-clients)
if [ "${#lv_missing[@]}" -gt 0 ]; then
  echo "setup: installing ${lv_missing[*]} (no daemon started)"
  export DEBIAN_FRONTEND=noninteractive
  guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  [ -n "$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] || apt-get update -qq
  rc=0
  apt-get install -y -qq --no-install-recommends "${lv_missing[@]}" >/dev/null || rc=$?
  [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || exit "$rc"
fi
# The guest image build (test/lib/guest.ts) reads package lists with apt-get download.
if [ ! -d /var/lib/apt/lists ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  apt-get update -qq
fi

npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
echo "setup: done (bin/kvmnet is ready)"
