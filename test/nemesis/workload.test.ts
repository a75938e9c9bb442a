/**
 * The nemesis workload: against a member that accepts connections and never answers, every
 * operation ends at its deadline as `info` (a write) and the clients go on; a seed replays the
 * same choices; errors are classified (a refused write is `fail`, an unanswered one `info`).
 * Against a real three-process cluster without faults, the recorded history passes every check
 * and holds every kind of operation, with one idempotency session per write — with the clients over
 * HTTP, and over the stream (`streamFetch()`: the hot key routes on stream connections).
 */
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofKVHttpError, ProofKVNetworkError, VerificationError } from '../../client-sdk/index.js';
import { ProcessCluster } from '../cluster/harness.js';
import { checkRun } from './check.js';
import { OP_KINDS, type OpRecord } from './history.js';
import { errorCode, failureOutcome, Workload } from './workload.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits (at most 60 s) until `w` recorded `n` operations. */
async function recorded(w: Workload, n: number): Promise<OpRecord[]> {
  const until = Date.now() + 60_000;
  while (w.history().length < n && Date.now() < until) await sleep(50);
  return w.history();
}

describe('errors', () => {
  it('a refused write is fail, an unanswered or 5xx one info; reads never info unless unanswered', () => {
    const cond = new ProofKVHttpError(409, { code: 'CONDITION_FAILED' }, 'http://a');
    const unavailable = new ProofKVHttpError(503, { code: 'UNAVAILABLE' }, 'http://a');
    const net = new ProofKVNetworkError('http://a', 3, true, new Error('x'));
    expect(failureOutcome(cond, true)).toBe('fail');
    expect(failureOutcome(new ProofKVHttpError(400, { code: 'INVALID_ARGUMENT' }, 'http://a'), true)).toBe('fail');
    expect(failureOutcome(unavailable, true)).toBe('info');
    expect(failureOutcome(new ProofKVHttpError(409, { code: 'REQUEST_SEQ_STALE' }, 'http://a'), true)).toBe('info');
    expect(failureOutcome(net, true)).toBe('info');
    expect(failureOutcome(unavailable, false)).toBe('fail');
    expect(failureOutcome(net, false)).toBe('info');
    expect(errorCode(cond)).toBe('CONDITION_FAILED');
    expect(errorCode(net)).toBe('TIMEOUT');
    expect(errorCode(new VerificationError('FORK', 'x'))).toBe('VERIFY_FORK');
  });

  it('refuses bad options', () => {
    const base = { endpoints: () => ['http://127.0.0.1:1'], publicKeys: [new Uint8Array(32)], quorum: 1, clients: 1, keys: 1, seed: 1, opTimeoutMs: 1000 };
    expect(() => new Workload({ ...base, clients: 0 })).toThrow(RangeError);
    expect(() => new Workload({ ...base, keys: 0 })).toThrow(RangeError);
    expect(() => new Workload({ ...base, quorum: 2 })).toThrow(RangeError);
    expect(() => new Workload({ ...base, opTimeoutMs: 10 })).toThrow(RangeError);
    expect(() => new Workload({ ...base, protocol: 'grpc' as 'http' })).toThrow(/protocol must be one of http, stream/);
  });
});

