// Open networks (libvirt's forward mode 'open'): routed like `routed`, but kvmnet adds no firewall
// rules and no table elements at all for them, not even for DHCP and DNS; the host's own firewall
// (or none) decides what passes. kvmnet still owns the bridge, subnet, dnsmasq and ip_forward.
import { l3Intent, type NetworkDriver } from './driver.js';

export const openDriver: NetworkDriver = {
  mode: 'open',
  summary: "routed without any kvmnet firewall rules; the host's own firewall decides what passes",
  // No port forwards: they live in kvmnet's table, which an open network does not use.
  capabilities: { ownsSubnet: true, dhcp: true, external: true, forwards: false, uplink: false },
  firewall: (def, dnat) => l3Intent(def, 'open', dnat),
  sysctls: () => ({ 'net.ipv4.ip_forward': '1' }),
};
