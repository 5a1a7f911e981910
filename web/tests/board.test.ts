/**
 * The Pro board in a real headless Chromium (Debian's, driven by playwright-core)
 * against the real `navaro` binary serving it at /pro: sign in with the keyboard, a
 * walk-in joining through the API shows within 1 s without a reload, "call next" and
 * the ticket's buttons move it, and a SIGKILL and restart of the server shows
 * "reconnecting" and then the same state. Then the README's walk: `navaro demo`, sign
 * in as the demo owner, the demo's queue and agenda.
 *
 * `NAVARO_SCREENSHOT=path.png` saves the demo board (docs/pro-board.png is one).
 */
import { existsSync } from 'node:fs';

import { type Browser, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { createNavaroClient, ok } from '@navaro/client';
import {
  NavaroServer,
  type Shop,
  type TimeZoneName,
  eventually,
  register,
  setupShop,
} from '../../clients/typescript/test/harness';

/** Debian's chromium (`apt-get install chromium`; `.ci/run` installs it). */
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
});

afterAll(async () => {
  await browser?.close();
});

async function openBoard(server: NavaroServer, email: string, password: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // The browser logs every 4xx it fetched (the tests cause some on purpose) and the
    // feed's socket failing while the server is down; anything else is a problem.
    const text = message.text();
    if (message.type() === 'error' && !/Failed to load resource|WebSocket/.test(text)) {
      problems.push(`console: ${text}`);
    }
  });
  (page as Page & { problems?: string[] }).problems = problems;
  await page.goto(`${server.baseUrl}/pro`);
  // Keyboard only: the email field has focus; Tab to the password; Enter submits.
  await page.waitForSelector('#email:focus');
  await page.keyboard.type(email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(password);
  await page.keyboard.press('Enter');
  await connection(page, 'live');
  return page;
}

async function connection(page: Page, status: string, timeout = 20_000): Promise<void> {
  await page.waitForSelector(`[data-testid=connection][data-status=${status}]`, { timeout });
}

function waiting(page: Page, number: number) {
  return page.locator(`[data-testid=waiting-ticket][data-number="${number}"]`);
}

function serving(page: Page, number: number) {
  return page.locator(`[data-testid=serving-ticket][data-number="${number}"]`);
}

async function feedback(page: Page, text: string): Promise<void> {
  await page.waitForFunction((t) => document.querySelector('.feedback')?.textContent?.includes(t), text, {
    timeout: 5_000,
  });
}

/** The queue as the page shows it, for comparing before and after a restart. */
async function queueText(page: Page): Promise<string> {
  return (await page.locator('section.queue ol, section.queue ul, section.queue .counts').allInnerTexts()).join('\n');
}

/** Press Tab from the top of the page until `name` has focus (keyboard reachability). */
async function tabTo(page: Page, name: string, limit = 40): Promise<void> {
  await page.locator('body').focus();
  for (let n = 0; n < limit; n += 1) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
    if (focused === name) return;
  }
  throw new Error(`${name} was not reached with ${limit} presses of Tab`);
}

