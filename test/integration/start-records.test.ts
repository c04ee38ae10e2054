// Issue 9 part 1: `net start` of a network that has never been applied, while the running networks
// are as their records say, takes kvmnet's nft tables from those records instead of listing them
// (Engine.observeFromRecord): its cost stays flat as networks are added. The host it makes must be
// the host an observed start makes; what the records do not know (leftovers by hand) is either
// rewritten by the transaction or makes it fail, and then the observed start does it (noted).
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, type Snapshot } from '../lib/lab.js';
import { must } from '../lib/proc.js';

interface OpJson {
  plans: Array<{ network: string; steps: Array<{ kind: string; why: string; script?: string }> }>;
}

/** The kernel's part of a snapshot, dnsmasq's pids and the links' indexes aside (new each start). */
function kernel(s: Snapshot): unknown {
  const links = s.links.map((l) => ({ ...(l as object), ifindex: undefined, link_index: undefined }));
  return { links, addrs: s.addrs, routes: s.routes, nft: s.nft };
}

const FROM_RECORDS = /as the running networks' records have it, not listed/;
const FALLBACK = /start of network "default" from the records: .*; observing the host to do it/;

describe('net start of a new network from the records of the running ones', () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create('srec');
    await lab.kvmnetOk('net', 'define', 'n2', '--subnet', '10.77.0.0/24');
    await lab.kvmnetOk('net', 'start', 'n2');
    await lab.kvmnetOk('port', 'add', 'n2', '--vm', 'other', '--mac', '52:54:00:00:e1:01');
    await lab.kvmnetOk('forward', 'add', 'n2', 'tcp', '2222', '10.77.0.9:22');
    await lab.kvmnetOk('net', 'define', 'default', '--subnet', '192.168.122.0/24');
    const web = 'port add default --vm web --mac 52:54:00:00:e1:02 --ip 192.168.122.10';
    await lab.kvmnetOk(...web.split(' '));
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '8080', 'web:80');
  });
  after(async () => {
    await lab.destroy();
  });

  const start = async (): Promise<{ why: string; stderr: string }> => {
    const r = await lab.kvmnet('net', 'start', 'default', '--json');
    assert.equal(r.code, 0, r.stderr);
    const steps = (JSON.parse(r.stdout) as OpJson).plans.flatMap((p) => p.steps);
    return { why: steps.find((s) => s.kind === 'nft')?.why ?? '', stderr: r.stderr };
  };
  /** One nft command in the lab's host namespace (a change by hand, or a listing). */
  const nft = (command: string): Promise<string> => must('ip', ['netns', 'exec', lab.hostNs, 'nft', command]);
  const noDrift = async (): Promise<void> => {
    const chk = await lab.kvmnet('check');
    assert.equal(chk.code, 0, chk.stdout + chk.stderr);
  };

  test('the host it makes is the one an observed start makes', async () => {
    const fast = await start();
    assert.match(fast.why, FROM_RECORDS);
    assert.doesNotMatch(fast.stderr, FALLBACK);
    const ruleset = await nft('list ruleset');
    assert.match(ruleset, /tcp \. 8080 : 192\.168\.122\.10 \. 80/, 'its forward is in the map');
    assert.match(ruleset, /chain net_virbr1 /, 'its port is checked');
    await noDrift();
    const fromRecords = await lab.snapshot();
    await lab.kvmnetOk('net', 'stop', 'default');
    // `up` starts autostart networks as one observed batch.
    await lab.kvmnetOk('net', 'autostart', 'default');
    try {
      await lab.kvmnetOk('up');
      assert.deepEqual(kernel(fromRecords), kernel(await lab.snapshot()));
    } finally {
      await lab.kvmnetOk('net', 'autostart', 'default', '--disable');
      await lab.kvmnetOk('net', 'stop', 'default');
    }
  });

  test('a leftover chain of its name, filled by hand, is flushed and written', async () => {
    await nft('add chain inet kvmnet net_default_in');
    await nft('add rule inet kvmnet net_default_in counter drop');
    const r = await start();
    assert.match(r.why, FROM_RECORDS);
    assert.doesNotMatch(r.stderr, FALLBACK);
    const chain = await nft('list chain inet kvmnet net_default_in');
    assert.doesNotMatch(chain, /counter/);
    await noDrift();
    await lab.kvmnetOk('net', 'stop', 'default');
  });

  test('a key of its own held with another value: the transaction fails, the observed start does it, noted', async () => {
    const before = kernel(await lab.snapshot());
    await nft('add element inet kvmnet fwd_in { virbr1 : drop }');
    const r = await start();
    assert.match(r.stderr, FALLBACK);
    assert.doesNotMatch(r.why, FROM_RECORDS, 'the plan shown is the observed one');
    await noDrift();
    await lab.kvmnetOk('net', 'stop', 'default');
    assert.deepEqual(kernel(await lab.snapshot()), before);
  });

  test('a running network not as recorded, or a dry run: the start observes the host', async () => {
    const dry = await lab.kvmnet('net', 'start', 'default', '--dry-run', '--json');
    assert.equal(dry.code, 0, dry.stderr);
    const dryWhy = (JSON.parse(dry.stdout) as OpJson).plans
      .flatMap((p) => p.steps)
      .find((s) => s.kind === 'nft');
    assert.doesNotMatch(dryWhy?.why ?? '', FROM_RECORDS);
    // n2's stored definition changed while it runs (as an edit of the state file would): its record
    // no longer says what the host holds for it.
    const file = join(lab.stateDir, 'kvmnet.json');
    const saved = await readFile(file, 'utf8');
    const st = JSON.parse(saved) as { networks: Record<string, { dhcp: { end: string } }> };
    const n2 = st.networks.n2;
    assert.ok(n2);
    n2.dhcp.end = '10.77.0.200';
    await writeFile(file, JSON.stringify(st));
    try {
      const r = await start();
      assert.doesNotMatch(r.why, FROM_RECORDS);
      assert.doesNotMatch(r.stderr, FALLBACK);
      await lab.kvmnetOk('net', 'stop', 'default');
    } finally {
      await writeFile(file, saved);
    }
  });
});
