/**
 * Through a real node and the rewriting proxy: `verifiedPut` / `verifiedDelete` prove this
 * request's write (a swallowed, replayed, re-keyed or re-versioned write is `WRITE_NOT_PROVEN`,
 * a newer write is reported as `newest: false`); concurrent calls on one client never turn honest
 * answers into `ROLLBACK`; and a compromised signer (the node's own key, in the proxy) cannot
 * make the client accept a broken checkpoint chain (`CHAIN_MISMATCH`). Every failure leaves the
 * trusted state where it was, and the honest path then verifies.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, ProofKVHttpError, toBase64Url, VerificationError, type AnyReason } from '../../client-sdk/index.js';
import { parseCheckpoint } from '../../client-sdk/wire.js';
import { signHead, type Checkpoint, type KeyPair } from '../../proofs/checkpoint.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import { rejection } from './fake_node.js';
import { forgedSuccessor, RewritingProxy, servedLogHooks, startServer, type ServerProc } from './helpers.js';

let server: ServerProc;
let proxy: RewritingProxy;
let direct: ProofKVClient;
let publicKey: Uint8Array;

function client(endpoint = proxy.url): ProofKVClient {
  return new ProofKVClient({ endpoints: [endpoint], trust: { publicKeys: [publicKey], quorum: 1 }, stateStore: new MemoryStateStore(), retries: 0 });
}

type Body = Record<string, any>;
const isPut = (m: string, p: string, key: string) => m === 'PUT' && p.split('?')[0] === `/v1/kv/${key}`;

/** Runs `op` with the proxy's hooks set, and checks it fails with one of `reasons` without moving the trusted head back. */
async function expectFailure(c: ProofKVClient, op: () => Promise<unknown>, reasons: AnyReason[]): Promise<VerificationError<string>> {
  const before = await c.trust.trustedHead();
  let err: unknown;
  try {
    err = await rejection(op());
  } finally {
    proxy.hooks = {};
  }
  expect(err).toBeInstanceOf(VerificationError);
  expect(reasons).toContain((err as VerificationError<string>).reason);
  // The trusted head is where it was, or moved only to the node's real latest head (a verified
  // write first verifies its baseline and the checkpoint it asks for): never to anything tampered.
  const after = await c.trust.trustedHead();
  const real = ((await (await fetch(`${server.url}/v1/checkpoints/latest`)).json()) as Body).head;
  const sameAs = (h: { size: number; root: Uint8Array } | undefined) => h !== undefined && h.size === after!.size && toBase64Url(h.root) === toBase64Url(after!.root);
  expect(sameAs(before) || sameAs({ size: real.size, root: fromBase64Url(real.root) })).toBe(true);
  return err as VerificationError<string>;
}

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0'] });
  proxy = await new RewritingProxy(server.url).start();
  direct = new ProofKVClient({ endpoints: [server.url], trust: { tofu: true }, onWarning: () => {} });
  publicKey = fromBase64Url((await direct.status()).publicKey as string);
  await direct.put('seed', 'x');
  await direct.createCheckpoint();
});

afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

