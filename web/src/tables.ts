// The tables: networks, ports (with traffic sparklines), port forwards and DHCP leases, each with
// the buttons that act on a row.
import { write, withQuery, type Method } from './api.js';
import { h } from './dom.js';
import { drawSpark } from './stats.js';
import { cableOf } from './topology.js';
import type { ForwardView, LeaseView, NetworkStatus, ShowNetwork, ShowPort } from './types.js';
import { toast, toastError } from './ui.js';

/** Runs one write from a row's button: busy while it runs, a toast when done. */
async function act(
  btn: HTMLButtonElement,
  method: Method,
  path: string,
  body: unknown,
  done: string,
): Promise<void> {
  btn.disabled = true;
  btn.classList.add('busy');
  try {
    const r = await write(method, path, body);
    toast('ok', done, r.notes);
  } catch (e) {
    toastError(e);
  } finally {
    btn.disabled = false;
    btn.classList.remove('busy');
  }
}

function button(
  label: string,
  action: string,
  cls: string,
  onClick: (b: HTMLButtonElement) => Promise<void> | void,
  title?: string,
): HTMLButtonElement {
  const b = h('button', { type: 'button', class: `btn ${cls}`, 'data-action': action, title }, label);
  b.addEventListener('click', () => void onClick(b));
  return b;
}

function head(...cols: Array<string | [string, string]>): HTMLTableSectionElement {
  return h(
    'thead',
    {},
    h(
      'tr',
      {},
      ...cols.map((c) => (typeof c === 'string' ? h('th', {}, c) : h('th', { class: c[1] }, c[0]))),
    ),
  );
}

function empty(cols: number, text: string): HTMLTableSectionElement {
  return h('tbody', {}, h('tr', { class: 'empty' }, h('td', { colspan: cols, class: 'muted' }, text)));
}

const mono = (t: string | null | undefined, fallback = '–'): HTMLTableCellElement =>
  h('td', { class: t ? 'mono' : 'muted' }, t ?? fallback);

function badge(text: string, cls: string): HTMLSpanElement {
  return h('span', { class: `badge ${cls}` }, text);
}

const enc = encodeURIComponent;

export function networksTable(table: HTMLTableElement, nets: NetworkStatus[], show: ShowNetwork[]): void {
  const shown = new Map(show.map((n) => [n.network, n]));
  const body = h('tbody');
  for (const n of nets) {
    const auto = h('input', {
      type: 'checkbox',
      'data-action': 'autostart',
      checked: n.autostart,
      title: 'start with kvmnet up',
      'aria-label': `autostart ${n.name}`,
    });
    auto.addEventListener('change', () => {
      const on = auto.checked;
      auto.disabled = true;
      write('PUT', `/api/networks/${enc(n.name)}/autostart`, { enabled: on })
        .then(() => toast('ok', `network ${n.name}: autostart ${on ? 'on' : 'off'}`))
        .catch((e: unknown) => {
          auto.checked = !on;
          toastError(e);
        })
        .finally(() => (auto.disabled = false));
    });
    const actions = h('td', { class: 'actions' });
    if (n.state !== 'active') {
      actions.append(
        button('Start', 'start', 'go', (b) =>
          act(b, 'POST', `/api/networks/${enc(n.name)}/start`, undefined, `network ${n.name} started`),
        ),
      );
    }
    if (n.state !== 'inactive') {
      actions.append(
        button('Stop', 'stop', '', (b) =>
          act(b, 'POST', `/api/networks/${enc(n.name)}/stop`, undefined, `network ${n.name} stopped`),
        ),
      );
    }
    actions.append(
      button('Undefine', 'undefine', 'danger', (b) => {
        const s = shown.get(n.name);
        const nPorts = s?.ports.length ?? 0;
        const nFwd = s?.forwards.length ?? 0;
        const plural = (k: number, w: string): string => `${k} ${w}${k === 1 ? '' : 's'}`;
        const also = [nPorts ? plural(nPorts, 'port') : '', nFwd ? plural(nFwd, 'forward') : '']
          .filter(Boolean)
          .join(' and ');
        const text = [
          `Undefine network "${n.name}"?`,
          n.state !== 'inactive' ? 'It is stopped first.' : '',
          also ? `Its ${also} ${nPorts + nFwd === 1 ? 'is' : 'are'} deleted with it.` : '',
        ]
          .filter(Boolean)
          .join(' ');
        if (!confirm(text)) return;
        const path = withQuery(`/api/networks/${enc(n.name)}`, {
          force: also || n.state !== 'inactive' ? '1' : undefined,
        });
        return act(b, 'DELETE', path, undefined, `network ${n.name} undefined`);
      }),
    );
    body.append(
      h(
        'tr',
        { 'data-network': n.name },
        h('td', { class: 'strong' }, n.name),
        h('td', {}, n.mode),
        h('td', {}, badge(n.state, n.state)),
        mono(n.bridge),
        n.subnet
          ? h('td', { class: 'mono' }, n.subnet)
          : h(
              'td',
              { class: 'muted' },
              n.uplink ? 'uplink ' : 'LAN',
              n.uplink ? h('span', { class: 'mono' }, n.uplink) : '',
            ),
        h('td', { class: 'num' }, String(shown.get(n.name)?.ports.length ?? 0)),
        h('td', { class: 'center' }, auto),
        actions,
      ),
    );
  }
  table.replaceChildren(
    head('Name', 'Mode', 'State', 'Bridge', 'Subnet', ['Ports', 'num'], ['Autostart', 'center'], ''),
    nets.length ? body : empty(8, 'No networks yet: define one with the form.'),
  );
}

