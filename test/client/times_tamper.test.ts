/**
 * Time windows under attack: `verifiedHistory(key, { since, until })` and
 * `verifiedScan({ prefix }, { since, until })` through a real node and a rewriting proxy (the
 * `tamper.test.ts` pattern). The proxy moves the echoed `minVersion` up so the boundary entry (the
 * newest version before `since`) is dropped, re-dates entries in the JSON and in the proof, claims
 * a window complete while proven versions of it remain, rewrites `since` / `until` / `min` in the
 * forwarded query, re-dates scan items so a filter on the JSON would keep or drop the wrong keys,
 * and replays pages from an older checkpoint. Every rewrite must end in a VerificationError with
 * the asserted reason, leave the trusted head where it was, and the same call untouched must then
 * give exactly the versions (keys) of the window. Rewrites the SDK ignores by design (the plain
 * `nextCursor` / `cursor`) must leave the answer exactly the honest one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, toBase64Url, VerificationError, type AnyReason, type TimeRange, type VerifiedScanPage } from '../../client-sdk/index.js';
import { historyProofCodec, scanProofCodec } from '../../proofs/lsm_encoding.js';
import type { HistoryProof } from '../../proofs/lsm_proof.js';
import type { ScanProof } from '../../proofs/lsm_scan.js';
import { RewritingProxy, startServer, thrownThrough, type ProxiedResponse, type ServerProc } from './helpers.js';

let server: ServerProc;
let proxy: RewritingProxy;
let publicKey: Uint8Array;
const te = new TextEncoder();
const td = new TextDecoder();
type Body = Record<string, any>;

/** Commit times of versions 1..10 of key `w` (index 0 unused). */
const t: number[] = [0];
/** Commit time of each scan key `p/<letter>` (its only version). */
const pt = new Map<string, number>();
const SCAN_KEYS = ['p/a', 'p/b', 'p/c', 'p/d', 'p/e', 'p/f'];
/** Answers recorded at the first checkpoint, for the replays. */
let earlyHistory: unknown;
let earlyScan: unknown;

/** The history window under attack: versions 4..7 of `w`; the boundary entry is version 3. */
const win = (): TimeRange => ({ since: t[4], until: t[7] });
/** The scan window: keys p/b..p/e. */
const scanWin = (): TimeRange => ({ since: pt.get('p/b'), until: pt.get('p/e') });

const pause = () => new Promise((r) => setTimeout(r, 5));

function client(historyPageSize?: number): ProofKVClient {
  return new ProofKVClient({ endpoints: [proxy.url], trust: { publicKeys: [publicKey], quorum: 1 }, stateStore: new MemoryStateStore(), retries: 0, historyPageSize });
}

const isHistory = (path: string) => path.startsWith('/v1/kv/w/history') && path.includes('proof=true');
const isScan = (path: string) => path.startsWith('/v1/kv?') && path.includes('proof=true');
const onHistory = (f: (b: Body, path: string) => void) => (_m: string, path: string, res: ProxiedResponse) => {
  if (isHistory(path) && res.status === 200) f(res.body as Body, path);
};
const onScan = (f: (b: Body, path: string) => void) => (_m: string, path: string, res: ProxiedResponse) => {
  if (isScan(path) && res.status === 200) f(res.body as Body, path);
};
function editHistory(b: Body, f: (p: HistoryProof) => void): void {
  const p = historyProofCodec.decode(fromBase64Url(b.proof));
  f(p);
  b.proof = toBase64Url(historyProofCodec.encode(p));
}
function editScan(b: Body, f: (p: ScanProof) => void): void {
  const p = scanProofCodec.decode(fromBase64Url(b.proof));
  f(p);
  b.proof = toBase64Url(scanProofCodec.encode(p));
}
/** The proof's window entries of `key` at `version` (one per table that holds it). */
function proofEntries(p: HistoryProof | ScanProof, key: string, version?: number) {
  return p.body.windows
    .flatMap((w) => w.blocks.flatMap((bl) => bl.entries))
    .filter((e) => td.decode(e.key) === key && (version === undefined || e.version === version));
}
/** Rewrites one query parameter of a forwarded path (adds it when absent, drops it for undefined). */
function withParam(path: string, name: string, value: string | undefined): string {
  const [p, q = ''] = path.split('?');
  const params = new URLSearchParams(q);
  if (value === undefined) params.delete(name);
  else params.set(name, value);
  const s = params.toString();
  return s ? `${p}?${s}` : p;
}
const onHistoryPath = (f: (path: string) => string) => (_m: string, path: string) => (isHistory(path) ? f(path) : path);

