// The network driver interface: one driver per network mode, each saying what a running network
// of its mode needs (firewall intent, sysctls, DHCP/DNS) through data, so the engine never
// branches on the mode. Later drivers (bridged uplink, VXLAN overlay) add capabilities here.
import type { NetworkDef, NetworkMode } from '../model/network.js';
import type { FirewallIntent } from '../render/nft.js';

export interface DriverCapabilities {
  /** kvmnet owns the subnet and the gateway address on the bridge. */
  ownsSubnet: boolean;
  /** kvmnet may run a DHCP server (dnsmasq) on the network. */
  dhcp: boolean;
  /** Guests' traffic leaves the host (NAT or routed). */
  external: boolean;
}

export interface NetworkDriver {
  readonly mode: NetworkMode;
  readonly summary: string;
  readonly capabilities: DriverCapabilities;
  firewall(def: NetworkDef): FirewallIntent;
  /** Host-wide sysctls a running network of this mode needs (only ever raised, never lowered back). */
  sysctls(def: NetworkDef): Record<string, string>;
}
