/**
 * The explorer end to end: a real `proofkv serve` with tokens, a rewriting proxy in front of it
 * (the page is loaded through the proxy, so every answer it verifies can be tampered with), and
 * Debian's Chromium driven by playwright-core. Each page is clicked through, what is on screen is
 * asserted, axe-core checks every page for WCAG 2 A/AA problems (contrast, labels, keyboard), and
 * screenshots go to `test-artifacts/explorer/` (gitignored). Fails when Chromium is missing
 * (`.ci/run` installs it).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, ProofKVClient, toBase64Url, verifyProofBundle } from '../../client-sdk/index.js';
import { fromHex, toHex } from '../../proofs/bytes.js';
import { TIMELINE_WINDOW as WINDOW } from '../../explorer/src/limits.js';
import { RewritingProxy, runCli, startServer, tmpDir, type ServerProc } from '../client/helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '../..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts/explorer');
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TOKENS = 'reader-token:read,admin-token:admin';
const BINARY_KEY = new Uint8Array([0x00, 0xff, 0x0a, 0x41]);
/** The page's globals inside \`page.evaluate\` callbacks (this file is type-checked without the DOM library). */
type Dom = { document: any; getComputedStyle(el: unknown): { color: string } };
const enc = (s: string) => toBase64Url(new TextEncoder().encode(s));

let node: ServerProc;
let proxy: RewritingProxy;
let admin: ProofKVClient;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let publicKeyHex: string;
/** Console errors and page errors of the main page (CSP violations show up here). */
const problems: string[] = [];
/** Answers of 400 and above the main page got (status and path). */
const failedLoads = new Set<string>();

async function shot(p: Page, name: string): Promise<void> {
  await p.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** axe-core's WCAG 2 A/AA violations on the current page (id and the first offending nodes). */
async function axe(p: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await p.evaluate(AXE_SOURCE);
  return p.evaluate(async () => {
    const a = (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown }> }> }> } }).axe;
    const r = await a.run((globalThis as unknown as Dom).document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => `${v.id}: ${JSON.stringify(v.nodes.slice(0, 3).map((n) => n.target))}`);
  });
}

