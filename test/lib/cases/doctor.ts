// Hosts that break guest networking, for `kvmnet doctor`: recorded rulesets the analysis is fed
// (test/unit/doctor.test.ts) and host changes reproduced in a lab's host namespace
// (test/integration/doctor.test.ts). Docker's rules are those of Docker 24-27 with one container
// publishing port 8080.

/** Docker's filter and nat rules, as iptables argv after the binary (iptables-nft or iptables-legacy). */
export const DOCKER_RULES: string[][] = [
  ['-N', 'DOCKER'],
  ['-N', 'DOCKER-USER'],
  ['-N', 'DOCKER-ISOLATION-STAGE-1'],
  ['-N', 'DOCKER-ISOLATION-STAGE-2'],
  ['-P', 'FORWARD', 'DROP'],
  ['-A', 'FORWARD', '-j', 'DOCKER-USER'],
  ['-A', 'FORWARD', '-j', 'DOCKER-ISOLATION-STAGE-1'],
  ['-A', 'FORWARD', '-o', 'docker0', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
  ['-A', 'FORWARD', '-o', 'docker0', '-j', 'DOCKER'],
  ['-A', 'FORWARD', '-i', 'docker0', '!', '-o', 'docker0', '-j', 'ACCEPT'],
  ['-A', 'FORWARD', '-i', 'docker0', '-o', 'docker0', '-j', 'ACCEPT'],
  [
    '-A',
    'DOCKER',
    '-d',
    '172.17.0.2/32',
    '!',
    '-i',
    'docker0',
    '-o',
    'docker0',
    '-p',
    'tcp',
    '-m',
    'tcp',
    '--dport',
    '80',
    '-j',
    'ACCEPT',
  ],
  ['-A', 'DOCKER-ISOLATION-STAGE-1', '-i', 'docker0', '!', '-o', 'docker0', '-j', 'DOCKER-ISOLATION-STAGE-2'],
  ['-A', 'DOCKER-ISOLATION-STAGE-1', '-j', 'RETURN'],
  ['-A', 'DOCKER-ISOLATION-STAGE-2', '-o', 'docker0', '-j', 'DROP'],
  ['-A', 'DOCKER-ISOLATION-STAGE-2', '-j', 'RETURN'],
  ['-A', 'DOCKER-USER', '-j', 'RETURN'],
  ['-t', 'nat', '-N', 'DOCKER'],
  ['-t', 'nat', '-A', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'DOCKER'],
  [
    '-t',
    'nat',
    '-A',
    'OUTPUT',
    '!',
    '-d',
    '127.0.0.0/8',
    '-m',
    'addrtype',
    '--dst-type',
    'LOCAL',
    '-j',
    'DOCKER',
  ],
  ['-t', 'nat', '-A', 'POSTROUTING', '-s', '172.17.0.0/16', '!', '-o', 'docker0', '-j', 'MASQUERADE'],
  ['-t', 'nat', '-A', 'DOCKER', '-i', 'docker0', '-j', 'RETURN'],
  [
    '-t',
    'nat',
    '-A',
    'DOCKER',
    '!',
    '-i',
    'docker0',
    '-p',
    'tcp',
    '-m',
    'tcp',
    '--dport',
    '8080',
    '-j',
    'DNAT',
    '--to-destination',
    '172.17.0.2:80',
  ],
];

/** Empties what DOCKER_RULES made (and doctor's additions); iptables-legacy cannot remove its tables. */
export const DOCKER_UNDO: string[][] = [
  ['-F'],
  ['-X'],
  ['-P', 'FORWARD', 'ACCEPT'],
  ['-t', 'nat', '-F'],
  ['-t', 'nat', '-X'],
];

export interface AnalysisCase {
  name: string;
  /** Fixture files in test/unit/fixtures/doctor/. */
  iptablesNft?: string;
  iptablesLegacy?: string;
  nft?: string;
  /** net.bridge.bridge-nf-call-iptables; null: br_netfilter not loaded (default). */
  brnf?: string | null;
  ipForward?: string;
  routes?: Array<{ dst: string; dev?: string }>;
  addrs?: Array<{ ifname: string; cidr: string }>;
  missing?: string[];
  /** Besides the running NAT network "default" (virbr0, 192.168.122.0/24). */
  extra?: Array<{
    name: string;
    mode: string;
    bridge: string;
    subnet?: string;
    running: boolean;
    forwardDev?: string;
  }>;
  /** Exactly the finding ids expected. */
  expect: string[];
  /** Of those, the ones --fix may apply. */
  safe?: string[];
}

export const DOCTOR_ANALYSIS_CASES: AnalysisCase[] = [
  { name: 'a clean host', expect: [] },
  {
    name: "Docker's rules in iptables-legacy",
    iptablesLegacy: 'docker.iptables-save',
    expect: ['iptables-forward-drop:legacy:virbr0'],
    safe: ['iptables-forward-drop:legacy:virbr0'],
  },
  {
    name: "Docker's rules in iptables-nft (its ip filter table is read through iptables-nft-save, not twice)",
    iptablesNft: 'docker.iptables-save',
    nft: 'docker-iptables-nft.json',
    expect: ['iptables-forward-drop:nft:virbr0'],
    safe: ['iptables-forward-drop:nft:virbr0'],
  },
  {
    name: "Docker's ip filter table seen only through nft -j (no iptables-nft-save)",
    nft: 'docker-iptables-nft.json',
    expect: ['nft-forward-drop:ip/filter/FORWARD:virbr0'],
  },
  {
    name: "Docker's rules after doctor's DOCKER-USER fix",
    iptablesLegacy: 'docker-fixed.iptables-save',
    iptablesNft: 'docker-fixed.iptables-save',
    brnf: '1',
    extra: [{ name: 'iso', mode: 'isolated', bridge: 'virbr1', subnet: '10.20.0.0/24', running: true }],
    expect: ['br-netfilter', 'iptables-forward-drop:legacy:virbr1', 'iptables-forward-drop:nft:virbr1'],
    safe: ['iptables-forward-drop:legacy:virbr1', 'iptables-forward-drop:nft:virbr1'],
  },
  {
    name: "br_netfilter on: Docker's DROP also cuts off guests of an isolated network from each other",
    iptablesLegacy: 'docker.iptables-save',
    brnf: '1',
    extra: [{ name: 'iso', mode: 'isolated', bridge: 'virbr1', subnet: '10.20.0.0/24', running: true }],
    expect: ['br-netfilter', 'iptables-forward-drop:legacy:virbr0', 'iptables-forward-drop:legacy:virbr1'],
    safe: ['iptables-forward-drop:legacy:virbr0', 'iptables-forward-drop:legacy:virbr1'],
  },
  {
    name: 'br_netfilter off: an isolated network is not affected by FORWARD',
    iptablesLegacy: 'docker.iptables-save',
    brnf: '0',
    extra: [{ name: 'iso', mode: 'isolated', bridge: 'virbr1', subnet: '10.20.0.0/24', running: true }],
    expect: ['iptables-forward-drop:legacy:virbr0'],
    safe: ['iptables-forward-drop:legacy:virbr0'],
  },
  {
    name: 'a stopped network is not checked against the firewall',
    iptablesLegacy: 'docker.iptables-save',
    extra: [{ name: 'off', mode: 'nat', bridge: 'virbr2', subnet: '10.30.0.0/24', running: false }],
    expect: ['iptables-forward-drop:legacy:virbr0'],
    safe: ['iptables-forward-drop:legacy:virbr0'],
  },
  {
    name: "ufw's iptables rules: INPUT and FORWARD policy DROP",
    iptablesNft: 'ufw.iptables-save',
    expect: ['iptables-forward-drop:nft:virbr0', 'iptables-input-drop:nft:virbr0'],
  },
  {
    name: 'a ufw-like nftables table (input and forward policy drop)',
    nft: 'ufw-like.json',
    expect: ['nft-forward-drop:inet/filter/forward:virbr0', 'nft-input-drop:inet/filter/input:virbr0'],
  },
  {
    name: 'a firewalld-like nftables table (final rejects after the zones)',
    nft: 'firewalld-like.json',
    expect: [
      'nft-forward-drop:inet/firewalld/filter_FORWARD:virbr0',
      'nft-input-drop:inet/firewalld/filter_INPUT:virbr0',
    ],
  },
  {
    name: 'firewalld-like with an open network: forwarded traffic only (kvmnet serves no DHCP/DNS rules check)',
    nft: 'firewalld-like.json',
    extra: [{ name: 'op', mode: 'open', bridge: 'virbr3', subnet: '10.40.0.0/24', running: true }],
    expect: [
      'nft-forward-drop:inet/firewalld/filter_FORWARD:virbr0',
      'nft-forward-drop:inet/firewalld/filter_FORWARD:virbr3',
      'nft-input-drop:inet/firewalld/filter_INPUT:virbr0',
    ],
  },
  {
    name: "a network with a forward device is checked leaving through it, not the default route's",
    iptablesLegacy: 'forward-dev.iptables-save',
    extra: [
      {
        name: 'fd',
        mode: 'nat',
        bridge: 'virbr5',
        subnet: '10.50.0.0/24',
        running: true,
        forwardDev: 'eth2',
      },
    ],
    expect: ['iptables-forward-drop:legacy:virbr0'],
  },
  {
    name: 'ip_forward turned off while a NAT network runs',
    ipForward: '0',
    expect: ['ip-forward-off'],
    safe: ['ip-forward-off'],
  },
  {
    name: 'a route into the subnet through another interface',
    routes: [{ dst: '192.168.122.64/26', dev: 'eth1' }],
    expect: ['subnet-clash:default'],
  },
  {
    name: 'an address inside the subnet on another interface',
    addrs: [{ ifname: 'wg0', cidr: '192.168.122.200/24' }],
    expect: ['subnet-clash:default'],
  },
  {
    name: "the network's own routes and address on its bridge are no clash",
    routes: [{ dst: '192.168.122.0/24', dev: 'virbr0' }],
    addrs: [{ ifname: 'virbr0', cidr: '192.168.122.1/24' }],
    expect: [],
  },
  {
    name: 'dnsmasq and nft missing',
    missing: ['dnsmasq', 'nft'],
    expect: ['missing-tool:dnsmasq', 'missing-tool:nft'],
  },
];

/** Changes to the lab's host namespace and what doctor must say about them. */
export interface HostCase {
  name: string;
  /** Commands run in the lab's host namespace to break it, and to restore it afterwards. */
  setup: string[][];
  undo: string[][];
  expect: string[];
  /** What stops working for the guest: its traffic to the LAN, its DHCP lease. */
  breaks: Array<'lan' | 'dhcp' | 'guest-to-guest'>;
  /** 'fix': `doctor --fix` repairs it; 'printed': running the printed fix commands does; 'none': neither (a clash). */
  repair: 'fix' | 'printed' | 'none';
}

const ipt = (bin: string, rules: string[][]): string[][] => rules.map((r) => [bin, ...r]);

export const DOCTOR_HOST_CASES: HostCase[] = [
  {
    name: "Docker's rules in iptables-nft",
    setup: ipt('iptables-nft', DOCKER_RULES),
    undo: [
      ['nft', 'delete', 'table', 'ip', 'filter'],
      ['nft', 'delete', 'table', 'ip', 'nat'],
    ],
    expect: ['br-netfilter', 'iptables-forward-drop:nft:virbr0'],
    breaks: ['lan', 'guest-to-guest'],
    repair: 'fix',
  },
  {
    name: "Docker's rules in iptables-legacy",
    setup: ipt('iptables-legacy', DOCKER_RULES),
    undo: ipt('iptables-legacy', DOCKER_UNDO),
    expect: ['br-netfilter', 'iptables-forward-drop:legacy:virbr0'],
    breaks: ['lan', 'guest-to-guest'],
    repair: 'fix',
  },
  {
    name: 'a ufw-like nftables table',
    setup: [['nft', '-f', 'test/fixtures/doctor/ufw-like.nft']],
    undo: [['nft', 'delete', 'table', 'inet', 'filter']],
    expect: [
      'br-netfilter',
      'nft-forward-drop:inet/filter/forward:virbr0',
      'nft-input-drop:inet/filter/input:virbr0',
    ],
    breaks: ['lan', 'dhcp', 'guest-to-guest'],
    repair: 'printed',
  },
  {
    name: 'a firewalld-like nftables table',
    setup: [['nft', '-f', 'test/fixtures/doctor/firewalld-like.nft']],
    undo: [['nft', 'delete', 'table', 'inet', 'firewalld']],
    expect: [
      'br-netfilter',
      'nft-forward-drop:inet/firewalld/filter_FORWARD:virbr0',
      'nft-input-drop:inet/firewalld/filter_INPUT:virbr0',
    ],
    breaks: ['lan', 'dhcp', 'guest-to-guest'],
    repair: 'printed',
  },
  {
    name: 'ip_forward turned off',
    setup: [['sysctl', '-qw', 'net.ipv4.ip_forward=0']],
    undo: [['sysctl', '-qw', 'net.ipv4.ip_forward=1']],
    expect: ['br-netfilter', 'ip-forward-off'],
    breaks: ['lan'],
    repair: 'fix',
  },
  {
    name: 'a route into the subnet through the LAN',
    setup: [['ip', 'route', 'add', '192.168.122.64/26', 'via', '192.168.100.254', 'dev', 'eth1']],
    undo: [['ip', 'route', 'del', '192.168.122.64/26']],
    expect: ['br-netfilter', 'subnet-clash:default'],
    breaks: [],
    repair: 'none',
  },
];
