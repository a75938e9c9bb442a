/**
 * Browser: bundles `client-sdk/index.ts` with esbuild for the browser, serves it with a tiny page
 * from a node:http server that also proxies `/v1/*` to a real node (same origin, no CORS), and runs
 * `verifiedGet` and `verifiedHistory` inside Debian's Chromium through playwright-core. Fails when
 * Chromium is missing (`.ci/run` installs it).
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, ProofKVClient } from '../../client-sdk/index.js';
import { toHex } from '../../proofs/bytes.js';
import { startServer, type ServerProc } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '../..');

let node: ServerProc;
let web: Server;
let origin: string;
let browser: Browser;
let bundle: string;
let publicKeyHex: string;

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>proofkv</title></head>
<body><script type="module">import * as ProofKV from '/bundle.js'; window.ProofKV = ProofKV; window.ready = true;</script></body></html>`;

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)`).toBe(true);
  const out = await build({
    entryPoints: [path.join(ROOT, 'client-sdk/index.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  bundle = out.outputFiles[0].text;

  node = await startServer({ args: ['--checkpoint-interval', '0'] });
  const c = new ProofKVClient({ endpoints: [node.url], trust: { tofu: true }, onWarning: () => {} });
  publicKeyHex = toHex(fromBase64Url((await c.status()).publicKey as string));
  await c.put('browser/greeting', 'hello from node');
  for (let i = 1; i <= 4; i++) await c.put('browser/hist', `h${i}`);
  await c.delete('browser/hist');
  await c.createCheckpoint();

  web = createServer(async (req, res) => {
    const url = req.url ?? '/';
    if (url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    } else if (url === '/bundle.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle);
    } else if (url.startsWith('/v1/')) {
      const chunks: Buffer[] = [];
      for await (const ch of req) chunks.push(ch as Buffer);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers[k] = v;
      const up = await fetch(node.url + url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
      const body = Buffer.from(await up.arrayBuffer());
      res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream', 'content-length': String(body.length) }).end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  web?.closeAllConnections();
  await new Promise<void>((resolve) => (web ? web.close(() => resolve()) : resolve()));
  await node?.stop();
});

describe('SDK in Chromium', () => {
  it('bundles with no configuration and no node: imports', () => {
    expect(bundle).not.toMatch(/from\s*["']node:/);
    expect(bundle).not.toMatch(/import\(\s*["']node:/);
    expect(bundle.length).toBeGreaterThan(10_000);
  });

  it('runs verifiedGet and verifiedHistory in the page, with trusted state in localStorage', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(origin + '/');
    await page.waitForFunction(() => (globalThis as unknown as { ready?: boolean }).ready === true);
    const result = await page.evaluate(async (keyHex: string) => {
      type Sdk = typeof import('../../client-sdk/index.js');
      const w = globalThis as unknown as { ProofKV: Sdk; location: { origin: string }; localStorage: { getItem(k: string): string | null } };
      const P = w.ProofKV;
      const hex = (h: string) => new Uint8Array(h.match(/../g)!.map((b) => parseInt(b, 16)));
      const client = new P.ProofKVClient({
        endpoints: [w.location.origin],
        trust: { publicKeys: [hex(keyHex)], quorum: 1 },
        stateStore: new P.BrowserStateStore('proofkv-trust'),
      });
      const g = await client.verifiedGet('browser/greeting');
      const h = await client.verifiedHistory('browser/hist');
      // A proven absence: no version at or below 0.
      const none = await client.verifiedGet('browser/greeting', { version: 0 });
      const absent = none.entry === undefined ? 'absent at version 0' : 'has an entry';
      return {
        value: new TextDecoder().decode(g.value),
        version: g.version,
        checkpoint: g.checkpoint.index,
        history: h.entries.map((e) => [e.version, e.kind, new TextDecoder().decode(e.value)]),
        stored: JSON.parse(w.localStorage.getItem('proofkv-trust') ?? 'null'),
        absent,
        isBrowser: typeof (globalThis as { process?: unknown }).process === 'undefined',
      };
    }, publicKeyHex);
    expect(errors).toEqual([]);
    expect(result.isBrowser).toBe(true);
    expect(result.value).toBe('hello from node');
    expect(result.version).toBe(1);
    expect(result.history).toEqual([
      [1, 'put', 'h1'],
      [2, 'put', 'h2'],
      [3, 'put', 'h3'],
      [4, 'put', 'h4'],
      [5, 'delete', ''],
    ]);
    expect(result.absent).toBe('absent at version 0');
    expect(result.stored.format).toBe('proofkv-trust-v1');
    const states = Object.values(result.stored.states) as Array<{ publicKeys: string[]; head: { size: number } }>;
    expect(states).toHaveLength(1);
    expect(states[0].publicKeys).toEqual([publicKeyHex]);
    expect(states[0].head.size).toBeGreaterThanOrEqual(1);
    await page.close();
  });
});