const SOURCE: Record<NonNullable<ShowPort['ipSource']>, string> = {
  reservation: 'reserved',
  lease: 'lease',
  neighbour: 'seen',
};

export function portsTable(table: HTMLTableElement, show: ShowNetwork[]): void {
  const body = h('tbody');
  for (const n of show) {
    for (const p of n.ports) {
      const key = p.port || p.id;
      const cable = cableOf(p);
      const q = withQuery(`/api/ports/${enc(p.id)}`, { network: n.network });
      const who = p.port ? `${p.id} (${p.port})` : p.id;
      const btn =
        p.link === 'up'
          ? button(
              'Pull cable',
              'link-down',
              'warn',
              (b) => act(b, 'PATCH', q, { link: 'down' }, `cable pulled on ${who}`),
              'set the link down: the guest sees its cable unplugged',
            )
          : button(
              'Plug cable',
              'link-up',
              'go',
              (b) => act(b, 'PATCH', q, { link: 'up' }, `cable plugged on ${who}`),
              'set the link up again',
            );
      body.append(
        h(
          'tr',
          { 'data-port': key, class: `cable-${cable}` },
          h('td', {}, n.network),
          h('td', { class: 'strong' }, p.vm),
          mono(p.id),
          p.port
            ? h(
                'td',
                { class: 'mono' },
                p.port,
                p.tap === 'libvirt' ? h('span', { class: 'tag' }, 'libvirt') : '',
              )
            : h('td', { class: 'muted' }, '(not running)'),
          h('td', { class: 'mono', title: `tap MAC ${p.tapMac}` }, p.mac),
          p.ip
            ? h(
                'td',
                {},
                h('span', { class: 'mono' }, p.ip),
                ' ',
                h('span', { class: 'tag' }, p.ipSource ? SOURCE[p.ipSource] : '?'),
              )
            : h('td', { class: 'muted' }, 'no address'),
          h('td', {}, p.link === 'up' ? badge('up', 'up') : badge('down', 'down')),
          h(
            'td',
            {},
            !p.port || !p.plugged
              ? h('span', { class: 'muted' }, p.port ? 'unplugged' : '–')
              : p.carrier
                ? badge('carrier', 'up')
                : badge('no guest', 'idle'),
          ),
          sparkCell(p.port),
          h('td', { class: 'actions' }, btn),
        ),
      );
    }
  }
  table.replaceChildren(
    head('Network', 'VM', 'Port', 'Tap', 'MAC', 'IP', 'Link', 'Carrier', 'Traffic', ''),
    body.childElementCount ? body : empty(10, 'No ports. Add one with: kvmnet port add NETWORK --vm VM'),
  );
}

function sparkCell(ifname: string): HTMLTableCellElement {
  const td = h('td', {
    class: 'traffic',
    'data-spark': ifname,
    title: ifname ? `${ifname}'s counters, last 60 s: rx = from the guest, tx = to the guest` : null,
  });
  drawSpark(td);
  return td;
}

function forwardPath(f: ForwardView): string {
  const ports = f.port === f.portEnd ? `${f.port}` : `${f.port}-${f.portEnd}`;
  return withQuery(`/api/forwards/${enc(f.network)}/${enc(f.proto)}/${ports}`, { hostIp: f.hostIp });
}

export function forwardsTable(table: HTMLTableElement, show: ShowNetwork[]): void {
  const body = h('tbody');
  for (const n of show) {
    for (const f of n.forwards) {
      body.append(
        h(
          'tr',
          { 'data-forward': `${f.network} ${f.id}` },
          h('td', {}, f.network),
          mono(f.id),
          h('td', { class: 'mono' }, f.summary),
          h('td', { class: f.description ? '' : 'muted' }, f.description ?? '–'),
          h(
            'td',
            { class: 'actions' },
            button('Delete', 'forward-del', 'danger', (b) =>
              act(b, 'DELETE', forwardPath(f), undefined, `forward ${f.id} removed from ${f.network}`),
            ),
          ),
        ),
      );
    }
  }
  table.replaceChildren(
    head('Network', 'Forward', 'Summary', 'Description', ''),
    body.childElementCount ? body : empty(5, 'No port forwards.'),
  );
}

function expiry(iso: string | null): HTMLTableCellElement {
  if (iso === null) return h('td', { class: 'muted' }, 'never');
  const t = Date.parse(iso);
  const left = Math.round((t - Date.now()) / 1000);
  let rel: string;
  if (!Number.isFinite(left)) rel = iso;
  else if (left <= 0) rel = 'expired';
  else if (left < 120) rel = `in ${left} s`;
  else if (left < 7200) rel = `in ${Math.round(left / 60)} min`;
  else if (left < 3 * 86400) rel = `in ${Math.round(left / 3600)} h`;
  else rel = `in ${Math.round(left / 86400)} d`;
  return h('td', { title: new Date(t).toLocaleString(), class: left <= 0 ? 'muted' : '' }, rel);
}

export function leasesTable(table: HTMLTableElement, leases: LeaseView[]): void {
  const body = h('tbody');
  for (const l of leases) {
    body.append(
      h(
        'tr',
        { 'data-lease': `${l.network} ${l.mac}` },
        h('td', {}, l.network),
        mono(l.mac),
        mono(l.ip),
        h('td', { class: l.hostname ? 'mono' : 'muted' }, l.hostname ?? '–'),
        h('td', { class: l.vm ? 'strong' : 'muted' }, l.vm ?? 'unknown'),
        expiry(l.expiry),
      ),
    );
  }
  table.replaceChildren(
    head('Network', 'MAC', 'IP', 'Hostname', 'VM', 'Expires'),
    leases.length ? body : empty(6, 'No leases.'),
  );
}
