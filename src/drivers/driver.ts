// The network driver interface: one driver per network mode, each saying what a running network
// of its mode needs (firewall intent, sysctls, DHCP/DNS) through data, so the engine never
// branches on the mode. Later drivers (bridged uplink, VXLAN overlay) add capabilities here.
import { l3, type NetworkDef, type NetworkMode } from '../model/network.js';
import type { DnatEntry } from '../model/forward.js';
import type { FirewallIntent } from '../render/nft.js';

export interface DriverCapabilities {
  /** kvmnet owns the subnet and the gateway address on the bridge. */
  ownsSubnet: boolean;
  /** kvmnet may run a DHCP server (dnsmasq) on the network. */
  dhcp: boolean;
  /** Guests' traffic leaves the host (NAT or routed). */
  external: boolean;
  /** Port forwards (DNAT) may reach guests of the network. */
  forwards: boolean;
  /**
   * The bridge takes over a host NIC (its MAC, addresses and routes) instead of owning a subnet:
   * started by the uplink planner (src/engine/bridged.ts), with a connectivity check and an
   * exact restore on stop.
   */
  uplink: boolean;
}

export interface NetworkDriver {
  readonly mode: NetworkMode;
  readonly summary: string;
  readonly capabilities: DriverCapabilities;
  /** The firewall intent of a running network with these port forwards (already resolved). */
  firewall(def: NetworkDef, dnat: DnatEntry[], peerBridges?: string[]): FirewallIntent;
  /** Host-wide sysctls a running network of this mode needs (only ever raised, never lowered back). */
  sysctls(def: NetworkDef): Record<string, string>;
}

/** The intent every bridge-with-subnet driver shares; `forward` is what differs by mode. */
export function l3Intent(
  def: NetworkDef,
  forward: FirewallIntent['forward'],
  dnat: DnatEntry[],
  peerBridges: string[] = [],
): FirewallIntent {
  return {
    network: def.name,
    bridge: def.bridge,
    subnet: l3(def).subnet,
    forward,
    dhcpChecksum: def.dhcp !== null,
    gateway: l3(def).gateway,
    dnat,
    ...(def.forwardDev === undefined ? {} : { forwardDev: def.forwardDev }),
    ...(forward === 'routed' && peerBridges.length > 0 ? { peerBridges } : {}),
    // Flow offload (nat, unless --no-offload), hooked on the bridge only: it always exists when the
    // rules are applied, whereas an egress interface may not (a flowtable refuses a missing device);
    // guest-to-outside packets of established flows take the fast path, replies the normal one.
    // The firewall backend drops it where the kernel has no flowtables.
    ...(forward === 'nat' && def.offload !== false ? { offload: { devices: [def.bridge] } } : {}),
  };
}
