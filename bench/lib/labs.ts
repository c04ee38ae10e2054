// Shared by the benches: filling a daemon with networks and ports; the teardown of several labs
// and, optionally, libvirt in one of them.
import type { Daemon } from '../../test/lib/daemon.js';
import type { Lab } from '../../test/lib/lab.js';
import { virsh, type Libvirtd } from '../../test/lib/libvirtd.js';

/**
 * Removes libvirt's network `lvNet` and stops libvirtd (if it was started), then destroys every
 * lab, even when an earlier one's destroy() fails (it throws after cleaning up); the first
 * failure is rethrown at the end.
 */
export async function tearDown(labs: Lab[], lv: Libvirtd | undefined, lvNet: string): Promise<void> {
  if (lv) {
    await virsh(['net-destroy', lvNet]);
    await virsh(['net-undefine', lvNet]);
    await lv.stop();
  }
  const failed: unknown[] = [];
  for (const lab of labs) {
    await lab.kvmnet('down').catch(() => undefined);
    await lab.destroy().catch((e: unknown) => failed.push(e));
  }
  if (failed.length) throw failed[0];
}

/** Defines and starts `networks` NAT networks (10.60.N.0/24) with `ports` ports each, through the API. */
export async function populate(daemon: Daemon, networks: number, ports: number): Promise<void> {
  for (let n = 0; n < networks; n++) {
    const name = `net${n}`;
    await daemon.ok('/api/networks', { method: 'POST', body: { name, subnet: `10.60.${n}.0/24` } }, 201);
    await daemon.ok(`/api/networks/${name}/start`, { method: 'POST' });
    for (let p = 0; p < ports; p++)
      await daemon.ok('/api/ports', { method: 'POST', body: { network: name, vm: `vm${n}-${p}` } }, 201);
  }
}
