// `kvmnet doctor`'s analysis (src/doctor/) fed recorded facts: Docker's real rules as
// iptables-legacy-save / iptables-nft-save text and as `nft -j list ruleset` JSON, ufw's iptables
// rules, and ufw-like and firewalld-like nftables tables listed by real nft (test/unit/fixtures/doctor/).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyse, blocking, type DoctorFacts } from '../../src/doctor/analyse.js';
import { parseIptablesSave } from '../../src/doctor/iptables.js';
import { parseNftRuleset } from '../../src/doctor/nft.js';
import { evaluate, type Packet } from '../../src/doctor/rules.js';
import { DOCTOR_ANALYSIS_CASES, type AnalysisCase } from '../lib/cases/doctor.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const FIX = join(REPO, 'test/unit/fixtures/doctor');
const read = (f: string): string => readFileSync(join(FIX, f), 'utf8');

function factsOf(c: AnalysisCase): DoctorFacts {
  const missing = new Set(c.missing ?? []);
  return {
    networks: [
      {
        name: 'default',
        mode: 'nat',
        bridge: 'virbr0',
        subnet: '192.168.122.0/24',
        gateway: '192.168.122.1',
        dhcp: true,
        running: true,
      },
      ...(c.extra ?? []).map((n) => ({ ...n, dhcp: n.mode !== 'open' })),
    ],
    tools: { ip: !missing.has('ip'), nft: !missing.has('nft'), dnsmasq: !missing.has('dnsmasq') },
    ipForward: c.ipForward ?? '1',
    bridgeNfCallIptables: c.brnf ?? null,
    iptablesNft: c.iptablesNft ? read(c.iptablesNft) : null,
    iptablesLegacy: c.iptablesLegacy ? read(c.iptablesLegacy) : null,
    nftRuleset: c.nft ? (JSON.parse(read(c.nft)) as unknown) : null,
    routes: [{ dst: 'default', dev: 'eth1' }, { dst: '192.168.100.0/24', dev: 'eth1' }, ...(c.routes ?? [])],
    addrs: [{ ifname: 'eth1', cidr: '192.168.100.239/24' }, ...(c.addrs ?? [])],
  };
}

describe('doctor analysis of recorded hosts', () => {
  for (const c of DOCTOR_ANALYSIS_CASES) {
    test(c.name, () => {
      const fs = analyse(factsOf(c));
      assert.deepEqual(fs.map((f) => f.id).sort(), [...c.expect].sort());
      assert.deepEqual(
        fs
          .filter((f) => f.safe)
          .map((f) => f.id)
          .sort(),
        [...(c.safe ?? [])].sort(),
        'the findings --fix may apply',
      );
      for (const f of fs) {
        assert.ok(
          f.fix.length > 0 && f.explanation.length > 20 && f.summary.length > 10,
          `${f.id} says what and how`,
        );
        assert.equal(f.safe, f.actions.length > 0, `${f.id}: a safe fix has actions, an unsafe one none`);
      }
    });
  }
});

