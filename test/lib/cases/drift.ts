// Faults that `kvmnet check` must name and `kvmnet repair` must undo (test/integration/drift.test.ts).
// Each fault is a list of commands run in the lab's host namespace; the test fills in the
// placeholders: BR (the bridge), TAP (the guest's tap), PID (dnsmasq's pid from its pid file),
// CONF (dnsmasq's conf file), UPLINK (a bridged network's NIC).
import type { DriftKind } from '../../../src/engine/drift.js';
import { FOREIGN_NFT } from '../hostcheck.js';

export interface DriftCase {
  name: string;
  fault: string[][];
  /** Kinds check must report (at least these). */
  kinds: DriftKind[];
  /** The fault leaves the guest's tap alone: repair must keep its ifindex. */
  tapKept: boolean;
  /** Commands run after the repair, before comparing with the snapshot (to undo what is not kvmnet's). */
  cleanup?: string[][];
}

/** A nat network with a port (tap) and a port forward. */
export const NAT_DRIFT_CASES: DriftCase[] = [
  { name: 'bridge deleted', fault: [['ip', 'link', 'del', 'BR']], kinds: ['bridge-missing'], tapKept: true },
  {
    name: 'bridge down',
    fault: [['ip', 'link', 'set', 'BR', 'down']],
    kinds: ['bridge-down'],
    tapKept: true,
  },
  {
    name: 'bridge address removed',
    fault: [['ip', 'addr', 'del', '192.168.122.1/24', 'dev', 'BR']],
    kinds: ['bridge-address'],
    tapKept: true,
  },
  {
    name: 'stray address on the bridge',
    fault: [['ip', 'addr', 'add', '192.168.122.200/24', 'dev', 'BR']],
    kinds: ['bridge-address'],
    tapKept: true,
  },
  {
    name: 'nft flush ruleset',
    fault: [['nft', 'flush', 'ruleset']],
    kinds: ['nft-table'],
    tapKept: true,
    // The flush took the admin's own table too (test/lib/hostcheck.ts); that one is not kvmnet's to restore.
    cleanup: [['nft', FOREIGN_NFT]],
  },
  {
    name: "kvmnet's table deleted",
    fault: [['nft', 'delete', 'table', 'inet', 'kvmnet']],
    kinds: ['nft-table'],
    tapKept: true,
  },
  {
    name: "the network's in chain flushed",
    fault: [['nft', 'flush', 'chain', 'inet', 'kvmnet', 'net_default_in']],
    kinds: ['nft-chain'],
    tapKept: true,
  },
  {
    name: 'a base chain flushed',
    fault: [['nft', 'flush', 'chain', 'inet', 'kvmnet', 'forward']],
    kinds: ['nft-chain'],
    tapKept: true,
  },
  {
    name: "a forward's map element deleted",
    fault: [['nft', 'delete', 'element', 'inet', 'kvmnet', 'fwd_any', '{ tcp . 8080 }']],
    kinds: ['forward-missing'],
    tapKept: true,
  },
  {
    name: "the network's dispatch element deleted",
    fault: [['nft', 'delete', 'element', 'inet', 'kvmnet', 'nat_out', '{ "BR" }']],
    kinds: ['nft-element'],
    tapKept: true,
  },
  { name: 'dnsmasq killed', fault: [['kill', '-KILL', 'PID']], kinds: ['dnsmasq-down'], tapKept: true },
  {
    name: 'dnsmasq config edited',
    fault: [['sh', '-c', 'echo "# edited by hand" >> CONF']],
    kinds: ['dnsmasq-config'],
    tapKept: true,
  },
  {
    name: 'ip_forward off',
    fault: [['sysctl', '-qw', 'net.ipv4.ip_forward=0']],
    kinds: ['sysctl'],
    tapKept: true,
  },
  {
    name: 'tap unplugged',
    fault: [['ip', 'link', 'set', 'TAP', 'nomaster']],
    kinds: ['tap-unplugged'],
    tapKept: true,
  },
  {
    name: 'tap plugged into another bridge',
    fault: [
      ['ip', 'link', 'add', 'kdrift0', 'type', 'bridge'],
      ['ip', 'link', 'set', 'TAP', 'master', 'kdrift0'],
    ],
    kinds: ['tap-unplugged'],
    tapKept: true,
    // The stray bridge is not kvmnet's: repair takes only the tap back.
    cleanup: [['ip', 'link', 'del', 'kdrift0']],
  },
  { name: 'tap down', fault: [['ip', 'link', 'set', 'TAP', 'down']], kinds: ['tap-down'], tapKept: true },
  { name: 'tap deleted', fault: [['ip', 'link', 'del', 'TAP']], kinds: ['tap-missing'], tapKept: false },
  {
    name: 'anti-spoofing table deleted',
    fault: [['nft', 'delete', 'table', 'bridge', 'kvmnet']],
    kinds: ['nft-bridge'],
    tapKept: true,
  },
  {
    name: "a port's anti-spoofing element deleted",
    fault: [['nft', 'delete', 'element', 'bridge', 'kvmnet', 'ports', '{ "TAP" }']],
    kinds: ['nft-bridge'],
    tapKept: true,
  },
  {
    name: 'everything at once',
    fault: [
      ['ip', 'link', 'del', 'BR'],
      ['nft', 'flush', 'ruleset'],
      ['kill', '-KILL', 'PID'],
    ],
    kinds: ['bridge-missing', 'nft-table', 'dnsmasq-down'],
    tapKept: true,
    cleanup: [['nft', FOREIGN_NFT]],
  },
];

/** A bridged network over the lab's eth1 (address and default route) with a port (tap). */
export const BRIDGED_DRIFT_CASES: DriftCase[] = [
  {
    name: 'uplink unplugged',
    fault: [['ip', 'link', 'set', 'UPLINK', 'nomaster']],
    kinds: ['uplink-unplugged'],
    tapKept: true,
  },
  {
    name: "the uplink's address removed from the bridge",
    fault: [['ip', 'addr', 'del', '192.168.100.239/24', 'dev', 'BR']],
    kinds: ['uplink-address', 'uplink-route'],
    tapKept: true,
  },
  {
    name: 'default route deleted',
    fault: [['ip', 'route', 'del', 'default']],
    kinds: ['uplink-route'],
    tapKept: true,
  },
  {
    name: 'bridge down',
    fault: [['ip', 'link', 'set', 'BR', 'down']],
    kinds: ['bridge-down'],
    tapKept: true,
  },
  { name: 'bridge deleted', fault: [['ip', 'link', 'del', 'BR']], kinds: ['bridge-missing'], tapKept: true },
  {
    name: 'tap unplugged',
    fault: [['ip', 'link', 'set', 'TAP', 'nomaster']],
    kinds: ['tap-unplugged'],
    tapKept: true,
  },
  { name: 'tap down', fault: [['ip', 'link', 'set', 'TAP', 'down']], kinds: ['tap-down'], tapKept: true },
];