/** Loads the page afresh at `hash` (a goto that changes only the fragment would not reload it). */
async function open(hash: string): Promise<void> {
  await page.goto('about:blank');
  await page.goto(`${proxy.url}/ui/${hash}`);
}

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)`).toBe(true);
  mkdirSync(ARTIFACTS, { recursive: true });
  node = await startServer({ dataDir: path.join(tmpDir('proofkv-explorer-'), 'data'), args: ['--checkpoint-interval', '0'], env: { PROOFKV_TOKENS: TOKENS } });
  admin = new ProofKVClient({ endpoints: [node.url], token: 'admin-token', trust: { tofu: true }, onWarning: () => {} });
  publicKeyHex = toHex(fromBase64Url((await admin.status()).publicKey as string));
  await admin.put('ex/config', JSON.stringify({ replicas: 1, region: 'eu-west', features: ['audit'] }));
  await admin.put('ex/config', JSON.stringify({ replicas: 3, region: 'eu-west', features: ['audit'] }));
  await admin.put('ex/config', JSON.stringify({ replicas: 3, region: 'eu-west', features: ['audit', 'export'] }));
  await admin.delete('ex/config');
  await admin.put('ex/greeting', 'hello, auditor');
  await admin.put(BINARY_KEY, new Uint8Array([0, 1, 2, 0xfe, 0xff]));
  // More versions than one window of the timeline.
  await admin.batch(Array.from({ length: WINDOW + 5 }, (_, i) => ({ op: 'put' as const, key: 'ex/counter', value: String(i + 1) })));
  await admin.createCheckpoint();
  proxy = await new RewritingProxy(node.url).start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext({ viewport: { width: 1100, height: 760 }, acceptDownloads: true });
  // Every Content-Security-Policy violation in any page of the context, collected in the page.
  await context.addInitScript(() => {
    const w = globalThis as unknown as { addEventListener(t: string, f: (e: { violatedDirective: string; blockedURI: string }) => void): void; cspViolations: string[] };
    w.cspViolations = [];
    w.addEventListener('securitypolicyviolation', (e) => w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`));
  page.on('response', (r) => {
    if (r.status() >= 400) failedLoads.add(`${r.status()} ${new URL(r.url()).pathname}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || /Content Security Policy/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
});

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await node?.stop();
});

describe('explorer', () => {
  it('is served at /ui with content types, a strict CSP and no inline script', async () => {
    const html = await fetch(`${node.url}/ui/`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = html.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
    expect(html.headers.get('x-content-type-options')).toBe('nosniff');
    const text = await html.text();
    expect(text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(text).not.toMatch(/https?:\/\//);
    const js = await fetch(`${node.url}/ui/explorer.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await js.text()).length).toBeGreaterThan(50_000);
    expect((await fetch(`${node.url}/ui/explorer.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await fetch(`${node.url}/ui`)).status).toBe(200);
    const head = await fetch(`${node.url}/ui/explorer.css`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(1000);
    // Only the three files: no path walks out of the explorer.
    expect((await fetch(`${node.url}/ui/%2e%2e%2fpackage.json`)).status).toBe(404);
    expect((await fetch(`${node.url}/ui/other.js`)).status).toBe(404);
    expect((await fetch(`${node.url}/ui/`, { method: 'POST' })).status).toBe(405);
  });

  it('asks what to trust first; a wrong token is shown as the node refusing, in red', async () => {
    await open('');
    await page.waitForSelector('#trust-form');
    expect(await axe(page)).toEqual([]);
    // The checker is not vacuous: a planted low-contrast line is reported.
    await page.evaluate(() => {
      const p = (globalThis as unknown as Dom).document.createElement('p');
      p.id = 'planted';
      p.textContent = 'low contrast';
      p.style.color = '#d0d0d0';
      (globalThis as unknown as Dom).document.querySelector('main')!.append(p);
    });
    expect((await axe(page)).some((v) => v.startsWith('color-contrast'))).toBe(true);
    await page.evaluate(() => (globalThis as unknown as Dom).document.getElementById('planted')!.remove());
    await page.fill('#keys', publicKeyHex);
    await page.fill('#token', 'not-a-token');
    await page.click('#save-trust');
    const fail = page.locator('.failure[data-code="UNAUTHENTICATED"]');
    await fail.waitFor();
    expect(await fail.textContent()).toContain('UNAUTHENTICATED');
    expect(await page.locator('#scan-results table').count()).toBe(0);
    await open('#/trust');
    await page.fill('#token', 'reader-token');
    // The key pasted in base64url is the same key.
    await page.fill('#keys', toBase64Url(fromHex(publicKeyHex)));
    await page.click('#save-trust');
    await page.waitForSelector('table.keys');
    // The token lives in this tab's sessionStorage only; localStorage holds keys and state, no token.
    const stored = await page.evaluate(() => {
      const w = globalThis as unknown as { sessionStorage: { getItem(k: string): string | null }; localStorage: { length: number; key(i: number): string | null; getItem(k: string): string | null } };
      const local: string[] = [];
      for (let i = 0; i < w.localStorage.length; i++) local.push(w.localStorage.getItem(w.localStorage.key(i)!) ?? '');
      return { session: w.sessionStorage.getItem('proofkv-explorer-token'), local };
    });
    expect(stored.session).toBe('reader-token');
    expect(stored.local.join('\n')).not.toContain('reader-token');
    expect(stored.local.join('\n')).toContain(publicKeyHex);
  });

  it('keys: the list is proven by scan proofs, binary keys show as hex, and the keyboard opens a key', async () => {
    await open('#/keys');
    await page.waitForSelector('table.keys tbody tr');
    expect(await page.locator('#scan-notice').textContent()).toContain('verified in your browser by a scan proof');
    expect(await page.locator('table.keys tbody tr td:nth-child(4) .badge-verified').count()).toBe(await page.locator('table.keys tbody tr').count());
    const keys = await page.locator('table.keys tbody tr td:first-child').allTextContents();
    expect(keys).toContain('ex/greeting');
    expect(keys).toContain(`hex ${toHex(BINARY_KEY)}`);
    expect(keys).not.toContain('ex/config'); // deleted: the scan lists live keys
    // A prefix typed as hex finds the binary key only.
    await page.fill('#prefix', '00ff');
    await page.selectOption('#prefix-enc', 'hex');
    await page.click('form[role=search] button');
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('table.keys tbody tr').length === 1);
    expect(await page.locator('table.keys tbody td:first-child').allTextContents()).toEqual([`hex ${toHex(BINARY_KEY)}`]);
    // A prefix that is not hex is refused on the page, before any request.
    await page.fill('#prefix', 'zz');
    await page.click('form[role=search] button');
    await page.locator('.failure[data-code="INVALID_INPUT"]').waitFor();
    await page.selectOption('#prefix-enc', 'utf8');
    await page.fill('#prefix', 'ex/g');
    await page.click('form[role=search] button');
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('table.keys tbody tr').length === 1);
    await shot(page, 'keys');
    expect(await axe(page)).toEqual([]);
    // Keyboard only: Tab to the first key link, Enter opens it.
    await page.locator('body').focus();
    let focused = '';
    for (let i = 0; i < 30 && focused !== 'key-link'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => (globalThis as unknown as Dom).document.activeElement?.className ?? '');
    }
    expect(focused).toBe('key-link');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#timeline');
    expect(page.url()).toContain(`#/key/${enc('ex/greeting')}`);
  });

  it('a key: the timeline verified per version, JSON and hex views, and a diff', async () => {
    await open(`#/key/${enc('ex/config')}`);
    await page.waitForSelector('#timeline');
    expect(await page.locator('#history-status').textContent()).toContain('4 versions, none omitted and none added');
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('#timeline .get-status .badge-verified').length === 4);
    const ops = await page.locator('#timeline tbody tr td:nth-child(2)').allTextContents();
    expect(ops).toEqual(['put', 'put', 'put', 'delete']);
    // The newest put is shown as JSON, pretty-printed.
    expect(await page.locator('#viewer-title').textContent()).toBe('Value of version 3');
    expect(await page.locator('#value-out').textContent()).toContain('"features": [\n    "audit",\n    "export"');
    await page.click('button.view-mode:has-text("Hex")');
    expect(await page.locator('#value-out').textContent()).toMatch(/^00000000 {2}7b 22 72 65/);
    await page.click('button.view-mode:has-text("JSON")');
    await page.selectOption('#diff-a', '0');
    await page.selectOption('#diff-b', '1');
    await page.click('#diff-run');
    expect(await page.locator('#diff-summary').textContent()).toBe('2 lines differ between v1 and v2.');
    // JSON values are compared pretty-printed: only the changed field differs.
    expect(await page.locator('pre.diff .del').allTextContents()).toEqual(['-   "replicas": 1,\n']);
    expect(await page.locator('pre.diff .add').allTextContents()).toEqual(['+   "replicas": 3,\n']);
    expect(await page.locator('pre.diff span').count()).toBe(8); // 7 lines of each, one changed
    await shot(page, 'key-timeline');
    // The README's picture (docs/explorer-timeline.png is a copy): the top of the page.
    await page.screenshot({ path: path.join(ARTIFACTS, 'key-timeline-top.png'), fullPage: true, clip: { x: 0, y: 0, width: 1100, height: 600 } });
    expect(await axe(page)).toEqual([]);
  });

  it('a key with more versions than a window: the newest window, then the older versions on request', async () => {
    await open(`#/key/${enc('ex/counter')}`);
    await page.waitForSelector('#timeline');
    expect(await page.locator('#history-status').textContent()).toContain(`Versions 6 to ${WINDOW + 5}: ${WINDOW} versions, none omitted and none added`);
    expect(await page.locator('#timeline tbody tr').count()).toBe(WINDOW);
    await page.click('#load-older');
    await page.waitForFunction((n) => (globalThis as unknown as Dom).document.querySelectorAll('#timeline tbody tr').length === n, WINDOW + 5);
    expect(await page.locator('#history-status').textContent()).toContain(`History proven complete ${WINDOW + 5} versions`);
    expect(await page.locator('#load-older').count()).toBe(0);
    // Versions outside the newest of each window have their get proof on request.
    await page.click('#timeline tr[data-version="40"] .get-status button');
    await page.locator('#timeline tr[data-version="40"] .get-status .badge-verified').waitFor();
  });

  it('a key that does not exist is proven absent, and the proof view draws the absence', async () => {
    await open('#/keys');
    await page.fill('#open-key', 'ex/never-written');
    await page.click('button:has-text("Open and verify")');
    expect(await page.locator('#history-status').textContent()).toContain('Proven absent');
    await open(`#/proof/${enc('ex/greeting')}/0`);
    await page.waitForSelector('#proof-svg');
    expect(await page.locator('#proof-status').textContent()).toContain('The key has no entry at or below version 0');
    expect(await page.locator('#proof-svg g.step').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-kind')))).toEqual(['entry', 'table', 'masterRoot', 'checkpoint', 'head', 'signer']);
  });

  it('a binary key and value are shown as hex', async () => {
    await open(`#/key/${toBase64Url(BINARY_KEY)}`);
    await page.waitForSelector('#timeline .get-status .badge-verified');
    expect(await page.locator('h1').textContent()).toBe(`Key hex ${toHex(BINARY_KEY)}`);
    expect(await page.locator('#timeline tbody td.preview').textContent()).toBe('hex 000102feff');
    expect(await page.locator('button.view-mode:has-text("Text")').isDisabled()).toBe(true);
    expect(await page.locator('#value-out').textContent()).toContain('00 01 02 fe ff');
  });

  it('proof view: the path drawn from the proof, and a bundle that proofkv verify accepts offline', async () => {
    await open(`#/key/${enc('ex/config')}`);
    await page.click('a:has-text("Proof v2")');
    await page.waitForSelector('#proof-svg');
    expect(await page.locator('#proof-status').textContent()).toContain('Version 2 (put) is the newest entry of this key at or below version 2');
    expect(await page.locator('#proof-svg g.step').evaluateAll((gs) => gs.map((g) => g.getAttribute('data-kind')))).toEqual([
      'entry',
      'block',
      'table',
      'masterRoot',
      'checkpoint',
      'head',
      'signer',
    ]);
    expect(await page.locator('#path-list').textContent()).toContain(publicKeyHex);
    await shot(page, 'proof');
    expect(await axe(page)).toEqual([]);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const file = path.join(tmpDir('proofkv-explorer-dl-'), 'bundle.json');
    await download.saveAs(file);
    const bundle = JSON.parse(readFileSync(file, 'utf8'));
    expect(bundle.edges).toBe(true);
    const facts = verifyProofBundle(bundle, { publicKeys: [fromHex(publicKeyHex)], quorum: 1 });
    expect(facts.type === 'get' && facts.entry?.version).toBe(2);
    expect(facts.edges).toBe(true);
    const cli = await runCli(['verify', file, '--public-key', publicKeyHex, '--require-edges']);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain('edge proofs checked');
  });

  it('checkpoints: the log proven against the head, and consistency between two heads this browser verified', async () => {
    await open('#/checkpoints');
    await page.waitForSelector('#latest-status');
    await admin.put('ex/greeting', 'hello again');
    await admin.createCheckpoint();
    await page.click('#refresh');
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('#seen-heads tbody tr').length >= 2 && (globalThis as unknown as Dom).document.querySelector('#latest-status') !== null);
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelectorAll('#checkpoint-log tbody tr').length >= 2);
    const statuses = await page.locator('#checkpoint-log tbody td:last-child').allTextContents();
    expect(statuses.length).toBeGreaterThanOrEqual(2);
    for (const s of statuses) expect(s).toMatch(/^✓ /);
    expect(statuses[1]).toContain('linked to');
    await page.selectOption('#cons-from', '0');
    await page.click('#cons-run');
    expect(await page.locator('#consistency-status').textContent()).toContain('Consistent');
    await shot(page, 'checkpoints');
    expect(await axe(page)).toEqual([]);
  });

  it('checkpoints: the log a page at a time, linked across pages, while the log grows under the page', async () => {
    for (let i = 0; i < 22; i++) {
      await admin.put('ex/tick', String(i));
      await admin.createCheckpoint();
    }
    // The node's log grows right after it answers the latest checkpoint: the rows' inclusion
    // paths then lead to a newer head, which the page verifies before using it.
    let grown = 0;
    proxy.hooks.response = async (m, p) => {
      if (m === 'GET' && p.startsWith('/v1/checkpoints/latest') && grown === 0) {
        await admin.put('ex/tick', 'grow');
        grown = (await admin.createCheckpoint()).head.size;
      }
    };
    try {
      await open('#/checkpoints');
      await page.waitForSelector('#older');
    } finally {
      proxy.hooks.response = undefined;
    }
    expect(grown).toBeGreaterThan(22);
    const first = await page.locator('#checkpoint-log tbody td:last-child').allTextContents();
    expect(first).toHaveLength(20);
    expect(first[0]).toBe('✓ last leaf of the signed head');
    for (const s of first.slice(1)) expect(s).toMatch(new RegExp(`^✓ leaf \\d+ of the head of size ${grown}, linked to \\d+$`));
    await page.click('#older');
    await page.waitForSelector('#checkpoint-log tbody tr[data-index="0"]');
    const all = await page.locator('#checkpoint-log tbody td:last-child').allTextContents();
    expect(all).toHaveLength(grown - 1); // from the checkpoint the page verified first down to 0
    for (const s of all) expect(s).toMatch(/^✓ /);
    expect(all[20]).toBe(`✓ leaf ${grown - 22} of the head of size ${grown}, linked to ${grown - 21}`); // the first row of the second page
  });

  it('node: status and health marked unverified, the last certified checkpoint verified', async () => {
    await open('#/node');
    await page.waitForSelector('#certified');
    await page.waitForSelector('#status-table');
    expect(await page.locator('#health').textContent()).toContain('healthy');
    expect(await page.locator('#ready').textContent()).toBe('ready (GET /readyz)');
    const status = await page.locator('#status-table').textContent();
    expect(status).toContain('leader');
    expect(status).toContain('one of your trusted keys');
    expect(await page.locator('#certified').textContent()).toMatch(/^✓ Checkpoint \d+/);
    // The trusted state is the SDK's, in localStorage (BrowserStateStore), at the verified head.
    const state = await page.evaluate(() => JSON.parse((globalThis as unknown as { localStorage: { getItem(k: string): string | null } }).localStorage.getItem('proofkv-explorer-trust') ?? 'null'));
    expect(state.format).toBe('proofkv-trust-v1');
    const states = Object.values(state.states) as Array<{ publicKeys: string[]; quorum: number; head: { size: number } }>;
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject({ publicKeys: [publicKeyHex], quorum: 1 });
    expect(states[0].head.size).toBe(Number(/log size (\d+)/.exec((await page.locator('#certified').textContent()) ?? '')?.[1]));
    await shot(page, 'node');
    expect(await axe(page)).toEqual([]);
  });

  it('a tampering proxy: each failure is shown in red with its reason, and nothing forged is shown', async () => {
    const red = async (code: string) => {
      const box = page.locator(`.failure[data-code="${code}"]`).first();
      await box.waitFor();
      expect(await box.locator('.reason').textContent()).toBe(code);
      expect(await box.evaluate((el) => (globalThis as unknown as Dom).getComputedStyle(el).color)).toBe('rgb(165, 14, 14)');
    };
    try {
      // A forged value in the history page: the proof disagrees.
      proxy.hooks.response = (_m, p, res) => {
        const b = res.body as { entries?: Array<{ value: string; valueUtf8?: string; kind: string }> };
        if (p.includes('/history') && Array.isArray(b?.entries) && b.entries.length) {
          const e = b.entries[b.entries.length - 1];
          e.value = enc('forged value');
          e.valueUtf8 = 'forged value';
        }
      };
      await open(`#/key/${enc('ex/greeting')}`);
      await red('VALUE_MISMATCH');
      expect(await page.locator('#timeline').count()).toBe(0);
      expect(await page.textContent('body')).not.toContain('forged value');
      await shot(page, 'tamper-history');
      expect(await axe(page)).toEqual([]);

      // A key dropped from a scan page: the scan proof proves it is there.
      proxy.hooks.response = (_m, p, res) => {
        const b = res.body as { items?: Array<{ key: string }>; proof?: string };
        if (p.startsWith('/v1/kv?') && b?.proof && Array.isArray(b.items) && b.items.length > 1) b.items.splice(0, 1);
      };
      await open('#/keys');
      await red('RESPONSE_MISMATCH');
      expect(await page.locator('table.keys').count()).toBe(0);

      // A forged signature on the latest checkpoint.
      proxy.hooks.response = (_m, p, res) => {
        const b = res.body as { signatures?: Array<{ signature: string }> };
        if (p.startsWith('/v1/checkpoints/latest') && b?.signatures?.length) {
          const sig = fromBase64Url(b.signatures[0].signature);
          sig[0] ^= 1;
          b.signatures[0].signature = toBase64Url(sig);
        }
      };
      await open('#/node');
      await red('BAD_SIGNATURE');
      expect(await page.locator('#certified').count()).toBe(0);

      // A forged proof for the proof view: the server's entry claims another version.
      proxy.hooks.response = (_m, p, res) => {
        const b = res.body as { entry?: { version: number } };
        if (p.includes('/proof') && b?.entry) b.entry.version += 1;
      };
      await open(`#/proof/${enc('ex/greeting')}`);
      await red('RESPONSE_MISMATCH');
      expect(await page.locator('#proof-svg').count()).toBe(0);

      // A forged consistency proof between two verified heads.
      proxy.hooks.response = undefined;
      await open('#/checkpoints');
      await page.waitForSelector('#cons-run');
      proxy.hooks.response = (_m, p, res) => {
        const b = res.body as { proof?: string[] };
        if (p.startsWith('/v1/checkpoints/consistency') && b?.proof?.length) {
          const h = fromBase64Url(b.proof[0]);
          h[0] ^= 1;
          b.proof[0] = toBase64Url(h);
        }
      };
      await page.selectOption('#cons-from', '0');
      await page.click('#cons-run');
      await red('FORK');
      expect(await page.locator('#consistency-status').count()).toBe(0);
      await shot(page, 'tamper-consistency');
    } finally {
      proxy.hooks.response = undefined;
    }
  });

  it('trust on first use: a visible warning that names the pinned key', async () => {
    const fresh = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    try {
      const p = await fresh.newPage();
      await p.goto(`${proxy.url}/ui/#/trust`);
      await p.fill('#token', 'reader-token');
      await p.check('#tofu');
      await p.click('#save-trust');
      await p.waitForSelector('#tofu-warning');
      expect(await p.locator('#tofu-warning').textContent()).toContain('none yet');
      await p.goto(`${proxy.url}/ui/#/node`);
      await p.waitForSelector('#certified');
      await p.waitForFunction((k) => (globalThis as unknown as Dom).document.querySelector('#tofu-warning')?.textContent?.includes(k) === true, publicKeyHex);
      // The status compares the node's key with the key just pinned.
      await p.waitForSelector('#status-table');
      expect(await p.locator('#status-table').textContent()).toContain(`${publicKeyHex} — one of your trusted keys`);
      await shot(p, 'tofu');
      expect(await axe(p)).toEqual([]);
    } finally {
      await fresh.close();
    }
  });

  it('runs under its Content-Security-Policy without violations or script errors', async () => {
    // Every page the tests opened ran clean; the only failed load of a page was the wrong token's
    // scan (the console's "Failed to load resource" lines also cover the browser's favicon probe).
    expect(problems.filter((x) => !/Failed to load resource/.test(x))).toEqual([]);
    expect([...failedLoads]).toEqual(['401 /v1/kv']);
    // The policy is enforced: an inline script planted in the page does not run, and is reported.
    await open('#/node');
    await page.waitForSelector('#certified');
    const ran = await page.evaluate(() => {
      const w = globalThis as unknown as Dom & { planted?: boolean; cspViolations: string[] };
      const sc = w.document.createElement('script');
      sc.textContent = 'window.planted = true';
      w.document.body.append(sc);
      return w.planted === true;
    });
    expect(ran).toBe(false);
    await page.waitForFunction(() => (globalThis as unknown as { cspViolations: string[] }).cspViolations.length > 0);
    // The one other report is cbor-x probing \`new Function('')\` once as it loads: refused (no
    // 'unsafe-eval'), it decodes without generated code (docs/explorer.md).
    expect(await page.evaluate(() => (globalThis as unknown as { cspViolations: string[] }).cspViolations)).toEqual(['script-src eval', 'script-src-elem inline']);
  });
});
