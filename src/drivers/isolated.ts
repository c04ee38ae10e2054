// Isolated networks: guests reach each other and the host (DHCP, DNS), nothing leaves or enters.
import { l3Intent, type NetworkDriver } from './driver.js';

export const isolatedDriver: NetworkDriver = {
  mode: 'isolated',
  summary: 'guests reach each other and the host; nothing is forwarded in or out',
  capabilities: { ownsSubnet: true, dhcp: true, external: false, forwards: false, uplink: false },
  firewall: (def, dnat) => l3Intent(def, 'none', dnat),
  sysctls: () => ({}),
};