describe('verifiedPut and verifiedDelete prove this request', () => {
  it('the honest path: newest, above the baseline, at the asked version', async () => {
    const c = client();
    const r = await c.verifiedPut('hp', 'one');
    expect(r).toMatchObject({ kind: 'put', version: 1, newest: true });
    expect(r.seq).toBeGreaterThan(r.baselineSeq);
    expect(r.checkpoint.seq).toBeGreaterThanOrEqual(r.seq);
    const v = await c.verifiedPut('hp', 'two', { version: 50 });
    expect(v).toMatchObject({ version: 50, newest: true });
    expect(v.baselineSeq).toBeGreaterThanOrEqual(r.seq);
    const d = await c.verifiedDelete('hp');
    expect(d).toMatchObject({ kind: 'delete', version: 51, newest: true });
    expect((await c.trust.trustedCheckpoint())?.index).toBe(d.checkpoint.index);
  });

  it('a swallowed PUT answered with an older write of the same value is WRITE_NOT_PROVEN', async () => {
    const c = client();
    const old = await c.verifiedPut('sw', 'same');
    proxy.hooks = {
      path: (m, p) => (isPut(m, p, 'sw') ? '/v1/kv/sw-sink' : p),
      response: (m, p, res) => (isPut(m, p, 'sw') ? { ...res, body: { version: old.version, seq: old.seq, time: old.time } } : undefined),
    };
    const err = await expectFailure(c, () => c.verifiedPut('sw', 'same'), ['WRITE_NOT_PROVEN']);
    expect(err.message).toContain('baseline');
    expect((await c.verifiedPut('sw', 'same')).version).toBe(old.version + 1);
  });

  it('rewritten idempotency headers that make the node replay an older result are WRITE_NOT_PROVEN', async () => {
    const c = client();
    let first: Record<string, string> | undefined;
    proxy.hooks = { request: (m, p, req) => void (isPut(m, p, 'rp') && (first = { ...req.headers })) };
    await c.verifiedPut('rp', 'same');
    expect(first?.['proofkv-request-seq']).toBeDefined();
    const replay = (m: string, p: string, req: { headers: Record<string, string> }) => {
      if (!isPut(m, p, 'rp')) return;
      req.headers['proofkv-client-id'] = first!['proofkv-client-id'];
      req.headers['proofkv-request-seq'] = first!['proofkv-request-seq'];
    };
    let replayed = false;
    proxy.hooks = { request: replay, response: (m, p, res) => void (isPut(m, p, 'rp') && (replayed = res.headers['proofkv-replayed'] === 'true')) };
    await expectFailure(c, () => c.verifiedPut('rp', 'same'), ['WRITE_NOT_PROVEN']);
    expect(replayed).toBe(true);
    // With another value the node itself refuses the reused pair.
    proxy.hooks = { request: replay };
    const err = await rejection(c.verifiedPut('rp', 'different'));
    proxy.hooks = {};
    expect(err).toBeInstanceOf(ProofKVHttpError);
    expect(err).toMatchObject({ status: 422, code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await c.verifiedPut('rp', 'different')).toMatchObject({ newest: true });
  });

  it('an explicit version the node never got is WRITE_NOT_PROVEN (version 5000 asked, 1 written)', async () => {
    const c = client();
    proxy.hooks = {
      request: (m, p, req) => {
        if (!isPut(m, p, 'ev')) return;
        const b = JSON.parse(req.body!.toString('utf8')) as Body;
        delete b.version;
        req.body = Buffer.from(JSON.stringify(b));
      },
    };
    const err = await expectFailure(c, () => c.verifiedPut('ev', 'v', { version: 5000 }), ['WRITE_NOT_PROVEN']);
    expect(err.message).toContain('asked 5000');
    expect(await c.verifiedPut('ev', 'v', { version: 5000 })).toMatchObject({ version: 5000, newest: true });
  });

  it('a PUT redirected to another key is WRITE_NOT_PROVEN', async () => {
    const c = client();
    proxy.hooks = { path: (m, p) => (isPut(m, p, 'rk') ? '/v1/kv/rk-other' : p) };
    await expectFailure(c, () => c.verifiedPut('rk', 'v'), ['WRITE_NOT_PROVEN']);
    expect(await c.verifiedPut('rk', 'v')).toMatchObject({ version: 1, newest: true });
  });

  it('a value rewritten on the way is WRITE_NOT_PROVEN', async () => {
    const c = client();
    proxy.hooks = {
      request: (m, p, req) => {
        if (isPut(m, p, 'vr')) req.body = Buffer.from(JSON.stringify({ value: toBase64Url(new TextEncoder().encode('evil')) }));
      },
    };
    await expectFailure(c, () => c.verifiedPut('vr', 'good'), ['WRITE_NOT_PROVEN']);
  });

  it('a newer write that lands before the checkpoint is reported plainly: newest false, with the newer version', async () => {
    const c = client();
    proxy.hooks = {
      response: async (m, p) => {
        if (isPut(m, p, 'nw')) await direct.put('nw', 'later');
      },
    };
    const r = await c.verifiedPut('nw', 'mine');
    proxy.hooks = {};
    expect(r).toMatchObject({ version: 1, newest: false, newer: { version: 2, kind: 'put' } });
    expect(r.newer!.seq).toBeGreaterThan(r.seq);
  });

  it('a swallowed DELETE answered with an older tombstone is WRITE_NOT_PROVEN', async () => {
    const c = client();
    await c.verifiedPut('dl', 'v');
    const old = await c.verifiedDelete('dl');
    await c.verifiedPut('dl', 'back');
    proxy.hooks = {
      path: (m, p) => (m === 'DELETE' && p.startsWith('/v1/kv/dl') ? '/v1/kv/dl-sink' : p),
      response: (m, p, res) => (m === 'DELETE' && p.startsWith('/v1/kv/dl') ? { ...res, body: { version: old.version, seq: old.seq, time: old.time } } : undefined),
    };
    await expectFailure(c, () => c.verifiedDelete('dl'), ['WRITE_NOT_PROVEN']);
    expect(await c.verifiedDelete('dl')).toMatchObject({ kind: 'delete', version: 4, newest: true });
  });
});

describe('the idempotency table', () => {
  it('the node reports its estimated bytes and clients in /metrics', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const bytes = Number(/^proofkv_idempotency_bytes (\d+)$/m.exec(text)?.[1]);
    const clients = Number(/^proofkv_idempotency_clients (\d+)$/m.exec(text)?.[1]);
    expect(clients).toBeGreaterThanOrEqual(2);
    expect(bytes).toBeGreaterThanOrEqual(clients * 1024);
    expect(bytes).toBeLessThanOrEqual(64 * 1024 * 1024);
  });
});

