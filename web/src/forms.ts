// The two forms: define a network, add a port forward. Each has a Dry run button that sends the
// same request with ?dryRun=1 and shows the plan instead of changing anything.
import { ApiError, write } from './api.js';
import type { NetworkStatus, OpResult } from './types.js';
import { clearMarks, hidePlan, markField, showPlan, toast, toastError } from './ui.js';

/** A request body from a form: only the fields that were filled in. */
type FormBody = Record<string, string | boolean>;

function field(form: HTMLFormElement, name: string): string {
  const el = form.elements.namedItem(name);
  return el instanceof HTMLInputElement || el instanceof HTMLSelectElement ? el.value.trim() : '';
}

function bind(
  form: HTMLFormElement,
  path: string,
  body: () => FormBody,
  say: { plan: (b: FormBody) => string; done: (b: FormBody, r: OpResult) => string },
  onDone: () => void,
): void {
  const submit = async (dryRun: boolean, btn: HTMLButtonElement): Promise<void> => {
    clearMarks(form);
    const b = body();
    btn.disabled = true;
    btn.classList.add('busy');
    try {
      const r = await write('POST', dryRun ? `${path}?dryRun=1` : path, b);
      if (dryRun) {
        showPlan(form, `Plan: ${say.plan(b)}`, r);
      } else {
        toast('ok', say.done(b, r), r.notes);
        hidePlan();
        onDone();
      }
    } catch (e) {
      toastError(e);
      if (e instanceof ApiError) markField(form, e.body.field, e.body.code);
    } finally {
      btn.disabled = false;
      btn.classList.remove('busy');
    }
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const btn = form.querySelector<HTMLButtonElement>('button[type="submit"]');
    if (btn) void submit(false, btn);
  });
  const dry = form.querySelector<HTMLButtonElement>('button[data-action="dry-run"]');
  dry?.addEventListener('click', () => void submit(true, dry));
  form.addEventListener('input', (ev) => {
    const t = ev.target;
    if (t instanceof HTMLElement && t.classList.contains('invalid')) {
      t.classList.remove('invalid');
      t.removeAttribute('aria-invalid');
    }
  });
}

export function bindNetworkForm(form: HTMLFormElement): void {
  const mode = form.elements.namedItem('mode') as HTMLSelectElement;
  const showFor = (): void => {
    const bridged = mode.value === 'bridge';
    form.querySelectorAll<HTMLElement>('[data-for-mode]').forEach((el) => {
      el.hidden = (el.dataset['forMode'] === 'bridge') !== bridged;
    });
  };
  mode.addEventListener('change', showFor);
  showFor();
  bind(
    form,
    '/api/networks',
    () => {
      const b: FormBody = {};
      for (const k of ['name', 'mode', 'subnet', 'uplink']) {
        const el = form.elements.namedItem(k) as HTMLInputElement | null;
        // A hidden field (subnet on a bridged network, uplink on the others) is not sent.
        if (el?.closest<HTMLElement>('[hidden]')) continue;
        const v = field(form, k);
        if (v) b[k] = v;
      }
      if ((form.elements.namedItem('autostart') as HTMLInputElement).checked) b['autostart'] = true;
      return b;
    },
    {
      plan: (b) => `define network ${String(b['name'] ?? '')}`,
      done: (b) => `network ${String(b['name'] ?? '')} defined`,
    },
    () => {
      for (const k of ['name', 'subnet', 'uplink'])
        (form.elements.namedItem(k) as HTMLInputElement).value = '';
    },
  );
}

export function bindForwardForm(form: HTMLFormElement): void {
  bind(
    form,
    '/api/forwards',
    () => {
      const b: FormBody = {};
      for (const k of ['network', 'proto', 'ports', 'target', 'hostIp', 'description']) {
        const v = field(form, k);
        if (v) b[k] = v;
      }
      return b;
    },
    {
      plan: (b) =>
        `add forward ${String(b['proto'] ?? '')}/${String(b['ports'] ?? '')} to ${String(b['network'] ?? '')}`,
      done: (b, r) =>
        `forward ${r.forward?.id ?? `${String(b['proto'] ?? '')}/${String(b['ports'] ?? '')}`} added` +
        (r.forward ? `: ${r.forward.summary}` : ` to ${String(b['network'] ?? '')}`),
    },
    () => {
      for (const k of ['ports', 'target', 'hostIp', 'description'])
        (form.elements.namedItem(k) as HTMLInputElement).value = '';
    },
  );
}

const FORWARDABLE = new Set(['nat', 'routed', 'open']);

/** Refills the forward form's network choice, keeping the selection. */
export function updateForwardNetworks(form: HTMLFormElement, nets: NetworkStatus[]): void {
  const sel = form.elements.namedItem('network') as HTMLSelectElement;
  const keep = sel.value;
  const names = nets.filter((n) => FORWARDABLE.has(n.mode)).map((n) => n.name);
  const current = [...sel.options].map((o) => o.value);
  if (current.length && current.join('\n') === (names.length ? names : ['']).join('\n')) return;
  sel.replaceChildren(
    ...names.map((n) => {
      const o = document.createElement('option');
      o.value = n;
      o.textContent = n;
      return o;
    }),
  );
  if (names.includes(keep)) sel.value = keep;
  if (!names.length) {
    const o = document.createElement('option');
    o.value = '';
    o.textContent = 'no nat, routed or open network';
    sel.append(o);
  }
}
