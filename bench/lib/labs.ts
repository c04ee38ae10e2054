// Shared by the benches: filling a daemon with networks and ports; libvirt's NAT networks; the
// teardown of several labs and, optionally, libvirt in one of them.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Daemon } from '../../test/lib/daemon.js';
import type { Lab } from '../../test/lib/lab.js';
import { virsh, virshOk, type Libvirtd } from '../../test/lib/libvirtd.js';

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

/** A libvirt NAT network like the package's `default`: `prefix`.1/24, DHCP .2–.254, stp on, delay 0. */
export function libvirtNatXml(name: string, bridge: string, prefix: string): string {
  return `<network>
  <name>${name}</name>
  <forward mode='nat'/>
  <bridge name='${bridge}' stp='on' delay='0'/>
  <ip address='${prefix}.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='${prefix}.2' end='${prefix}.254'/>
    </dhcp>
  </ip>
</network>
`;
}

/** Defines (its XML in the lab's directory) and starts that network through virsh. */
export async function startLibvirtNat(lab: Lab, name: string, bridge: string, prefix: string): Promise<void> {
  const file = join(lab.dir, `${name}.xml`);
  await writeFile(file, libvirtNatXml(name, bridge, prefix));
  await virshOk('net-define', file);
  await virshOk('net-start', name);
}
