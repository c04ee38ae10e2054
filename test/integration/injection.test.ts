// Hostile names through the real CLI in a lab (issue 8 point 7): every payload of
// INJECTION_PAYLOAD_CASES in every command of CLI_INJECTION_CASES is refused (exit 2, one `error:`
// line and one `hint:` line) and leaves the lab host exactly as it was (lab.snapshot()); free text
// that is accepted (a forward's description) is stored and removed cleanly. Legal names that look
// like trouble (TRICKY_NAME_CASES: a bridge called `help`, a network `toString`, a VM `help`)
// start and stop cleanly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, type Snapshot } from '../lib/lab.js';
import type { RunResult } from '../lib/proc.js';
import { CLI_INJECTION_CASES, INJECTION_PAYLOAD_CASES, TRICKY_NAME_CASES } from '../lib/cases/input.js';

/** The contract of one run: refused as bad input, or (help printed) exit 0 with nothing on stderr. */
function checkRefused(r: RunResult, what: string): void {
  if (r.code === 0) {
    // e.g. `net start --help`: commander prints the help; nothing is done.
    assert.match(r.stdout, /^Usage: /m, `${what}: exit 0 without help: ${r.stdout}`);
    return;
  }
  assert.equal(r.code, 2, `${what}: exit ${r.code}; stderr: ${r.stderr}`);
  // Other payloads run at the same time: waiting for the lock is noted, and is not an error line.
  const lines = r.stderr
    .trimEnd()
    .split('\n')
    .filter((l) => !l.startsWith('kvmnet: waiting for the kvmnet lock'));
  assert.match(lines[0] ?? '', /^error: /, `${what}: ${r.stderr}`);
  assert.match(lines[1] ?? '', /^hint: ./, `${what}: ${r.stderr}`);
  assert.equal(lines.length, 2, `${what}: one error and one hint line, got: ${r.stderr}`);
  assert.equal(r.stdout, '', what);
}

/** A snapshot without the lease files (a started network's lease file stays, by design). */
function withoutLeases(s: Snapshot): Snapshot {
  return {
    ...s,
    files: Object.fromEntries(Object.entries(s.files).filter(([k]) => !k.includes('/leases/'))),
  };
}

/** Runs fn over items, `n` at a time; every item runs even when one fails (the first failure is thrown). */
async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const errors: unknown[] = [];
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let x = queue.shift(); x !== undefined; x = queue.shift())
        await fn(x).catch((e: unknown) => errors.push(e));
    }),
  );
  if (errors.length > 0) throw errors[0];
}

// A NUL byte cannot be carried in an argument vector (execve ends the string there); the unit
// test (test/unit/injection.test.ts) feeds it to the model directly.
const PAYLOADS = INJECTION_PAYLOAD_CASES.filter((p) => !p.value.includes('\0'));

describe('hostile names through the CLI', () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create('inj');
    await lab.kvmnetOk('net', 'define', 'lab', '--subnet', '10.78.0.0/24', '--bridge', 'virbr78');
    await lab.kvmnetOk('port', 'add', 'lab', '--vm', 'tricky', '--ip', '10.78.0.10');
    await lab.kvmnetOk('net', 'start', 'lab');
  });
  after(async () => {
    await lab.destroy();
  });

  for (const c of CLI_INJECTION_CASES) {
    test(`${c.name}: every payload refused, the host unchanged`, async () => {
      const isDescription = c.name.includes('--description');
      const before = await lab.snapshot();
      const accepted: string[] = [];
      await pool(PAYLOADS, isDescription ? 1 : 4, async (p) => {
        const args = c.args.map((a) => a.replace('$P', p.value));
        const r = await lab.kvmnet(...args);
        const what = `kvmnet ${args.map((a) => JSON.stringify(a)).join(' ')} (${p.name})`;
        if (isDescription && r.code === 0) {
          // Free text: kept as given, on one line, and removed again without a trace.
          accepted.push(p.name);
          const list = await lab.kvmnetJson<Array<{ description?: string; port: number }>>(
            'forward',
            'list',
            'lab',
          );
          assert.equal(list.find((f) => f.port === 18080)?.description, p.value, what);
          await lab.kvmnetOk('forward', 'del', 'lab', 'tcp', '18080');
          // (the snapshot after the last payload checks that nothing was left behind)
          return;
        }
        checkRefused(r, what);
      });
      assert.deepEqual(await lab.snapshot(), before, `${c.name}: a refused payload changed the host`);
      if (!isDescription) assert.deepEqual(accepted, []);
    });
  }

  test('legal but tricky names start and stop cleanly', async () => {
    const nets = TRICKY_NAME_CASES.filter((t) => t.field === 'network').map((t) => t.value);
    const bridges = TRICKY_NAME_CASES.filter((t) => t.field === 'bridge').map((t) => t.value);
    const vms = TRICKY_NAME_CASES.filter((t) => t.field === 'vm').map((t) => t.value);
    assert.ok(nets.length >= bridges.length && vms.length > 0);
    for (const [i, name] of nets.entries()) {
      const bridge = bridges[i] ?? `trk${i}`;
      await lab.kvmnetOk('net', 'define', name, '--subnet', `10.${80 + i}.0.0/24`, '--bridge', bridge);
      for (const vm of vms) await lab.kvmnetOk('port', 'add', name, '--vm', vm);
      const info = await lab.kvmnetJson<{ name: string; bridge: string }>('net', 'info', name);
      assert.equal(info.name, name);
      assert.equal(info.bridge, bridge);
      const before = withoutLeases(await lab.snapshot());
      await lab.kvmnetOk('net', 'start', name);
      const link = await lab.exec(lab.hostNs, ['ip', '-json', 'link', 'show', 'dev', bridge]);
      assert.equal(link.code, 0, `bridge ${bridge} is up: ${link.stderr}`);
      assert.equal((JSON.parse(link.stdout) as Array<{ ifname: string }>)[0]?.ifname, bridge);
      await lab.kvmnetOk('net', 'stop', name);
      assert.deepEqual(withoutLeases(await lab.snapshot()), before, `${name}: stop left something behind`);
      for (const vm of vms) await lab.kvmnetOk('port', 'del', `${vm}/net0`, '--network', name);
      await lab.kvmnetOk('net', 'undefine', name);
    }
  });
});
