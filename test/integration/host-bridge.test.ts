// Issue 6: libvirt's <forward mode='bridge'/> on a bridge the host already has. kvmnet plugs its
// ports into that bridge and unplugs them on stop; it never creates, changes or deletes the bridge.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

describe('a network on an existing host bridge', () => {
  let lab: Lab;
  let brBefore: unknown;
  const brAddrs = async (): Promise<unknown> =>
    (
      JSON.parse(await must('ip', ['-n', lab.hostNs, '-json', '-4', 'addr', 'show', 'br0'])) as Array<{
        addr_info: unknown;
      }>
    )[0]?.addr_info;

  before(async () => {
    lab = await Lab.create('hbr');
    await must('ip', ['-n', lab.hostNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'br0', 'up']);
    await must('ip', ['-n', lab.hostNs, 'addr', 'add', '10.90.0.1/24', 'dev', 'br0']);
    // A fixed MAC and a port of the host's own: an empty bridge's MAC and carrier change as ports come
    // and go (a kernel behaviour, not kvmnet's doing).
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'br0', 'address', '02:00:00:00:90:01']);
    await must('ip', ['-n', lab.hostNs, 'link', 'add', 'hbp0', 'type', 'veth', 'peer', 'name', 'hbp1']);
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'hbp0', 'master', 'br0', 'up']);
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'hbp1', 'up']);
    await lab.waitUp(lab.hostNs, 'hbp0');
    await lab.acceptHostChanges(); // the host's own bridge, which stays after kvmnet is gone
    brBefore = await brAddrs();
    await writeFile(
      join(lab.dir, 'hb.xml'),
      "<network>\n  <name>hb</name>\n  <forward mode='bridge'/>\n  <bridge name='br0'/>\n</network>\n",
    );
  });
  after(async () => {
    await lab.destroy();
  });

  test('is imported from libvirt XML and dumped back the same', async () => {
    await lab.kvmnetOk('net', 'define', join(lab.dir, 'hb.xml'));
    const xml = await lab.kvmnetOk('net', 'dumpxml', 'hb');
    assert.match(xml, /<forward mode=["']bridge["']\s*\/>/);
    assert.match(xml, /<bridge name=["']br0["']\s*\/>/);
    assert.doesNotMatch(xml, /uplink/);
  });

  test('start plugs its ports into the bridge; stop unplugs them and leaves the bridge as it was', async () => {
    const p = await lab.kvmnetJson<{ port: { name: string } }>('port', 'add', 'hb', '--vm', 'v1');
    await lab.kvmnetOk('net', 'start', 'hb');
    const tap = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', p.port.name]),
    ) as Array<{ master?: string }>;
    assert.equal(tap[0]?.master, 'br0');
    assert.deepEqual(
      (await lab.kvmnetJson<Array<{ state: string }>>('net', 'list')).map((n) => n.state),
      ['active'],
    );
    await lab.kvmnetOk('net', 'stop', 'hb');
    const after = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', p.port.name]),
    ) as Array<{ master?: string }>;
    assert.equal(after[0]?.master, undefined);
    assert.deepEqual(await brAddrs(), brBefore, 'the bridge keeps its addresses');
    assert.match(
      await must('ip', ['-n', lab.hostNs, '-br', 'link', 'show', 'br0']),
      /^br0 /,
      'the bridge is still there',
    );
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset']);
    assert.equal(nft, lab.hostRuleset, 'no firewall rules for a host bridge');
  });

  test('a bridge the host does not have is refused', async () => {
    await assertRefused(
      lab,
      ['net', 'define', 'hb2', '--mode', 'bridge', '--bridge', 'br9'],
      /bridged network "hb2" needs an uplink, or br9 must be an existing host bridge/,
    );
  });
});