describe('doctor findings in detail', () => {
  test("Docker's DROP: the fix is exactly the two DOCKER-USER accept rules, for the backend that has them", () => {
    const c = DOCTOR_ANALYSIS_CASES.find((x) => x.iptablesLegacy === 'docker.iptables-save')!;
    const f = analyse(factsOf(c)).find((x) => x.check === 'iptables-forward-drop')!;
    assert.deepEqual(f.fix, [
      'iptables-legacy -I DOCKER-USER -i virbr0 -j ACCEPT',
      'iptables-legacy -I DOCKER-USER -o virbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]);
    assert.deepEqual(f.actions[0], {
      kind: 'exec',
      argv: ['iptables-legacy', '-I', 'DOCKER-USER', '-i', 'virbr0', '-j', 'ACCEPT'],
    });
    assert.match(
      f.explanation,
      /guests reaching the LAN and the internet: dropped in chain FORWARD by "policy drop"/,
    );
    assert.match(f.explanation, /replies coming back to guests: dropped/);
    assert.equal(f.severity, 'error');
  });

  test("ufw's FORWARD (no DOCKER-USER) is printed for FORWARD, never applied", () => {
    const c = DOCTOR_ANALYSIS_CASES.find((x) => x.iptablesNft === 'ufw.iptables-save')!;
    const fs = analyse(factsOf(c));
    const fwd = fs.find((x) => x.check === 'iptables-forward-drop')!;
    assert.equal(fwd.safe, false);
    assert.equal(fwd.fix[0], 'iptables-nft -I FORWARD -i virbr0 -j ACCEPT');
    const inp = fs.find((x) => x.check === 'iptables-input-drop')!;
    // DHCP broadcasts pass ufw-not-local (BROADCAST: RETURN) and fall to the INPUT policy.
    assert.match(inp.explanation, /DHCP requests .*: dropped in chain INPUT by "policy drop"/);
    assert.match(inp.explanation, /DNS queries .*: dropped in chain INPUT by "policy drop"/);
  });

  test('firewalld-like: the reject after the zone dispatch is named, replies pass', () => {
    const c = DOCTOR_ANALYSIS_CASES.find((x) => x.nft === 'firewalld-like.json')!;
    const f = analyse(factsOf(c)).find((x) => x.check === 'nft-forward-drop')!;
    assert.match(f.explanation, /guests reaching the LAN.*dropped in chain filter_FORWARD by "reject"/);
    assert.doesNotMatch(f.explanation, /replies coming back/);
    assert.deepEqual(f.fix, [
      'nft insert rule inet firewalld filter_FORWARD iifname "virbr0" accept',
      'nft insert rule inet firewalld filter_FORWARD oifname "virbr0" ct state established,related accept',
    ]);
    assert.match(f.explanation, /firewall-cmd --permanent --zone=trusted --add-interface=virbr0/);
  });

  test('only error and warning findings make doctor exit 1', () => {
    const c = DOCTOR_ANALYSIS_CASES.find(
      (x) => x.brnf === '1' && x.iptablesLegacy === 'docker-fixed.iptables-save',
    )!;
    const fs = analyse({ ...factsOf(c), networks: factsOf(c).networks.slice(0, 1) });
    assert.deepEqual(
      fs.map((f) => f.id),
      ['br-netfilter'],
    );
    assert.deepEqual(blocking(fs), []);
  });

  test('a subnet clash suggests a free subnet', () => {
    const c = DOCTOR_ANALYSIS_CASES.find((x) => x.routes?.length)!;
    const f = analyse(factsOf(c)).find((x) => x.check === 'subnet-clash')!;
    assert.match(
      f.summary,
      /192\.168\.122\.0\/24 of "default" clashes with the host's route 192\.168\.122\.64\/26 dev eth1/,
    );
    assert.ok(
      f.fix.some((l) => l.includes('e.g. 192.168.123.0/24')),
      f.fix.join('\n'),
    );
  });
});

describe('rule model', () => {
  const pkt: Packet = {
    hook: 'forward',
    iif: 'virbr0',
    oif: 'eth1',
    proto: 'tcp',
    sport: 1,
    dport: 443,
    ct: 'new',
    bridged: false,
  };

  test('iptables wildcards, negation, ports and the goto/return semantics', () => {
    const rs = parseIptablesSave(
      [
        '*filter',
        ':FORWARD DROP [0:0]',
        ':A - [0:0]',
        ':B - [0:0]',
        '-A FORWARD -g A',
        '-A FORWARD -j ACCEPT',
        '-A A -i virbr+ ! -o eth1 -j ACCEPT',
        '-A A -p tcp -m multiport --dports 80,400:500 -j B',
        '-A A -m comment --comment "a \\"quoted\\" note" -j RETURN',
        '-A B -m hashlimit --hashlimit-above 5/sec -j ACCEPT',
        'COMMIT',
      ].join('\n'),
      't',
    )!;
    const base = rs.chains.get('FORWARD')!;
    // goto A, A falls through B (hashlimit is unknown: no match) and returns: the caller of A
    // is FORWARD's own base, so the policy decides.
    assert.deepEqual(evaluate(rs, base, pkt), { verdict: 'drop', by: 'policy drop', chain: 'FORWARD' });
    assert.equal(evaluate(rs, base, { ...pkt, oif: 'eth2' }).verdict, 'accept');
  });

  test('nft: ct state sets, named sets are unknown, ip6 matches never match IPv4', () => {
    const doc = {
      nftables: [
        { table: { family: 'inet', name: 't' } },
        {
          chain: {
            family: 'inet',
            table: 't',
            name: 'f',
            type: 'filter',
            hook: 'forward',
            prio: 0,
            policy: 'drop',
          },
        },
        {
          rule: {
            family: 'inet',
            table: 't',
            chain: 'f',
            expr: [
              { match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: '::1' } },
              { accept: null },
            ],
          },
        },
        {
          rule: {
            family: 'inet',
            table: 't',
            chain: 'f',
            expr: [
              { match: { op: '==', left: { meta: { key: 'iifname' } }, right: '@trusted' } },
              { accept: null },
            ],
          },
        },
        {
          rule: {
            family: 'inet',
            table: 't',
            chain: 'f',
            expr: [
              { match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } },
              { accept: null },
            ],
          },
        },
        {
          rule: {
            family: 'inet',
            table: 't',
            chain: 'f',
            expr: [
              { match: { op: '!=', left: { meta: { key: 'iifname' } }, right: { set: ['eth1', 'vir*'] } } },
              { accept: null },
            ],
          },
        },
      ],
    };
    const [t] = parseNftRuleset(doc);
    const rs = { label: 't', chains: t!.chains };
    const base = t!.chains.get('f')!;
    assert.equal(evaluate(rs, base, pkt).verdict, 'drop');
    assert.equal(evaluate(rs, base, { ...pkt, ct: 'established' }).verdict, 'accept');
    assert.equal(evaluate(rs, base, { ...pkt, iif: 'docker0' }).verdict, 'accept');
  });
});