describe('a member that never answers', () => {
  let server: net.Server;
  let url: string;
  const sockets = new Set<net.Socket>();
  beforeAll(async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const options = () => ({ endpoints: () => [url], publicKeys: [new Uint8Array(32).fill(7)], quorum: 1, clients: 2, keys: 3, seed: 42, opTimeoutMs: 300, thinkMs: 0 });

  it('ends each operation at its deadline as info, and the clients go on', async () => {
    const w = new Workload(options());
    w.start();
    const h = await recorded(w, 6);
    await w.stop();
    expect(h.length).toBeGreaterThanOrEqual(6);
    for (const c of [0, 1]) expect(h.filter((o) => o.client === c).length).toBeGreaterThanOrEqual(2);
    for (const o of h) {
      expect(o.outcome, `${o.kind} ${o.error}`).toBe('info');
      expect(o.error).toBe('TIMEOUT');
      expect(o.ret).toBe(Infinity);
      expect(o.endpoint).toBe(url);
    }
    // Each write has its own session seq, increasing per client id.
    const writes = h.filter((o) => o.session);
    for (const c of [0, 1]) {
      const seqs = writes.filter((o) => o.client === c).map((o) => o.session!.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    }
  }, 120_000);

  it('a new member list gives a client a new SDK instance and client id, seqs from 1 again', async () => {
    let list = [url];
    const w = new Workload({ ...options(), endpoints: () => list });
    w.start();
    await recorded(w, 6);
    list = [url, url.replace('127.0.0.1', 'localhost')];
    const until = Date.now() + 60_000;
    while (!w.history().some((o) => o.session?.clientId.endsWith('-g2')) && Date.now() < until) await sleep(50);
    await w.stop();
    const ids = new Map<string, number[]>();
    for (const o of w.history()) if (o.session) ids.set(o.session.clientId, [...(ids.get(o.session.clientId) ?? []), o.session.seq]);
    expect([...ids.keys()].some((id) => id.endsWith('-g2'))).toBe(true);
    for (const seqs of ids.values()) expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  }, 120_000);

  it('stops the clients once maxOps operations are recorded, dropping none in flight', async () => {
    const w = new Workload({ ...options(), maxOps: 4 });
    w.start();
    const until = Date.now() + 60_000;
    while (!w.full && Date.now() < until) await sleep(50);
    await w.stop();
    expect(w.full).toBe(true);
    // The cap, plus at most the one operation each client had in flight when it was reached.
    expect(w.history().length).toBeGreaterThanOrEqual(4);
    expect(w.history().length).toBeLessThanOrEqual(4 + 2);
    expect(w.droppedOps).toBe(0);
  }, 120_000);

  it('replays the same choices from the same seed', async () => {
    const runs: OpRecord[][] = [];
    for (let r = 0; r < 2; r++) {
      const w = new Workload(options());
      w.start();
      await recorded(w, 6);
      await w.stop();
      runs.push(w.history());
    }
    const choices = (h: OpRecord[], c: number) => h.filter((o) => o.client === c).slice(0, 2).map((o) => [o.kind, o.key, o.value, o.ifVersion, JSON.stringify(o.ops)]);
    for (const c of [0, 1]) expect(choices(runs[1], c)).toEqual(choices(runs[0], c));
  }, 120_000);
});

// A cluster per protocol: the checks start from empty keys, and a second run's client ids would be the first's.
describe.each(['http', 'stream'] as const)('three processes without faults, clients over %s', (protocol) => {
  let cluster: ProcessCluster;
  beforeAll(async () => {
    cluster = await ProcessCluster.start(3, ['--checkpoint-interval', '300']);
  }, 120_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('records every kind of operation and the history passes every check', async () => {
    const w = new Workload({ endpoints: () => cluster.members.map((m) => m.url), publicKeys: cluster.publicKeys, quorum: 2, clients: 4, keys: 4, seed: 11, opTimeoutMs: 10_000, protocol });
    w.start();
    // Enough operations that every kind was chosen (the weights make this near certain by 400; bounded).
    const until = Date.now() + 120_000;
    while (Date.now() < until && !OP_KINDS.every((k) => w.history().some((o) => o.kind === k && o.outcome === 'ok'))) await sleep(200);
    await w.stop();
    const h = w.history();
    for (const k of OP_KINDS) expect(h.some((o) => o.kind === k && o.outcome === 'ok'), k).toBe(true);
    expect(h.some((o) => o.error === 'CONDITION_FAILED' && o.outcome === 'fail')).toBe(true);
    expect(w.trustedHeads().length).toBeGreaterThan(0);
    // Sessions: one seq per write, per client id, 1, 2, 3, …
    const byId = new Map<string, number[]>();
    for (const o of h) if (o.session) byId.set(o.session.clientId, [...(byId.get(o.session.clientId) ?? []), o.session.seq]);
    for (const seqs of byId.values()) expect(seqs).toEqual(seqs.map((_, i) => i + 1));

    const report = await checkRun(h, w.trustedHeads(), { members: cluster.members.map((m) => ({ id: m.id, url: m.url })), publicKeys: cluster.publicKeys, quorum: 2 });
    expect(report.checks.filter((c) => !c.ok), JSON.stringify(report.checks, null, 1)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['linearizable per key', 'no acknowledged write lost', 'no write applied twice', 'reads show committed data', 'no fork or rollback', 'members agree', 'verified reads verified', 'batches all or nothing']);
    expect(report.figures.acknowledgedWritesLost).toBe(0);
    expect(report.figures.acknowledgedWrites).toBeGreaterThan(0);
    // Over the stream, the hot key routes went over it and the others over HTTP; over HTTP, nothing did.
    const via = w.streamStats();
    if (protocol === 'stream') {
      const hot = h.filter((o) => o.outcome === 'ok' && ['put', 'put-if-version', 'put-if-absent', 'delete', 'get', 'get-serializable', 'verified-get'].includes(o.kind)).length;
      expect(via.streamed).toBeGreaterThanOrEqual(hot);
      expect(via.opened).toBeGreaterThanOrEqual(1);
      expect(via.http).toBeGreaterThan(0);
    } else expect(via).toEqual({ streamed: 0, http: 0, opened: 0 });
  }, 300_000);
});
