// NAT networks: guests reach out through the host's address (masquerade); only replies and
// explicit port forwards come in.
import { l3Intent, type NetworkDriver } from './driver.js';

export const natDriver: NetworkDriver = {
  mode: 'nat',
  summary: 'guests reach outside through the host (masquerade); outside reaches guests only by port forwards',
  capabilities: { ownsSubnet: true, dhcp: true, external: true, forwards: true, uplink: false },
  firewall: (def, dnat) => l3Intent(def, 'nat', dnat),
  sysctls: () => ({ 'net.ipv4.ip_forward': '1' }),
};