type Op = (c: ProofKVClient) => Promise<unknown>;
const historyOp: Op = (c) => c.verifiedHistory('w', win());
async function scanAll(c: ProofKVClient, w: TimeRange = scanWin(), limit = 2): Promise<VerifiedScanPage[]> {
  const pages: VerifiedScanPage[] = [];
  for await (const p of c.verifiedScan({ prefix: 'p/' }, { limit, ...w })) {
    pages.push(p);
    if (pages.length > 20) throw new Error('scan pages do not terminate');
  }
  return pages;
}
/** The scan window in one page (so the tampered page is the first the client meets). */
const scanOp: Op = (c) => scanAll(c, scanWin(), 100);
/** The scan window in pages of two keys: p/a p/b, p/c p/d, p/e p/f. */
const scanPagedOp: Op = (c) => scanAll(c, scanWin(), 2);
const onSecondPage = (path: string) => path.includes(`cursor=${toBase64Url(te.encode('p/b'))}`);
const keysOf = (pages: VerifiedScanPage[]) => pages.flatMap((p) => p.entries.map((e) => td.decode(e.key)));
const latest: Op = (c) => c.checkpoint();

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0'] });
  proxy = await new RewritingProxy(server.url).start();
  const direct = new ProofKVClient({ endpoints: [server.url], trust: { tofu: true }, onWarning: () => {} });
  publicKey = fromBase64Url((await direct.status()).publicKey as string);
  // Each write waits a few ms, so commit times strictly increase (the node stamps its clock).
  for (let v = 1; v <= 8; v++) {
    await pause();
    t.push((await direct.put('w', `w${v}`)).time);
  }
  for (const k of SCAN_KEYS) {
    await pause();
    pt.set(k, (await direct.put(k, `v-${k}`)).time);
  }
  await direct.createCheckpoint();
  // Record a windowed history page and a windowed scan page at this checkpoint, then move on.
  proxy.hooks = {
    response: (_m, path, res) => {
      if (isHistory(path) && earlyHistory === undefined) earlyHistory = structuredClone(res.body);
      if (isScan(path) && earlyScan === undefined) earlyScan = structuredClone(res.body);
    },
  };
  await client().verifiedHistory('w', win());
  await scanAll(client(), scanWin(), 100);
  proxy.hooks = {};
  for (let v = 9; v <= 10; v++) {
    await pause();
    t.push((await direct.put('w', `w${v}`)).time);
  }
  await pause();
  await direct.put('q/after', 'x');
  await direct.createCheckpoint();
});

afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

interface Case {
  name: string;
  op: Op;
  /** The client's `historyPageSize` (default 1000: one page). */
  pageSize?: number;
  /** Runs untouched before the tampered call (default: trust the latest checkpoint). */
  before?: Op;
  path?: (method: string, path: string) => string;
  response?: (method: string, path: string, res: ProxiedResponse) => ProxiedResponse | void;
  /** The reason the client must give. */
  reason: AnyReason;
  /** The versions the untouched call gives (history cases; default the window's 4..7). */
  versions?: number[];
}

