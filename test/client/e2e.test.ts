/**
 * End to end: the SDK and the CLI against a real `proofkv serve` process with tokens.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileStateStore,
  fromBase64Url,
  ProofKVClient,
  ProofKVHttpError,
  type FetchLike,
  type ProofKVClientOptions,
} from '../../client-sdk/index.js';
import { toHex } from '../../proofs/bytes.js';
import { runCli, startServer, type ServerProc } from './helpers.js';

const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

let server: ServerProc;
let dir: string;
let publicKey: Uint8Array;

beforeAll(async () => {
  server = await startServer({ env: { PROOFKV_TOKENS: 'adm:admin,wri:write,rea:read' }, args: ['--checkpoint-interval', '200'] });
  dir = await mkdtemp(join(tmpdir(), 'proofkv-client-e2e-'));
  const status = await new ProofKVClient({ endpoints: [server.url], token: 'rea', trust: { tofu: true } }).status();
  publicKey = fromBase64Url(status.publicKey as string);
});

afterAll(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function client(extra: Partial<ProofKVClientOptions> = {}): ProofKVClient {
  return new ProofKVClient({ endpoints: [server.url], token: 'adm', trust: { publicKeys: [publicKey], quorum: 1 }, retryDelayMs: 10, ...extra });
}

describe('SDK against a real node', () => {
  it('verifiedPut, verifiedGet (latest, at a version, tombstone, absent) and plain reads', async () => {
    const c = client();
    const w1 = await c.verifiedPut('e2e/greeting', 'hello');
    const w2 = await c.verifiedPut('e2e/greeting', 'bonjour');
    expect(w2.version).toBe(w1.version + 1);
    expect(w2.checkpoint.seq).toBeGreaterThanOrEqual(w2.seq);

    const latest = await c.verifiedGet('e2e/greeting');
    expect(text(latest.value)).toBe('bonjour');
    expect(latest.version).toBe(w2.version);
    const old = await c.verifiedGet('e2e/greeting', { version: w1.version });
    expect(text(old.value)).toBe('hello');

    await c.delete('e2e/greeting');
    await c.createCheckpoint();
    const gone = await c.verifiedGet('e2e/greeting');
    expect(gone.entry?.kind).toBe('delete');
    expect(gone.value).toBeUndefined();
    expect(await c.get('e2e/greeting')).toBeUndefined();
    expect(text((await c.get('e2e/greeting', { version: w1.version }))?.value)).toBe('hello');

    const absent = await c.verifiedGet('e2e/never-written');
    expect(absent.entry).toBeUndefined();
    expect(absent.checkpoint.index).toBeGreaterThanOrEqual(0);
  });

  it('binary and dot keys round-trip through URLs and proofs', async () => {
    const c = client();
    const keys = [new Uint8Array([0x00, 0xff, 0x2f, 0x25]), new TextEncoder().encode('..'), new TextEncoder().encode('a b?c#d')];
    for (const k of keys) await c.put(k, k);
    await c.createCheckpoint();
    for (const k of keys) {
      const g = await c.verifiedGet(k);
      expect(toHex(g.value!)).toBe(toHex(k));
    }
  });

  it('verifiedHistory follows continuations across pages and proves completeness', async () => {
    const c = client({ historyPageSize: 3 });
    for (let i = 1; i <= 8; i++) await c.put('e2e/hist', `v${i}`);
    await c.delete('e2e/hist');
    await c.createCheckpoint();
    const all = await c.verifiedHistory('e2e/hist');
    expect(all.entries.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(all.entries.map((e) => (e.kind === 'put' ? text(e.value) : '(del)'))).toEqual(['v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7', 'v8', '(del)']);
    const mid = await c.verifiedHistory('e2e/hist', { minVersion: 3, maxVersion: 6 });
    expect(mid.entries.map((e) => e.version)).toEqual([3, 4, 5, 6]);
    const page = await c.history('e2e/hist', { limit: 4 });
    expect(page.entries).toHaveLength(4);
    expect(page.cursor).toBeDefined();
    const next = await c.history('e2e/hist', { limit: 4, cursor: page.cursor });
    expect(next.entries[0].version).toBe(5);
  });

  it('batch and scan', async () => {
    const c = client();
    const r = await c.batch([
      { op: 'put', key: 'e2e/scan/a', value: '1' },
      { op: 'put', key: 'e2e/scan/b', value: '2' },
      { op: 'put', key: 'e2e/scan/c', value: '3' },
      { op: 'delete', key: 'e2e/scan/b' },
    ]);
    expect(r).toHaveLength(4);
    const s = await c.scan({ prefix: 'e2e/scan/' });
    expect(s.items.map((e) => text(e.key))).toEqual(['e2e/scan/a', 'e2e/scan/c']);
  });

  it('a write token cannot checkpoint: verifiedPut polls for the automatic checkpoint instead', async () => {
    const c = client({ token: 'wri', pollIntervalMs: 50 });
    const r = await c.verifiedPut('e2e/polled', 'yes');
    expect(r.checkpoint.seq).toBeGreaterThanOrEqual(r.seq);
    const err = await client({ token: 'rea' }).put('e2e/polled', 'no').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProofKVHttpError);
    expect((err as ProofKVHttpError).status).toBe(403);
    expect((err as ProofKVHttpError).code).toBe('FORBIDDEN');
  });

  it('a write whose response is lost is retried with the same id and seq and applies once', async () => {
    let dropped = 0;
    const lossy: FetchLike = async (url, init) => {
      const res = await fetch(url, init);
      if (init.method === 'PUT' && dropped++ === 0) {
        await res.arrayBuffer();
        throw new TypeError('fetch failed (response lost)');
      }
      return res;
    };
    const c = client({ fetch: lossy });
    const w = await c.put('e2e/once', 'only once');
    expect(dropped).toBe(2);
    const h = await c.history('e2e/once');
    expect(h.entries.map((e) => e.version)).toEqual([w.version]);
  });

  it('fails over from a dead endpoint', async () => {
    const c = client({ endpoints: ['http://127.0.0.1:9', server.url], timeoutMs: 2000 });
    const w = await c.put('e2e/failover', 'ok');
    expect(w.version).toBe(1);
    expect(c.transport.preferred).toBe(server.url);
  });

  it('persists the trusted head in a file and keeps accepting newer checkpoints', async () => {
    const store = new FileStateStore(join(dir, 'sdk-trust.json'));
    const a = client({ stateStore: store });
    const first = await a.createCheckpoint();
    await a.put('e2e/persist', 'x');
    const b = client({ stateStore: new FileStateStore(join(dir, 'sdk-trust.json')) });
    const second = await b.createCheckpoint();
    expect(second.previous?.size).toBe(first.head.size);
    expect(second.head.size).toBeGreaterThan(first.head.size);
  });
});

describe('CLI against a real node', () => {
  const common = () => ['--endpoint', server.url, '--token', 'adm', '--state', join(dir, 'cli-trust.json')];

  it('put, get (verified and --no-verify), history, checkpoint, del', async () => {
    const put = await runCli(['put', 'cli/k', 'v1', ...common()]);
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(/version\s+1/);
    const vput = await runCli(['put', 'cli/k', 'v2', '--verify', '--json', ...common()]);
    expect(vput.code).toBe(0);
    expect(JSON.parse(vput.stdout)).toMatchObject({ version: 2, verified: true });
    expect(vput.stderr).toContain('trusting node key'); // TOFU on first verified use

    const get = await runCli(['get', 'cli/k', '--json', ...common()]);
    expect(get.code).toBe(0);
    const g = JSON.parse(get.stdout);
    expect(g).toMatchObject({ found: true, verified: true, entry: { version: 2, valueUtf8: 'v2' } });
    const human = await runCli(['get', 'cli/k', '--version', '1', ...common()]);
    expect(human.stdout).toMatch(/value\s+v1/);
    expect(human.stdout).toMatch(/verified\s+as of checkpoint \d+/);
    const plain = await runCli(['get', 'cli/k', '--no-verify', '--json', ...common()]);
    expect(JSON.parse(plain.stdout)).toMatchObject({ found: true, verified: false });

    const hist = await runCli(['history', 'cli/k', '--json', ...common()]);
    expect(JSON.parse(hist.stdout).entries.map((e: { valueUtf8: string }) => e.valueUtf8)).toEqual(['v1', 'v2']);

    const cp = await runCli(['checkpoint', '--json', ...common()]);
    expect(cp.code).toBe(0);
    expect(JSON.parse(cp.stdout).signers).toEqual([toHex(publicKey)]);

    expect((await runCli(['del', 'cli/k', ...common()])).code).toBe(0);
    const missing = await runCli(['get', 'cli/missing', '--no-verify', ...common()]);
    expect(missing.code).toBe(4);
    expect(missing.stdout).toContain('not found');
  });

  it('proof saves a bundle that verify checks offline with --public-key, and a tampered bundle fails', async () => {
    await runCli(['put', 'cli/p', 'proven', '--verify', ...common()]);
    const file = join(dir, 'proof.json');
    const saved = await runCli(['proof', 'cli/p', '--out', file, ...common()]);
    expect(saved.code).toBe(0);
    const ok = await runCli(['verify', file, '--public-key', toHex(publicKey), '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, type: 'get', entry: { valueUtf8: 'proven' }, edges: true });

    const bundle = JSON.parse(await readFile(file, 'utf8'));
    const bytes = fromBase64Url(bundle.proof);
    bytes[bytes.length - 1] ^= 1; // the last byte of the encoding
    bundle.proof = Buffer.from(bytes).toString('base64url');
    await writeFile(join(dir, 'bad.json'), JSON.stringify(bundle));
    const bad = await runCli(['verify', join(dir, 'bad.json'), '--public-key', toHex(publicKey)]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain('verification failed');
  });

  it('proof bundles carry edge proofs by default; verify says whether it checked them and --require-edges refuses an old bundle', async () => {
    await runCli(['put', 'cli/edge', 'e', '--verify', ...common()]);
    const file = join(dir, 'edges.json');
    expect((await runCli(['proof', 'cli/edge', '--history', '--out', file, ...common()])).code).toBe(0);
    const bundle = JSON.parse(await readFile(file, 'utf8'));
    expect(bundle.edges).toBe(true);
    const human = await runCli(['verify', file, '--public-key', toHex(publicKey), '--require-edges']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('edge proofs checked');

    const noEdges = join(dir, 'no-edges.json');
    expect((await runCli(['proof', 'cli/edge', '--no-edges', '--out', noEdges, ...common()])).code).toBe(0);
    const plain = JSON.parse(await readFile(noEdges, 'utf8'));
    expect(plain.edges).toBe(false);
    expect((await runCli(['verify', noEdges, '--public-key', toHex(publicKey), '--require-edges'])).code).toBe(1);
    delete plain.edges; // a bundle written before the field existed
    await writeFile(noEdges, JSON.stringify(plain));
    const old = await runCli(['verify', noEdges, '--public-key', toHex(publicKey)]);
    expect(old.code).toBe(0);
    expect(old.stdout).toContain('edge proofs NOT checked');
    const oldJson = await runCli(['verify', noEdges, '--public-key', toHex(publicKey), '--json']);
    expect(JSON.parse(oldJson.stdout)).toMatchObject({ valid: true, edges: false });
    const refused = await runCli(['verify', noEdges, '--public-key', toHex(publicKey), '--require-edges', '--json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout || refused.stderr)).toMatchObject({ error: { code: 'EDGES_REQUIRED' } });
  });

  it('import reads JSON lines and CSV in batches', async () => {
    const jsonl = join(dir, 'in.jsonl');
    await writeFile(jsonl, Array.from({ length: 25 }, (_, i) => JSON.stringify({ key: `cli/imp/${i}`, value: `j${i}` })).join('\n') + '\n');
    const a = await runCli(['import', jsonl, '--batch-size', '10', '--json', ...common()]);
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ records: 25, batches: 3 });
    const csv = join(dir, 'in.csv');
    await writeFile(csv, 'key,value\ncli/csv/1,"hello, world"\ncli/csv/2,"say ""hi"""\n');
    const b = await runCli(['import', csv, ...common()]);
    expect(b.code).toBe(0);
    expect(b.stdout).toContain('imported 2 record(s)');
    const c = client();
    expect(text((await c.get('cli/csv/1'))?.value)).toBe('hello, world');
    expect(text((await c.get('cli/csv/2'))?.value)).toBe('say "hi"');
    expect(text((await c.get('cli/imp/24'))?.value)).toBe('j24');
  });
});
