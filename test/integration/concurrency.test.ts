// Issue 8 point 3: concurrency. The commands of CONCURRENT_ADD_CASES (ports and forwards, some
// competing for one MAC or one host port, some identical) run as 20 CLI processes at once against
// one running network, then CONCURRENT_DEL_CASES remove everything the same way. Each process
// exits 0, or 2 with one `error:` line (no stack trace) when it lost a conflict; afterwards the
// stored state (`port list --json`, `forward list --json`) and the kernel (taps on the bridge,
// the nft forward map, dnsmasq's hosts files) agree exactly.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CONCURRENT_ADD_CASES, CONCURRENT_DEL_CASES, type ConcurrentCase } from '../lib/cases/concurrency.js';
import { Lab, REPO } from '../lib/lab.js';
import { must, run, type RunResult } from '../lib/proc.js';

const BRIDGE = 'kvbr8';

interface PortJson {
  name: string;
  vm: string;
  mac: string;
  tapMac: string;
  ip?: string;
}
interface ForwardJson {
  proto: string;
  port: number;
  targetIp: string | null;
  targetPort: number;
}

/** Runs all cases at once; checks exit codes and errors per case and per group. */
async function runAll(lab: Lab, cases: ConcurrentCase[]): Promise<RunResult[]> {
  // The CLI waits up to 60 s for the lock; give the processes time beyond that (run's default
  // would kill a waiter at 60 s on a busy machine).
  const started = Date.now();
  const results = await Promise.all(
    cases.map((c) =>
      run('ip', ['netns', 'exec', lab.hostNs, process.execPath, join(REPO, 'bin/kvmnet'), ...c.args], {
        env: lab.env(),
        timeoutMs: 300_000,
      }),
    ),
  );
  console.log(`${cases.length} processes finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const groups = new Map<string, number[]>();
  results.forEach((r, i) => {
    const c = cases[i] as ConcurrentCase;
    const what = `kvmnet ${c.args.join(' ')}`;
    assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: stack trace\n${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
    if (r.code === 0) assert.deepEqual(errors, [], `${what}: exit 0 with an error`);
    else {
      assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
      assert.equal(errors.length, 1, `${what}: not one error line\n${r.stderr}`);
      assert.ok(c.error, `${what}: refused, but it has no rival\n${r.stderr}`);
      assert.match(errors[0] ?? '', c.error, `${what}: unexpected error`);
    }
    if (c.group) groups.set(c.group, [...(groups.get(c.group) ?? []), r.code]);
    else assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  });
  for (const [g, codes] of groups) {
    const wins = codes.filter((x) => x === 0).length;
    if (g.startsWith('same:'))
      assert.equal(wins, codes.length, `${g}: all should succeed (${codes.join(',')})`);
    else assert.equal(wins, 1, `${g}: exactly one should succeed (${codes.join(',')})`);
  }
  return results;
}

/** Stored state and kernel agree exactly: taps, forward map elements, dnsmasq hosts files. */
async function assertAgree(lab: Lab): Promise<{ ports: PortJson[]; forwards: ForwardJson[] }> {
  const ports = await lab.kvmnetJson<PortJson[]>('port', 'list', 'n8');
  const forwards = await lab.kvmnetJson<ForwardJson[]>('forward', 'list', 'n8');
  // Taps plugged into the bridge, with the MAC each port's tap must have.
  const onBridge = JSON.parse(
    await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', 'master', BRIDGE]),
  ) as Array<{ ifname: string; address: string }>;
  assert.deepEqual(
    onBridge.map((l) => `${l.ifname} ${l.address}`).sort(),
    ports.map((p) => `${p.name} ${p.tapMac}`).sort(),
    'taps on the bridge',
  );
  // Taps that exist at all (a tap of a removed port must be gone, not just unplugged).
  const taps = JSON.parse(
    await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', 'type', 'tun']),
  ) as Array<{
    ifname: string;
  }>;
  assert.deepEqual(taps.map((l) => l.ifname).sort(), ports.map((p) => p.name).sort(), 'taps on the host');
  // The forward map.
  const map = await must('ip', [
    'netns',
    'exec',
    lab.hostNs,
    'nft',
    'list',
    'map',
    'inet',
    'kvmnet',
    'fwd_any',
  ]);
  const elements = [...map.matchAll(/(tcp|udp) \. (\d+) : ([\d.]+) \. (\d+)/g)].map(
    (m) => `${m[1]} ${m[2]} ${m[3]} ${m[4]}`,
  );
  assert.deepEqual(
    elements.sort(),
    forwards.map((f) => `${f.proto} ${f.port} ${f.targetIp} ${f.targetPort}`).sort(),
    'nft forward map',
  );
  // dnsmasq's reservations and names.
  const dir = join(lab.runDir, 'net', 'n8');
  const dhcpHosts = (await readFile(join(dir, 'dhcp-hosts'), 'utf8')).split('\n').filter(Boolean);
  assert.deepEqual(
    dhcpHosts.sort(),
    ports.map((p) => `${p.mac},${p.ip ?? ''},${p.vm}`).sort(),
    'dnsmasq dhcp-hosts',
  );
  const hosts = (await readFile(join(dir, 'hosts'), 'utf8')).split('\n').filter(Boolean);
  assert.equal(hosts.length, ports.length, `dnsmasq hosts: ${hosts.join('; ')}`);
  for (const p of ports)
    assert.ok(
      hosts.some((h) => h.startsWith(`${p.ip} `) && h.includes(p.vm)),
      `hosts: ${p.vm}`,
    );
  // Nothing left over by the network itself: it still verifies as is.
  const again = await lab.kvmnetJson<{ plans: Array<{ steps: unknown[] }> }>(
    'net',
    'start',
    'n8',
    '--dry-run',
  );
  assert.deepEqual(
    again.plans.flatMap((p) => p.steps),
    [],
    'a dry-run start plans nothing',
  );
  return { ports, forwards };
}

describe('concurrency: 20 CLI processes on one network', () => {
  let lab: Lab;
  before(async () => {
    lab = await Lab.create('conc');
    await lab.kvmnetOk('net', 'define', 'n8', '--subnet', '10.88.0.0/24', '--bridge', BRIDGE);
    await lab.kvmnetOk('net', 'start', 'n8');
  });
  after(async () => {
    await lab?.destroy();
  });

  test(`${CONCURRENT_ADD_CASES.length} concurrent adds: each succeeds or loses its conflict cleanly; state and kernel agree`, async () => {
    await runAll(lab, CONCURRENT_ADD_CASES);
    const { ports, forwards } = await assertAgree(lab);
    // 8 distinct ports, one of q1/q2, r once; 6 distinct forwards and one on 10100.
    assert.equal(ports.length, 10, ports.map((p) => p.vm).join(' '));
    assert.equal(forwards.length, 7);
  });

  test(`${CONCURRENT_DEL_CASES.length} concurrent removals: state and kernel agree, nothing is left`, async () => {
    await runAll(lab, CONCURRENT_DEL_CASES);
    const { ports, forwards } = await assertAgree(lab);
    assert.deepEqual(ports, []);
    assert.deepEqual(forwards, []);
  });
});