const historyCases = (): Case[] => [
  // --- the boundary entry ----------------------------------------------------------------------
  {
    name: 'history: echoed minVersion moved up past the boundary entry (proof untouched)',
    op: historyOp,
    response: onHistory((b) => {
      expect(b.minVersion).toBe(3);
      b.minVersion = 4;
    }),
    reason: 'UNEXPECTED_ELEMENT',
  },
  {
    name: 'history: min moved up in the forwarded query (an honest proof that starts inside the window)',
    op: historyOp,
    path: onHistoryPath((p) => withParam(p, 'min', '4')),
    reason: 'TIME_BOUNDARY',
  },
  {
    name: 'history (until only): min moved up in the forwarded query, to hide the oldest versions',
    op: (c) => c.verifiedHistory('w', { until: t[7] }),
    path: onHistoryPath((p) => withParam(p, 'min', '3')),
    reason: 'TIME_BOUNDARY',
    versions: [1, 2, 3, 4, 5, 6, 7],
  },
  {
    name: 'history: min moved up in the forwarded query, minVersion echo dropped',
    op: historyOp,
    path: onHistoryPath((p) => withParam(p, 'min', '4')),
    response: onHistory((b) => delete b.minVersion),
    reason: 'WINDOW_NOT_BRACKETING',
  },
  {
    name: 'history: echoed minVersion below the asked minimum',
    op: (c) => c.verifiedHistory('w', { ...win(), minVersion: 2 }),
    response: onHistory((b) => (b.minVersion = 1)),
    reason: 'RESPONSE_MISMATCH',
  },
  // --- times in the JSON and in the proof --------------------------------------------------------
  { name: 'history: an entry re-dated in the JSON only', op: historyOp, response: onHistory((b) => (b.entries[1].time += 1)), reason: 'RESPONSE_MISMATCH' },
  {
    name: 'history: an entry re-dated out of the window in the JSON and dropped from it',
    op: historyOp,
    response: onHistory((b) => (b.entries = b.entries.filter((e: Body) => e.version !== 5))),
    reason: 'RESPONSE_MISMATCH',
  },
  {
    name: 'history: the boundary entry re-dated into the window in the JSON and listed',
    op: historyOp,
    response: onHistory((b) => {
      const boundary = { ...b.entries[0], version: 3, time: t[4], value: toBase64Url(te.encode('w3')), valueUtf8: 'w3' };
      b.entries.unshift(boundary);
    }),
    reason: 'RESPONSE_MISMATCH',
  },
  {
    name: 'history: the boundary entry re-dated into the window in the proof',
    op: historyOp,
    response: onHistory((b) => editHistory(b, (p) => proofEntries(p, 'w', 3).forEach((e) => (e.time = t[4])))),
    reason: 'ROOT_MISMATCH',
  },
  {
    name: 'history: an entry re-dated after until in the proof (to drop it from the window)',
    op: historyOp,
    response: onHistory((b) => editHistory(b, (p) => proofEntries(p, 'w', 6).forEach((e) => (e.time = t[10] + 1)))),
    reason: 'ROOT_MISMATCH',
  },
  {
    name: 'history: an entry re-dated in both the JSON and the proof',
    op: historyOp,
    response: onHistory((b) => {
      b.entries[0].time = t[3];
      editHistory(b, (p) => proofEntries(p, 'w', 4).forEach((e) => (e.time = t[3])));
    }),
    reason: 'ROOT_MISMATCH',
  },
  // --- completeness -------------------------------------------------------------------------------
  {
    name: 'history: a page claims the window complete (proof bound raised to the asked maximum)',
    op: historyOp,
    pageSize: 2,
    response: onHistory((b) => {
      delete b.nextCursor;
      editHistory(b, (p) => (p.bound = Number.MAX_SAFE_INTEGER));
    }),
    reason: 'WINDOW_NOT_BRACKETING',
  },
  {
    name: 'history: a page claims the window complete (versions cut from the proof, bound lowered)',
    op: historyOp,
    response: onHistory((b) => {
      delete b.nextCursor;
      b.entries = b.entries.filter((e: Body) => e.version < 6);
      editHistory(b, (p) => (p.bound = 5));
    }),
    reason: 'HISTORY_BOUND',
  },
  {
    name: 'history: the echoed limit raised above the asked page size',
    op: historyOp,
    pageSize: 2,
    response: onHistory((b) => (b.limit = 1000)),
    reason: 'RESPONSE_MISMATCH',
  },
  // --- the forwarded query ----------------------------------------------------------------------
  { name: 'history: since raised in the forwarded query', op: historyOp, path: onHistoryPath((p) => withParam(p, 'since', String(t[6]))), reason: 'TIME_BOUNDARY' },
  { name: 'history: since raised in the forwarded query, paged', op: historyOp,
    pageSize: 2, path: onHistoryPath((p) => withParam(p, 'since', String(t[6]))), reason: 'TIME_BOUNDARY' },
  { name: 'history: since lowered in the forwarded query', op: historyOp, path: onHistoryPath((p) => withParam(p, 'since', String(t[2]))), reason: 'RESPONSE_MISMATCH' },
  { name: 'history: since dropped from the forwarded query', op: historyOp, path: onHistoryPath((p) => withParam(p, 'since', undefined)), reason: 'RESPONSE_MISMATCH' },
  { name: 'history: until lowered in the forwarded query', op: historyOp, path: onHistoryPath((p) => withParam(p, 'until', String(t[5]))), reason: 'RESPONSE_MISMATCH' },
  { name: 'history: until dropped from the forwarded query', op: historyOp, path: onHistoryPath((p) => withParam(p, 'until', undefined)), reason: 'RESPONSE_MISMATCH' },
  // --- other checkpoints ----------------------------------------------------------------------------
  {
    name: 'history: a windowed page from an older checkpoint replayed',
    op: historyOp,
    response: (_m, p, res) => (isHistory(p) ? { ...res, body: structuredClone(earlyHistory) } : undefined),
    reason: 'ROLLBACK',
  },
];

