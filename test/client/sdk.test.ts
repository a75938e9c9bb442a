/**
 * Unit tests of the SDK against a scripted `fetch`: failover, leader hints, timeouts, retries with
 * the same idempotency pair, typed errors, state stores, and rollback / fork / quorum / TOFU
 * checks of checkpoints signed by a fake log.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointHash, generateKeyPair, type Checkpoint } from '../../proofs/checkpoint.js';
import { toHex } from '../../proofs/bytes.js';
import {
  BrowserStateStore,
  FileStateStore,
  fromBase64Url,
  MAX_CHAIN_LINKS,
  MemoryStateStore,
  ProofKVClient,
  ProofKVHttpError,
  ProofKVNetworkError,
  toBase64Url,
  VerificationError,
  type StateStore,
  type TrustedState,
} from '../../client-sdk/index.js';
import { FakeLog, hangUntilAborted, json, problem, recordingFetch, rejection, type Call, type Handler } from './fake_node.js';

const A = 'http://a.test:1';
const B = 'http://b.test:2';
const C = 'http://c.test:3';

function client(handler: Handler, extra: Partial<ConstructorParameters<typeof ProofKVClient>[0]> = {}) {
  const { fetch, calls } = recordingFetch(handler);
  const c = new ProofKVClient({ endpoints: [A, B], trust: { tofu: true }, onWarning: () => {}, retryDelayMs: 0, fetch, ...extra });
  return { c, calls };
}

const origin = (call: Call) => new URL(call.url).origin;

describe('transport', () => {
  it('fails over to the next endpoint on a network error, with the same client id and seq', async () => {
    const { c, calls } = client((call) => {
      if (origin(call) === A) throw new TypeError('fetch failed');
      return json(200, { version: 1, seq: 7, time: 1000 });
    });
    expect(await c.put('k', 'v')).toMatchObject({ version: 1, seq: 7 });
    expect(calls.map(origin)).toEqual([A, B]);
    expect(calls[0].headers['proofkv-client-id']).toBe(c.transport.clientId);
    expect(calls[1].headers['proofkv-client-id']).toBe(c.transport.clientId);
    expect(calls[0].headers['proofkv-request-seq']).toBe(calls[1].headers['proofkv-request-seq']);
    expect(JSON.parse(calls[1].body!)).toEqual({ value: toBase64Url(new TextEncoder().encode('v')) });
    // The next request starts at the endpoint that answered.
    await c.put('k', 'w');
    expect(origin(calls[2])).toBe(B);
    expect(Number(calls[2].headers['proofkv-request-seq'])).toBe(Number(calls[1].headers['proofkv-request-seq']) + 1);
  });

  it('retries 503 with backoff and the same idempotency pair; a new write gets the next seq', async () => {
    let n = 0;
    const { c, calls } = client(() => (++n <= 2 ? problem(503, 'UNAVAILABLE') : json(200, { version: 3, seq: 9, time: 1000 })), { endpoints: [A], retryDelayMs: 1 });
    await c.put('k', 'v', { version: 3 });
    expect(calls).toHaveLength(3);
    const pairs = new Set(calls.map((x) => `${x.headers['proofkv-client-id']}/${x.headers['proofkv-request-seq']}`));
    expect(pairs.size).toBe(1);
    await c.delete('k');
    expect(calls[3].method).toBe('DELETE');
    expect(Number(calls[3].headers['proofkv-request-seq'])).toBe(Number(calls[0].headers['proofkv-request-seq']) + 1);
  });

  it('reads carry no idempotency headers; the bearer token goes with every request', async () => {
    const { c, calls } = client(() => json(200, { key: 'aw', version: 2, seq: 5, time: 1000, kind: 'put', value: 'eA' }), { token: 's3cret' });
    const e = await c.get('k');
    expect(e?.version).toBe(2);
    expect(new TextDecoder().decode(e!.value)).toBe('x');
    expect(calls[0].headers['proofkv-client-id']).toBeUndefined();
    expect(calls[0].headers.authorization).toBe('Bearer s3cret');
  });

  it('follows a ProofKV-Leader hint on 421 to a configured endpoint (matched by origin)', async () => {
    const { c, calls } = client((call) => {
      if (origin(call) !== B) return problem(421, 'NOT_LEADER', { 'ProofKV-Leader': `${B}/some/path/` });
      return json(200, { version: 1, seq: 1, time: 1000 });
    });
    await c.put('k', 'v');
    expect(calls.map(origin)).toEqual([A, B]);
    expect(c.transport.endpoints).toEqual([A, B]);
    expect(c.transport.preferred).toBe(B);
    expect(calls[0].headers['proofkv-request-seq']).toBe(calls[1].headers['proofkv-request-seq']);
  });

  it('ignores a leader hint to an unconfigured origin: never sends there, tries the next configured endpoint', async () => {
    const { c, calls } = client((call) => {
      if (origin(call) === A) return problem(421, 'NOT_LEADER', { 'ProofKV-Leader': 'http://evil.test:9' });
      return json(200, { version: 1, seq: 1, time: 1000 });
    });
    await c.put('k', 'v');
    expect(calls.map(origin)).toEqual([A, B]);
    expect(c.transport.endpoints).toEqual([A, B]);
    expect(calls.every((x) => origin(x) !== 'http://evil.test:9')).toBe(true);
  });

  it('a follower\'s answer naming the leader is used as it is, and the next requests go to the leader\'s configured endpoint', async () => {
    const { c, calls } = client((call) => {
      if (origin(call) === A) return json(200, { version: 1, seq: 1, time: 1000 }, { 'ProofKV-Leader': `${B}/` });
      return json(200, { version: 2, seq: 2, time: 1000 });
    });
    expect((await c.put('k', 'v')).version).toBe(1);
    expect(c.transport.preferred).toBe(B);
    expect((await c.put('k', 'w')).version).toBe(2);
    expect(calls.map(origin)).toEqual([A, B]);
    // Each write was sent once: the hint moves the next request, it never resends this one.
    expect(new Set(calls.map((x) => x.headers['proofkv-request-seq'])).size).toBe(2);
  });

  it('a hint on an error answer moves the next requests too; the error is still the answer', async () => {
    const { c, calls } = client((call) => (origin(call) === A ? problem(404, 'NOT_FOUND', { 'ProofKV-Leader': B }) : json(200, { version: 1, seq: 1, time: 1000 })));
    const err = await rejection(c.put('k', 'v'));
    expect(err).toBeInstanceOf(ProofKVHttpError);
    expect(c.transport.preferred).toBe(B);
    await c.put('k', 'v');
    expect(calls.map(origin)).toEqual([A, B]);
  });

  it('a hint to an unconfigured origin, or garbage, on an ordinary answer changes nothing (attacker: a hostile member steering the token)', async () => {
    for (const hint of ['http://evil.test:9', 'not a url', '', 'javascript:alert(1)', `${B}@evil.test`]) {
      const { c, calls } = client(() => json(200, { version: 1, seq: 1, time: 1000 }, { 'ProofKV-Leader': hint }));
      await c.put('k', 'v');
      await c.put('k', 'v');
      expect(calls.map(origin)).toEqual([A, A]);
      expect(c.transport.preferred).toBe(A);
    }
  });

  it('a 421 without a hint tries the next endpoint', async () => {
    const { c, calls } = client((call) => (origin(call) === A ? problem(421, 'NOT_LEADER') : json(200, { version: 1, seq: 1, time: 1000 })));
    await c.put('k', 'v');
    expect(calls.map(origin)).toEqual([A, B]);
  });

  it('times out a hanging endpoint and fails over; all hanging gives a timed-out network error', async () => {
    const one = client((call, signal) => (origin(call) === A ? hangUntilAborted(signal) : json(200, { version: 1, seq: 1, time: 1000 })), { timeoutMs: 50 });
    await one.c.put('k', 'v');
    expect(one.calls.map(origin)).toEqual([A, B]);

    const all = client((_call, signal) => hangUntilAborted(signal), { timeoutMs: 30, retries: 2 });
    const err = await rejection(all.c.get('k'));
    expect(err).toBeInstanceOf(ProofKVNetworkError);
    expect((err as ProofKVNetworkError).timedOut).toBe(true);
    expect((err as ProofKVNetworkError).attempts).toBe(3);
    expect(all.calls.map(origin)).toEqual([A, B, A]);
  });

  it('gives up after `retries` network errors with the last cause', async () => {
    const { c, calls } = client(() => {
      throw new TypeError('connect ECONNREFUSED');
    }, { retries: 1 });
    const err = await rejection(c.put('k', 'v'));
    expect(err).toBeInstanceOf(ProofKVNetworkError);
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect((err as ProofKVNetworkError).timedOut).toBe(false);
    expect(calls).toHaveLength(2);
  });

  it('turns problem+json into ProofKVHttpError without retrying; a 404 get is undefined', async () => {
    const { c, calls } = client((call) => (call.method === 'PUT' ? problem(409, 'VERSION_NOT_INCREASING') : problem(404, 'NOT_FOUND')));
    const err = await rejection(c.put('k', 'v', { version: 1 }));
    expect(err).toBeInstanceOf(ProofKVHttpError);
    expect((err as ProofKVHttpError).status).toBe(409);
    expect((err as ProofKVHttpError).code).toBe('VERSION_NOT_INCREASING');
    expect(calls).toHaveLength(1);
    expect(await c.get('missing')).toBeUndefined();
    const exhausted = client(() => problem(503, 'UNAVAILABLE'), { retries: 1 });
    const e503 = await rejection(exhausted.c.get('k'));
    expect((e503 as ProofKVHttpError).code).toBe('UNAVAILABLE');
  });

  it('encodes binary keys in the path, dot keys as base64url, and scan bounds as base64url', async () => {
    const { c, calls } = client((call) => (new URL(call.url).pathname === '/v1/kv' ? json(200, { items: [] }) : json(200, { version: 1, seq: 1, time: 1000 })));
    await c.put(new Uint8Array([0x00, 0xff, 0x2f, 0x41]), 'v');
    await c.put('..', 'v');
    await c.put('a b/ü', 'v');
    await c.scan({ prefix: new Uint8Array([1, 2]) });
    expect(calls[0].url).toBe(`${A}/v1/kv/%00%FF%2FA`);
    expect(calls[1].url).toBe(`${A}/v1/kv/Li4?keyEncoding=base64url`);
    expect(calls[2].url).toBe(`${A}/v1/kv/a%20b%2F%C3%BC`);
    expect(calls[3].url).toBe(`${A}/v1/kv?prefix=AQI&keyEncoding=base64url`);
  });

  it('batch sends base64url ops and parses one result per op', async () => {
    const { c, calls } = client(() => json(200, { results: [{ version: 1, seq: 4, time: 1000 }, { version: 2, seq: 5, time: 1001 }] }));
    const r = await c.batch([
      { op: 'put', key: 'a', value: new Uint8Array([1]) },
      { op: 'delete', key: 'b' },
    ]);
    expect(r).toEqual([{ version: 1, seq: 4, time: 1000 }, { version: 2, seq: 5, time: 1001 }]);
    expect(JSON.parse(calls[0].body!)).toEqual({ ops: [{ op: 'put', key: 'YQ', value: 'AQ' }, { op: 'delete', key: 'Yg' }] });
    expect(calls[0].headers['proofkv-request-seq']).toBeDefined();
  });
});

describe('state stores', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'proofkv-client-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const state = (size: number): TrustedState => ({ publicKeys: ['ab'.repeat(32)], quorum: 1, head: { size, root: 'cd'.repeat(32) } });

  async function roundTrip(make: () => StateStore) {
    const s = make();
    expect(await s.load('x')).toBeUndefined();
    await s.save('x', state(3));
    await s.save('y', state(5));
    const again = make();
    expect((await again.load('x'))?.head?.size).toBe(3);
    expect((await again.load('y'))?.head?.size).toBe(5);
    // Loaded state is a copy: mutating it does not change the store.
    const loaded = (await again.load('x'))!;
    loaded.head!.size = 99;
    expect((await again.load('x'))?.head?.size).toBe(3);
  }

  it('MemoryStateStore keeps states per id', async () => {
    const m = new MemoryStateStore();
    await roundTrip(() => m);
  });

  it('FileStateStore persists atomically across instances and creates directories', async () => {
    const file = join(dir, 'nested', 'trust.json');
    await roundTrip(() => new FileStateStore(file));
    const doc = JSON.parse(await readFile(file, 'utf8'));
    expect(doc.format).toBe('proofkv-trust-v1');
    expect(Object.keys(doc.states).sort()).toEqual(['x', 'y']);
    expect((await readdir(join(dir, 'nested'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('FileStateStore refuses a file that is not a trust document', async () => {
    const file = join(dir, 'garbage.json');
    await writeFile(file, '{"hello":1}');
    await expect(new FileStateStore(file).load('x')).rejects.toThrow(/proofkv-trust-v1/);
  });

  it('BrowserStateStore uses the given storage item', async () => {
    const items = new Map<string, string>();
    const storage = { getItem: (k: string) => items.get(k) ?? null, setItem: (k: string, v: string) => void items.set(k, v) };
    await roundTrip(() => new BrowserStateStore('proofkv-trust', storage));
    expect(JSON.parse(items.get('proofkv-trust')!).format).toBe('proofkv-trust-v1');
  });
});

describe('checkpoint trust', () => {
  const routeTo = (log: () => FakeLog): Handler => (call) => log().route(call) ?? problem(404, 'NOT_FOUND');

  it('accepts a growing log, refuses a replayed older head (ROLLBACK), also after a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'proofkv-client-'));
    try {
      const log = new FakeLog().grow(3);
      const key = log.keys[0].publicKey;
      const store = new FileStateStore(join(dir, 'trust.json'));
      const { c } = client(routeTo(() => log), { trust: { publicKeys: [key], quorum: 1 }, stateStore: store });
      const first = await c.checkpoint();
      expect(first.head.size).toBe(3);
      expect(first.checkpoint.index).toBe(2);
      expect(first.signers.map(toHex)).toEqual([toHex(key)]);
      log.grow(4);
      const second = await c.checkpoint();
      expect(second.head.size).toBe(7);
      expect(second.previous?.size).toBe(3);
      expect((await store.load(c.trust.id))?.head?.size).toBe(7);

      log.override = { size: 3 };
      const err = await rejection(c.checkpoint());
      expect(err).toBeInstanceOf(VerificationError);
      expect((err as VerificationError).reason).toBe('ROLLBACK');
      expect((await store.load(c.trust.id))?.head?.size).toBe(7);

      // A new client on the same file remembers the trusted head.
      const restarted = client(routeTo(() => log), { trust: { publicKeys: [key], quorum: 1 }, stateStore: new FileStateStore(join(dir, 'trust.json')) });
      expect(((await rejection(restarted.c.checkpoint())) as VerificationError).reason).toBe('ROLLBACK');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names the trusted head in ProofKV-Min-Head; a member behind it answers 503 and the call moves on, no ROLLBACK', async () => {
    const log = new FakeLog().grow(3);
    const key = log.keys[0].publicKey;
    let aBehind = false;
    const { c, calls } = client((call) => {
      const min = Number(call.headers['proofkv-min-head'] ?? 0);
      // A restarted member still at size 3: it refuses a client that trusts more, as the server does.
      if (origin(call) === A && aBehind && min > 3) return problem(503, 'UNAVAILABLE');
      return log.route(call) ?? problem(404, 'NOT_FOUND');
    }, { trust: { publicKeys: [key], quorum: 1 } });
    expect((await c.checkpoint()).head.size).toBe(3);
    expect(calls[0].headers['proofkv-min-head']).toBeUndefined(); // nothing trusted yet
    log.grow(4);
    expect((await c.checkpoint()).head.size).toBe(7);
    aBehind = true;
    const before = calls.length;
    const again = await c.checkpoint();
    expect(again.head.size).toBe(7);
    const tried = calls.slice(before);
    expect(origin(tried[0])).toBe(A);
    expect(tried[0].headers['proofkv-min-head']).toBe('7');
    expect(tried.some((x) => origin(x) === B)).toBe(true);
  });

  it('detects a fork: same size with another root, or a longer log that does not extend the trusted one', async () => {
    const keys = [generateKeyPair()];
    const honest = new FakeLog(keys, 0).grow(4);
    const forked = new FakeLog(keys, 1).grow(6);
    let serving = honest;
    const { c } = client(routeTo(() => serving), { trust: { publicKeys: [keys[0].publicKey], quorum: 1 } });
    await c.checkpoint();
    forked.override = { size: 4 };
    serving = forked;
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('FORK');
    forked.override = undefined;
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('FORK');
    serving = honest;
    expect((await c.checkpoint()).head.size).toBe(4);
  });

  it('needs a quorum of distinct trusted signers and valid signatures', async () => {
    const k1 = generateKeyPair();
    const k2 = generateKeyPair();
    const log = new FakeLog([k1]).grow(2);
    const { c } = client(routeTo(() => log), { trust: { publicKeys: [k1.publicKey, k2.publicKey], quorum: 2 } });
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('QUORUM_NOT_MET');

    const both = new FakeLog([k1, k2]).grow(2);
    const ok = client(routeTo(() => both), { trust: { publicKeys: [k1.publicKey, k2.publicKey], quorum: 2 } });
    expect((await ok.c.checkpoint()).signers).toHaveLength(2);

    // A flipped signature byte.
    const bad = client((call) => {
      const res = both.route(call)!;
      if (!call.url.endsWith('/latest')) return res;
      return res.json().then((raw) => {
        const b = raw as { signatures: Array<{ signature: string }> };
        const sig = fromBase64Url(b.signatures[1].signature);
        sig[5] ^= 1;
        b.signatures[1].signature = toBase64Url(sig);
        return json(200, b);
      });
    }, { trust: { publicKeys: [k1.publicKey, k2.publicKey], quorum: 2 } });
    expect(((await rejection(bad.c.checkpoint())) as VerificationError).reason).toBe('BAD_SIGNATURE');
  });

  it('TOFU pins the first key with a warning, persists it, and refuses another key later', async () => {
    const warnings: string[] = [];
    const store = new MemoryStateStore();
    const log = new FakeLog().grow(2);
    const { c } = client(routeTo(() => log), { stateStore: store, onWarning: (m) => warnings.push(m) });
    await c.checkpoint();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(toHex(log.keys[0].publicKey));
    const saved = await store.load(c.trust.id);
    expect(saved?.tofu).toBe(true);
    expect(saved?.publicKeys).toEqual([toHex(log.keys[0].publicKey)]);
    await c.checkpoint();
    expect(warnings).toHaveLength(1);

    const impostor = new FakeLog().grow(3);
    const later = client(routeTo(() => impostor), { stateStore: store, onWarning: (m) => warnings.push(m) });
    expect(((await rejection(later.c.checkpoint())) as VerificationError).reason).toBe('UNTRUSTED_KEY');
    expect(warnings).toHaveLength(1);
  });

  it('a /{index} answer that disagrees with /latest is a RESPONSE_MISMATCH', async () => {
    const log = new FakeLog().grow(3);
    const other = new FakeLog(log.keys, 5).grow(3);
    const { c } = client((call) => (call.url.endsWith('/latest') ? log.route(call)! : other.route(call)!), {
      trust: { publicKeys: [log.keys[0].publicKey], quorum: 1 },
    });
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('RESPONSE_MISMATCH');
  });

  it('keeps the trusted checkpoint with the head; state written without it stays readable and is filled in', async () => {
    const log = new FakeLog().grow(5);
    const key = log.keys[0].publicKey;
    const store = new MemoryStateStore();
    const { c } = client(routeTo(() => log), { trust: { publicKeys: [key], quorum: 1 }, stateStore: store });
    // The old format: a head, no checkpoint.
    await store.save(c.trust.id, { publicKeys: [toHex(key)], quorum: 1, head: { size: 5, root: toHex(log.head(5).root) } });
    expect(await c.trust.trustedCheckpoint()).toBeUndefined();
    await c.checkpoint();
    expect((await store.load(c.trust.id))?.checkpoint).toMatchObject({ index: 4, seq: 40 });
    log.grow(1);
    await c.checkpoint();
    const saved = await store.load(c.trust.id);
    expect(saved?.head?.size).toBe(6);
    expect(saved?.checkpoint).toMatchObject({ index: 5, seq: 50 });
    expect(saved?.checkpoint?.prevCheckpointHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses stored state whose checkpoint is not the last of its head', async () => {
    const log = new FakeLog().grow(2);
    const store = new MemoryStateStore();
    const { c } = client(routeTo(() => log), { trust: { publicKeys: [log.keys[0].publicKey], quorum: 1 }, stateStore: store });
    await store.save(c.trust.id, {
      publicKeys: [toHex(log.keys[0].publicKey)],
      quorum: 1,
      head: { size: 2, root: toHex(log.head(2).root) },
      checkpoint: { index: 0, seq: 0, masterRoot: '00'.repeat(32) },
    });
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('STATE_MISMATCH');
  });

  it('walks the chain back to the trusted checkpoint and catches a broken link anywhere in it', async () => {
    const log = new FakeLog().grow(3);
    const { c, calls } = client(routeTo(() => log), { trust: { publicKeys: [log.keys[0].publicKey], quorum: 1 } });
    await c.checkpoint();
    log.grow(4);
    const before = calls.length;
    await c.checkpoint();
    // Inclusion of the new checkpoint (6), then its predecessors 5, 4, 3 (3 links to the trusted 2 directly).
    const fetched = calls.slice(before).map((x) => new URL(x.url).pathname).filter((p) => /^\/v1\/checkpoints\/\d+$/.test(p));
    expect(fetched).toEqual(['/v1/checkpoints/6', '/v1/checkpoints/5', '/v1/checkpoints/4', '/v1/checkpoints/3']);
    // A signed log whose checkpoint 7 does not link to 6, followed by good links.
    const bad: Checkpoint = { index: 7, seq: 70, masterRoot: new Uint8Array(32).fill(9), prevCheckpointHash: new Uint8Array(32).fill(1) };
    log.append(bad);
    log.append({ index: 8, seq: 80, masterRoot: new Uint8Array(32).fill(8), prevCheckpointHash: checkpointHash(bad) });
    const trusted = await c.trust.trustedHead();
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('CHAIN_MISMATCH');
    expect(await c.trust.trustedHead()).toEqual(trusted);
  });

  it('checks at most MAX_CHAIN_LINKS links per accepted head', async () => {
    const log = new FakeLog().grow(2);
    const { c, calls } = client(routeTo(() => log), { trust: { publicKeys: [log.keys[0].publicKey], quorum: 1 } });
    await c.checkpoint();
    log.grow(MAX_CHAIN_LINKS + 10);
    const before = calls.length;
    await c.checkpoint();
    const fetched = calls.slice(before).filter((x) => /^\/v1\/checkpoints\/\d+$/.test(new URL(x.url).pathname));
    expect(fetched).toHaveLength(1 + MAX_CHAIN_LINKS);
  });

  it('refuses a state store holding other keys for the same id', async () => {
    const log = new FakeLog().grow(1);
    const store = new MemoryStateStore();
    const { c } = client(routeTo(() => log), { trust: { publicKeys: [log.keys[0].publicKey], quorum: 1 }, stateStore: store });
    await store.save(c.trust.id, { publicKeys: ['00'.repeat(32)], quorum: 1 });
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('STATE_MISMATCH');
  });
});