describe('per-request freshness', () => {
  it('an honest answer at an older head, delivered after the trusted head moved on, verifies', async () => {
    const c = client();
    await direct.put('fr', 'v1');
    await direct.createCheckpoint();
    await c.checkpoint();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let answered!: () => void;
    const fetched = new Promise<void>((resolve) => (answered = resolve));
    proxy.hooks = {
      response: async (_m, p) => {
        if (!p.startsWith('/v1/kv/fr/proof')) return;
        answered();
        await held;
      },
    };
    const slow = c.verifiedGet('fr');
    await fetched; // the node answered at head N; the answer is held
    const sizeN = (await c.trust.trustedHead())!.size;
    await direct.put('fr', 'v2');
    const moved = await c.createCheckpoint(); // the same client now trusts N + 1
    expect(moved.head.size).toBe(sizeN + 1);
    release();
    const g = await slow;
    proxy.hooks = {};
    expect(g.head.size).toBe(sizeN);
    expect(new TextDecoder().decode(g.value)).toBe('v1');
    expect((await c.trust.trustedHead())!.size).toBe(sizeN + 1); // never moved back
  });

  it('an answer older than the head when the request was sent is still ROLLBACK', async () => {
    const c = client();
    await c.verifiedGet('fr');
    const old = proxy.seen.get('/v1/kv/fr/proof')![0];
    await direct.put('fr', 'v3');
    await direct.createCheckpoint();
    await c.checkpoint();
    proxy.hooks = { response: (_m, p, res) => (p.startsWith('/v1/kv/fr/proof') ? { ...res, body: old } : undefined) };
    const before = await c.trust.trustedHead();
    await expectFailure(c, () => c.verifiedGet('fr'), ['ROLLBACK']);
    expect((await c.trust.trustedHead())!.size).toBe(before!.size);
  });

  it('many concurrent calls on one client, interleaved with checkpoints, all verify and the head only grows', async () => {
    const c = client(server.url);
    await c.checkpoint();
    const sizes: number[] = [];
    const watch = async <T extends { head: { size: number } }>(p: Promise<T>) => {
      const r = await p;
      sizes.push((await c.trust.trustedHead())!.size);
      return r;
    };
    const writer = (async () => {
      for (let i = 0; i < 8; i++) {
        await direct.put('cc', `w${i}`);
        await direct.createCheckpoint();
      }
    })();
    const calls: Promise<unknown>[] = [writer];
    for (let i = 0; i < 48; i++) {
      const op = i % 4;
      if (op === 0) calls.push(watch(c.verifiedGet('cc')));
      else if (op === 1) calls.push(watch(c.checkpoint()));
      else if (op === 2) calls.push(watch(c.verifiedHistory('cc')));
      else calls.push(watch(c.verifiedGet('seed')));
    }
    const results = await Promise.allSettled(calls);
    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]).toBeGreaterThanOrEqual(sizes[i - 1]);
  });
});