const scanCases = (): Case[] => [
  // --- items re-dated in the JSON so that a filter on it would keep or drop the wrong keys -------------
  {
    name: 'scan: a key outside the window re-dated into it in the JSON',
    op: scanOp,
    response: onScan((b) => b.items.forEach((e: Body) => td.decode(fromBase64Url(e.key)) === 'p/a' && (e.time = pt.get('p/c')))),
    reason: 'RESPONSE_MISMATCH',
  },
  {
    name: 'scan: a key inside the window re-dated out of it in the JSON',
    op: scanOp,
    response: onScan((b) => b.items.forEach((e: Body) => td.decode(fromBase64Url(e.key)) === 'p/c' && (e.time = pt.get('p/f')! + 1000))),
    reason: 'RESPONSE_MISMATCH',
  },
  {
    name: 'scan: a key inside the window dropped from the JSON',
    op: scanOp,
    response: onScan((b) => (b.items = b.items.filter((e: Body) => td.decode(fromBase64Url(e.key)) !== 'p/c'))),
    reason: 'RESPONSE_MISMATCH',
  },
  {
    name: 'scan: a key inside the window re-dated out of it in the JSON, on the second page',
    op: scanPagedOp,
    response: onScan((b, path) => onSecondPage(path) && b.items.forEach((e: Body) => td.decode(fromBase64Url(e.key)) === 'p/c' && (e.time = 0))),
    reason: 'RESPONSE_MISMATCH',
  },
  // --- times in the proof -------------------------------------------------------------------------
  {
    name: 'scan: a key inside the window re-dated out of it in the proof (and the JSON)',
    op: scanOp,
    response: onScan((b) => {
      b.items.forEach((e: Body) => td.decode(fromBase64Url(e.key)) === 'p/c' && (e.time = pt.get('p/f')! + 1000));
      editScan(b, (p) => proofEntries(p, 'p/c').forEach((e) => (e.time = pt.get('p/f')! + 1000)));
    }),
    reason: 'ROOT_MISMATCH',
  },
  {
    name: 'scan: a key outside the window re-dated into it in the proof (and the JSON)',
    op: scanOp,
    response: onScan((b) => {
      b.items.forEach((e: Body) => td.decode(fromBase64Url(e.key)) === 'p/f' && (e.time = pt.get('p/d')));
      editScan(b, (p) => proofEntries(p, 'p/f').forEach((e) => (e.time = pt.get('p/d')!)));
    }),
    reason: 'ROOT_MISMATCH',
  },
  // --- completeness ----------------------------------------------------------------------------------
  {
    name: 'scan: the first page claims the range complete (proof bound dropped)',
    op: scanPagedOp,
    response: onScan((b, path) => {
      if (path.includes('cursor=')) return;
      delete b.cursor;
      editScan(b, (p) => delete p.bound);
    }),
    reason: 'WINDOW_NOT_BRACKETING',
  },
  // --- other checkpoints ------------------------------------------------------------------------------
  {
    name: 'scan: a windowed page from an older checkpoint replayed',
    op: (c) => scanAll(c, scanWin(), 100),
    response: (_m, p, res) => (isScan(p) ? { ...res, body: structuredClone(earlyScan) } : undefined),
    reason: 'ROLLBACK',
  },
];

