/**
 * `verifiedScan` through a real node and a rewriting proxy (the `tamper.test.ts` pattern): honest
 * pages chain by their proven cursor to exactly the live keys of the range; every rewrite of a page
 * — values, items, proof entries, the bound, the echoed limit, the asked range or cursor, a replay
 * from an older checkpoint, a tombstone shown as live — ends in a VerificationError with a fitting
 * reason, leaves the trusted head where it was, and the same scan untouched then verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, toBase64Url, VerificationError, type AnyReason, type VerifiedScanPage } from '../../client-sdk/index.js';
import { scanProofCodec } from '../../proofs/lsm_encoding.js';
import type { ScanProof } from '../../proofs/lsm_scan.js';
import { RewritingProxy, startServer, thrownThrough, type ProxiedResponse, type ServerProc } from './helpers.js';

let server: ServerProc;
let proxy: RewritingProxy;
let publicKey: Uint8Array;
/** A proven scan page recorded at an older checkpoint, for the replay. */
let early: unknown;
const te = new TextEncoder();
const td = new TextDecoder();
const k = (i: number) => `s/${String(i).padStart(2, '0')}`;
type Body = Record<string, any>;

function client(): ProofKVClient {
  return new ProofKVClient({ endpoints: [proxy.url], trust: { publicKeys: [publicKey], quorum: 1 }, stateStore: new MemoryStateStore(), retries: 0 });
}

/** Every page of a scan of prefix `s/`, three keys a page. */
async function scanAll(c: ProofKVClient, options: { includeTombstones?: boolean; cursor?: string } = {}): Promise<VerifiedScanPage[]> {
  const pages: VerifiedScanPage[] = [];
  for await (const p of c.verifiedScan({ prefix: 's/' }, { limit: 3, ...options })) {
    pages.push(p);
    expect(pages.length, 'pages terminate').toBeLessThan(20);
  }
  return pages;
}
const keysOf = (pages: VerifiedScanPage[]) => pages.flatMap((p) => p.entries.map((e) => td.decode(e.key)));

const isScan = (path: string) => path.startsWith('/v1/kv?') && path.includes('proof=true');
const onScan = (f: (b: Body) => void) => (_m: string, path: string, res: ProxiedResponse) => {
  if (isScan(path) && res.status === 200) f(res.body as Body);
};
function editProof(b: Body, f: (p: ScanProof) => void): void {
  const p = scanProofCodec.decode(fromBase64Url(b.proof));
  f(p);
  b.proof = toBase64Url(scanProofCodec.encode(p));
}
/** Only the page after `s/02` (the second page) is rewritten. */
const secondPage = (path: string) => path.includes(`cursor=${toBase64Url(te.encode(k(2)))}`);

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0'] });
  proxy = await new RewritingProxy(server.url).start();
  const direct = new ProofKVClient({ endpoints: [server.url], trust: { tofu: true }, onWarning: () => {} });
  publicKey = fromBase64Url((await direct.status()).publicKey as string);
  for (let i = 0; i < 12; i++) await direct.put(k(i), `v${i}`);
  await direct.put('r/outside', 'x');
  await direct.put('t/outside', 'x');
  await direct.delete(k(3));
  await direct.delete(k(7));
  await direct.createCheckpoint();
  proxy.hooks = { response: (_m, path, res) => void (isScan(path) && !path.includes('cursor=') && (early = structuredClone(res.body))) };
  await scanAll(client());
  proxy.hooks = {};
  await direct.put(k(5), 'v5-new');
  await direct.createCheckpoint();
});

afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

describe('verifiedScan, untouched', () => {
  it('pages chain by the proven cursor to exactly the live keys of the prefix', async () => {
    const pages = await scanAll(client());
    const live = Array.from({ length: 12 }, (_, i) => k(i)).filter((x) => x !== k(3) && x !== k(7));
    expect(keysOf(pages)).toEqual(live);
    expect(pages.map((p) => p.keysCovered)).toEqual([3, 3, 3, 3]);
    expect(pages.map((p) => p.cursor && td.decode(fromBase64Url(p.cursor)))).toEqual([k(2), k(5), k(8), undefined]);
    const s5 = pages.flatMap((p) => p.entries).find((e) => td.decode(e.key) === k(5))!;
    expect(td.decode(s5.value)).toBe('v5-new');
    expect(s5.version).toBe(2);
  });

  it('with tombstones, a start/end range, and resumed from a cursor', async () => {
    const c = client();
    const all = await scanAll(c, { includeTombstones: true });
    expect(all.flatMap((p) => p.entries).filter((e) => e.kind === 'delete').map((e) => td.decode(e.key))).toEqual([k(3), k(7)]);
    const resumed = await scanAll(c, { cursor: toBase64Url(te.encode(k(5))) });
    expect(keysOf(resumed)).toEqual([k(6), k(8), k(9), k(10), k(11)]);
    const range: string[] = [];
    for await (const p of c.verifiedScan({ start: k(4), end: k(9) }, { limit: 2 })) range.push(...p.entries.map((e) => td.decode(e.key)));
    expect(range).toEqual([k(4), k(5), k(6), k(8)]);
    const everything: string[] = [];
    for await (const p of c.verifiedScan()) everything.push(...p.entries.map((e) => td.decode(e.key)));
    expect(everything[0]).toBe('r/outside');
    expect(everything[everything.length - 1]).toBe('t/outside');
  });
});

