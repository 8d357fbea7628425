#!/usr/bin/env bash
# Provisions one Tenet VM (run as root by Vagrant at every `vagrant up`; every step
# is skipped when already done).
#
#   provision.sh controller MGMT_IP
#   provision.sh host NAME MGMT_IP UNDERLAY_CIDR CONTROLLER_IP
#
# Environment: TENET_TOKEN (the controller's API token, from the Vagrantfile),
# TENET_REPO (default /opt/tenet, the synced repository).
#
# A host runs `tenet host setup`: the same function (src/host setupHost) the lab
# runs for each of its hosts, so the path the tests cover is the path VMs run.
set -euo pipefail

REPO=${TENET_REPO:-/opt/tenet}
NODE_MAJOR=20
API_PORT=6680
OPENFLOW_PORT=6653

say() { printf '[provision] %s\n' "$*"; }
die() { printf '[provision] error: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: $0 controller MGMT_IP | $0 host NAME MGMT_IP UNDERLAY_CIDR CONTROLLER_IP"; }

role=${1:-}
case "$role" in
  controller) [ $# -eq 2 ] || usage; mgmt_ip=$2 ;;
  host) [ $# -eq 5 ] || usage; name=$2; mgmt_ip=$3; underlay=$4; controller_ip=$5 ;;
  *) usage ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root"
[ -f "$REPO/package.json" ] || die "no Tenet repository at $REPO (the synced folder)"

# 1. Node.js 20 (Debian 12 ships 18): the official build, checked against its SHASUMS256.txt.
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt "$NODE_MAJOR" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends curl ca-certificates xz-utils >/dev/null
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) die "no Node.js build for $(uname -m)" ;; esac
  base="https://nodejs.org/dist/latest-v${NODE_MAJOR}.x"
  tarball=$(curl -fsSL "$base/SHASUMS256.txt" | awk -v a="linux-$arch.tar.xz" '$2 ~ a"$" {print $2}')
  [ -n "$tarball" ] || die "no linux-$arch tarball listed at $base"
  say "installing $tarball"
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/$tarball" "$base/$tarball"
  (cd "$tmp" && curl -fsSL "$base/SHASUMS256.txt" | grep " $tarball\$" | sha256sum -c --quiet -) || die "checksum mismatch for $tarball"
  tar -xJf "$tmp/$tarball" -C /usr/local --strip-components=1 --exclude='*/CHANGELOG.md' --exclude='*/README.md' --exclude='*/LICENSE'
  rm -rf "$tmp"
fi

# 2. Debian packages (Open vSwitch, iproute2, ethtool, ...) and npm dependencies:
#    the lab's own setup script.
bash "$REPO/scripts/setup.sh"
systemctl enable --now openvswitch-switch >/dev/null

# 3. The `tenet` command.
cat >/usr/local/bin/tenet <<EOF
#!/bin/sh
exec /usr/local/bin/node $REPO/bin/tenet.js "\$@"
EOF
chmod 755 /usr/local/bin/tenet

write_unit() { # name, then the unit's text on stdin; (re)starts it when it changed
  local unit=/etc/systemd/system/$1.service new
  new=$(cat)
  if [ ! -f "$unit" ] || [ "$(cat "$unit")" != "$new" ]; then
    printf '%s\n' "$new" >"$unit"
    systemctl daemon-reload
  fi
  systemctl enable "$1" >/dev/null 2>&1
}

if [ "$role" = controller ]; then
  # 4c. The controller daemon, with the token the Vagrantfile made (the daemon creates one when absent).
  install -d -m 700 /var/lib/tenet
  if [ -n "${TENET_TOKEN:-}" ]; then
    (umask 077; printf '%s\n' "$TENET_TOKEN" >/var/lib/tenet/token)
  fi
  write_unit tenet-controller <<EOF
[Unit]
Description=Tenet controller (REST API on $mgmt_ip:$API_PORT, OpenFlow on :$OPENFLOW_PORT)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/local/bin/tenet controller --state-dir /var/lib/tenet --api 0.0.0.0:$API_PORT --openflow 0.0.0.0:$OPENFLOW_PORT --advertise tcp:$mgmt_ip:$OPENFLOW_PORT
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
  systemctl restart tenet-controller
  for _ in $(seq 1 60); do # until the API accepts connections
    (exec 3<>"/dev/tcp/$mgmt_ip/$API_PORT") 2>/dev/null && break
    sleep 1
  done
  say "controller: API http://$mgmt_ip:$API_PORT (token in /var/lib/tenet/token), OpenFlow tcp:$mgmt_ip:$OPENFLOW_PORT"
  exit 0
fi

# 4h. The host: Open vSwitch, br-phy holding the underlay NIC with its address, br-int,
#     OVSDB listening for the controller. Once now, and at every boot (the OS puts the
#     address back on the NIC).
setup=(/usr/local/bin/tenet host setup --name "$name" --underlay-ip "$underlay" --ovsdb-listen "$mgmt_ip" --datapath-type netdev)
"${setup[@]}"
write_unit tenet-host <<EOF
[Unit]
Description=Tenet per-host setup (br-phy, br-int, OVSDB on $mgmt_ip:6640)
After=openvswitch-switch.service network-online.target
Requires=openvswitch-switch.service
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${setup[*]}

[Install]
WantedBy=multi-user.target
EOF

# 5h. The agent, once this version of Tenet has one (`tenet agent`): registers the host
#     with the controller and runs the units assigned to it.
if /usr/local/bin/tenet agent --help >/dev/null 2>&1; then
  install -d -m 700 /etc/tenet
  if [ -n "${TENET_TOKEN:-}" ]; then
    (umask 077; printf '%s\n' "$TENET_TOKEN" >/etc/tenet/token)
  fi
  agent=(/usr/local/bin/tenet agent --host "$name" --controller "http://$controller_ip:$API_PORT" --token-file /etc/tenet/token
    --ovsdb unix:/var/run/openvswitch/db.sock --advertise-ovsdb "tcp:$mgmt_ip:6640" --underlay-ip "${underlay%/*}" --datapath-type netdev)
  write_unit tenet-agent <<EOF
[Unit]
Description=Tenet agent of $name (controller http://$controller_ip:$API_PORT)
After=tenet-host.service
Requires=tenet-host.service

[Service]
ExecStart=${agent[*]}
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
  systemctl restart tenet-agent
  say "agent of $name started (tenet-agent.service)"
else
  say "this Tenet has no agent command yet: no agent unit installed"
fi
say "$name ready: underlay $underlay on br-phy, OVSDB tcp:$mgmt_ip:6640, controller http://$controller_ip:$API_PORT"
