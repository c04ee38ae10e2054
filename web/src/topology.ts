// One network's picture, left to right: the outside (uplink, NAT, routed or nothing) -> the
// bridge -> its ports (taps) -> the VMs behind them, with each VM's address and the state of its
// cable. Ports are laid out in as many columns as the card's width allows, so twenty or more
// stay readable.
import { h, s } from './dom.js';
import type { NetworkStatus, ShowNetwork, ShowPort } from './types.js';

const PAD = 14;
const OUT_W = 172;
const OUT_H = 66;
const BR_X = PAD + OUT_W + 56;
const BR_W = 184;
const BR_H = 82;
const TRUNK_GAP = 28; // bridge's right edge -> first trunk
const BRANCH = 18; // trunk -> tap box
const TAP_W = 92;
const TAP_H = 28;
const CABLE = 84;
const VM_W = 176;
const VM_H = 36;
const PAIR_W = BRANCH + TAP_W + CABLE + VM_W;
const COL_GAP = 30;
const ROW_H = 44;
const TOP = 22; // room above the first row for the line joining the columns' trunks
const ROWS_PER_COL = 8; // before a second column is worth it

type Cable = 'up' | 'no-guest' | 'pulled' | 'absent';

export function cableOf(p: ShowPort): Cable {
  if (p.link === 'down') return 'pulled';
  if (p.port === '' || !p.plugged) return 'absent';
  return p.carrier ? 'up' : 'no-guest';
}

const CABLE_TEXT: Record<Cable, string> = {
  up: 'link up',
  'no-guest': 'no guest',
  pulled: 'cable pulled',
  absent: 'not plugged',
};

/** An SVG <text>; squeezed (not cut) when longer than maxW so tests and copy still see it whole. */
function text(
  x: number,
  y: number,
  content: string,
  cls: string,
  maxW: number,
  charW: number,
  anchor: 'start' | 'middle' = 'start',
): SVGTextElement {
  const t = s('text', { x, y, class: cls, 'text-anchor': anchor === 'middle' ? 'middle' : null }, content);
  if (content.length * charW > maxW) {
    t.setAttribute('textLength', String(maxW));
    t.setAttribute('lengthAdjust', 'spacingAndGlyphs');
  }
  return t;
}

function prefixOf(subnet: string | null): string {
  const m = subnet?.match(/\/(\d+)$/);
  return m?.[1] ?? '';
}

function outside(n: ShowNetwork, def: NetworkStatus | undefined): { lines: [string, string]; cls: string } {
  const dev = def?.forwardDev;
  switch (n.mode) {
    case 'nat':
      return { lines: ['NAT → host uplink', dev ? `via ${dev} only` : 'any host interface'], cls: 'nat' };
    case 'bridge':
      return {
        lines: [n.uplink ?? 'host bridge', n.uplink ? 'uplink NIC (bridged)' : 'existing bridge'],
        cls: 'uplink',
      };
    case 'routed':
      return { lines: ['routed', dev ? `via ${dev} only` : 'host routing table'], cls: 'routed' };
    case 'open':
      return { lines: ['open (routed)', 'no firewall rules'], cls: 'routed' };
    case 'isolated':
      return { lines: ['isolated (no uplink)', 'guests and host only'], cls: 'isolated' };
  }
}

/** How many columns of ports fit in `width` pixels (allowing the picture to shrink to 80 %). */
function columnsFor(n: number, width: number): number {
  const left = BR_X + BR_W + TRUNK_GAP;
  const fit = Math.max(1, Math.floor((width / 0.8 - left - PAD) / (PAIR_W + COL_GAP)));
  return Math.max(1, Math.min(fit, Math.ceil(n / ROWS_PER_COL)));
}

