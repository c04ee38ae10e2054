// Issue 8 point 2: crash safety. Every operation in CRASH_CASES is cut short after step N
// (KVMNET_TEST_CRASH_AFTER_STEP=N, N = 1, 2, … until a run completes without crashing, so the
// number of steps is never hard-coded), then run again without the hook. The re-run must succeed
// and leave exactly what a clean run leaves (links, addresses, routes, nftables, processes,
// files); `kvmnet down` must then leave nothing behind. A bridged network's uplink address must
// be on the uplink or on the bridge after every crash. One lab per operation, all in parallel.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, describe, test } from 'node:test';
import { CRASH_CASES, type CrashCase } from '../lib/cases/crash.js';
import { HOST_LAN_IP, Lab, type Snapshot } from '../lib/lab.js';
import { must } from '../lib/proc.js';

const UPLINK_ADDR = `${HOST_LAN_IP}/24`;

/** A snapshot without what differs between equal states: ifindexes, pids, timestamps. */
function normalize(s: Snapshot): unknown {
  const links = (s.links as Array<Record<string, unknown>>).map((l) => {
    const rest = { ...l };
    delete rest.ifindex;
    delete rest.link_index;
    return rest;
  });
  const files: Record<string, string> = {};
  for (const [path, content] of Object.entries(s.files)) {
    files[path] = content
      .replace(/"updatedAt":\s*"[^"]*"/g, '"updatedAt":"T"')
      .replace(/"pid":\s*\d+/g, '"pid":P')
      .replace(/^\d+\n?$/, 'PID');
  }
  return { ...s, links, files, pids: s.pids === '' ? 0 : s.pids.split(',').length };
}

async function uplinkAddrHolders(lab: Lab): Promise<string[]> {
  const out = JSON.parse(await must('ip', ['-n', lab.hostNs, '-json', '-4', 'addr', 'show'])) as Array<{
    ifname: string;
    addr_info: Array<{ local: string; prefixlen: number }>;
  }>;
  return out
    .filter((l) => l.addr_info.some((a) => `${a.local}/${a.prefixlen}` === UPLINK_ADDR))
    .map((l) => l.ifname);
}

async function assertUplinkAddressed(lab: Lab, bridge: string, when: string): Promise<void> {
  const holders = await uplinkAddrHolders(lab);
  assert.ok(
    holders.includes('eth1') || holders.includes(bridge),
    `${when}: ${UPLINK_ADDR} is on neither eth1 nor ${bridge} (on: ${holders.join(', ') || 'nothing'})`,
  );
}

/** After `kvmnet down`: no bridge, no kvmnet table, no process, no applied record or run file. */
async function assertNothingLeaked(lab: Lab, when: string): Promise<void> {
  const links = JSON.parse(await must('ip', ['-n', lab.hostNs, '-json', '-d', 'link', 'show'])) as Array<{
    ifname: string;
    linkinfo?: { info_kind?: string };
  }>;
  const bridges = links.filter((l) => l.linkinfo?.info_kind === 'bridge').map((l) => l.ifname);
  assert.deepEqual(bridges, [], `${when}: bridges left`);
  const tables = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'tables']);
  assert.doesNotMatch(tables, /kvmnet/, `${when}: nft table left`);
  assert.deepEqual(await lab.pids(lab.hostNs), [], `${when}: processes left (dnsmasq?)`);
  const runFiles = await readdir(lab.runDir).catch((): string[] => []);
  assert.deepEqual(runFiles, [], `${when}: files left in the run dir`);
  const stateFiles = await readdir(lab.stateDir).catch((): string[] => []);
  assert.ok(!stateFiles.includes('kvmnet.lock'), `${when}: lock file left`);
  const addrs = await uplinkAddrHolders(lab);
  assert.deepEqual(addrs, ['eth1'], `${when}: ${UPLINK_ADDR} not back on eth1 alone`);
  const routes = await must('ip', ['-n', lab.hostNs, '-4', 'route', 'show', 'default']);
  assert.match(routes, /default via \S+ dev eth1/, `${when}: default route not back on eth1`);
}

async function ok(lab: Lab, args: string[], when: string): Promise<void> {
  const r = await lab.kvmnet(...args);
  assert.equal(r.code, 0, `${when}: kvmnet ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
}

/** Returns the number of crash points the operation has. */
async function crashEveryStep(c: CrashCase, lab: Lab): Promise<number> {
  const bridge = c.bridged ? 'kvbr2' : 'kvbr1';
  for (const args of c.setup) await ok(lab, args, `${c.name}: setup`);
  await ok(lab, c.op, `${c.name}: clean run`);
  const reference = normalize(await lab.snapshot());
  // The state every crashed run starts from: as after setup, plus what a first run leaves for
  // good (the lease file, an empty run dir).
  let baseline: unknown;
  const reset = async (when: string): Promise<void> => {
    await ok(lab, ['down'], when);
    await assertNothingLeaked(lab, when);
    for (const args of c.restore) await ok(lab, args, `${when}: restore`);
    const now = normalize(await lab.snapshot());
    if (baseline === undefined) baseline = now;
    else assert.deepEqual(now, baseline, `${when}: restore did not reach the baseline`);
  };
  await reset(`${c.name}: after the clean run`);
  for (let n = 1; ; n++) {
    const when = `${c.name}: crash after step ${n}`;
    const r = await lab.kvmnetEnv({ KVMNET_TEST_CRASH_AFTER_STEP: String(n) }, ...c.op);
    const marker = /kvmnet-test-step (\d+)/.exec(r.stderr);
    if (!marker) {
      // Fewer than n steps: the run completed.
      assert.equal(r.code, 0, `${when}: no crash, but exit ${r.code}: ${r.stderr}`);
      assert.deepEqual(normalize(await lab.snapshot()), reference, `${when}: uncrashed run differs`);
      await reset(`${when} (completed)`);
      return n - 1;
    }
    assert.equal(marker[1], String(n), `${when}: stderr names step ${marker[1]}`);
    assert.notEqual(r.code, 0, `${when}: exit 0 after the crash marker`);
    if (c.bridged) await assertUplinkAddressed(lab, bridge, `${when}, before the re-run`);
    await ok(lab, c.op, `${when}: re-run`);
    if (c.bridged) await assertUplinkAddressed(lab, bridge, `${when}, after the re-run`);
    assert.deepEqual(normalize(await lab.snapshot()), reference, `${when}: re-run differs from a clean run`);
    await reset(`${when}: down`);
    assert.ok(n < 100, `${c.name}: more than 100 steps?`);
  }
}

describe('crash safety: a re-run after a crash at any step converges', { concurrency: true }, () => {
  const points: string[] = [];
  after(() => {
    console.log(`crash points: ${points.join(', ')}`);
  });
  for (const c of CRASH_CASES) {
    test(c.name, { timeout: 1_800_000 }, async (t) => {
      const lab = await Lab.create(`cr${CRASH_CASES.indexOf(c)}`);
      try {
        const n = await crashEveryStep(c, lab);
        assert.ok(n >= 1, `${c.name}: the operation has no crash point`);
        points.push(`${c.name} ${n}`);
        t.diagnostic(`${c.name}: ${n} crash points, each re-run converged`);
      } finally {
        await lab.destroy();
      }
    });
  }
});
