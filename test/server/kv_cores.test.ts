/**
 * The PUT and DELETE cores of `server/routes/kv.ts` (shared by the HTTP routes and the stream),
 * which are plain functions returning the proposal's promise (not async functions: fewer promise
 * hops between a write's apply and its answer). Whatever fails — a check of the request, the
 * write path refusing at once, even by throwing — comes back as a rejected promise, never as a
 * synchronous throw; nothing is proposed for a request that fails its checks; the answer is the
 * outcome's version and seq, with `ProofKV-Replayed` on a replay.
 */
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../server/context.js';
import { HttpError } from '../../server/errors.js';
import { Query } from '../../server/keys.js';
import { answerOf } from '../../server/codec.js';
import { timeWire } from '../../server/context.js';
import { kvCores, writeResultJson } from '../../server/routes/kv.js';
import type { KeyRequest } from '../../server/routes/key_request.js';
import type { WriteCommand, WriteOutcome, WritePath } from '../../server/write_path.js';

const te = new TextEncoder();

function cores(propose: (cmd: WriteCommand) => Promise<WriteOutcome>) {
  const proposed: WriteCommand[] = [];
  const writePath = {
    propose: (cmd: WriteCommand) => {
      proposed.push(cmd);
      return propose(cmd);
    },
  } as unknown as WritePath;
  const ctx = { db: {}, writePath, limits: { maxValueSize: 1024 }, metrics: {} } as unknown as AppContext;
  return { ...kvCores(ctx), proposed };
}

function request(query: string, headers: Record<string, string> = {}, body = te.encode('v')): KeyRequest {
  const h = new Map(Object.entries({ 'content-type': 'application/octet-stream', ...headers }));
  return { key: te.encode('k'), query: new Query(query), header: (name: string) => h.get(name), body, accept: 'json' };
}

/** Calls `f` and returns how it ended: a synchronous throw, or its promise's settlement. */
async function outcomeOf(f: () => Promise<unknown>): Promise<{ threw: unknown } | { rejected: unknown } | { resolved: unknown }> {
  let p: Promise<unknown>;
  try {
    p = f();
  } catch (threw) {
    return { threw };
  }
  return p.then((resolved) => ({ resolved }), (rejected: unknown) => ({ rejected }));
}

const ok: WriteOutcome = { type: 'put', result: { version: 3, seq: 41, time: 1_700_000_000_000 } };

describe('kv cores: PUT and DELETE', () => {
  it('a request that fails its checks rejects (no synchronous throw) and proposes nothing', async () => {
    const c = cores(() => Promise.resolve(ok));
    const bad: Array<[string, () => Promise<unknown>]> = [
      ['unknown query parameter', () => c.put(request('?nope=1'))],
      ['both conditions', () => c.put(request('?ifVersion=1&ifAbsent=true'))],
      ['bad version', () => c.put(request('?version=0'))],
      ['value over the limit', () => c.put(request('', {}, new Uint8Array(2048)))],
      ['half a session', () => c.put(request('', { 'proofkv-client-id': 'c1' }))],
      ['delete: ifAbsent', () => c.delete(request('?ifAbsent=true'))],
      ['delete: half a session', () => c.delete(request('', { 'proofkv-request-seq': '4' }))],
    ];
    for (const [what, f] of bad) {
      const o = await outcomeOf(f);
      expect(o, what).toHaveProperty('rejected');
      expect((o as { rejected: unknown }).rejected, what).toBeInstanceOf(HttpError);
    }
    expect(c.proposed).toEqual([]);
  });

  it('a write path that throws at once, or rejects, is a rejection of the core', async () => {
    const boom = new HttpError('UNAVAILABLE', 'refused');
    const throwing = cores(() => {
      throw boom;
    });
    expect(await outcomeOf(() => throwing.put(request('')))).toEqual({ rejected: boom });
    expect(await outcomeOf(() => throwing.delete(request('')))).toEqual({ rejected: boom });
    const rejecting = cores(() => Promise.reject(boom));
    expect(await outcomeOf(() => rejecting.put(request('')))).toEqual({ rejected: boom });
  });

  it('proposes the checked command and answers with its version and seq, ProofKV-Replayed on a replay', async () => {
    let replayed = false;
    const c = cores(() => Promise.resolve(replayed ? { ...ok, replayed: true } : ok));
    const a = await c.put(request('?ifVersion=2', { 'proofkv-client-id': 'c1', 'proofkv-request-seq': '7' }));
    expect(a.status).toBe(200);
    expect(a.headers['ProofKV-Replayed']).toBeUndefined();
    expect(JSON.parse(Buffer.from(a.body as Uint8Array).toString())).toMatchObject({ version: 3, seq: 41 });
    expect(c.proposed[0]).toMatchObject({ type: 'put', key: te.encode('k'), value: te.encode('v'), ifVersion: 2, session: { clientId: 'c1', seq: 7 } });
    replayed = true;
    const d = await c.delete(request(''));
    expect(d.headers['ProofKV-Replayed']).toBe('true');
    expect(c.proposed[1]).toMatchObject({ type: 'delete', key: te.encode('k') });
  });
});