export function topology(n: ShowNetwork, def: NetworkStatus | undefined, width: number): SVGSVGElement {
  const ports = n.ports;
  const cols = columnsFor(ports.length, width);
  const rows = Math.max(1, Math.ceil(ports.length / cols));
  const trunk0 = BR_X + BR_W + TRUNK_GAP;
  const colX = (c: number): number => trunk0 + c * (PAIR_W + COL_GAP);
  const rowY = (r: number): number => PAD + TOP + r * ROW_H + ROW_H / 2;
  const W = ports.length ? colX(cols - 1) + PAIR_W + PAD : BR_X + BR_W + 330;
  const H = Math.max(PAD * 2 + BR_H + 10, PAD + TOP + rows * ROW_H + PAD / 2);
  const active = n.state === 'active';
  const midY = ports.length ? Math.min(H / 2, rowY(Math.min(rows - 1, 3))) : H / 2;

  const svg = s('svg', {
    class: `topology state-${n.state}`,
    width: W,
    height: H,
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': `topology of network ${n.network}`,
  });
  svg.style.maxWidth = '100%';
  svg.style.height = 'auto';

  // The outside.
  const o = outside(n, def);
  const oy = midY - OUT_H / 2;
  const og = s('g', { class: `node outside ${o.cls}` });
  og.append(
    s('rect', { x: PAD, y: oy, width: OUT_W, height: OUT_H, rx: 6 }),
    text(
      PAD + 12,
      oy + 26,
      o.lines[0],
      n.mode === 'bridge' ? 'label mono strong' : 'label strong',
      OUT_W - 24,
      7,
    ),
    text(PAD + 12, oy + 45, o.lines[1], 'sub', OUT_W - 24, 6),
  );
  if (n.mode === 'nat' || n.mode === 'routed' || n.mode === 'open') {
    const f = n.forwards.length;
    if (f) og.append(text(PAD + 12, oy + 59, `${f} port forward${f === 1 ? '' : 's'}`, 'sub', OUT_W - 24, 6));
  }
  svg.append(og);
  if (n.mode !== 'isolated') {
    svg.append(
      s('line', {
        x1: PAD + OUT_W,
        y1: midY,
        x2: BR_X,
        y2: midY,
        class: `wire ${active ? 'on' : 'off'}`,
      }),
    );
  }

  // The bridge.
  const by = midY - BR_H / 2;
  const bg = s('g', { class: `node bridge state-${n.state}` });
  const addr = n.gateway
    ? `${n.gateway}/${prefixOf(n.subnet)}`
    : (n.subnet ?? (n.mode === 'bridge' ? 'addressing: the LAN' : 'no address'));
  bg.append(
    s('rect', { x: BR_X, y: by, width: BR_W, height: BR_H, rx: 6, class: 'box' }),
    s('path', {
      d: `M${BR_X} ${by + 20} v-14 a6 6 0 0 1 6 -6 h${BR_W - 12} a6 6 0 0 1 6 6 v14 z`,
      class: 'band',
    }),
    text(BR_X + 10, by + 14, 'bridge', 'band-text', 60, 6),
    s('text', { x: BR_X + BR_W - 10, y: by + 14, class: 'band-text', 'text-anchor': 'end' }, n.state),
    text(BR_X + 10, by + 40, n.bridge, 'label mono strong', BR_W - 20, 8),
    text(BR_X + 10, by + 58, addr, n.gateway || n.subnet ? 'sub mono' : 'sub', BR_W - 20, 6.6),
    text(
      BR_X + 10,
      by + 74,
      `${n.mode} · ${ports.length} port${ports.length === 1 ? '' : 's'}`,
      'sub',
      BR_W - 20,
      6,
    ),
  );
  svg.append(bg);

  if (!ports.length) {
    svg.append(
      s('line', { x1: BR_X + BR_W, y1: midY, x2: BR_X + BR_W + 24, y2: midY, class: 'wire off' }),
      s('text', { x: BR_X + BR_W + 34, y: midY + 4, class: 'sub' }, 'no ports yet: kvmnet port add '),
    );
    const last = svg.lastElementChild as SVGTextElement;
    last.append(s('tspan', { class: 'mono' }, `${n.network} --vm NAME`));
    return svg;
  }

  // Trunks: bridge -> first trunk; columns joined along the top.
  const wire = `wire ${active ? 'on' : 'off'}`;
  svg.append(s('line', { x1: BR_X + BR_W, y1: midY, x2: trunk0, y2: midY, class: wire }));
  for (let c = 0; c < cols; c++) {
    const inCol = Math.min(rows, ports.length - c * rows);
    const x = colX(c);
    const yTop = cols > 1 ? PAD + TOP / 2 : Math.min(midY, rowY(0));
    const yBot = Math.max(c === 0 ? midY : 0, rowY(inCol - 1));
    svg.append(s('line', { x1: x, y1: yTop, x2: x, y2: yBot, class: wire }));
  }
  if (cols > 1) {
    svg.append(
      s('line', { x1: trunk0, y1: PAD + TOP / 2, x2: colX(cols - 1), y2: PAD + TOP / 2, class: wire }),
    );
  }

  ports.forEach((p, i) => {
    const c = Math.floor(i / rows);
    const r = i % rows;
    svg.append(portNode(p, colX(c), rowY(r), active));
  });
  return svg;
}

