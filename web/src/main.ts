// The page: sign in (or say how), then render everything from the daemon's `state` events and
// draw traffic from its `stats` events.
import { loadSession } from './api.js';
import { byId, h } from './dom.js';
import { bindForwardForm, bindNetworkForm, updateForwardNetworks } from './forms.js';
import { addSample, drawAllSparks } from './stats.js';
import { forwardsTable, leasesTable, networksTable, portsTable } from './tables.js';
import { networkCard } from './topology.js';
import type { Session, StateEvent, StatsEvent } from './types.js';
import { hidePlan, toastError } from './ui.js';

let state: StateEvent | null = null;

function setLive(on: boolean, text?: string): void {
  const el = byId('live');
  el.textContent = text ?? (on ? 'live' : 'reconnecting…');
  el.className = `live ${on ? 'on' : 'off'}`;
}

function render(): void {
  if (!state) return;
  const { networks, show, leases } = state;
  const byName = new Map(networks.map((n) => [n.name, n]));
  const cards = byId('cards');
  const width = cards.clientWidth || 1200;
  cards.replaceChildren(
    ...(show.length
      ? show.map((n) => networkCard(n, byName.get(n.network), width))
      : [
          h(
            'div',
            { class: 'card empty-card muted' },
            'No networks defined. Define one with the form below.',
          ),
        ]),
  );
  networksTable(byId<HTMLTableElement>('networks-table'), networks, show);
  portsTable(byId<HTMLTableElement>('ports-table'), show);
  filterPorts();
  forwardsTable(byId<HTMLTableElement>('forwards-table'), show);
  leasesTable(byId<HTMLTableElement>('leases-table'), leases);
  updateForwardNetworks(byId<HTMLFormElement>('forward-form'), networks);
  drawAllSparks(cards);

  const ports = show.reduce((a, n) => a + n.ports.length, 0);
  const forwards = show.reduce((a, n) => a + n.forwards.length, 0);
  const active = networks.filter((n) => n.state === 'active').length;
  const plural = (k: number, w: string): string => `${k} ${w}${k === 1 ? '' : 's'}`;
  byId('counts').textContent = [
    `${plural(networks.length, 'network')} (${active} active)`,
    plural(ports, 'port'),
    plural(leases.length, 'lease'),
    plural(forwards, 'forward'),
  ].join(' · ');
}

/** Hides the port rows that do not contain the filter text (case-insensitive). */
function filterPorts(): void {
  const q = byId<HTMLInputElement>('port-filter').value.trim().toLowerCase();
  byId('ports-table')
    .querySelectorAll<HTMLTableRowElement>('tbody tr[data-port]')
    .forEach((tr) => {
      tr.hidden = q !== '' && !(tr.textContent ?? '').toLowerCase().includes(q);
    });
}

let source: EventSource | null = null;
let retry: number | undefined;

function connect(): void {
  source?.close();
  const es = new EventSource('/api/events');
  source = es;
  let wasDown = false;
  es.addEventListener('open', () => {
    setLive(true);
    // After an outage the daemon may have restarted: refresh the CSRF token.
    if (wasDown) loadSession().catch(() => undefined);
  });
  es.addEventListener('state', (ev) => {
    state = JSON.parse((ev as MessageEvent<string>).data) as StateEvent;
    setLive(true);
    render();
  });
  es.addEventListener('stats', (ev) => {
    if (addSample(JSON.parse((ev as MessageEvent<string>).data) as StatsEvent)) drawAllSparks();
  });
  es.addEventListener('error', () => {
    wasDown = true;
    setLive(false);
    // EventSource retries a dropped connection itself, but gives up on an HTTP error (the
    // daemon restarted with another token, say): then start over after a pause.
    if (es.readyState === EventSource.CLOSED) {
      window.clearTimeout(retry);
      retry = window.setTimeout(() => void start(), 3000);
    }
  });
}

function showHost(s: Session): void {
  byId('host').replaceChildren(
    h('span', { class: 'mono' }, location.host),
    ` · kvmnet ${s.version}`,
    s.auth === 'cookie' ? ' · signed in' : ` · ${s.auth}`,
  );
}

async function start(): Promise<void> {
  let session: Session | null;
  try {
    session = await loadSession();
  } catch (e) {
    setLive(false, 'unreachable');
    toastError(e);
    window.clearTimeout(retry);
    retry = window.setTimeout(() => void start(), 3000);
    return;
  }
  document.body.classList.toggle('signed-out', !session);
  if (!session) {
    source?.close();
    byId('app').hidden = true;
    byId('signin').hidden = false;
    setLive(false, 'signed out');
    return;
  }
  byId('signin').hidden = true;
  byId('app').hidden = false;
  showHost(session);
  connect();
}

bindNetworkForm(byId<HTMLFormElement>('network-form'));
bindForwardForm(byId<HTMLFormElement>('forward-form'));
byId('plan-close').addEventListener('click', hidePlan);
byId('port-filter').addEventListener('input', filterPorts);
document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape') hidePlan();
});

let resizeTimer: number | undefined;
window.addEventListener('resize', () => {
  window.clearTimeout(resizeTimer);
  resizeTimer = window.setTimeout(render, 150);
});

// Lease expiry is shown relative to now: keep it current between state events.
window.setInterval(() => {
  if (state) leasesTable(byId<HTMLTableElement>('leases-table'), state.leases);
}, 30_000);

void start();
