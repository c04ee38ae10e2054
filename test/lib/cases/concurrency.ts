// Commands the concurrency test (test/integration/concurrency.test.ts) starts all at once against
// one running network (nat, 10.88.0.0/24, bridge kvbr8). `group` ties together commands that
// compete for the same thing: 'conflict:…' exactly one of them succeeds, the others are refused
// (exit 2) with the error `error` matches; 'same:…' all succeed (identical re-adds and removals
// are no-ops). Cases without a group must succeed.

export interface ConcurrentCase {
  args: string[];
  group?: string;
  /** The refusal a losing member of a conflict group gets. */
  error?: RegExp;
}

const port = (vm: string, mac: string, ip: string): string[] => [
  'port',
  'add',
  'n8',
  '--vm',
  vm,
  '--mac',
  mac,
  '--ip',
  ip,
];
const fwd = (p: number, target: string): string[] => ['forward', 'add', 'n8', 'tcp', String(p), target];

export const CONCURRENT_ADD_CASES: ConcurrentCase[] = [
  ...[1, 2, 3, 4, 5, 6, 7, 8].map((i) => ({ args: port(`p${i}`, `52:54:00:88:00:0${i}`, `10.88.0.1${i}`) })),
  // Two VMs, one MAC.
  {
    args: port('q1', '52:54:00:88:00:99', '10.88.0.91'),
    group: 'conflict:mac',
    error: /mac .* is already used/,
  },
  {
    args: port('q2', '52:54:00:88:00:99', '10.88.0.92'),
    group: 'conflict:mac',
    error: /mac .* is already used/,
  },
  // The same port twice.
  { args: port('r', '52:54:00:88:00:a0', '10.88.0.100'), group: 'same:r' },
  { args: port('r', '52:54:00:88:00:a0', '10.88.0.100'), group: 'same:r' },
  ...[1, 2, 3, 4, 5, 6].map((i) => ({ args: fwd(10000 + i, `10.88.0.200:${80 + i}`) })),
  // One host port, two targets.
  { args: fwd(10100, '10.88.0.201:80'), group: 'conflict:fwd', error: /overlaps the forward tcp\/10100/ },
  { args: fwd(10100, '10.88.0.202:80'), group: 'conflict:fwd', error: /overlaps the forward tcp\/10100/ },
];

export const CONCURRENT_DEL_CASES: ConcurrentCase[] = [
  ...[1, 2, 3, 4, 5, 6, 7, 8].map((i) => ({ args: ['port', 'del', `p${i}`] })),
  // Only one of q1 and q2 exists (the winner of the MAC conflict above).
  { args: ['port', 'del', 'q1'], group: 'conflict:q', error: /no port or VM named "q[12]"/ },
  { args: ['port', 'del', 'q2'], group: 'conflict:q', error: /no port or VM named "q[12]"/ },
  // The same port removed twice: one removes it, the other finds it gone.
  { args: ['port', 'del', 'r'], group: 'conflict:r', error: /no port or VM named "r"/ },
  { args: ['port', 'del', 'r'], group: 'conflict:r', error: /no port or VM named "r"/ },
  ...[1, 2, 3, 4, 5, 6].map((i) => ({ args: ['forward', 'del', 'n8', 'tcp', String(10000 + i)] })),
  { args: ['forward', 'del', 'n8', 'tcp', '10100'], group: 'conflict:f', error: /has no forward tcp\/10100/ },
  { args: ['forward', 'del', 'n8', 'tcp', '10100'], group: 'conflict:f', error: /has no forward tcp\/10100/ },
];
