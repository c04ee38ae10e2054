// Anti-spoofing and port isolation cases (issue 8 point 5), run by test/integration/spoof.test.ts.
// A frame case is sent by a guest through its port's tap; `checked` says whether it must reach the
// other guest when the sender's port has spoof-check on (with --no-spoof-check every frame passes).

/** Who the sender is and what is around it, to build frames from. */
export interface FrameCtx {
  mac: string;
  ip: string;
  /** Another guest (the observer) and the network's gateway. */
  otherMac: string;
  otherIp: string;
  gateway: string;
}

export interface Frame {
  kind: 'udp4' | 'arp' | 'dhcp' | 'udp6' | 'raw';
  ethSrc: string;
  ethDst: string;
  ipSrc?: string;
  ipDst?: string;
  op?: number;
  sha?: string;
  spa?: string;
  tha?: string;
  tpa?: string;
  chaddr?: string;
  ethType?: number;
}

export interface FrameCase {
  name: string;
  /** Frame fate through a port with spoof-check on. */
  checked: 'passes' | 'dropped';
  frame: (c: FrameCtx) => Frame;
}

const BCAST = 'ff:ff:ff:ff:ff:ff';
const ZERO = '00:00:00:00:00:00';
const FOREIGN_MAC = '52:54:00:de:ad:01';

function bumped(ip: string): string {
  const p = ip.split('.').map(Number);
  p[3] = ((p[3] ?? 0) % 250) + 3;
  return p.join('.');
}

/** Frames from a port whose guest has a reservation (pinned to its address from the start). */
export const SPOOF_FRAME_CASES: FrameCase[] = [
  {
    name: 'honest-udp',
    checked: 'passes',
    frame: (c) => ({ kind: 'udp4', ethSrc: c.mac, ethDst: BCAST, ipSrc: c.ip, ipDst: c.otherIp }),
  },
  {
    name: 'foreign-source-mac',
    checked: 'dropped',
    frame: (c) => ({ kind: 'udp4', ethSrc: FOREIGN_MAC, ethDst: BCAST, ipSrc: c.ip, ipDst: c.otherIp }),
  },
  {
    name: 'other-guest-source-mac',
    checked: 'dropped',
    frame: (c) => ({ kind: 'udp4', ethSrc: c.otherMac, ethDst: BCAST, ipSrc: c.ip, ipDst: c.otherIp }),
  },
  {
    name: 'foreign-source-ip',
    checked: 'dropped',
    frame: (c) => ({ kind: 'udp4', ethSrc: c.mac, ethDst: BCAST, ipSrc: bumped(c.ip), ipDst: c.otherIp }),
  },
  {
    name: 'gateway-source-ip',
    checked: 'dropped',
    frame: (c) => ({ kind: 'udp4', ethSrc: c.mac, ethDst: BCAST, ipSrc: c.gateway, ipDst: c.otherIp }),
  },
  {
    name: 'honest-arp-request',
    checked: 'passes',
    frame: (c) => ({
      kind: 'arp',
      ethSrc: c.mac,
      ethDst: BCAST,
      op: 1,
      sha: c.mac,
      spa: c.ip,
      tha: ZERO,
      tpa: c.otherIp,
    }),
  },
  {
    name: 'arp-forged-sender-ip',
    checked: 'dropped',
    frame: (c) => ({
      kind: 'arp',
      ethSrc: c.mac,
      ethDst: BCAST,
      op: 1,
      sha: c.mac,
      spa: c.otherIp,
      tha: ZERO,
      tpa: c.gateway,
    }),
  },
  {
    name: 'arp-forged-sender-mac',
    checked: 'dropped',
    frame: (c) => ({
      kind: 'arp',
      ethSrc: c.mac,
      ethDst: BCAST,
      op: 1,
      sha: FOREIGN_MAC,
      spa: c.ip,
      tha: ZERO,
      tpa: c.otherIp,
    }),
  },
  {
    name: 'gratuitous-arp-for-gateway',
    checked: 'dropped',
    frame: (c) => ({
      kind: 'arp',
      ethSrc: c.mac,
      ethDst: BCAST,
      op: 2,
      sha: c.mac,
      spa: c.gateway,
      tha: BCAST,
      tpa: c.gateway,
    }),
  },
  {
    name: 'arp-probe-from-0.0.0.0',
    checked: 'passes',
    frame: (c) => ({
      kind: 'arp',
      ethSrc: c.mac,
      ethDst: BCAST,
      op: 1,
      sha: c.mac,
      spa: '0.0.0.0',
      tha: ZERO,
      tpa: c.ip,
    }),
  },
  {
    name: 'dhcp-from-0.0.0.0',
    checked: 'passes',
    frame: (c) => ({ kind: 'dhcp', ethSrc: c.mac, ethDst: BCAST, ipSrc: '0.0.0.0', chaddr: c.mac }),
  },
  {
    name: 'dhcp-for-another-mac',
    checked: 'dropped',
    frame: (c) => ({ kind: 'dhcp', ethSrc: c.mac, ethDst: BCAST, ipSrc: '0.0.0.0', chaddr: c.otherMac }),
  },
  {
    name: 'ipv6-link-local',
    checked: 'passes',
    frame: (c) => ({
      kind: 'udp6',
      ethSrc: c.mac,
      ethDst: BCAST,
      ipSrc: 'fe80::5054:ff:fe00:1',
      ipDst: 'ff02::1',
    }),
  },
  {
    name: 'ipv6-global-source',
    checked: 'dropped',
    frame: (c) => ({ kind: 'udp6', ethSrc: c.mac, ethDst: BCAST, ipSrc: '2001:db8::66', ipDst: 'ff02::1' }),
  },
  {
    name: 'other-ethertype',
    checked: 'dropped',
    frame: (c) => ({ kind: 'raw', ethSrc: c.mac, ethDst: BCAST, ethType: 0x88b5 }),
  },
];

