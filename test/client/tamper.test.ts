/**
 * Tampering: a rewriting HTTP proxy between the SDK and a real node changes answers — values,
 * versions, seqs, kinds, history entries, proofs of other keys or versions, proof bytes,
 * signatures, heads, consistency proofs, replays of older checkpoints and proofs. Every rewrite
 * must end in a VerificationError with a fitting reason (and no data); the same call through the
 * untouched proxy must then verify.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, toBase64Url, VerificationError, type AnyReason } from '../../client-sdk/index.js';
import { getProofCodec, historyProofCodec } from '../../proofs/lsm_encoding.js';
import type { GetProof, HistoryProof } from '../../proofs/lsm_proof.js';
import { RewritingProxy, startServer, thrownThrough, type ProxiedResponse, type ServerProc } from './helpers.js';

let server: ServerProc;
let proxy: RewritingProxy;
let publicKey: Uint8Array;
const enc = (s: string) => toBase64Url(new TextEncoder().encode(s));

type Body = Record<string, any>;

function editGet(body: Body, f: (p: GetProof) => void): void {
  const p = getProofCodec.decode(fromBase64Url(body.proof));
  f(p);
  body.proof = toBase64Url(getProofCodec.encode(p));
}

function editHistory(body: Body, f: (p: HistoryProof) => void): void {
  const p = historyProofCodec.decode(fromBase64Url(body.proof));
  f(p);
  body.proof = toBase64Url(historyProofCodec.encode(p));
}

/** The window entries of `proof` whose key is `key`. */
function entriesOf(p: GetProof | HistoryProof, key: string) {
  const k = new TextEncoder().encode(key);
  return p.body.windows.flatMap((w) => w.blocks.flatMap((b) => b.entries)).filter((e) => e.key.length === k.length && e.key.every((x, i) => x === k[i]));
}

function flip(b: Uint8Array, i = 0): Uint8Array {
  const c = b.slice();
  c[i] ^= 0x01;
  return c;
}

const isGetProof = (path: string, key: string) => path.startsWith(`/v1/kv/${key}/proof`);
const isHistory = (path: string, key: string) => path.startsWith(`/v1/kv/${key}/history`);

function client(): ProofKVClient {
  return new ProofKVClient({
    endpoints: [proxy.url],
    trust: { publicKeys: [publicKey], quorum: 1 },
    stateStore: new MemoryStateStore(),
    retries: 0,
  });
}

type Op = (c: ProofKVClient) => Promise<unknown>;
const getA: Op = (c) => c.verifiedGet('ta');
const historyH: Op = (c) => c.verifiedHistory('th');
const latest: Op = (c) => c.checkpoint();

interface Case {
  name: string;
  op: Op;
  /** Runs before the tampered call, untouched (to make the client trust something). */
  before?: Op;
  path?: (method: string, path: string) => string;
  response?: (method: string, path: string, res: ProxiedResponse) => ProxiedResponse | void;
  reasons: AnyReason[];
}

const onBody = (match: (path: string) => boolean, f: (b: Body) => void) => (_m: string, path: string, res: ProxiedResponse) => {
  if (match(path) && res.status === 200) f(res.body as Body);
};

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0'] });
  proxy = await new RewritingProxy(server.url).start();
  const direct = new ProofKVClient({ endpoints: [server.url], trust: { tofu: true }, onWarning: () => {} });
  publicKey = fromBase64Url((await direct.status()).publicKey as string);
  for (let i = 1; i <= 3; i++) await direct.put('ta', `a${i}`);
  for (let i = 1; i <= 2; i++) await direct.put('tb', `b${i}`);
  for (let i = 1; i <= 5; i++) await direct.put('th', `h${i}`);
  await direct.createCheckpoint();
  // Record answers at this checkpoint for the replays, then move on.
  const early = client();
  await early.checkpoint();
  await early.verifiedGet('ta');
  await direct.put('ta', 'a4');
  await direct.put('th', 'h6');
  await direct.delete('th');
  await direct.createCheckpoint();
  await direct.put('tz', 'after');
  await direct.createCheckpoint();
});

afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