function portNode(p: ShowPort, x: number, y: number, active: boolean): SVGGElement {
  const cable = cableOf(p);
  const g = s('g', {
    class: `port cable-${cable}`,
    'data-port': p.port || p.id,
  });
  const tapX = x + BRANCH;
  const vmX = tapX + TAP_W + CABLE;
  g.append(
    // Tooltip text must not repeat what the picture shows (VM name, address): tests and users
    // search the picture by those.
    s('title', {}, `guest MAC ${p.mac}, tap MAC ${p.tapMac}${p.tap === 'libvirt' ? ' (libvirt tap)' : ''}`),
    s('line', {
      x1: x,
      y1: y,
      x2: tapX,
      y2: y,
      class: `wire ${active && p.plugged ? 'on' : 'off'}`,
    }),
    s('rect', { x: tapX, y: y - TAP_H / 2, width: TAP_W, height: TAP_H, rx: 4, class: 'tap' }),
    text(
      tapX + TAP_W / 2,
      y + 4,
      p.port || '(not running)',
      p.port ? 'label mono' : 'sub',
      TAP_W - 12,
      p.port ? 7.4 : 6,
      'middle',
    ),
    s('line', { x1: tapX + TAP_W, y1: y, x2: vmX, y2: y, class: `cable ${cable}` }),
  );
  if (cable !== 'up') {
    g.append(
      s(
        'text',
        { x: tapX + TAP_W + CABLE / 2, y: y - 7, class: `cable-text ${cable}`, 'text-anchor': 'middle' },
        CABLE_TEXT[cable],
      ),
    );
  }
  if (cable === 'pulled') {
    // The cut: two short bars across the cable.
    const mx = tapX + TAP_W + CABLE / 2;
    g.append(s('path', { d: `M${mx - 5} ${y + 4} l4 -8 M${mx + 1} ${y + 4} l4 -8`, class: 'cut' }));
  }
  g.append(
    s('rect', { x: vmX, y: y - VM_H / 2, width: VM_W, height: VM_H, rx: 5, class: 'vm' }),
    s('circle', { cx: vmX + 11, cy: y - 6, r: 3.5, class: `dot ${cable}` }),
    text(vmX + 20, y - 2, p.vm, 'label strong', VM_W - 28, 7.2),
    text(vmX + 20, y + 13, p.ip ?? 'no address', p.ip ? 'sub mono' : 'sub muted', VM_W - 28, 6.6),
  );
  return g;
}

const COLLAPSED_KEY = 'kvmnet.collapsed';

function collapsed(): Set<string> {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(COLLAPSED_KEY) ?? '[]');
    return new Set(Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

function setCollapsed(name: string, on: boolean): void {
  const s = collapsed();
  if (on) s.add(name);
  else s.delete(name);
  try {
    localStorage.setItem(COLLAPSED_KEY, JSON.stringify([...s]));
  } catch {
    // private mode: the choice lasts until the next redraw
  }
}

/** The card of one network: a heading and its picture. */
export function networkCard(n: ShowNetwork, def: NetworkStatus | undefined, width: number): HTMLElement {
  const up = n.ports.filter((p) => cableOf(p) === 'up').length;
  const isCollapsed = collapsed().has(n.network);
  const wrap = h('div', { class: 'topo-wrap', hidden: isCollapsed }, topology(n, def, width));
  const toggle = h(
    'button',
    {
      type: 'button',
      class: 'collapse',
      'aria-expanded': String(!isCollapsed),
      'aria-label': `show or hide the picture of ${n.network}`,
      title: 'show or hide the picture',
    },
    isCollapsed ? '▸' : '▾',
  );
  toggle.addEventListener('click', () => {
    const hide = !wrap.hidden;
    wrap.hidden = hide;
    toggle.textContent = hide ? '▸' : '▾';
    toggle.setAttribute('aria-expanded', String(!hide));
    setCollapsed(n.network, hide);
  });
  return h(
    'section',
    { class: `card network-card state-${n.state}`, 'data-testid': 'network-card', 'data-network': n.network },
    h(
      'header',
      { class: 'card-head' },
      toggle,
      h('h3', {}, n.network),
      h('span', { class: `badge mode` }, n.mode),
      h('span', { class: `badge state ${n.state}` }, n.state),
      h('span', { class: 'muted' }, 'bridge ', h('span', { class: 'mono' }, n.bridge)),
      n.subnet ? h('span', { class: 'mono muted' }, n.subnet) : null,
      h('span', { class: 'spacer' }),
      h('span', {
        class: 'card-rates mono muted',
        'data-rates': n.bridge,
        title: `traffic on ${n.bridge} (the bridge's own counters)`,
      }),
      h(
        'span',
        { class: 'muted' },
        `${n.ports.length} port${n.ports.length === 1 ? '' : 's'} · ${up} linked` +
          (n.mode === 'nat' || n.mode === 'routed' || n.mode === 'open'
            ? ` · ${n.forwards.length} forward${n.forwards.length === 1 ? '' : 's'}`
            : ''),
      ),
    ),
    wrap,
  );
}
