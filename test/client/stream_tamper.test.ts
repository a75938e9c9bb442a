/**
 * Tampering over the stream: a TCP proxy between the SDK (over streamFetch) and a real node
 * rewrites answer frames — flips a byte of a value, of a proof, swaps the ids of two answers in
 * flight, replays an older answer under the current id, injects an old answer frame under its old
 * id. The SDK must refuse each with the typed verification error HTTP tampering gets (or, when the
 * framing itself is broken, a network error), never return a forged value, and its trusted state
 * must not move; the same call, untouched, then verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, ProofKVNetworkError, toBase64Url, VerificationError } from '../../client-sdk/index.js';
import { StreamOp, type StreamAnswer } from '../../client-sdk/stream_codec.js';
import { streamFetch, type StreamFetch } from '../../client-sdk/stream_fetch.js';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import type { GetProof } from '../../proofs/lsm_proof.js';
import { startServer, type ServerProc } from './helpers.js';
import { StreamTamperProxy, type Exchange } from './stream_helpers.js';

let server: ServerProc;
let proxy: StreamTamperProxy;
let sf: StreamFetch;
let publicKey: Uint8Array;
/** An answer to the proof of `ta` at an older checkpoint (for the replays). */
let oldProof: Exchange;

type Body = Record<string, any>;
const utf8 = (s: string) => new TextEncoder().encode(s);
const keyOf = (x: Exchange) => new TextDecoder().decode(x.request.key);
const isProof = (x: Exchange, key: string) => x.request?.op === StreamOp.PROOF && keyOf(x) === key && x.answer.status === 200;

function client(): ProofKVClient {
  return new ProofKVClient({
    endpoints: [proxy.url],
    trust: { publicKeys: [publicKey], quorum: 1 },
    stateStore: new MemoryStateStore(),
    retries: 0,
    fetch: sf,
  });
}

/** The answer with its JSON body rewritten by `f`. */
function withJson(a: StreamAnswer, f: (b: Body) => void): StreamAnswer {
  const b = JSON.parse(new TextDecoder().decode(a.body)) as Body;
  f(b);
  return { ...a, body: utf8(JSON.stringify(b)) };
}

function editProof(b: Body, f: (p: GetProof) => void): void {
  const p = getProofCodec.decode(fromBase64Url(b.proof));
  f(p);
  b.proof = toBase64Url(getProofCodec.encode(p));
}

/** Runs `op` with `onAnswer` installed; returns what it threw (fails the test if it returned). */
async function thrown(onAnswer: StreamTamperProxy['onAnswer'], op: () => Promise<unknown>): Promise<unknown> {
  proxy.onAnswer = onAnswer;
  try {
    const r = await op();
    throw new Error(`the tampered call was accepted: ${JSON.stringify(r, (_k, v) => (v instanceof Uint8Array ? new TextDecoder().decode(v) : v))}`);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('the tampered call was accepted')) throw err;
    return err;
  } finally {
    proxy.onAnswer = (x, forward) => forward(x.answer);
  }
}

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0'] });
  proxy = await new StreamTamperProxy(server.url).start();
  sf = streamFetch();
  const direct = new ProofKVClient({ endpoints: [server.url], trust: { tofu: true }, onWarning: () => {} });
  publicKey = fromBase64Url((await direct.status()).publicKey as string);
  for (let i = 1; i <= 3; i++) await direct.put('ta', `a${i}`);
  for (let i = 1; i <= 2; i++) await direct.put('tb', `b${i}`);
  await direct.createCheckpoint();
  // An answer at this checkpoint, through the proxy, for the replays; then move on.
  await client().verifiedGet('ta');
  oldProof = proxy.seen.find((x) => isProof(x, 'ta'))!;
  expect(oldProof).toBeDefined();
  await direct.put('ta', 'a4');
  await direct.createCheckpoint();
});

afterAll(async () => {
  sf?.close();
  await proxy?.close();
  await server?.stop();
});

interface Case {
  name: string;
  /** Rewrites the answers of the tampered call. */
  onAnswer: StreamTamperProxy['onAnswer'];
  reasons: string[];
}

const rewrite = (key: string, f: (a: StreamAnswer) => StreamAnswer): StreamTamperProxy['onAnswer'] => (x, forward) => forward(isProof(x, key) ? f(x.answer) : x.answer);

