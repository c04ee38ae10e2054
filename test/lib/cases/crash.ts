// Operations the crash-safety test (test/integration/crash.test.ts) cuts short at every step
// (KVMNET_TEST_CRASH_AFTER_STEP=1, 2, … until a run completes), then re-runs and compares with a
// clean run. Each case is plain data: CLI argument lists run in a fresh namespace lab.

export interface CrashCase {
  name: string;
  /** Brings a fresh lab to the state the operation starts from. */
  setup: string[][];
  /** The operation that is crashed and re-run. */
  op: string[];
  /** After `kvmnet down` (and the leak check): back to the state `setup` made. */
  restore: string[][];
  /** A bridged network on the lab's eth1: its address must be on eth1 or the bridge at all times. */
  bridged?: boolean;
}

const NAT = ['net', 'define', 'n1', '--mode', 'nat', '--subnet', '10.77.0.0/24', '--bridge', 'kvbr1'];
const PORT_A = ['port', 'add', 'n1', '--vm', 'a', '--mac', '52:54:00:77:00:10', '--ip', '10.77.0.10'];
const FWD_A = ['forward', 'add', 'n1', 'tcp', '8080', 'a:80'];
const LAN = ['net', 'define', 'lan', '--mode', 'bridge', '--uplink', 'eth1', '--bridge', 'kvbr2'];
const PORT_C = ['port', 'add', 'lan', '--vm', 'c', '--mac', '52:54:00:77:00:30'];

export const CRASH_CASES: CrashCase[] = [
  {
    name: 'nat net start',
    setup: [NAT, PORT_A, FWD_A],
    op: ['net', 'start', 'n1'],
    restore: [],
  },
  {
    // `up` starts its networks as one batch (Engine.startMany): one ip batch and one nft
    // transaction for all, file writes and dnsmasq starts side by side.
    name: 'up of several nat networks',
    setup: [
      [...NAT, '--autostart'],
      PORT_A,
      FWD_A,
      [
        'net',
        'define',
        'n3',
        '--mode',
        'nat',
        '--subnet',
        '10.78.0.0/24',
        '--bridge',
        'kvbr3',
        '--autostart',
      ],
    ],
    op: ['up'],
    restore: [],
  },
  {
    name: 'nat net stop',
    setup: [NAT, PORT_A, FWD_A, ['net', 'start', 'n1']],
    op: ['net', 'stop', 'n1'],
    restore: [['net', 'start', 'n1']],
  },
  {
    name: 'port add',
    setup: [NAT, PORT_A, ['net', 'start', 'n1']],
    op: ['port', 'add', 'n1', '--vm', 'b', '--mac', '52:54:00:77:00:20', '--ip', '10.77.0.20'],
    restore: [
      ['port', 'del', 'b'],
      ['net', 'start', 'n1'],
    ],
  },
  {
    name: 'port del',
    setup: [NAT, PORT_A, ['net', 'start', 'n1']],
    op: ['port', 'del', 'a'],
    restore: [PORT_A, ['net', 'start', 'n1']],
  },
  {
    name: 'forward add',
    setup: [NAT, PORT_A, FWD_A, ['net', 'start', 'n1']],
    op: ['forward', 'add', 'n1', 'tcp', '9090', 'a:90'],
    restore: [
      ['forward', 'del', 'n1', 'tcp', '9090'],
      ['net', 'start', 'n1'],
    ],
  },
  {
    name: 'bridged net start',
    setup: [LAN, PORT_C],
    op: ['net', 'start', 'lan'],
    restore: [],
    bridged: true,
  },
  {
    name: 'bridged net stop',
    setup: [LAN, PORT_C, ['net', 'start', 'lan']],
    op: ['net', 'stop', 'lan'],
    restore: [['net', 'start', 'lan']],
    bridged: true,
  },
];
