// relist: the verifying observation lists again what a plan changed. A view planned from the
// applied records (net start's fast path) is listed again unless the start takes its committed
// transaction as the verification (trustRecorded): then no nft process runs and the view keeps
// its marks, so the verification knows its nft part was not looked at.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NOT_LISTED, relist, type KernelView } from '../../src/engine/observe.js';
import type { FirewallBackend, FirewallObserved } from '../../src/firewall/backend.js';
import type { Host } from '../../src/host/host.js';

function fakes(): { host: Host; firewall: FirewallBackend; calls: string[] } {
  const calls: string[] = [];
  const host = {
    netState: () => {
      calls.push('ip');
      return Promise.resolve({ links: [], addrs: [], routes: [] });
    },
    nftListTable: (family: string) => {
      calls.push(`nft list ${family}`);
      return Promise.resolve('{"nftables": []}');
    },
  } as unknown as Host;
  const firewall = {
    observe: () => {
      calls.push('nft list inet');
      return Promise.resolve(listed());
    },
  } as unknown as FirewallBackend;
  return { host, firewall, calls };
}

function listed(): FirewallObserved {
  return {
    table: true,
    skeletonOk: true,
    badBaseChains: [],
    retiredChains: [],
    chains: new Map(),
    elements: new Map(),
  };
}

function base(fromRecords: boolean): KernelView {
  return {
    links: new Map(),
    addrs: [],
    routes: [],
    fw: fromRecords ? { ...listed(), fromRecords: true } : listed(),
    bridgeTable: fromRecords ? NOT_LISTED : '{"nftables": []}',
  };
}

const scope = { defs: [] };
const all = { ip: true, inet: true, bridge: true };

test('a listed view: what the plan changed is listed again, the rest kept', async () => {
  const f = fakes();
  await relist(f.host, f.firewall, scope, base(false), { ip: true, inet: false, bridge: false });
  assert.deepEqual(f.calls, ['ip']);
  const g = fakes();
  await relist(g.host, g.firewall, scope, base(false), all, { trustRecorded: true });
  assert.deepEqual(g.calls.sort(), ['ip', 'nft list bridge', 'nft list inet'], 'nothing recorded to trust');
});

test('a view from the records is listed again, unless its committed transaction is trusted', async () => {
  const f = fakes();
  const v = await relist(f.host, f.firewall, scope, base(true), { ip: true, inet: false, bridge: false });
  assert.deepEqual(f.calls.sort(), ['ip', 'nft list bridge', 'nft list inet']);
  assert.equal(v.fw.fromRecords, undefined);
  const g = fakes();
  const w = await relist(g.host, g.firewall, scope, base(true), all, { trustRecorded: true });
  assert.deepEqual(g.calls, ['ip']);
  assert.equal(w.fw.fromRecords, true, 'marked: the verification skips nft');
  assert.equal(w.bridgeTable, NOT_LISTED);
});
