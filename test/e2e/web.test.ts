// Issue 7, acceptance 2: the web page in Debian's Chromium (headless, driven by playwright-core; no
// browser download), against `kvmnet serve` in a lab with a real QEMU guest on a kvmnet port. The
// page shows the guest by VM name and address; a forward added in the page works from the LAN;
// pulling the port's cable in the page stops the guest's traffic; a CLI change shows on the page.
// Screenshots go to test-artifacts/web/.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Daemon } from '../lib/daemon.js';
import { bootGuest, ensureGuestImage, type Guest } from '../lib/guest.js';
import { HOST_LAN_IP, Lab, REPO } from '../lib/lab.js';

const ARTIFACTS = join(REPO, 'test-artifacts', 'web');
const MAC = '52:54:00:60:e4:7a';
const IP = '192.168.122.50';

/** Retries a check that waits on the network (ARP, bridge learning) for up to `tries` seconds. */
async function eventually(check: () => Promise<boolean>, tries = 10): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return false;
}

describe('the web page in Chromium', () => {
  let lab: Lab;
  let guest: Guest;
  let daemon: Daemon;
  let browser: Browser;
  let page: Page;
  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

  before(async () => {
    const image = ensureGuestImage();
    await mkdir(ARTIFACTS, { recursive: true });
    lab = await Lab.create('web');
    await lab.kvmnetOk('up');
    const port = await lab.kvmnetJson<{ port: { name: string } }>(
      'port',
      'add',
      'default',
      '--vm',
      'kvm1',
      '--mac',
      MAC,
      '--ip',
      IP,
    );
    await image;
    guest = await bootGuest({ netns: lab.hostNs, tap: port.port.name, mac: MAC, hostname: 'kvm1' });
    assert.equal((await guest.lease()).ip, IP);
    daemon = await Daemon.start(lab);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  });
  after(async () => {
    await browser?.close();
    await daemon?.stop();
    await guest?.kill();
    await lab?.destroy();
  });

  test('the printed address signs in and drops the token from the address bar', async () => {
    await page.goto(daemon.loginUrl);
    assert.equal(page.url(), `${daemon.base}/`);
    const cookies = await page.context().cookies();
    const c = cookies.find((x) => x.name === 'kvmnet_session');
    assert.ok(c, 'session cookie set');
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Strict');
    await page.getByTestId('live').getByText('live', { exact: true }).waitFor();
  });

  test("the topology shows the default network with the guest's VM name and address", async () => {
    const card = page.locator('[data-testid="network-card"][data-network="default"]');
    await card.waitFor();
    // <text> elements (the tooltips' <title> elements hold the same words but are not drawn).
    await card
      .locator('svg text', { hasText: /^kvm1$/ })
      .first()
      .waitFor();
    await card.locator('svg text', { hasText: IP }).first().waitFor();
    await page.locator('tr[data-network="default"]').getByText('active').waitFor();
    await shot('1-topology');
  });

  test('a forward added in the page works from the LAN', async () => {
    const url = `http://${HOST_LAN_IP}:8080/`;
    assert.equal(await lab.fetch(lab.lanNs, url, 2), null, 'nothing forwarded yet');
    const form = page.getByTestId('forward-form');
    await form.locator('[name="network"]').selectOption('default');
    await form.locator('[name="proto"]').selectOption('tcp');
    await form.locator('[name="ports"]').fill('8080');
    await form.locator('[name="target"]').fill('kvm1:80');
    await form.locator('[name="description"]').fill('web from the page');
    await form.locator('button[type="submit"]').click();
    await page.locator('tr[data-forward="default tcp/8080"]').waitFor();
    assert.match((await lab.fetch(lab.lanNs, url, 10)) ?? '', /hello from kvm1/);
    const list = await lab.kvmnetJson<Array<{ id: string; description?: string }>>('forward', 'list');
    assert.deepEqual(
      list.map((f) => [f.id, f.description]),
      [['tcp/8080', 'web from the page']],
    );
    await shot('2-forward-added');
  });

  test('a bad forward in the page shows the error and its hint, and changes nothing', async () => {
    const form = page.getByTestId('forward-form');
    await form.locator('[name="ports"]').fill('8080');
    await form.locator('[name="target"]').fill('kvm1:81');
    await form.locator('button[type="submit"]').click();
    const toast = page.getByTestId('toast');
    await toast.getByText('tcp 8080 overlaps the forward tcp/8080 of "default" (to kvm1:80)').waitFor();
    await toast.getByText('pick other host ports, or remove that forward first').waitFor();
    await shot('2b-error');
    assert.equal((await lab.kvmnetJson<unknown[]>('forward', 'list')).length, 1);
  });

  test("pulling the port's cable in the page stops the guest's traffic; plugging it restores it", async () => {
    const ping = async (): Promise<boolean> =>
      (await lab.exec(lab.hostNs, ['busybox', 'ping', '-c', '1', '-W', '1', IP])).code === 0;
    assert.ok(await eventually(ping), 'reachable before');
    const row = page.locator('tr[data-port="vnet0"]');
    await row.locator('[data-action="link-down"]').click();
    await row.locator('[data-action="link-up"]').waitFor();
    assert.equal(await ping(), false);
    assert.equal(await ping(), false);
    assert.equal((await guest.run('ping -c 1 -W 1 192.168.122.1')).code === 0, false, 'the guest is cut off');
    const ports = await lab.kvmnetJson<Array<{ id: string; link: string }>>('port', 'list');
    assert.equal(ports.find((p) => p.id === 'kvm1/net0')?.link, 'down');
    await shot('3-cable-pulled');
    await row.locator('[data-action="link-up"]').click();
    await row.locator('[data-action="link-down"]').waitFor();
    assert.ok(await eventually(ping), 'reachable again');
  });

  test('a change made with the CLI shows on the page', async () => {
    await lab.kvmnetOk(
      'forward',
      'add',
      'default',
      'udp',
      '5353',
      'kvm1:53',
      '--description',
      'from the CLI',
    );
    await page.locator('tr[data-forward="default udp/5353"]').waitFor({ timeout: 5000 });
    await page.locator('tr[data-forward="default udp/5353"] [data-action="forward-del"]').click();
    await page.locator('tr[data-forward="default udp/5353"]').waitFor({ state: 'detached' });
    assert.deepEqual(
      (await lab.kvmnetJson<Array<{ id: string }>>('forward', 'list')).map((f) => f.id),
      ['tcp/8080'],
    );
    await shot('4-final');
  });
});