const cases: Case[] = [
  { name: 'a byte of the entry value flipped', onAnswer: rewrite('ta', (a) => withJson(a, (b) => (b.entry.value = toBase64Url(utf8('a5'))))), reasons: ['VALUE_MISMATCH'] },
  {
    name: 'a byte of the value inside the proof flipped',
    onAnswer: rewrite('ta', (a) => withJson(a, (b) => editProof(b, (p) => (p.value![0] ^= 0x01)))),
    reasons: ['VALUE_MISMATCH'],
  },
  {
    name: 'a byte of the value flipped in both entry and proof',
    onAnswer: rewrite('ta', (a) =>
      withJson(a, (b) => {
        const v = fromBase64Url(b.entry.value);
        v[1] ^= 0x01;
        b.entry.value = toBase64Url(v);
        editProof(b, (p) => (p.value = v));
      }),
    ),
    reasons: ['VALUE_MISMATCH'],
  },
  {
    name: 'a byte in the middle of the proof encoding flipped',
    onAnswer: rewrite('ta', (a) =>
      withJson(a, (b) => {
        const bytes = fromBase64Url(b.proof);
        bytes[Math.floor(bytes.length / 2)] ^= 0x40;
        b.proof = toBase64Url(bytes);
      }),
    ),
    reasons: ['MALFORMED_ENCODING', 'ROOT_MISMATCH', 'BAD_SIGNATURE', 'VALUE_MISMATCH', 'MALFORMED_INPUT', 'ENTRY_ORDER'],
  },
  {
    name: 'the frame body cut short (its length fixed to match)',
    onAnswer: rewrite('ta', (a) => ({ ...a, body: a.body.subarray(0, 60) })),
    reasons: ['MALFORMED_ENCODING'],
  },
  {
    name: 'an older answer replayed under the current id',
    onAnswer: rewrite('ta', (a) => ({ ...a, body: oldProof.answer.body, headers: oldProof.answer.headers })),
    reasons: ['ROLLBACK'],
  },
];

describe('tampering stream proxy', () => {
  it('the untouched path verifies over the stream', async () => {
    const c = client();
    const n = sf.stats().streamed;
    const g = await c.verifiedGet('ta');
    expect(new TextDecoder().decode(g.value)).toBe('a4');
    expect(sf.stats().streamed).toBe(n + 1);
  });

  for (const tc of cases) {
    it(`catches: ${tc.name}`, async () => {
      const c = client();
      await c.checkpoint();
      const trustedBefore = await c.trust.trustedHead();
      const err = await thrown(tc.onAnswer, () => c.verifiedGet('ta'));
      expect(err).toBeInstanceOf(VerificationError);
      expect(tc.reasons).toContain((err as VerificationError<string>).reason);
      expect(await c.trust.trustedHead()).toEqual(trustedBefore);
      expect(new TextDecoder().decode((await c.verifiedGet('ta')).value)).toBe('a4');
    });
  }

  it('catches: the ids of two answers in flight swapped (each call gets the other key\'s proof)', async () => {
    const ca = client();
    const cb = client();
    await ca.checkpoint();
    await cb.checkpoint();
    let held: Exchange | undefined;
    const onAnswer: StreamTamperProxy['onAnswer'] = (x, forward) => {
      if (!(isProof(x, 'ta') || isProof(x, 'tb'))) return forward(x.answer);
      if (!held) {
        held = x;
        return;
      }
      forward({ ...x.answer, id: held.answer.id });
      forward({ ...held.answer, id: x.answer.id });
    };
    proxy.onAnswer = onAnswer;
    let results: PromiseSettledResult<unknown>[];
    try {
      results = await Promise.allSettled([ca.verifiedGet('ta'), cb.verifiedGet('tb')]);
    } finally {
      proxy.onAnswer = (x, forward) => forward(x.answer);
    }
    expect(held).toBeDefined();
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(VerificationError);
      // Which check trips first depends on the tables' layout (how many level-0 windows a proof has).
      expect(['UNEXPECTED_ELEMENT', 'WINDOW_NOT_BRACKETING', 'RESPONSE_MISMATCH', 'MISSING_WINDOW']).toContain((err as VerificationError<string>).reason);
    }
    expect(new TextDecoder().decode((await ca.verifiedGet('ta')).value)).toBe('a4');
    expect(new TextDecoder().decode((await cb.verifiedGet('tb')).value)).toBe('b2');
  });

  it('catches: an old answer frame injected under its old id (not in flight): the connection fails, nothing is accepted', async () => {
    const c = client();
    await c.checkpoint();
    const trustedBefore = await c.trust.trustedHead();
    const opened = sf.stats().opened;
    let current = 0;
    const err = await thrown((x, forward) => {
      if (isProof(x, 'ta')) {
        current = x.answer.id;
        forward(oldProof.answer);
      }
      forward(x.answer);
    }, () => c.verifiedGet('ta'));
    // The old id is not the one in flight (ids count up on a connection).
    expect(current).not.toBe(0);
    expect(current).not.toBe(oldProof.answer.id);
    expect(err).toBeInstanceOf(ProofKVNetworkError);
    const cause = (err as ProofKVNetworkError).cause as TypeError;
    expect((cause.cause as { code?: string }).code).toBe('UNKNOWN_ID');
    expect(await c.trust.trustedHead()).toEqual(trustedBefore);
    // A new connection, and the untouched call verifies.
    expect(new TextDecoder().decode((await c.verifiedGet('ta')).value)).toBe('a4');
    expect(sf.stats().opened).toBe(opened + 1);
  });
});
