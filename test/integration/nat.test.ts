// Issue 2 acceptance 1, 2, 4 and 6: the stock default NAT network in a namespace lab with the
// real kernel, nftables and dnsmasq.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HOST_LAN_IP, LAN_ROUTER, Lab, REPO } from '../lib/lab.js';
import { must, Tracked } from '../lib/proc.js';

interface OpJson {
  dryRun: boolean;
  plans: Array<{ network: string; action: string; steps: unknown[] }>;
}

describe('default NAT network', () => {
  let lab: Lab;
  let g1: string;
  let g2: string;
  let g1ip = '';

  before(async () => {
    lab = await Lab.create('nat');
    // Acceptance 6: someone else's nft table with a rule, and an unrelated bridge.
    await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'add table inet other; add chain inet other c; add rule inet other c tcp dport 9 counter accept',
    ]);
    await must('ip', ['-n', lab.hostNs, 'link', 'add', 'br-other', 'type', 'bridge']);
    await lab.acceptHostChanges();
  });
  after(async () => {
    await lab.destroy();
  });

  test('up makes virbr0 192.168.122.1/24 with dnsmasq (acceptance 1)', async () => {
    const r = await lab.kvmnetJson<OpJson & { definitions: Array<{ network: string; change: string }> }>(
      'up',
    );
    assert.deepEqual(
      r.definitions.map((d) => [d.network, d.change]),
      [['default', 'define']],
    );
    assert.ok((r.plans[0]?.steps.length ?? 0) > 0);
    const link = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', '-d', 'link', 'show', 'virbr0']),
    ) as Array<{
      flags: string[];
      linkinfo: { info_kind: string; info_data: { stp_state: number; forward_delay: number } };
    }>;
    assert.equal(link[0]?.linkinfo.info_kind, 'bridge');
    assert.equal(link[0]?.linkinfo.info_data.stp_state, 0);
    assert.equal(link[0]?.linkinfo.info_data.forward_delay, 0);
    assert.ok(link[0]?.flags.includes('UP'));
    const addr = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', '-4', 'addr', 'show', 'virbr0']),
    ) as Array<{
      addr_info: Array<{ local: string; prefixlen: number }>;
    }>;
    assert.deepEqual(
      addr[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`),
      ['192.168.122.1/24'],
    );
    const fwd = await must('ip', ['netns', 'exec', lab.hostNs, 'cat', '/proc/sys/net/ipv4/ip_forward']);
    assert.equal(fwd.trim(), '1');
    // One dnsmasq, plus the helper it forks to run the lease hook (dhcp-script), its child.
    const pids = await lab.pids(lab.hostNs);
    const roots: number[] = [];
    for (const p of pids) {
      assert.match(await readFile(`/proc/${p}/comm`, 'utf8'), /^dnsmasq/, `process ${p} is dnsmasq`);
      const ppid = Number((await readFile(`/proc/${p}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ')[1]);
      if (!pids.includes(ppid)) roots.push(p);
    }
    assert.equal(roots.length, 1, 'one dnsmasq runs in the host namespace');
    assert.ok(pids.length <= 2, `at most dnsmasq and its script helper: ${pids.join(', ')}`);
    const list = await lab.kvmnetJson<
      Array<{ name: string; state: string; bridge: string; autostart: boolean }>
    >('net', 'list');
    assert.deepEqual(
      list.map((n) => [n.name, n.state, n.bridge, n.autostart]),
      [['default', 'active', 'virbr0', true]],
    );
  });

  test('a guest gets a lease, resolves another guest by name, and reaches the LAN masqueraded (acceptance 1)', async () => {
    g1 = await lab.addGuest('g1', 'virbr0');
    g2 = await lab.addGuest('g2', 'virbr0');
    const l1 = await lab.dhcp(g1, 'guest-one');
    const l2 = await lab.dhcp(g2, 'guest-two');
    g1ip = l1.ip;
    assert.match(l1.ip, /^192\.168\.122\.(\d+)$/);
    assert.equal(l1.router, '192.168.122.1');
    assert.equal(l1.dns, '192.168.122.1');
    assert.notEqual(l1.ip, l2.ip);
    const ns = await lab.exec(g1, ['busybox', 'nslookup', 'guest-two', '192.168.122.1']);
    assert.equal(ns.code, 0, ns.stdout + ns.stderr);
    assert.match(ns.stdout, new RegExp(`Address: ${l2.ip.replace(/\./g, '\\.')}`));
    await lab.server(lab.lanNs, 8080, 'lan');
    const body = await lab.fetch(g1, `http://${LAN_ROUTER}:8080/`);
    assert.equal(body, `lan sees ${HOST_LAN_IP}\n`, 'the LAN server sees the host address, not the guest');
  });

  test('a new connection from the LAN to a guest fails (acceptance 2)', async () => {
    await lab.server(g1, 8081, 'guest');
    // Positive control: the guest's server answers from the host itself.
    assert.equal(await lab.fetch(lab.hostNs, `http://${g1ip}:8081/`), 'guest sees 192.168.122.1\n');
    await must('ip', ['-n', lab.lanNs, 'route', 'add', '192.168.122.0/24', 'via', HOST_LAN_IP]);
    assert.equal(await lab.fetch(lab.lanNs, `http://${g1ip}:8081/`), null);
  });

  // Some old guests drop DHCP replies whose checksum was left to offload: kvmnet sets it to 0 ("no
  // checksum") in chain mangle_output, at the host's output hook, where dnsmasq's replies pass.
  test('DHCP replies reach the guest with UDP checksum 0', async () => {
    const cap = Tracked.start('ip', [
      'netns',
      'exec',
      g1,
      'python3',
      join(REPO, 'test/fixtures/recv-frames.py'),
      'eth0',
      '8',
      'dhcp-csum',
    ]);
    lab.tracked.push(cap);
    await cap.waitFor(/ready/);
    await lab.dhcp(g1, 'guest-one');
    await cap.waitFor(/csum 0x[0-9a-f]{4}/);
    const seen = [...cap.output.matchAll(/csum (0x[0-9a-f]{4})/g)].map((m) => m[1]);
    assert.ok(seen.length > 0 && seen.every((c) => c === '0x0000'), `checksums seen: ${seen.join(' ')}`);
  });

  test('up twice: the second plan is empty and nothing changes (acceptance 4)', async () => {
    const before = await lab.snapshot();
    const r = await lab.kvmnetJson<OpJson>('up');
    assert.deepEqual(
      r.plans.map((p) => p.steps.length),
      [0],
    );
    const dry = await lab.kvmnetOk('up', '--dry-run');
    assert.match(dry, /nothing to do/);
    assert.deepEqual(await lab.snapshot(), before);
  });

  test('start repairs drift: a deleted rule chain and a killed dnsmasq come back', async () => {
    await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'flush chain inet kvmnet net_default_out']);
    const info = await lab.kvmnetJson<{ dnsmasq: { pid: number } }>('net', 'info', 'default');
    process.kill(info.dnsmasq.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const plan = await lab.kvmnetOk('net', 'start', 'default', '--dry-run');
    assert.match(plan, /chain net_default_out has 0 rules/);
    assert.match(plan, /dnsmasq-start: not running/);
    assert.doesNotMatch(plan, /ip link add/);
    await lab.kvmnetOk('net', 'start', 'default');
    const again = await lab.kvmnetJson<OpJson>('net', 'start', 'default');
    assert.deepEqual(
      again.plans.map((p) => p.steps.length),
      [0],
    );
    assert.equal(await lab.fetch(g1, `http://${LAN_ROUTER}:8080/`), `lan sees ${HOST_LAN_IP}\n`);
  });

  test('down then up restores the same state; guests still work (acceptance 4)', async () => {
    const norm = async (): Promise<unknown> => {
      const s = await lab.snapshot();
      const br = (s.links as Array<{ ifname: string; address: string; flags: string[] }>).find(
        (l) => l.ifname === 'virbr0',
      );
      return {
        nft: s.nft,
        br: br && { address: br.address, flags: br.flags },
        conf: s.files['/run/net/default/dnsmasq.conf'],
      };
    };
    const before = await norm();
    await lab.kvmnetOk('down');
    const down = await lab.snapshot();
    assert.ok(!(down.links as Array<{ ifname: string }>).some((l) => l.ifname === 'virbr0'));
    assert.doesNotMatch(down.nft, /table inet kvmnet/);
    assert.match(down.nft, /table inet other/);
    assert.deepEqual(await lab.pids(lab.hostNs), []);
    await lab.kvmnetOk('up');
    // The guests' veths were unplugged with the old bridge; plug them into the new one.
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'vg0', 'master', 'virbr0']);
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'vg1', 'master', 'virbr0']);
    assert.deepEqual(await norm(), before);
    const l = await lab.dhcp(g1, 'guest-one');
    assert.equal(l.ip, g1ip, 'the lease survived down/up');
  });

  test('after down and undefine, nothing of kvmnet is left; others survive (acceptance 4, 6)', async () => {
    await lab.kvmnetOk('down');
    await lab.kvmnetOk('net', 'undefine', 'default');
    const s = await lab.snapshot();
    const names = (s.links as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>)
      .filter((l) => l.linkinfo?.info_kind === 'bridge')
      .map((l) => l.ifname);
    assert.deepEqual(names, ['br-other']);
    assert.doesNotMatch(s.nft, /kvmnet/);
    assert.match(s.nft, /tcp dport 9 counter/);
    assert.deepEqual(await lab.pids(lab.hostNs), []);
    const leftovers = Object.keys(s.files).filter((f) => f.startsWith('/run/') && f !== '/run/');
    assert.deepEqual(leftovers, []);
    assert.deepEqual(await lab.kvmnetJson<unknown[]>('net', 'list'), []);
    // up after the first run does not recreate the default network the admin removed.
    const r = await lab.kvmnetJson<OpJson>('up');
    assert.deepEqual(r.plans, []);
  });
});
