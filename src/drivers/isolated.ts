// Isolated networks: guests reach each other and the host (DHCP, DNS), nothing leaves or enters.
import type { NetworkDriver } from './driver.js';

export const isolatedDriver: NetworkDriver = {
  mode: 'isolated',
  summary: 'guests reach each other and the host; nothing is forwarded in or out',
  capabilities: { ownsSubnet: true, dhcp: true, external: false },
  firewall: (def) => ({
    network: def.name,
    bridge: def.bridge,
    subnet: def.subnet,
    forward: 'none',
    dhcpChecksum: def.dhcp !== null,
  }),
  sysctls: () => ({}),
};