/** Runs `tc` through the proxy: a VerificationError with its reason, the trusted head unmoved. */
async function expectCaught(tc: Case): Promise<void> {
  const c = client(tc.pageSize);
  proxy.hooks = {};
  // The client trusts the latest head first, so a failure on any page must leave it there.
  await (tc.before ?? latest)(c);
  const trustedBefore = await c.trust.trustedHead();
  const error = await thrownThrough(proxy, { path: tc.path, response: tc.response }, () => tc.op(c));
  expect(error).toBeInstanceOf(VerificationError);
  expect((error as VerificationError<string>).reason).toBe(tc.reason);
  expect(trustedBefore).toBeDefined();
  expect(await c.trust.trustedHead()).toEqual(trustedBefore);
}

describe('time windows, untouched', () => {
  it('the writes have strictly increasing times (the windows below depend on it)', () => {
    for (let v = 2; v <= 10; v++) expect(t[v]).toBeGreaterThan(t[v - 1]);
    for (let i = 1; i < SCAN_KEYS.length; i++) expect(pt.get(SCAN_KEYS[i])).toBeGreaterThan(pt.get(SCAN_KEYS[i - 1])!);
  });

  it('the history window is exactly versions 4..7, in one page and in pages of 1 and 2', async () => {
    for (const size of [undefined, 1, 2]) {
      const h = await client(size).verifiedHistory('w', win());
      expect(h.entries.map((e) => e.version)).toEqual([4, 5, 6, 7]);
      expect(h.entries.map((e) => e.time)).toEqual([t[4], t[5], t[6], t[7]]);
    }
    // ISO 8601 ends give the same window.
    const iso = await client().verifiedHistory('w', { since: new Date(t[4]).toISOString(), until: new Date(t[7]).toISOString() });
    expect(iso.entries.map((e) => e.version)).toEqual([4, 5, 6, 7]);
  });

  it('the scan window is exactly the keys p/b..p/e, in pages of 1, 2 and 100', async () => {
    for (const limit of [1, 2, 100]) expect(keysOf(await scanAll(client(), scanWin(), limit))).toEqual(['p/b', 'p/c', 'p/d', 'p/e']);
  });
});

describe('time windows through a tampering proxy', () => {
  for (const tc of [...historyCases(), ...scanCases()]) {
    it(`catches: ${tc.name}`, async () => {
      await expectCaught(tc);
      // The same call, untouched, verifies and gives the window.
      const again = await tc.op(client(tc.pageSize));
      if (tc.name.startsWith('history')) expect((again as { entries: { version: number }[] }).entries.map((e) => e.version)).toEqual(tc.versions ?? [4, 5, 6, 7]);
      else expect(keysOf(again as VerifiedScanPage[])).toEqual(['p/b', 'p/c', 'p/d', 'p/e']);
    });
  }

  it('ignores a plain nextCursor dropped from a history page: it follows the proof to the end of the window', async () => {
    let pages = 0;
    proxy.hooks = { response: onHistory((b) => (pages++, delete b.nextCursor)) };
    try {
      const h = await client(2).verifiedHistory('w', win());
      expect(h.entries.map((e) => e.version)).toEqual([4, 5, 6, 7]);
    } finally {
      proxy.hooks = {};
    }
    // Pages 3..4, 5..6, 7..8 (version 8 is after until: the window is complete).
    expect(pages).toBe(3);
  });

  it('sends no window with a scan, and the node refuses one (the filter is the client\'s, docs/http-api.md § Commit times)', async () => {
    const paths: string[] = [];
    proxy.hooks = { response: onScan((_b, path) => void paths.push(path)) };
    try {
      await scanAll(client(), scanWin(), 100);
    } finally {
      proxy.hooks = {};
    }
    expect(paths).toHaveLength(1);
    expect(paths[0]).not.toMatch(/since|until/);
    const r = await fetch(`${server.url}/v1/kv?prefix=p%2F&proof=true&since=${t[1]}`);
    expect(r.status).toBe(400);
    expect(((await r.json()) as Body).code).toBe('INVALID_ARGUMENT');
  });

  it('ignores a plain cursor dropped from a scan page: it follows the proven bound', async () => {
    let pages = 0;
    proxy.hooks = { response: onScan((b) => (pages++, delete b.cursor)) };
    try {
      expect(keysOf(await scanAll(client(), scanWin(), 2))).toEqual(['p/b', 'p/c', 'p/d', 'p/e']);
    } finally {
      proxy.hooks = {};
    }
    expect(pages).toBe(3);
  });
});
