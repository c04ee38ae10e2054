// The state store (src/engine/store.ts): restore() puts the state file back as it was loaded, even
// after the loaded state was changed in place (forward add and del change it in place, since a
// copy of a map of thousands of forwards costs about as much as parsing it).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Paths } from '../../src/engine/paths.js';
import { Store, type StateData } from '../../src/engine/store.js';

test('restore() writes back the text the state was loaded from; an unloaded state is saved', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kvmnet-store-'));
  try {
    const paths = new Paths(join(dir, 'state'), join(dir, 'run'));
    const store = new Store(paths);
    // An older writer's layout (indented): restore gives back these very bytes.
    const text = JSON.stringify(
      { version: 1, initialized: true, networks: {}, ports: {}, forwards: {} },
      null,
      2,
    );
    await store.save({ version: 1, initialized: false, networks: {}, ports: {}, forwards: {} });
    await writeFile(paths.stateFile, text);
    const loaded = await store.load();
    loaded.forwards['tcp/8080'] = {
      network: 'n',
      proto: 'tcp',
      port: 8080,
      target: '10.0.0.2',
      targetPort: 80,
    } as StateData['forwards'][string];
    await store.save(loaded);
    assert.match(await readFile(paths.stateFile, 'utf8'), /tcp\/8080/);
    await store.restore(loaded);
    assert.equal(await readFile(paths.stateFile, 'utf8'), text);
    const other: StateData = { version: 1, initialized: false, networks: {}, ports: {}, forwards: {} };
    await store.restore(other);
    assert.deepEqual(await store.load(), other);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
