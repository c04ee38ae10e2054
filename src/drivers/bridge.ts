// Bridged networks: a bridge whose port is a host NIC (the uplink), with the host's addresses and
// routes moved onto it, so guests sit on the physical LAN and take its DHCP addresses. kvmnet adds
// no firewall rules, no NAT and no dnsmasq: the LAN owns the addressing.
import type { NetworkDriver } from './driver.js';

export const bridgeDriver: NetworkDriver = {
  mode: 'bridge',
  summary: "guests sit on the physical LAN through a host NIC; the LAN's router and DHCP server serve them",
  capabilities: { ownsSubnet: false, dhcp: false, external: true, forwards: false, uplink: true },
  firewall: () => {
    throw new Error('bridged networks have no firewall intent');
  },
  sysctls: () => ({}),
};
