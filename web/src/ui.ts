// The toast (one message at a time: errors stay until dismissed or replaced, successes fade) and
// the dry-run plan panel.
import { ApiError } from './api.js';
import { byId, h } from './dom.js';
import type { OpResult, Step } from './types.js';

let fadeTimer: number | undefined;

export function toast(kind: 'ok' | 'error', message: string, detail: string[] = []): void {
  const el = byId('toast');
  window.clearTimeout(fadeTimer);
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'dismiss' }, '×');
  close.addEventListener('click', () => {
    el.hidden = true;
  });
  el.className = `toast ${kind}`;
  el.replaceChildren(
    h(
      'div',
      { class: 'toast-body' },
      h('div', { class: 'toast-msg' }, message),
      ...detail.map((d) => h('div', { class: 'toast-hint' }, d)),
    ),
    close,
  );
  el.hidden = false;
  if (kind === 'ok') fadeTimer = window.setTimeout(() => (el.hidden = true), 6000);
}

export function toastError(e: unknown): void {
  if (e instanceof ApiError) {
    toast('error', e.body.message, e.body.hint ? [e.body.hint] : []);
  } else {
    toast('error', e instanceof Error ? e.message : String(e));
  }
}

/** Which form field an error without `field` is about, from its code ("subnet-overlap": subnet). */
const CODE_FIELDS: Array<[RegExp, string]> = [
  [/subnet/, 'subnet'],
  [/uplink/, 'uplink'],
  [/name|network-exists|exists/, 'name'],
  [/forward-conflict|port/, 'ports'],
  [/target|vm/, 'target'],
  [/host-?ip/, 'hostIp'],
];

/** Marks the form control an error names (`field` is a key path: "subnet", "dhcp.start"). */
export function markField(form: HTMLFormElement, field: string | undefined, code = ''): void {
  clearMarks(form);
  let name = field?.split(/[.[]/)[0];
  if (!name) name = CODE_FIELDS.find(([re, f]) => re.test(code) && form.elements.namedItem(f))?.[1];
  if (!name) return;
  const el = form.elements.namedItem(name);
  if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement) {
    el.classList.add('invalid');
    el.setAttribute('aria-invalid', 'true');
    el.focus();
  }
}

export function clearMarks(form: HTMLFormElement): void {
  form.querySelectorAll('.invalid').forEach((el) => {
    el.classList.remove('invalid');
    el.removeAttribute('aria-invalid');
  });
}

/** The shell commands of a step, as formatPlan prints them. */
function commands(st: Step): string[] {
  switch (st.kind) {
    case 'ip':
      return st.lines.map((l) => `ip ${l}`);
    case 'sysctl':
      return [`sysctl -w ${st.key}=${st.value}`];
    case 'nft':
      return ["nft -f - <<'EOF'", st.script.trimEnd(), 'EOF'];
    case 'write':
      return [`cat > ${st.path} <<'EOF'`, st.content.trimEnd(), 'EOF'];
    case 'remove':
      return [`rm -rf ${st.path}`];
    case 'dnsmasq-start':
      return [`dnsmasq --conf-file=${st.confFile}`];
    case 'dnsmasq-stop':
      return [`kill -TERM ${st.pid}`];
    case 'dnsmasq-reload':
      return [`kill -HUP ${st.pid}`];
    case 'check':
      return [`ping -c 1 -W 1 -I ${st.dev} ${st.target}   # until it answers, at most ${st.timeoutS} s`];
  }
}

/** Shows a dry run's result under the form that asked for it. */
export function showPlan(form: HTMLFormElement, title: string, r: OpResult): void {
  const out: Node[] = [h('div', { class: 'plan-title' }, title)];
  for (const d of r.definitions) {
    out.push(
      h(
        'div',
        { class: 'plan-def' },
        h('span', { class: `badge ${d.change}` }, d.change),
        ' ',
        h('span', { class: 'mono' }, d.forward ? `${d.network} ${d.forward}` : d.network),
      ),
      h('ul', { class: 'plan-details' }, ...d.details.map((x) => h('li', {}, x))),
    );
  }
  if (r.forward) {
    out.push(
      h(
        'div',
        { class: 'plan-def' },
        h('span', { class: 'badge define' }, 'forward'),
        ' ',
        h('span', { class: 'mono' }, r.forward.summary),
      ),
    );
  }
  for (const p of r.plans) {
    out.push(
      h(
        'div',
        { class: 'plan-net' },
        `network ${p.network}: ${p.action}`,
        p.steps.length ? '' : ' - nothing to do',
      ),
    );
    const ol = h('ol', { class: 'plan-steps' });
    for (const st of p.steps) {
      ol.append(
        h(
          'li',
          { class: 'plan-step' },
          h(
            'details',
            {},
            h(
              'summary',
              {},
              h('span', { class: 'badge kind' }, st.kind),
              ' ',
              h('span', { class: 'step-why' }, st.why),
            ),
            h('pre', { class: 'mono' }, commands(st).join('\n')),
          ),
        ),
      );
    }
    out.push(ol);
  }
  if (!r.definitions.length && !r.plans.length && !r.forward)
    out.push(h('div', { class: 'muted' }, 'nothing would change'));
  for (const n of r.notes) out.push(h('div', { class: 'plan-note' }, n));
  byId('plan').replaceChildren(...out);
  const block = byId('plan-block');
  form.after(block);
  block.hidden = false;
}

export function hidePlan(): void {
  byId('plan-block').hidden = true;
}
