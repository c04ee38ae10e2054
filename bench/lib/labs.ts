// Teardown shared by the benches that run several labs and, optionally, libvirt in one of them.
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
