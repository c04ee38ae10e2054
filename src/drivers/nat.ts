// NAT networks: guests reach out through the host's address (masquerade); only replies and
// explicit port forwards come in.
import type { NetworkDriver } from './driver.js';

export const natDriver: NetworkDriver = {
  mode: 'nat',
  summary: 'guests reach outside through the host (masquerade); outside reaches guests only by port forwards',
  capabilities: { ownsSubnet: true, dhcp: true, external: true },
  firewall: (def) => ({
    network: def.name,
    bridge: def.bridge,
    subnet: def.subnet,
    forward: 'nat',
    dhcpChecksum: def.dhcp !== null,
  }),
  sysctls: () => ({ 'net.ipv4.ip_forward': '1' }),
};