const cases: Case[] = [
  // --- values ---------------------------------------------------------------------------------
  { name: 'get: entry value rewritten', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => (b.entry.value = enc('evil'))), reasons: ['VALUE_MISMATCH'] },
  { name: 'get: value inside the proof rewritten', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (p.value = new TextEncoder().encode('evil')))), reasons: ['VALUE_MISMATCH'] },
  {
    name: 'get: value rewritten in both entry and proof',
    op: getA,
    response: onBody((p) => isGetProof(p, 'ta'), (b) => {
      b.entry.value = enc('evil');
      editGet(b, (p) => (p.value = new TextEncoder().encode('evil')));
    }),
    reasons: ['VALUE_MISMATCH'],
  },
  // --- versions, seqs, kinds --------------------------------------------------------------------
  { name: 'get: entry version rewritten', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => (b.entry.version = 99)), reasons: ['RESPONSE_MISMATCH'] },
  { name: 'get: entry seq rewritten', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => (b.entry.seq += 1)), reasons: ['RESPONSE_MISMATCH'] },
  { name: 'get: entry dropped (claims absence)', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => delete b.entry), reasons: ['RESPONSE_MISMATCH'] },
  {
    name: 'get: version inside the proof window rewritten',
    op: getA,
    response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (entriesOf(p, 'ta')[0].version = 99))),
    reasons: ['ROOT_MISMATCH'],
  },
  { name: 'get: seq inside the proof rewritten', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (entriesOf(p, 'ta')[0].seq += 1))), reasons: ['ROOT_MISMATCH'] },
  {
    name: 'get: kind inside the proof flipped to delete',
    op: getA,
    response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => {
      entriesOf(p, 'ta')[0].kind = 0;
      delete p.value;
    })),
    reasons: ['ROOT_MISMATCH'],
  },
  // --- other keys, other versions ---------------------------------------------------------------
  { name: 'get: proof of another key', op: getA, path: (_m, p) => p.replace('/v1/kv/ta/proof', '/v1/kv/tb/proof'), reasons: ['UNEXPECTED_ELEMENT', 'WINDOW_NOT_BRACKETING'] },
  {
    name: 'get: proof of an older version (hides the newest)',
    op: getA,
    // The client's own query (edges=true by default) is kept; only version=1 is slipped in.
    path: (_m, p) => (/^\/v1\/kv\/ta\/proof(\?|$)/.test(p) && !p.includes('version=') ? p.replace(/^\/v1\/kv\/ta\/proof\??/, '/v1/kv/ta/proof?version=1&') : p),
    reasons: ['UNEXPECTED_ELEMENT', 'WINDOW_NOT_BRACKETING'],
  },
  { name: 'history: proof of another key', op: historyH, path: (_m, p) => p.replace('/v1/kv/th/history', '/v1/kv/ta/history'), reasons: ['UNEXPECTED_ELEMENT', 'WINDOW_NOT_BRACKETING'] },
  // --- history completeness ---------------------------------------------------------------------
  { name: 'history: entry dropped from the list', op: historyH, response: onBody((p) => isHistory(p, 'th'), (b) => b.entries.splice(2, 1)), reasons: ['RESPONSE_MISMATCH'] },
  { name: 'history: entry injected into the list', op: historyH, response: onBody((p) => isHistory(p, 'th'), (b) => b.entries.push({ ...b.entries[0], version: 100 })), reasons: ['RESPONSE_MISMATCH'] },
  { name: 'history: value rewritten in the list', op: historyH, response: onBody((p) => isHistory(p, 'th'), (b) => (b.entries[1].value = enc('evil'))), reasons: ['VALUE_MISMATCH'] },
  {
    name: 'history: entry dropped from the proof and the list',
    op: historyH,
    response: onBody((p) => isHistory(p, 'th'), (b) => {
      editHistory(b, (p) => {
        for (const w of p.body.windows) for (const bl of w.blocks) {
          const i = bl.entries.findIndex((e) => e.version === 3 && new TextDecoder().decode(e.key) === 'th');
          if (i >= 0) bl.entries.splice(i, 1);
        }
        p.values.splice(p.values.length - 5, 1);
      });
      b.entries = b.entries.filter((e: { version: number }) => e.version !== 3);
    }),
    reasons: ['PROOF_SIZE', 'ROOT_MISMATCH'],
  },
  { name: 'history: value inside the proof rewritten', op: historyH, response: onBody((p) => isHistory(p, 'th'), (b) => editHistory(b, (p) => (p.values[0] = new TextEncoder().encode('evil')))), reasons: ['VALUE_MISMATCH'] },
  { name: 'history: bound lowered to hide the tail', op: historyH, response: onBody((p) => isHistory(p, 'th'), (b) => editHistory(b, (p) => (p.bound = 4))), reasons: ['UNEXPECTED_ELEMENT', 'HISTORY_BOUND'] },
  // --- proof bytes -------------------------------------------------------------------------------
  {
    name: 'get: one byte of the proof encoding flipped',
    op: getA,
    response: onBody((p) => isGetProof(p, 'ta'), (b) => {
      const bytes = fromBase64Url(b.proof);
      bytes[Math.floor(bytes.length / 2)] ^= 0x40;
      b.proof = toBase64Url(bytes);
    }),
    reasons: ['MALFORMED_ENCODING', 'ROOT_MISMATCH', 'BAD_SIGNATURE', 'VALUE_MISMATCH', 'MALFORMED_INPUT', 'ENTRY_ORDER'],
  },
  { name: 'get: proof truncated', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => (b.proof = b.proof.slice(0, 40))), reasons: ['MALFORMED_ENCODING'] },
  { name: 'get: body truncated mid-JSON', op: getA, response: (_m, p, res) => (isGetProof(p, 'ta') ? { ...res, raw: Buffer.from(JSON.stringify(res.body)).subarray(0, 60) } : undefined), reasons: ['MALFORMED_ENCODING'] },
  { name: 'history: body truncated mid-JSON', op: historyH, response: (_m, p, res) => (isHistory(p, 'th') ? { ...res, raw: Buffer.from(JSON.stringify(res.body)).subarray(0, 60) } : undefined), reasons: ['MALFORMED_ENCODING'] },
  {
    name: 'checkpoint: body truncated mid-JSON',
    op: latest,
    response: (_m, p, res) => (p === '/v1/checkpoints/latest' ? { ...res, raw: Buffer.from(JSON.stringify(res.body)).subarray(0, 30) } : undefined),
    reasons: ['MALFORMED_ENCODING'],
  },
  {
    name: 'checkpoint: inclusion body truncated mid-JSON',
    op: latest,
    response: (_m, p, res) => (/^\/v1\/checkpoints\/\d+$/.test(p) ? { ...res, raw: Buffer.from(JSON.stringify(res.body)).subarray(0, 50) } : undefined),
    reasons: ['MALFORMED_ENCODING'],
  },
  { name: 'get: checkpoint inclusion path altered', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (p.certificate.inclusion[0] = flip(p.certificate.inclusion[0])))), reasons: ['ROOT_MISMATCH'] },
  { name: 'get: table descriptor root altered', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (p.body.descriptors[0].tableRoot = flip(p.body.descriptors[0].tableRoot)))), reasons: ['ROOT_MISMATCH'] },
  { name: 'get: checkpoint masterRoot altered', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (p.certificate.checkpoint.masterRoot = flip(p.certificate.checkpoint.masterRoot)))), reasons: ['ROOT_MISMATCH'] },
  // --- signatures and heads ------------------------------------------------------------------
  { name: 'get: certificate signature altered', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (p.certificate.signatures[0].signature = flip(p.certificate.signatures[0].signature, 10)))), reasons: ['BAD_SIGNATURE'] },
  { name: 'get: certificate signatures stripped', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (p.certificate.signatures = []))), reasons: ['MISSING_SIGNATURE'] },
  { name: 'get: signed head root forged', op: getA, response: onBody((p) => isGetProof(p, 'ta'), (b) => editGet(b, (p) => (p.certificate.head.root = flip(p.certificate.head.root)))), reasons: ['BAD_SIGNATURE'] },
  { name: 'checkpoint: signature altered', op: latest, response: onBody((p) => p === '/v1/checkpoints/latest', (b) => (b.signatures[0].signature = toBase64Url(flip(fromBase64Url(b.signatures[0].signature), 3)))), reasons: ['BAD_SIGNATURE'] },
  {
    name: 'checkpoint: signed by an untrusted key',
    op: latest,
    response: onBody((p) => p === '/v1/checkpoints/latest', (b) => (b.signatures[0].publicKey = toBase64Url(flip(fromBase64Url(b.signatures[0].publicKey), 31)))),
    reasons: ['UNTRUSTED_KEY'],
  },
  { name: 'checkpoint: masterRoot altered in /latest', op: latest, response: onBody((p) => p === '/v1/checkpoints/latest', (b) => (b.checkpoint.masterRoot = toBase64Url(flip(fromBase64Url(b.checkpoint.masterRoot))))), reasons: ['RESPONSE_MISMATCH'] },
  {
    name: 'checkpoint: masterRoot altered in /latest and /{index}',
    op: latest,
    response: onBody((p) => p.startsWith('/v1/checkpoints/') && p !== '/v1/checkpoints/consistency', (b) => (b.checkpoint.masterRoot = toBase64Url(flip(fromBase64Url(b.checkpoint.masterRoot))))),
    reasons: ['ROOT_MISMATCH'],
  },
  // --- replays and consistency -------------------------------------------------------------------
  {
    name: 'checkpoint: an older /checkpoints/latest replayed',
    before: latest,
    op: latest,
    response: (_m, p, res) => (p === '/v1/checkpoints/latest' ? { ...res, body: proxy.seen.get('/v1/checkpoints/latest')![0] } : undefined),
    reasons: ['ROLLBACK'],
  },
  {
    name: 'get: an older proof replayed',
    before: latest,
    op: getA,
    response: (_m, p, res) => (isGetProof(p, 'ta') ? { ...res, body: proxy.seen.get('/v1/kv/ta/proof')![0] } : undefined),
    reasons: ['ROLLBACK'],
  },
  {
    name: 'checkpoint: consistency proof altered',
    // Trust the older head first (a genuine replay), then meet the newest with a bad proof.
    before: async (c) => {
      const old = proxy.seen.get('/v1/checkpoints/latest')![0] as Body;
      const head = { size: old.head.size as number, root: fromBase64Url(old.head.root) };
      const sigs = old.signatures.map((x: Body) => ({ publicKey: fromBase64Url(x.publicKey), signature: fromBase64Url(x.signature) }));
      await c.trust.exclusive(() => c.trust.accept(head, sigs, { consistency: async () => [] }));
      expect((await c.trust.trustedHead())?.size).toBe(1);
    },
    op: latest,
    response: onBody((p) => p.startsWith('/v1/checkpoints/consistency'), (b) => (b.proof = b.proof.map((h: string) => toBase64Url(flip(fromBase64Url(h)))))),
    reasons: ['FORK'],
  },
];

