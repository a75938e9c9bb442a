/**
 * The SDK's conditional writes and appends against a real node: `put` with `ifVersion` /
 * `ifAbsent`, `delete` with `ifVersion`, batch op conditions and appends, the typed
 * `CONDITION_FAILED` error with the current version, `verifiedPut` with a condition, and appends
 * from several clients at once keeping every chunk exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofKVClient, ProofKVHttpError } from '../../client-sdk/index.js';
import { rejection } from './fake_node.js';
import { startServer, type ServerProc } from './helpers.js';

let server: ServerProc;
let c: ProofKVClient;
const td = new TextDecoder();
const newClient = () => new ProofKVClient({ endpoints: [server.url], trust: { tofu: true }, onWarning: () => {} });

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
  c = newClient();
}, 40_000);
afterAll(async () => {
  await server?.stop();
});

async function conditionFailed(p: Promise<unknown>): Promise<ProofKVHttpError> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(ProofKVHttpError);
  expect((err as ProofKVHttpError).code).toBe('CONDITION_FAILED');
  expect((err as ProofKVHttpError).status).toBe(409);
  return err as ProofKVHttpError;
}

describe('SDK conditional writes', () => {
  it('put ifAbsent / ifVersion, delete ifVersion: CONDITION_FAILED carries the current version', async () => {
    expect((await c.put('k', 'a', { ifAbsent: true })).version).toBe(1);
    const e1 = await conditionFailed(c.put('k', 'b', { ifAbsent: true }));
    expect([e1.currentVersion, e1.absent]).toEqual([1, false]);
    const e2 = await conditionFailed(c.put('k', 'b', { ifVersion: 7 }));
    expect(e2.currentVersion).toBe(1);
    expect((await c.put('k', 'b', { ifVersion: 1 })).version).toBe(2);
    const e3 = await conditionFailed(c.delete('k', { ifVersion: 1 }));
    expect(e3.currentVersion).toBe(2);
    expect((await c.delete('k', { ifVersion: 2 })).version).toBe(3);
    const e4 = await conditionFailed(c.put('k', 'c', { ifVersion: 2 }));
    expect([e4.currentVersion, e4.absent]).toEqual([3, true]);
    expect((await c.put('k', 'c', { ifAbsent: true })).version).toBe(4);
    expect(td.decode((await c.get('k'))!.value)).toBe('c');
    // Bad conditions are refused before anything is sent.
    await expect(c.put('k', 'x', { ifVersion: 1, ifAbsent: true })).rejects.toThrow(TypeError);
    await expect(c.put('k', 'x', { ifVersion: -1 })).rejects.toThrow(RangeError);
  });

  it('batch: conditions and appends, all or nothing', async () => {
    await c.put('bk', 'base');
    const err = await conditionFailed(
      c.batch([
        { op: 'append', key: 'bk', value: '+1' },
        { op: 'put', key: 'bn', value: 'n', ifAbsent: true },
        { op: 'put', key: 'bk', value: 'x', ifVersion: 1 },
      ]),
    );
    expect(err.currentVersion).toBe(2);
    expect(err.problem.index).toBe(2);
    expect(td.decode((await c.get('bk'))!.value)).toBe('base');
    expect(await c.get('bn')).toBeUndefined();
    const r = await c.batch([
      { op: 'append', key: 'bk', value: '+1' },
      { op: 'put', key: 'bn', value: 'n', ifAbsent: true },
      { op: 'delete', key: 'bn', ifVersion: 1 },
      { op: 'append', key: 'bk', value: '+2', ifVersion: 2 },
    ]);
    expect(r.map((x) => x.version)).toEqual([2, 1, 2, 3]);
    expect(td.decode((await c.get('bk'))!.value)).toBe('base+1+2');
  });

  it('verifiedPut passes its condition and proves the written version', async () => {
    const v = await c.verifiedPut('vk', 'one', { ifAbsent: true });
    expect(v).toMatchObject({ kind: 'put', version: 1, newest: true });
    await conditionFailed(c.verifiedPut('vk', 'two', { ifAbsent: true }));
    expect((await c.verifiedPut('vk', 'two', { ifVersion: 1 })).version).toBe(2);
    const d = await c.verifiedDelete('vk', { ifVersion: 2 });
    expect(d).toMatchObject({ kind: 'delete', version: 3 });
  });

  it('appends from several clients keep every chunk exactly once', async () => {
    const clients = Array.from({ length: 5 }, newClient);
    const each = 10;
    await Promise.all(clients.map(async (cl, i) => {
      for (let j = 0; j < each; j++) await cl.append('log', `${i}.${j};`);
    }));
    const e = (await c.get('log'))!;
    expect(e.version).toBe(clients.length * each);
    const chunks = td.decode(e.value).split(';').filter((x) => x);
    expect(chunks.sort()).toEqual(clients.flatMap((_, i) => Array.from({ length: each }, (_, j) => `${i}.${j}`)).sort());
    const err = await conditionFailed(c.append('log', 'x', { ifAbsent: true }));
    expect(err.currentVersion).toBe(clients.length * each);
  });
});
