// The JSON shapes the page reads, mirrored from src/engine/engine.ts and src/model/* (the page is
// built apart from the daemon, so it declares what it relies on rather than importing server code).

export type NetworkMode = 'nat' | 'isolated' | 'routed' | 'bridge' | 'open';
export type NetworkState = 'active' | 'inactive' | 'failed';
export type LinkState = 'up' | 'down';

/** NetworkStatus: a NetworkDef with its state (GET /api/networks). */
export interface NetworkStatus {
  name: string;
  mode: NetworkMode;
  bridge: string;
  mac: string;
  subnet?: string;
  gateway?: string;
  dhcp: { start: string; end: string } | null;
  domain?: string;
  uplink?: string;
  autostart: boolean;
  mtu?: number;
  forwardDev?: string;
  state: NetworkState;
}

export interface ForwardView {
  network: string;
  proto: string;
  hostIp?: string;
  port: number;
  portEnd: number;
  target: string;
  targetPort: number;
  description?: string;
  id: string;
  targetIp: string | null;
  summary: string;
}

export interface ShowPort {
  port: string;
  tap: 'kvmnet' | 'libvirt';
  id: string;
  vm: string;
  mac: string;
  tapMac: string;
  ip: string | null;
  ipSource: 'reservation' | 'lease' | 'neighbour' | null;
  link: LinkState;
  plugged: boolean;
  carrier: boolean;
}

export interface ShowNetwork {
  network: string;
  mode: NetworkMode;
  bridge: string;
  subnet: string | null;
  gateway: string | null;
  uplink: string | null;
  state: NetworkState;
  ports: ShowPort[];
  forwards: ForwardView[];
}

export interface LeaseView {
  network: string;
  mac: string;
  ip: string;
  hostname: string | null;
  /** ISO time, null: infinite. */
  expiry: string | null;
  vm: string | null;
  port: string | null;
}

export interface StateEvent {
  time: number | string;
  networks: NetworkStatus[];
  show: ShowNetwork[];
  leases: LeaseView[];
}

export interface LinkCounters {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export interface StatsEvent {
  time: number | string;
  links: Record<string, LinkCounters>;
}

export interface Session {
  version: string;
  auth: string;
  csrf: string;
}

/** A plan step (src/engine/plan.ts); the page shows `why` and the commands it can name. */
export type Step =
  | { kind: 'ip'; why: string; lines: string[]; undo: string[]; force?: boolean }
  | { kind: 'sysctl'; why: string; key: string; value: string }
  | { kind: 'nft'; why: string; script: string; undo: string }
  | { kind: 'write'; why: string; path: string; content: string }
  | { kind: 'remove'; why: string; path: string }
  | { kind: 'dnsmasq-start'; why: string; confFile: string; pidFile: string; leaseFile: string }
  | { kind: 'dnsmasq-stop'; why: string; pid: number }
  | { kind: 'dnsmasq-reload'; why: string; pid: number }
  | { kind: 'check'; why: string; target: string; dev: string; timeoutS: number };

export interface NetworkPlan {
  network: string;
  action: 'start' | 'update' | 'stop';
  steps: Step[];
}

export interface OpResult {
  dryRun: boolean;
  definitions: Array<{
    network: string;
    forward?: string;
    change: 'define' | 'undefine' | 'update';
    details: string[];
  }>;
  plans: NetworkPlan[];
  notes: string[];
  /** Set by forward add: the forward as `forward list` shows it. */
  forward?: ForwardView;
}

export interface ApiErrorBody {
  code: string;
  message: string;
  hint?: string;
  field?: string;
}
