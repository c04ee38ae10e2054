// A plan as the commands it runs (`--dry-run` output). Apart from plan.ts so that the CLI can
// print plans without loading the planner and the model's schemas at start-up.
import type { NetworkPlan } from './plan.js';

/** Renders a plan as the shell commands it amounts to (what --dry-run prints). */
export function formatPlan(p: NetworkPlan): string {
  if (p.steps.length === 0) return `# network ${p.network}: ${p.action} - nothing to do\n`;
  const out = [`# network ${p.network}: ${p.action}`];
  for (const s of p.steps) {
    out.push(`# ${s.kind}: ${s.why}`);
    switch (s.kind) {
      case 'ip':
        for (const l of s.lines) out.push(`ip ${l}`);
        break;
      case 'sysctl':
        out.push(`sysctl -w ${s.key}=${s.value}`);
        break;
      case 'nft':
        out.push("nft -f - <<'EOF'", s.script.trimEnd(), 'EOF');
        break;
      case 'write':
        out.push(`cat > ${s.path} <<'EOF'`, s.content.trimEnd(), 'EOF');
        break;
      case 'remove':
        out.push(`rm -rf ${s.path}`);
        break;
      case 'dnsmasq-start':
        out.push(`dnsmasq --conf-file=${s.confFile}`);
        break;
      case 'dnsmasq-stop':
        out.push(`kill -TERM ${s.pid}`);
        break;
      case 'dnsmasq-reload':
        out.push(`kill -HUP ${s.pid}`);
        break;
      case 'check':
        out.push(
          `ping -c 1 -W 1 -I ${s.dev} ${s.target}   # until it answers, at most ${s.timeoutS} s; else roll back`,
        );
        break;
    }
  }
  return out.join('\n') + '\n';
}
