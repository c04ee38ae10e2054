// Routed networks: forwarded both ways without NAT; the LAN must route the subnet to this host.
import type { NetworkDriver } from './driver.js';

export const routedDriver: NetworkDriver = {
  mode: 'routed',
  summary: 'forwarded both ways without NAT; the LAN routes the subnet back to this host',
  capabilities: { ownsSubnet: true, dhcp: true, external: true },
  firewall: (def) => ({
    network: def.name,
    bridge: def.bridge,
    subnet: def.subnet,
    forward: 'routed',
    dhcpChecksum: def.dhcp !== null,
  }),
  sysctls: () => ({ 'net.ipv4.ip_forward': '1' }),
};