describe('writeResultJson: the JSON answer of a write, written straight', () => {
  /** The body the generic encoder gives for the same result (what the answer was before). */
  const generic = (o: WriteOutcome): string => {
    if (o.type !== 'put' && o.type !== 'delete' && o.type !== 'append') throw new Error('not a single-key write');
    return answerOf('json', { version: o.result.version, seq: o.result.seq, ...timeWire(o.result.time) }).body as string;
  };

  it('is byte for byte what the generic JSON encoder writes, with and without an ISO time', () => {
    const times = [0, 1, 1_796_019_260_093, 8.64e15, 8.64e15 + 1, Number.MAX_SAFE_INTEGER];
    const ints = [0, 1, 41, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER];
    for (const type of ['put', 'delete', 'append'] as const) {
      for (const time of times) {
        for (const v of ints) {
          const o: WriteOutcome = { type, result: { version: v, seq: ints[(ints.indexOf(v) + 1) % ints.length], time } };
          expect(writeResultJson(o)).toBe(generic(o));
        }
      }
    }
    // The ISO form is left out past JavaScript's last date, as timeWire does.
    expect(JSON.parse(writeResultJson({ type: 'put', result: { version: 1, seq: 2, time: 8.64e15 + 1 } }))).toEqual({ version: 1, seq: 2, time: 8.64e15 + 1 });
    expect(JSON.parse(writeResultJson({ type: 'put', result: { version: 1, seq: 2, time: 0 } })).timeIso).toBe('1970-01-01T00:00:00.000Z');
  });

  it('takes the generic path for a number that is not a safe integer, and refuses other outcomes', () => {
    const odd: WriteOutcome = { type: 'put', result: { version: 2 ** 60, seq: 1.5, time: 3 } };
    expect(writeResultJson(odd)).toBe(generic(odd));
    expect(() => writeResultJson({ type: 'batch', results: [] })).toThrow('unexpected outcome');
  });

  it('is the body of a PUT answered in JSON; CBOR answers are unchanged', async () => {
    const out: WriteOutcome = { type: 'put', result: { version: 3, seq: 41, time: 1_796_019_260_093 } };
    const c = cores(() => Promise.resolve(out));
    const a = await c.put(request(''));
    expect(a.body).toBe(generic(out));
    expect(a.headers).toEqual({ Vary: 'Accept', 'Content-Type': 'application/json; charset=utf-8' });
    const b = await c.put({ ...request(''), accept: 'cbor' });
    expect(b).toEqual(answerOf('cbor', { version: 3, seq: 41, ...timeWire(1_796_019_260_093) }));
  });
});
