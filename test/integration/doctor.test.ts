// `kvmnet doctor` against the real kernel: each case of DOCTOR_HOST_CASES breaks the lab's host
// namespace the way Docker (iptables-nft and iptables-legacy), a ufw-like or firewalld-like nftables
// table, a sysctl or a route would on a real host. The test checks that the guests of the running NAT
// network really lose the LAN, DHCP or each other, that doctor names exactly the expected findings
// (exit 1), and that `--fix` (or, where doctor only prints the fix, running the printed commands)
// makes them work again with doctor back at exit 0.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DOCTOR_HOST_CASES } from '../lib/cases/doctor.js';
import { LAN_ROUTER, Lab, REPO } from '../lib/lab.js';
import { must, run } from '../lib/proc.js';

interface Finding {
  id: string;
  severity: string;
  safe: boolean;
  fix: string[];
}
interface DoctorJson {
  findings: Finding[];
  fixed: Array<{ id: string; commands: string[]; ok: boolean; error?: string }>;
  ok: boolean;
}

describe('kvmnet doctor in a lab', () => {
  let lab: Lab;
  let g1 = '';
  let g2 = '';
  let g3 = '';
  let g2ip = '';

  const doctor = async (...args: string[]): Promise<{ code: number; out: DoctorJson; text: string }> => {
    const r = await lab.kvmnet('doctor', ...args, '--json');
    assert.ok(r.code === 0 || r.code === 1, `doctor exited ${r.code}: ${r.stderr}`);
    return { code: r.code, out: JSON.parse(r.stdout) as DoctorJson, text: r.stdout };
  };
  const ids = (d: DoctorJson): string[] => d.findings.map((f) => f.id).sort();
  const lanWorks = async (): Promise<boolean> =>
    (await lab.fetch(g1, `http://${LAN_ROUTER}:8080/`, 2)) !== null;
  const guestsTalk = async (): Promise<boolean> => (await lab.fetch(g1, `http://${g2ip}:8081/`, 2)) !== null;
  const dhcpWorks = async (): Promise<boolean> =>
    lab.dhcp(g3, 'probe').then(
      () => true,
      () => false,
    );
  const inHost = async (argv: string[]): Promise<void> => {
    await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      ...argv.map((a) => (a.startsWith('test/') ? join(REPO, a) : a)),
    ]);
  };
  const working = async (): Promise<void> => {
    assert.ok(await lanWorks(), 'the guest reaches the LAN');
    assert.ok(await guestsTalk(), 'the guests reach each other');
    assert.ok(await dhcpWorks(), 'a guest gets a DHCP lease');
  };

  before(async () => {
    lab = await Lab.create('doc');
    await lab.kvmnetOk('up');
    await lab.server(lab.lanNs, 8080, 'lan');
    g1 = await lab.addGuest('g1', 'virbr0');
    g2 = await lab.addGuest('g2', 'virbr0');
    g3 = await lab.addGuest('g3', 'virbr0');
    await lab.dhcp(g1, 'one');
    g2ip = (await lab.dhcp(g2, 'two')).ip;
    await lab.server(g2, 8081, 'two');
  });
  after(async () => {
    // Every case undoes its rules, so the lab's host check holds. iptables-legacy's empty tables stay
    // (they cannot be removed once made), but the check compares nftables, links, addresses and routes.
    await lab.destroy();
  });

  test('a healthy lab: guests work and doctor finds nothing but the br_netfilter note (exit 0)', async () => {
    await working();
    const d = await doctor();
    assert.equal(d.code, 0, d.text);
    // New network namespaces start with net.bridge.bridge-nf-call-iptables=1 on this kernel.
    assert.deepEqual(ids(d.out), ['br-netfilter']);
    const human = await lab.kvmnet('doctor');
    assert.equal(human.code, 0);
    assert.match(human.stdout, /INFO br-netfilter/);
    assert.match(human.stdout, /no problems found \(notes above are for information\)/);
  });

  for (const c of DOCTOR_HOST_CASES) {
    test(c.name, async () => {
      for (const argv of c.setup) await inHost(argv);
      try {
        if (c.breaks.includes('lan'))
          assert.equal(await lanWorks(), false, 'the break cuts the guest off the LAN');
        if (c.breaks.includes('guest-to-guest'))
          assert.equal(await guestsTalk(), false, 'the break cuts guests apart');
        if (c.breaks.includes('dhcp')) assert.equal(await dhcpWorks(), false, 'the break stops DHCP');

        const d = await doctor();
        assert.equal(d.code, 1, d.text);
        assert.deepEqual(ids(d.out), [...c.expect].sort());
        assert.equal(d.out.ok, false);

        const f = await doctor('--fix');
        if (c.repair === 'fix') {
          assert.equal(f.code, 0, f.text);
          assert.ok(f.out.fixed.length > 0 && f.out.fixed.every((x) => x.ok), f.text);
          assert.deepEqual(ids(f.out), ['br-netfilter']);
          await working();
        } else {
          assert.equal(f.code, 1, f.text);
          assert.deepEqual(f.out.fixed, [], "--fix leaves other owners' rules and routes alone");
          assert.deepEqual(ids(f.out), [...c.expect].sort());
          if (c.repair === 'printed') {
            for (const finding of f.out.findings) {
              if (finding.id === 'br-netfilter') continue;
              for (const line of finding.fix) await inHost(['sh', '-c', line]);
            }
            const again = await doctor();
            assert.equal(again.code, 0, again.text);
            await working();
          }
        }
      } finally {
        for (const argv of c.undo) await inHost(argv);
      }
      const clean = await doctor();
      assert.equal(clean.code, 0, `after undoing ${c.name}: ${clean.text}`);
    });
  }

  test('--fix says what it ran, in words', async () => {
    await inHost(['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    try {
      const r = await lab.kvmnet('doctor', '--fix');
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^fixed ip-forward-off:\n {2}ran: sysctl -w net\.ipv4\.ip_forward=1$/m);
    } finally {
      await inHost(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    }
  });

  test('missing dnsmasq and br_netfilter not loaded (a fake KVMNET_PROC_SYS: a namespace cannot unload a module)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvmnet-doctor-'));
    try {
      const bin = join(dir, 'bin');
      await mkdir(bin);
      for (const t of ['ip', 'nft', 'iptables-nft-save', 'iptables-legacy-save']) {
        const w = await run('sh', ['-c', `command -v ${t}`]);
        await symlink(w.stdout.trim(), join(bin, t));
      }
      const sys = join(dir, 'sys');
      await mkdir(join(sys, 'net/ipv4'), { recursive: true });
      await writeFile(join(sys, 'net/ipv4/ip_forward'), '1\n');
      const r = await lab.kvmnetEnv({ PATH: bin, KVMNET_PROC_SYS: sys }, 'doctor', '--json');
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(ids(JSON.parse(r.stdout) as DoctorJson), ['missing-tool:dnsmasq']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('bad input exits 2', async () => {
    const r = await lab.kvmnet('doctor', '--fixx');
    assert.equal(r.code, 2);
  });
});
