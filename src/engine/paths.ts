// Where kvmnet keeps things. State (definitions, leases) survives reboots; the run dir (applied
// records, generated dnsmasq files, pid files) describes what is applied now and is cleared at boot.
import { join } from 'node:path';

export const DEFAULT_STATE_DIR = '/var/lib/kvmnet';
export const DEFAULT_RUN_DIR = '/run/kvmnet';

export class Paths {
  constructor(
    readonly stateDir: string,
    readonly runDir: string,
  ) {}

  get stateFile(): string {
    return join(this.stateDir, 'kvmnet.json');
  }
  get lockFile(): string {
    return join(this.stateDir, 'kvmnet.lock');
  }
  get leasesDir(): string {
    return join(this.stateDir, 'leases');
  }
  leaseFile(net: string): string {
    return join(this.leasesDir, `${net}.leases`);
  }
  get appliedDir(): string {
    return join(this.runDir, 'applied');
  }
  appliedFile(net: string): string {
    return join(this.appliedDir, `${net}.json`);
  }
  get netRunRoot(): string {
    return join(this.runDir, 'net');
  }
  netRunDir(net: string): string {
    return join(this.netRunRoot, net);
  }
  dnsmasqConf(net: string): string {
    return join(this.netRunDir(net), 'dnsmasq.conf');
  }
  dnsmasqPid(net: string): string {
    return join(this.netRunDir(net), 'dnsmasq.pid');
  }
  dhcpHostsFile(net: string): string {
    return join(this.netRunDir(net), 'dhcp-hosts');
  }
  /** dnsmasq's dhcp-script, which mirrors leases into table bridge kvmnet. */
  leaseHook(net: string): string {
    return join(this.netRunDir(net), 'lease-hook');
  }
  hostsFile(net: string): string {
    return join(this.netRunDir(net), 'hosts');
  }
}