describe('tampering proxy', () => {
  it('the untouched path verifies', async () => {
    const c = client();
    const cp = await c.checkpoint();
    expect(cp.head.size).toBeGreaterThanOrEqual(3);
    const g = await c.verifiedGet('ta');
    expect(new TextDecoder().decode(g.value)).toBe('a4');
    const h = await c.verifiedHistory('th');
    expect(h.entries.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(h.entries[6].kind).toBe('delete');
  });

  for (const tc of cases) {
    it(`catches: ${tc.name}`, async () => {
      const c = client();
      proxy.hooks = {};
      if (tc.before) await tc.before(c);
      const trustedBefore = await c.trust.trustedHead();
      const error = await thrownThrough(proxy, { path: tc.path, response: tc.response }, () => tc.op(c));
      expect(error).toBeInstanceOf(VerificationError);
      if (process.env.TAMPER_DEBUG) console.log(tc.name, '->', (error as VerificationError<string>).reason, (error as Error).message);
      expect(tc.reasons).toContain((error as VerificationError<string>).reason);
      // The trusted state did not move: every check runs before a head is accepted.
      expect(await c.trust.trustedHead()).toEqual(trustedBefore);
      // The same call, untouched, verifies.
      await expect(tc.op(c)).resolves.toBeDefined();
    });
  }
});
