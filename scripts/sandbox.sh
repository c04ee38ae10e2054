#!/usr/bin/env bash
# A throwaway sandbox to try kvmnet without touching this machine's own network:
#   sandbox.sh up      create namespaces kvmnet-sandbox (the "host") and kvmnet-sandbox-lan (a LAN
#                      router at 192.168.100.254), run `kvmnet up` in the host, plug a demo guest
#                      namespace into virbr0 and show the lease it gets
#   sandbox.sh shell   a root shell inside the sandbox host (kvmnet there uses the sandbox state)
#   sandbox.sh run ... run one command inside the sandbox host, e.g. `sandbox.sh run kvmnet net list`
#   sandbox.sh down    stop everything in the sandbox and remove it
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
NS=kvmnet-sandbox
LAN=$NS-lan
GUEST=$NS-guest
DIR=/tmp/kvmnet-sandbox
export KVMNET_STATE_DIR=$DIR/state KVMNET_RUN_DIR=$DIR/run
export PATH="$repo/bin:$PATH"

inside() { ip netns exec "$NS" env KVMNET_STATE_DIR="$KVMNET_STATE_DIR" KVMNET_RUN_DIR="$KVMNET_RUN_DIR" PATH="$PATH" "$@"; }

case "${1:-}" in
  up)
    if ! ip netns list | grep -qw "^$NS"; then
      ip netns add "$NS"
      ip netns add "$LAN"
      ip -n "$NS" link set lo up
      ip -n "$LAN" link set lo up
      ip -n "$NS" link add eth1 type veth peer name eth0 netns "$LAN"
      ip -n "$NS" addr add 192.168.100.239/24 dev eth1
      ip -n "$NS" link set eth1 up
      ip -n "$NS" route add default via 192.168.100.254
      ip -n "$LAN" addr add 192.168.100.254/24 dev eth0
      ip -n "$LAN" link set eth0 up
    fi
    inside kvmnet up
    if ! ip netns list | grep -qw "^$GUEST"; then
      ip netns add "$GUEST"
      ip -n "$GUEST" link set lo up
      ip -n "$NS" link add vdemo type veth peer name eth0 netns "$GUEST"
      ip -n "$NS" link set vdemo master virbr0 up
      ip -n "$GUEST" link set eth0 up
    fi
    echo "demo guest ($GUEST) asks for a lease on virbr0:"
    ip netns exec "$GUEST" busybox udhcpc -i eth0 -f -q -n -t 5 -T 1 -x hostname:demo -s "$repo/test/fixtures/udhcpc.sh" | grep LEASE
    echo
    inside kvmnet net list
    echo
    echo "Enter the sandbox: sudo $0 shell     Remove it: sudo $0 down"
    ;;
  shell)
    exec ip netns exec "$NS" env KVMNET_STATE_DIR="$KVMNET_STATE_DIR" KVMNET_RUN_DIR="$KVMNET_RUN_DIR" PATH="$PATH" PS1='(kvmnet-sandbox) # ' bash --norc
    ;;
  run)
    shift
    inside "$@"
    ;;
  down)
    if ip netns list | grep -qw "^$NS"; then inside kvmnet down || true; fi
    for ns in "$GUEST" "$LAN" "$NS"; do
      if ip netns list | grep -qw "^$ns"; then
        for pid in $(ip netns pids "$ns"); do kill "$pid" 2>/dev/null || true; done
        ip netns del "$ns"
      fi
    done
    rm -rf "$DIR"
    echo "sandbox removed"
    ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
