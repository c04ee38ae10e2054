// A tiny TCP connection-rate tool for bench/dataplane.ts (run inside namespaces by the bench).
//   node connrate.js --server PORT                       accepts and closes every connection
//   node connrate.js --client HOST PORT SECONDS CONC     opens connections, CONC at a time, for
//                                                        SECONDS; prints {"connections","seconds","rate","errors"}
// A connection counts when the server's FIN arrives (connect, server accept, close: a full setup
// and teardown through conntrack/NAT).
import { connect, createServer } from 'node:net';
import { performance } from 'node:perf_hooks';

function server(port: number): void {
  const s = createServer((sock) => {
    sock.on('error', () => {});
    sock.end();
  });
  s.listen(port, '0.0.0.0', () => console.log(`listening on ${port}`));
}

async function client(host: string, port: number, seconds: number, conc: number): Promise<void> {
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let connections = 0;
  let errors = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const sock = connect({ host, port });
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        if (ok) connections++;
        else errors++;
        sock.destroy();
        resolve();
      };
      sock.setTimeout(5000, () => finish(false));
      sock.on('end', () => finish(true));
      sock.on('error', () => finish(false));
      sock.resume();
    });
  const worker = async (): Promise<void> => {
    while (performance.now() < end) await one();
  };
  await Promise.all(Array.from({ length: conc }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  process.stdout.write(
    JSON.stringify({ connections, seconds: elapsed, rate: connections / elapsed, errors }) + '\n',
  );
}

const [mode, a, b, c, d] = process.argv.slice(2);
if (mode === '--server') server(Number(a));
else if (mode === '--client') await client(a ?? '', Number(b), Number(c ?? 5), Number(d ?? 8));
else {
  process.stderr.write('usage: connrate.js --server PORT | --client HOST PORT SECONDS CONCURRENCY\n');
  process.exit(2);
}
