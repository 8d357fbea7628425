#!/usr/bin/env bash
# Shared setup for `npm test` and `npm run demo`: checks we are root, installs the
# Debian packages the lab needs (only the missing ones) and the npm dependencies.
# Usage: scripts/setup.sh [extra-apt-package ...]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the lab creates network namespaces and runs Open vSwitch); try: sudo $0"

# Debian packages: Open vSwitch (userspace datapath), namespaces/veth, ping, ethtool
# (checksum offload off in containers), etcd for the store conformance suite, nftables
# (counters inside the service-function containers of the chain tests), openvswitch-testcontroller
# (the codec benchmark's C reference controller). `npm run bench` adds gcc and libc6-dev
# (the codec bench's C load generator and the converge bench's prober are built at run time).
packages=(openvswitch-switch iproute2 iputils-ping ethtool procps util-linux etcd-server etcd-client openssl nftables openvswitch-testcontroller "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
  # The package's own service start is refused by policy-rc.d here; the lab starts its own daemons.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/tmp/tenet-apt.log 2>&1 || die "apt-get update failed (see /tmp/tenet-apt.log)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/tenet-apt.log 2>&1 \
    || die "could not install ${missing[*]} (see /tmp/tenet-apt.log)"
else
  say "Debian packages present"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
else
  say "npm dependencies present"
fi