/**
 * A port without a reservation: any IPv4 source until its guest has a DHCP lease (the gateway's
 * and other ports' reserved addresses excepted), then only the leased one (the lease hook pins it).
 */
export interface LeaseCase {
  name: string;
  when: 'before-lease' | 'after-lease';
  /** The source address: the lease's, or another one. */
  source: 'lease' | 'other' | 'gateway';
  kind: 'udp4' | 'arp';
  expect: 'passes' | 'dropped';
}

export const SPOOF_LEASE_CASES: LeaseCase[] = [
  { name: 'before-any-ip', when: 'before-lease', source: 'other', kind: 'udp4', expect: 'passes' },
  { name: 'before-gateway-ip', when: 'before-lease', source: 'gateway', kind: 'udp4', expect: 'dropped' },
  { name: 'before-gateway-arp', when: 'before-lease', source: 'gateway', kind: 'arp', expect: 'dropped' },
  { name: 'after-leased-ip', when: 'after-lease', source: 'lease', kind: 'udp4', expect: 'passes' },
  { name: 'after-leased-arp', when: 'after-lease', source: 'lease', kind: 'arp', expect: 'passes' },
  { name: 'after-other-ip', when: 'after-lease', source: 'other', kind: 'udp4', expect: 'dropped' },
  { name: 'after-other-arp', when: 'after-lease', source: 'other', kind: 'arp', expect: 'dropped' },
];

/** Pings between guests of --isolated ports, a plain port and the gateway. */
export interface IsolationCase {
  from: 'iso1' | 'iso2' | 'plain';
  to: 'iso1' | 'iso2' | 'plain' | 'gateway';
  expect: 'reaches' | 'blocked';
}

export const PORT_ISOLATION_CASES: IsolationCase[] = [
  { from: 'iso1', to: 'iso2', expect: 'blocked' },
  { from: 'iso2', to: 'iso1', expect: 'blocked' },
  { from: 'iso1', to: 'gateway', expect: 'reaches' },
  { from: 'iso2', to: 'gateway', expect: 'reaches' },
  // Isolation separates isolated ports from each other only (the kernel's bridge port isolation).
  { from: 'iso1', to: 'plain', expect: 'reaches' },
  { from: 'plain', to: 'iso2', expect: 'reaches' },
];