/** A fixed-offset zone (`Etc/GMT-3` is UTC+3) where it is about midday now. */
function middayZone(): TimeZoneName {
  const offset = 12 - new Date().getUTCHours(); // -11 ..= 12
  // Etc/GMT-12 to Etc/GMT+12 are all in the server's list of zones.
  return (offset === 0 ? 'Etc/GMT' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`) as TimeZoneName;
}

describe('the Pro board in Chromium', () => {
  let server: NavaroServer;
  let shop: Shop;
  let page: Page;

  beforeAll(async () => {
    server = await NavaroServer.start();
    shop = await setupShop(server, middayZone());
    page = await openBoard(server, shop.owner.email, 'correct horse battery');
  });

  afterAll(async () => {
    await page?.close();
    await server?.dispose();
  });

  test('a customer who joins through the API shows on the board within 1 s, without a reload', async () => {
    await page.evaluate(() => {
      (window as unknown as { marker: string }).marker = 'same page';
    });
    const customer = await register(server, 'Marina');
    const joined = await ok(
      server.client(customer.token).POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId },
      }),
    );
    const answered = Date.now();
    await waiting(page, joined.number).waitFor({ timeout: 1_000 });
    const shownAfterMs = Date.now() - answered;
    expect(shownAfterMs).toBeLessThan(1_000);
    const row = await waiting(page, joined.number).innerText();
    expect(row).toContain(`#${joined.number}`);
    expect(row).toContain('Corte');
    expect(await page.locator('[data-testid=waiting-count]').innerText()).toBe('1');
    expect(await page.evaluate(() => (window as unknown as { marker?: string }).marker)).toBe('same page');
  });

  test('call next (with the keyboard), start and finish move the ticket', async () => {
    const walkIn = await ok(
      server.client(shop.owner.token).POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId, name: 'Paulo' },
      }),
    );
    await waiting(page, walkIn.number).waitFor();
    const first = await page.locator('[data-testid=waiting-ticket]').first().getAttribute('data-number');
    await tabTo(page, 'Call next · Carlos');
    await page.keyboard.press('Enter');
    await serving(page, Number(first)).waitFor({ timeout: 5_000 });
    await waiting(page, Number(first)).waitFor({ state: 'detached' });
    expect(await serving(page, Number(first)).innerText()).toContain('Called');
    expect(await page.locator('[data-testid=waiting-ticket]').count()).toBe(1);
    expect(await page.locator('.feedback').innerText()).toContain(`Called #${first}`);

    await page.getByRole('button', { name: `Start #${first}` }).click();
    await page.waitForFunction((n) => document.querySelector(`[data-testid=serving-ticket][data-number="${n}"]`)?.textContent?.includes('In the chair'), first);
    await page.getByRole('button', { name: `Finish #${first}` }).click();
    await serving(page, Number(first)).waitFor({ state: 'detached' });
    expect(await page.locator('section.queue .counts').innerText()).toContain('1 served today');

    // Carlos calls Paulo; while Paulo is called, Carlos cannot call another (the
    // server's 409 shows as it is); once Paulo is a no-show, nobody waits (404).
    await page.getByRole('button', { name: 'Call next · Carlos' }).click();
    await serving(page, walkIn.number).waitFor();
    await page.getByRole('button', { name: 'Call next · Carlos' }).click();
    await feedback(page, 'already serving');
    await page.getByRole('button', { name: `No-show #${walkIn.number}` }).click();
    await serving(page, walkIn.number).waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Call next · Carlos' }).click();
    await feedback(page, 'Nobody is waiting for Carlos.');
  });

  test('a booking made through the API appears on the agenda', async () => {
    const customer = await register(server, 'Beatriz');
    // The shop's zone has it around midday now, so an hour from now is still today.
    const start = new Date(Math.ceil((Date.now() + 60 * 60_000) / (15 * 60_000)) * 15 * 60_000);
    const before = Number(await page.locator('[data-testid=booking-count]').innerText());
    await ok(
      server.client(customer.token).POST('/v1/establishments/{id}/bookings', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId, start: start.toISOString() },
      }),
    );
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid=booking-count]')?.textContent) === n,
      before + 1,
      { timeout: 2_000 },
    );
    expect(await page.locator('[data-testid=booking]').count()).toBe(before + 1);
  });

  test('killing and restarting the server shows "reconnecting", then the same state', async () => {
    const tickets = await Promise.all(
      ['Ana', 'Bruno'].map((name) =>
        ok(
          server.client(shop.owner.token).POST('/v1/establishments/{id}/queue', {
            params: { path: { id: shop.id } },
            body: { service_id: shop.serviceId, name },
          }),
        ),
      ),
    );
    for (const t of tickets) await waiting(page, t.number).waitFor();
    const before = await queueText(page);

    const restarting = server.restart();
    await connection(page, 'reconnecting', 10_000);
    expect(await page.locator('[data-testid=connection]').innerText()).toContain('Reconnecting');
    server = await restarting;
    await connection(page, 'live', 30_000);
    await eventually('the same queue after the restart', async () => (await queueText(page)) === before, 10_000);

    // And live again: a join on the new process shows.
    const after = await ok(
      server.client(shop.owner.token).POST('/v1/establishments/{id}/queue', {
        params: { path: { id: shop.id } },
        body: { service_id: shop.serviceId, name: 'Depois' },
      }),
    );
    await waiting(page, after.number).waitFor({ timeout: 2_000 });
    expect((page as Page & { problems?: string[] }).problems).toEqual([]);
  });
});

describe("the README's walk", () => {
  test('navaro demo, /pro, the demo owner: the queue and the agenda are there', async () => {
    const server = await NavaroServer.start({ command: 'demo' });
    try {
      const page = await openBoard(server, 'owner@demo.navaro.dev', 'navaro-demo');
      await page.locator('[data-testid=waiting-ticket]').first().waitFor();
      const names = await page.locator('[data-testid=waiting-ticket] .who strong').allInnerTexts();
      expect(names).toEqual(['Rafael', 'Sofia']);
      for (const barber of ['Carlos', 'Marcos', 'Júlia']) {
        expect(await page.getByRole('button', { name: `Call next · ${barber}` }).count()).toBe(1);
      }
      expect(await page.locator('.column-head').allInnerTexts()).toEqual(['Carlos', 'Marcos', 'Júlia']);
      // The demo's bookings for today (those still ahead when it loaded) are on the agenda.
      const today = await ok(
        createNavaroClient({ baseUrl: server.baseUrl, token: await demoToken(server) }).GET(
          '/v1/establishments/{id}/bookings',
          { params: { path: { id: await demoId(server) }, query: { date: saoPauloToday() } } },
        ),
      );
      const booked = today.bookings.filter((b) => b.status !== 'cancelled').length;
      expect(await page.locator('[data-testid=booking]').count()).toBe(booked);
      await page.getByRole('button', { name: 'Call next · Carlos' }).click();
      await serving(page, 1).waitFor();
      if (process.env.NAVARO_SCREENSHOT) {
        await page.screenshot({ path: process.env.NAVARO_SCREENSHOT, fullPage: false });
      }
      await page.close();
    } finally {
      await server.dispose();
    }
  });
});

async function demoToken(server: NavaroServer): Promise<string> {
  const login = await ok(
    server.client().POST('/v1/auth/login', { body: { email: 'owner@demo.navaro.dev', password: 'navaro-demo' } }),
  );
  return login.token;
}

async function demoId(server: NavaroServer): Promise<string> {
  const me = await ok(createNavaroClient({ baseUrl: server.baseUrl, token: await demoToken(server) }).GET('/v1/me'));
  const id = me.memberships[0]?.establishment_id;
  if (!id) throw new Error('the demo owner has no establishment');
  return id;
}

function saoPauloToday(): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'America/Sao_Paulo' }).format(new Date());
}