describe('the checkpoint chain, against a compromised signer', () => {
  let key: KeyPair;
  let real: Checkpoint[];

  /** The node's checkpoints 0..n-1, as served. */
  async function realCheckpoints(): Promise<Checkpoint[]> {
    const latest = (await (await fetch(`${server.url}/v1/checkpoints/latest`)).json()) as Body;
    const out: Checkpoint[] = [];
    for (let i = 0; i < latest.head.size; i++) out.push(parseCheckpoint(((await (await fetch(`${server.url}/v1/checkpoints/${i}`)).json()) as Body).checkpoint));
    return out;
  }

  /** Serves a log of `cps`, signed with the node's key, on the checkpoint routes. */
  function serveLog(cps: Checkpoint[]): void {
    proxy.hooks = servedLogHooks(cps, (head) => {
      const sig = signHead(key.privateKey, head);
      return {
        signatures: [{ publicKey: toBase64Url(sig.publicKey), signature: toBase64Url(sig.signature) }],
        // The node's own one-member set, which the (v2) checkpoints commit to.
        signers: { quorum: 1, members: [{ id: 1, publicKey: toBase64Url(key.publicKey) }] },
      };
    });
  }

  const forged = forgedSuccessor;

  beforeAll(async () => {
    key = openNodeKey(server.dataDir, { logSize: 0 }).key; // the node's existing key: a compromised signer
    expect(toBase64Url(key.publicKey)).toBe(toBase64Url(publicKey));
    real = await realCheckpoints();
  });

  const cases: { name: string; log: () => Checkpoint[]; fresh?: boolean }[] = [
    { name: 'the successor of the trusted checkpoint with a wrong prevCheckpointHash', log: () => [...real, forged(real.at(-1)!, { prevCheckpointHash: new Uint8Array(randomBytes(32)) })] },
    { name: 'the successor of the trusted checkpoint with a lower seq', log: () => [...real, forged(real.at(-1)!, { seq: real.at(-1)!.seq - 1 })] },
    {
      name: 'two checkpoints ahead, the middle one linking wrongly to the trusted one',
      log: () => {
        const bad = forged(real.at(-1)!, { prevCheckpointHash: new Uint8Array(randomBytes(32)) });
        return [...real, bad, forged(bad)];
      },
    },
    {
      name: 'first contact: the newest checkpoint does not link to its predecessor',
      fresh: true,
      log: () => [...real, forged(real.at(-1)!, { prevCheckpointHash: new Uint8Array(randomBytes(32)) })],
    },
  ];

  for (const tc of cases) {
    it(`catches: ${tc.name}`, async () => {
      const c = client();
      if (!tc.fresh) await c.checkpoint();
      const before = await c.trust.trustedHead();
      serveLog(tc.log());
      const err = await rejection(c.checkpoint());
      proxy.hooks = {};
      expect(err).toBeInstanceOf(VerificationError);
      expect((err as VerificationError<string>).reason).toBe('CHAIN_MISMATCH');
      expect(await c.trust.trustedHead()).toEqual(before);
      // The honest log verifies.
      await expect(c.checkpoint()).resolves.toBeDefined();
      await expect(c.verifiedGet('seed')).resolves.toBeDefined();
    });
  }

  it('the same forged log with correct links is accepted (the check is the link, not the forgery)', async () => {
    const c = client();
    await c.checkpoint();
    const before = (await c.trust.trustedHead())!.size;
    serveLog([...real, forged(real.at(-1)!)]);
    const cp = await c.checkpoint();
    proxy.hooks = {};
    expect(cp.head.size).toBe(before + 1);
  });
});
