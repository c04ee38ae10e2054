// Routed networks: forwarded both ways without NAT; the LAN must route the subnet to this host.
import { l3Intent, type NetworkDriver } from './driver.js';

export const routedDriver: NetworkDriver = {
  mode: 'routed',
  summary: 'forwarded both ways without NAT; the LAN routes the subnet back to this host',
  capabilities: { ownsSubnet: true, dhcp: true, external: true, forwards: true, uplink: false },
  firewall: (def, dnat, peerBridges) => l3Intent(def, 'routed', dnat, peerBridges),
  sysctls: () => ({ 'net.ipv4.ip_forward': '1' }),
};
