// Isolation between kvmnet networks (issue 8, point 4): which pairs of networks are tried, with
// which probes, and which bad --peer inputs are refused. Used by test/integration/isolation.test.ts;
// counted in docs/reliability.md.

export type IsoMode = 'nat' | 'isolated' | 'routed';

/** The networks of the isolation lab: one guest on each. */
export interface IsoNet {
  name: string;
  mode: IsoMode;
  /** The third octet of 10.4x.0.0/24 and the bridge kvi<N>. */
  n: number;
  peers?: string[];
}

export const ISOLATION_NETS: IsoNet[] = [
  { name: 'nat1', mode: 'nat', n: 41 },
  { name: 'nat2', mode: 'nat', n: 42 },
  { name: 'iso1', mode: 'isolated', n: 43 },
  { name: 'rt1', mode: 'routed', n: 44 },
  { name: 'rt2', mode: 'routed', n: 45 },
  // Peered with rt2 (one side names the other).
  { name: 'rt3', mode: 'routed', n: 46, peers: ['rt2'] },
];

/** Pairs of networks whose guests try each other, both ways; `reach` is what must happen. */
export const ISOLATION_PAIR_CASES: Array<{ a: string; b: string; reach: boolean; why: string }> = [
  { a: 'nat1', b: 'nat2', reach: false, why: 'two NAT networks' },
  { a: 'nat1', b: 'iso1', reach: false, why: 'NAT and isolated' },
  { a: 'rt1', b: 'rt2', reach: false, why: 'two routed networks without peers' },
  { a: 'rt2', b: 'rt3', reach: true, why: 'two routed networks, rt3 names rt2 with --peer' },
  { a: 'rt1', b: 'rt3', reach: false, why: 'a peered routed network and an unpeered one' },
  { a: 'nat1', b: 'rt1', reach: false, why: 'NAT and routed (routed accepts any source from outside)' },
  { a: 'iso1', b: 'rt1', reach: false, why: 'isolated and routed' },
];

/**
 * Flows established in conntrack between two networks while the forward hook had no rules (a UDP
 * flow with fixed ports): once `kvmnet repair` puts the rules back, the same flow must be dropped.
 */
export const ESTABLISHED_FLOW_CASES: Array<{ from: string; to: string; why: string }> = [
  { from: 'rt1', to: 'rt2', why: 'two routed networks without peers' },
  { from: 'nat1', to: 'iso1', why: 'NAT into isolated (the flow masqueraded)' },
];

/** What each pair tries, in each direction. */
export const ISOLATION_PROBE_CASES = ['ping', 'tcp'] as const;

/** `net define --peer` input that is refused: exit 2, one error line, nothing changed. */
export const PEER_INPUT_CASES: Array<{ args: string[]; error: RegExp }> = [
  {
    args: ['net', 'define', 'px', '--mode', 'nat', '--subnet', '10.47.0.0/24', '--peer', 'rt1'],
    error: /peers are for routed networks, not nat/,
  },
  {
    args: ['net', 'define', 'px', '--mode', 'routed', '--subnet', '10.47.0.0/24', '--peer', 'nosuch'],
    error: /peer "nosuch" of network "px" is not defined/,
  },
  {
    args: ['net', 'define', 'px', '--mode', 'routed', '--subnet', '10.47.0.0/24', '--peer', 'nat1'],
    error: /peer "nat1" of network "px" is nat, not routed/,
  },
  {
    args: ['net', 'define', 'px', '--mode', 'routed', '--subnet', '10.47.0.0/24', '--peer', 'px'],
    error: /network "px" cannot be its own peer/,
  },
  {
    args: ['net', 'define', 'px', '--mode', 'routed', '--subnet', '10.47.0.0/24', '--peer', 'a;b'],
    error: /peer "a;b" is not a network name/,
  },
];
