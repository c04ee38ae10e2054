// Bridged networks: taking over a host NIC live. Pure planning: a snapshot of the uplink as it
// is, the one `ip -batch` that moves it under the bridge, and the batch that puts it back exactly.
//
// Order of the take-over (one batch, so the gap is microseconds): the bridge is created with the
// uplink's MAC (the LAN's DHCP server and neighbours see no change), comes up, gets the uplink's
// addresses (briefly on both), takes the uplink as its port, then the uplink loses its addresses
// (which drops its routes) and the routes are added again on the bridge with their metrics.
import type { AddrInfo, LinkInfo, NeighInfo, RouteInfo } from '../host/host.js';

export interface UplinkSnapshot {
  ifname: string;
  mac: string;
  mtu: number;
  up: boolean;
  addrs: Array<Pick<AddrInfo, 'cidr' | 'broadcast' | 'dynamic' | 'validLft' | 'preferredLft'>>;
  /** Routes through the uplink except the connected ones its addresses create by themselves. */
  routes: RouteInfo[];
}

export function snapshotUplink(link: LinkInfo, addrs: AddrInfo[], routes: RouteInfo[]): UplinkSnapshot {
  return {
    ifname: link.ifname,
    mac: link.address,
    mtu: link.mtu,
    up: link.flags.includes('UP'),
    addrs: addrs
      .filter((a) => a.ifname === link.ifname)
      .map((a) => {
        const out: UplinkSnapshot['addrs'][number] = { cidr: a.cidr, dynamic: a.dynamic };
        if (a.broadcast !== undefined) out.broadcast = a.broadcast;
        if (a.validLft !== undefined) out.validLft = a.validLft;
        if (a.preferredLft !== undefined) out.preferredLft = a.preferredLft;
        return out;
      }),
    routes: routes.filter((r) => r.dev === link.ifname && !(r.protocol === 'kernel' && r.scope === 'link')),
  };
}

function addrLine(a: UplinkSnapshot['addrs'][number], dev: string): string {
  const brd = a.broadcast ? ` broadcast ${a.broadcast}` : '';
  const life =
    a.dynamic && a.validLft !== undefined
      ? ` valid_lft ${a.validLft} preferred_lft ${a.preferredLft ?? a.validLft}`
      : '';
  return `addr add ${a.cidr}${brd} dev ${dev}${life}`;
}

export function routeLine(r: RouteInfo, dev: string, verb = 'replace'): string {
  const parts = [`route ${verb} ${r.dst}`];
  if (r.gateway) parts.push(`via ${r.gateway}`);
  parts.push(`dev ${dev}`);
  if (r.protocol) parts.push(`proto ${r.protocol}`);
  if (r.scope && r.scope !== 'global' && !r.gateway) parts.push(`scope ${r.scope}`);
  if (r.prefsrc) parts.push(`src ${r.prefsrc}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  return parts.join(' ');
}

/** The batch that puts the uplink under the bridge, addresses and routes moved. */
export function takeoverLines(bridge: string, s: UplinkSnapshot): string[] {
  const mtu = s.mtu && s.mtu !== 1500 ? ` mtu ${s.mtu}` : '';
  return [
    `link add name ${bridge} address ${s.mac}${mtu} type bridge stp_state 0 forward_delay 0`,
    `link set dev ${bridge} up`,
    ...s.addrs.map((a) => addrLine(a, bridge)),
    `link set dev ${s.ifname} master ${bridge}`,
    ...(s.up ? [] : [`link set dev ${s.ifname} up`]),
    ...s.addrs.map((a) => `addr del ${a.cidr} dev ${s.ifname}`),
    ...s.routes.map((r) => routeLine(r, bridge)),
  ];
}

/**
 * The batch that puts the uplink back exactly as snapshotted (run with ip -force: every line is
 * tried). The uplink gets its addresses and routes back before the bridge goes, so at no point of
 * the batch is the address on neither of them.
 */
export function restoreLines(bridge: string, s: UplinkSnapshot): string[] {
  return [
    `link set dev ${s.ifname} nomaster`,
    `link set dev ${s.ifname} ${s.up ? 'up' : 'down'}`,
    ...s.addrs.map((a) => addrLine(a, s.ifname)),
    ...s.routes.map((r) => routeLine(r, s.ifname)),
    `link del dev ${bridge}`,
  ];
}

/** Whom to ask whether the host is still on the LAN: the default gateway, else a known neighbour. */
export function checkTarget(s: UplinkSnapshot, neighbors: NeighInfo[]): string | undefined {
  const gw = s.routes.find((r) => r.dst === 'default' && r.gateway)?.gateway;
  if (gw) return gw;
  return neighbors.find(
    (n) => n.lladdr && n.state.some((x) => x === 'REACHABLE' || x === 'STALE' || x === 'DELAY'),
  )?.dst;
}

/** What differs between a running bridged network and its snapshot, one line per difference. */
export function bridgedDrift(
  bridge: string,
  s: UplinkSnapshot,
  links: Map<string, LinkInfo>,
  addrs: AddrInfo[],
  routes: RouteInfo[],
): string[] {
  const out: string[] = [];
  const br = links.get(bridge);
  if (!br) return [`bridge ${bridge} is missing`];
  if (br.address !== s.mac) out.push(`bridge ${bridge} has MAC ${br.address}, expected ${s.mac}`);
  if (links.get(s.ifname)?.master !== bridge) out.push(`${s.ifname} is not a port of ${bridge}`);
  for (const a of s.addrs) {
    if (!addrs.some((x) => x.ifname === bridge && x.cidr === a.cidr))
      out.push(`address ${a.cidr} missing on ${bridge}`);
  }
  for (const r of s.routes) {
    if (
      !routes.some(
        (x) => x.dev === bridge && x.dst === r.dst && x.gateway === r.gateway && x.metric === r.metric,
      )
    ) {
      out.push(`route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} missing on ${bridge}`);
    }
  }
  return out;
}