interface Case {
  name: string;
  path?: (method: string, path: string) => string;
  response?: (method: string, path: string, res: ProxiedResponse) => ProxiedResponse | void;
  before?: (c: ProofKVClient) => Promise<unknown>;
  reasons: AnyReason[];
}

const cases: Case[] = [
  { name: 'an item value rewritten', response: onScan((b) => (b.items[0].value = toBase64Url(te.encode('evil')))), reasons: ['VALUE_MISMATCH'] },
  { name: 'an item dropped (a key omitted)', response: onScan((b) => b.items.splice(1, 1)), reasons: ['RESPONSE_MISMATCH'] },
  { name: 'an item added (a key injected)', response: onScan((b) => b.items.push({ ...b.items[0], key: toBase64Url(te.encode('s/99')) })), reasons: ['RESPONSE_MISMATCH'] },
  { name: 'items reordered', response: onScan((b) => b.items.reverse()), reasons: ['RESPONSE_MISMATCH'] },
  { name: 'a value inside the proof dropped', response: onScan((b) => editProof(b, (p) => p.values.pop())), reasons: ['VALUE_MISMATCH'] },
  { name: 'values inside the proof swapped', response: onScan((b) => editProof(b, (p) => p.values.reverse())), reasons: ['VALUE_MISMATCH'] },
  { name: 'a window dropped from the proof', response: onScan((b) => editProof(b, (p) => p.body.windows.pop())), reasons: ['MISSING_WINDOW', 'UNEXPECTED_ELEMENT'] },
  {
    name: 'a tombstone shown as live (s/03 with a value)',
    response: (_m, path, res) => {
      if (!isScan(path) || !secondPage(path)) return;
      editProof(res.body as Body, (p) => p.values.unshift(te.encode('v3')));
    },
    reasons: ['VALUE_MISMATCH'],
  },
  {
    name: 'the cursor (bound) moved one key back',
    response: onScan((b) => editProof(b, (p) => p.bound && (p.bound = te.encode(td.decode(p.bound).replace(/\d$/, (d) => String(Number(d) - 1)))))),
    reasons: ['UNEXPECTED_ELEMENT', 'SCAN_BOUND'],
  },
  { name: 'the cursor (bound) dropped: a cut page claimed complete', response: onScan((b) => editProof(b, (p) => delete p.bound)), reasons: ['MISSING_TABLE', 'WINDOW_NOT_BRACKETING', 'SCAN_BOUND'] },
  { name: 'a larger limit echoed', response: onScan((b) => (b.limit = 4)), reasons: ['RESPONSE_MISMATCH'] },
  {
    name: 'a page that skips keys (the next page asked from further on)',
    path: (_m, path) => (isScan(path) && secondPage(path) ? path.replace(`cursor=${toBase64Url(te.encode(k(2)))}`, `cursor=${toBase64Url(te.encode(k(4)))}`) : path),
    reasons: ['WINDOW_NOT_BRACKETING', 'MISSING_TABLE'],
  },
  {
    name: 'another range answered (the start moved back to r, before the prefix)',
    path: (_m, path) => (isScan(path) ? path.replace(/start=[^&]*/, `start=${toBase64Url(te.encode('r'))}`) : path),
    reasons: ['SCAN_BOUND'],
  },
  {
    name: 'a page of an older checkpoint replayed',
    before: (c) => c.checkpoint(),
    response: (_m, path, res) => (isScan(path) && !path.includes('cursor=') ? { ...res, body: structuredClone(early) } : undefined),
    reasons: ['ROLLBACK'],
  },
];

describe('verifiedScan through a tampering proxy', () => {
  for (const tc of cases) {
    it(`catches: ${tc.name}`, async () => {
      expect(early, 'the older page was recorded').toBeDefined();
      const c = client();
      proxy.hooks = {};
      // The client trusts the latest head first, so a failure on any page must leave it there.
      await (tc.before ?? ((x: ProofKVClient) => x.checkpoint()))(c);
      const trustedBefore = await c.trust.trustedHead();
      const error = await thrownThrough(proxy, { path: tc.path, response: tc.response }, () => scanAll(c));
      expect(error).toBeInstanceOf(VerificationError);
      expect(tc.reasons, (error as Error).message).toContain((error as VerificationError<string>).reason);
      expect(trustedBefore).toBeDefined();
      expect(await c.trust.trustedHead()).toEqual(trustedBefore);
      await expect(scanAll(c)).resolves.toHaveLength(4);
    });
  }
});
