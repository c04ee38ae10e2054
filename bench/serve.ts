// Benchmark (issue 7): `kvmnet serve` with 10 running networks and 100 ports, in a namespace lab.
// - RSS of the daemon idle (goal <= 60 MB), and while the page is open (an event stream and its
//   polling), against a bare Node.js HTTP server measured in the same run.
// - The page's load time in Debian's headless Chromium: from navigation to all 10 topologies drawn
//   with their 100 VMs, against a bare static page of the same size class served by Node.js.
//   npm run bench            (as root; never part of the test command)
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { Daemon } from '../test/lib/daemon.js';
import { Lab } from '../test/lib/lab.js';
import { populate } from './lib/labs.js';
import { settledRss, unitEnv } from './lib/mem.js';
import { knob, median, runMain } from './lib/stats.js';

const NETWORKS = 10;
const PORTS_PER_NETWORK = 10;
const ROUNDS = knob('KVMNET_BENCH_ROUNDS', 7);
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A bare Node.js HTTP server (the baseline): its own process, so its RSS is comparable. */
async function bareServer(): Promise<{ pid: number; port: number; stop(): void }> {
  const html = `<!doctype html><title>bare</title><p id="done">${'x'.repeat(2000)}</p>`;
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const h=require('http');const s=h.createServer((q,r)=>{r.setHeader('content-type','text/html');r.end(${JSON.stringify(html)})});s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) =>
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  return { pid: child.pid ?? 0, port, stop: () => child.kill('SIGTERM') };
}

/** RSS (empty, idle after the work) of a daemon started with `env`, in its own lab. */
async function rssWith(env: NodeJS.ProcessEnv): Promise<{ empty: number; idle: number }> {
  const lab = await Lab.create('bserveu');
  let daemon: Daemon | undefined;
  try {
    daemon = await Daemon.start(lab, [], env);
    const pid = daemon.proc.child.pid ?? 0;
    const empty = await settledRss(pid, 3);
    await populate(daemon, NETWORKS, PORTS_PER_NETWORK);
    return { empty, idle: await settledRss(pid) };
  } finally {
    if (daemon) {
      await lab.kvmnet('down').catch(() => undefined);
      await daemon.stop();
    }
    await lab.destroy();
  }
}

async function main(): Promise<void> {
  const lab = await Lab.create('bserve');
  const bare = await bareServer();
  let daemon: Daemon | undefined;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  try {
    process.stderr.write(
      `bench: defining and starting ${NETWORKS} networks with ${NETWORKS * PORTS_PER_NETWORK} ports…\n`,
    );
    daemon = await Daemon.start(lab);
    const emptyRss = await settledRss(daemon.proc.child.pid ?? 0, 3);
    await populate(daemon, NETWORKS, PORTS_PER_NETWORK);
    const pid = daemon.proc.child.pid ?? 0;
    const idle = await settledRss(pid);
    const bareIdle = await settledRss(bare.pid);

    // The page: log in once (cookie), then time fresh loads until every topology is drawn.
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(daemon.loginUrl);
    const loads: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      await page.goto(`${daemon.base}/`);
      await page
        .locator('[data-testid="network-card"]')
        .nth(NETWORKS - 1)
        .waitFor();
      await page
        .locator(`[data-testid="network-card"][data-network="net${NETWORKS - 1}"] svg`)
        .getByText(`vm${NETWORKS - 1}-${PORTS_PER_NETWORK - 1}`, { exact: true })
        .first()
        .waitFor();
      loads.push(performance.now() - t0);
    }
    const open = await settledRss(pid); // the page is still open: an event stream is polling
    const bareLoads: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      await page.goto(`http://127.0.0.1:${bare.port}/`);
      await page.locator('#done').waitFor();
      bareLoads.push(performance.now() - t0);
    }
    await context.close();

    const size = (await daemon.request('/api/show')).text.length;
    const env = await unitEnv();
    process.stderr.write(`bench: again with the systemd unit's environment (${JSON.stringify(env)})…\n`);
    const unit = await rssWith(env);
    const out = [
      `kvmnet serve, ${NETWORKS} running networks, ${NETWORKS * PORTS_PER_NETWORK} ports (medians):`,
      `  RSS empty state:          ${emptyRss.toFixed(1)} MB`,
      `  RSS idle:                 ${idle.toFixed(1)} MB (plain node)`,
      `  RSS as the unit runs it:  ${unit.idle.toFixed(1)} MB idle, ${unit.empty.toFixed(1)} MB empty (goal <= 60 MB idle; ${unit.idle <= 60 ? 'met' : 'NOT met'})`,
      `  RSS with the page open:   ${open.toFixed(1)} MB`,
      `  bare Node.js HTTP server: ${bareIdle.toFixed(1)} MB (ratio idle/bare ${(idle / bareIdle).toFixed(2)})`,
      `  page load to ${NETWORKS} topologies drawn: ${median(loads).toFixed(0)} ms (min ${Math.min(...loads).toFixed(0)}, max ${Math.max(...loads).toFixed(0)}; ${ROUNDS} rounds)`,
      `  bare static page:         ${median(bareLoads).toFixed(0)} ms (ratio ${(median(loads) / median(bareLoads)).toFixed(1)})`,
      `  /api/show answer:         ${(size / 1024).toFixed(0)} KiB`,
    ];
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    await browser.close();
    bare.stop();
    if (daemon) {
      await lab.kvmnet('down').catch(() => undefined);
      await daemon.stop();
    }
    await lab.destroy();
  }
}

runMain(main);
