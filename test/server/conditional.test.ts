/**
 * Conditional writes and appends through the server: `409 CONDITION_FAILED` problem bodies with
 * the current version, batches all-or-nothing, idempotent retries that replay the first outcome
 * instead of evaluating the condition again, appends from concurrent clients, and the Raft write
 * path carrying conditions and appends through the log and replaying them deterministically.
 */
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { decodeCommand, encodeCommand, RaftWritePath } from '../../server/raft_write_path.js';
import { commandDigest, type WriteCommand } from '../../server/write_path.js';
import { b64, call, json, startServer, tmpDir, type ServerProc } from './harness.js';

const te = new TextEncoder();
const td = new TextDecoder();
const octet = (v: string | Uint8Array) => ({ body: v, headers: { 'content-type': 'application/octet-stream' } });
const session = (clientId: string, seq: number) => ({ 'ProofKV-Client-Id': clientId, 'ProofKV-Request-Seq': String(seq) });

describe('conditional writes over HTTP', () => {
  let s: ServerProc;
  beforeAll(async () => {
    s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
  }, 40_000);
  afterAll(async () => {
    await s?.stop();
  });
  const get = async (key: string) => {
    const r = await call(s.url, 'GET', `/v1/kv/${key}`);
    return r.status === 200 ? { version: r.body.version as number, value: td.decode(Buffer.from(r.body.value, 'base64url')) } : undefined;
  };

  it('PUT ifAbsent / ifVersion and DELETE ifVersion answer 409 CONDITION_FAILED with the current version', async () => {
    expect((await call(s.url, 'PUT', '/v1/kv/c1?ifAbsent=true', octet('a'))).body).toMatchObject({ version: 1 });
    const again = await call(s.url, 'PUT', '/v1/kv/c1?ifAbsent=true', octet('b'));
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toContain('application/problem+json');
    expect(again.body).toMatchObject({ code: 'CONDITION_FAILED', status: 409, key: b64('c1'), currentVersion: 1, absent: false, index: 0 });
    const stale = await call(s.url, 'PUT', '/v1/kv/c1?ifVersion=5', octet('b'));
    expect(stale.body).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 1, absent: false });
    expect(await get('c1')).toEqual({ version: 1, value: 'a' });
    expect((await call(s.url, 'PUT', '/v1/kv/c1?ifVersion=1', octet('b'))).body).toMatchObject({ version: 2 });
    expect((await call(s.url, 'DELETE', '/v1/kv/c1?ifVersion=1')).body).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 2 });
    expect((await call(s.url, 'DELETE', '/v1/kv/c1?ifVersion=2')).body).toMatchObject({ version: 3 });
    // Deleted: absent, and the tombstone's version is the current version.
    expect((await call(s.url, 'PUT', '/v1/kv/c1?ifVersion=2', octet('x'))).body).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 3, absent: true });
    expect((await call(s.url, 'PUT', '/v1/kv/c1?ifVersion=3', octet('c'))).body).toMatchObject({ version: 4 });
    expect((await call(s.url, 'DELETE', '/v1/kv/c1')).status).toBe(200);
    expect((await call(s.url, 'PUT', '/v1/kv/c1?ifAbsent=true', octet('d'))).body).toMatchObject({ version: 6 });
    // Never written: version 0, absent.
    expect((await call(s.url, 'PUT', '/v1/kv/never?ifVersion=1', octet('x'))).body).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 0, absent: true });
    expect((await call(s.url, 'PUT', '/v1/kv/never2?ifVersion=0', octet('x'))).body).toMatchObject({ version: 1 });
  });

  it('refuses malformed conditions with 400 and writes nothing', async () => {
    expect((await call(s.url, 'PUT', '/v1/kv/m?ifVersion=1&ifAbsent=true', octet('x'))).body.code).toBe('INVALID_ARGUMENT');
    expect((await call(s.url, 'PUT', '/v1/kv/m?ifVersion=-1', octet('x'))).body.code).toBe('INVALID_VERSION');
    expect((await call(s.url, 'DELETE', '/v1/kv/m?ifAbsent=true')).body.code).toBe('INVALID_ARGUMENT');
    expect((await call(s.url, 'POST', '/v1/batch', json({ ops: [{ op: 'delete', key: b64('m'), ifAbsent: true }] }))).body.code).toBe('INVALID_ARGUMENT');
    expect((await call(s.url, 'POST', '/v1/batch', json({ ops: [{ op: 'put', key: b64('m'), valueUtf8: 'x', ifAbsent: 'yes' }] }))).body.code).toBe('INVALID_ARGUMENT');
    expect((await call(s.url, 'POST', '/v1/batch', json({ ops: [{ op: 'append', key: b64('m'), valueUtf8: 'x', version: 3 }] }))).body.code).toBe('INVALID_ARGUMENT');
    expect(await get('m')).toBeUndefined();
  });

  it('a batch with one failed condition applies nothing and names the operation', async () => {
    await call(s.url, 'PUT', '/v1/kv/b1', octet('one'));
    const ops = [
      { op: 'put', key: b64('b2'), valueUtf8: 'new', ifAbsent: true },
      { op: 'append', key: b64('b1'), valueUtf8: '+x' },
      { op: 'delete', key: b64('b1'), ifVersion: 1 }, // b1 is at version 2 after the append in this batch
    ];
    const r = await call(s.url, 'POST', '/v1/batch', json({ ops }));
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: 'CONDITION_FAILED', index: 2, key: b64('b1'), currentVersion: 2, absent: false });
    expect(await get('b1')).toEqual({ version: 1, value: 'one' });
    expect(await get('b2')).toBeUndefined();
    ops[2] = { op: 'delete', key: b64('b1'), ifVersion: 2 };
    const ok = await call(s.url, 'POST', '/v1/batch', json({ ops: [...ops, { op: 'append', key: b64('b1'), valueUtf8: 'again' }] }));
    expect(ok.body.results.map((x: { version: number }) => x.version)).toEqual([1, 2, 3, 4]);
    expect(await get('b1')).toEqual({ version: 4, value: 'again' });
    expect(await get('b2')).toEqual({ version: 1, value: 'new' });
  });

  it('a retried conditional write replays its first outcome and is not evaluated again', async () => {
    await call(s.url, 'PUT', '/v1/kv/r1', octet('v1'));
    const first = await call(s.url, 'PUT', '/v1/kv/r1?ifVersion=1', { ...octet('v2'), headers: { ...octet('').headers, ...session('retry', 1) } });
    expect(first.body).toMatchObject({ version: 2, seq: expect.any(Number), time: expect.any(Number) });
    // The condition no longer holds (version is 2), but the retry gets the first success.
    const retry = await call(s.url, 'PUT', '/v1/kv/r1?ifVersion=1', { ...octet('v2'), headers: { ...octet('').headers, ...session('retry', 1) } });
    expect(retry.status).toBe(200);
    expect(retry.headers.get('ProofKV-Replayed')).toBe('true');
    expect(retry.body).toEqual(first.body);
    expect(await get('r1')).toEqual({ version: 2, value: 'v2' });
    // A failed condition is remembered too: after the key is deleted, the retry still fails.
    const failed = await call(s.url, 'PUT', '/v1/kv/r1?ifAbsent=true', { ...octet('v3'), headers: { ...octet('').headers, ...session('retry', 2) } });
    expect(failed.body).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 2 });
    await call(s.url, 'DELETE', '/v1/kv/r1');
    const again = await call(s.url, 'PUT', '/v1/kv/r1?ifAbsent=true', { ...octet('v3'), headers: { ...octet('').headers, ...session('retry', 2) } });
    expect(again.body).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 2 });
    expect(await get('r1')).toBeUndefined();
    // The condition is part of the request digest: the same pair with another condition is refused.
    const other = await call(s.url, 'PUT', '/v1/kv/r1?ifVersion=3', { ...octet('v3'), headers: { ...octet('').headers, ...session('retry', 2) } });
    expect(other.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
    // A retried append is not appended twice.
    const a1 = await call(s.url, 'POST', '/v1/kv/r2/append', { ...octet('x'), headers: { ...octet('').headers, ...session('retry', 3) } });
    const a2 = await call(s.url, 'POST', '/v1/kv/r2/append', { ...octet('x'), headers: { ...octet('').headers, ...session('retry', 3) } });
    expect(a2.body).toEqual(a1.body);
    expect(await get('r2')).toEqual({ version: 1, value: 'x' });
  });

  it('appends: octet and JSON bodies, conditions, the size limit on the result', async () => {
    expect((await call(s.url, 'POST', '/v1/kv/a%2Fb/append', octet('he'))).body).toMatchObject({ version: 1 });
    expect((await call(s.url, 'POST', '/v1/kv/a%2Fb/append', json({ valueUtf8: 'llo' }))).body).toMatchObject({ version: 2 });
    expect((await call(s.url, 'POST', '/v1/kv/a%2Fb/append?ifVersion=1', octet('!'))).body).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 2 });
    expect(await get('a%2Fb')).toEqual({ version: 2, value: 'hello' });
    await call(s.url, 'DELETE', '/v1/kv/a%2Fb');
    expect((await call(s.url, 'POST', '/v1/kv/a%2Fb/append?ifAbsent=true', octet('fresh'))).body).toMatchObject({ version: 4 });
    expect(await get('a%2Fb')).toEqual({ version: 4, value: 'fresh' });
    const big = new Uint8Array(700_000).fill(97);
    expect((await call(s.url, 'POST', '/v1/kv/big/append', octet(big))).status).toBe(200);
    const over = await call(s.url, 'POST', '/v1/kv/big/append', octet(big));
    expect(over.status).toBe(413);
    expect(over.body.code).toBe('VALUE_TOO_LARGE');
    expect((await get('big'))!.version).toBe(1);
  });

  it('appends from concurrent clients keep every chunk exactly once', async () => {
    const clients = 6;
    const each = 12;
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        for (let i = 0; i < each; i++) {
          const r = await call(s.url, 'POST', '/v1/kv/log/append', { ...octet(`c${c}-${i};`), headers: { ...octet('').headers, ...session(`app${c}`, i) } });
          expect(r.status).toBe(200);
        }
      }),
    );
    const v = await get('log');
    expect(v!.version).toBe(clients * each);
    const chunks = v!.value.split(';').filter((x) => x !== '');
    expect(chunks.length).toBe(clients * each);
    expect(new Set(chunks).size).toBe(clients * each);
    for (let c = 0; c < clients; c++) {
      // Each client's chunks are in its own order (it waits for each answer before the next).
      expect(chunks.filter((x) => x.startsWith(`c${c}-`))).toEqual(Array.from({ length: each }, (_, i) => `c${c}-${i}`));
    }
  });
});

describe('conditions and appends in the Raft write path', () => {
  const k = (x: string) => te.encode(x);
  const opened: Array<{ db: ProofDB; wp: RaftWritePath }> = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) {
      await o.wp.close().catch(() => undefined);
      await o.db.close().catch(() => undefined);
    }
  });
  async function openAt(dir: string) {
    const db = await ProofDB.open(dir, { compactionThread: 'inline', writeAheadLog: 'external' });
    const wp = await RaftWritePath.open(db, path.join(dir, 'raft'), { tickMs: 5 });
    opened.push({ db, wp });
    return { db, wp };
  }

  it('conditions and appends survive the log encoding and enter the request digest', () => {
    const cmds: WriteCommand[] = [
      { type: 'put', key: k('a'), value: k('b'), ifVersion: 0 },
      { type: 'put', key: k('a'), value: k('b'), ifAbsent: true },
      { type: 'delete', key: k('a'), ifVersion: 4 },
      { type: 'append', key: k('a'), value: k('b'), session: { clientId: 'c', seq: 1 } },
      { type: 'batch', ops: [{ op: 'append', key: k('a'), value: k('x'), ifVersion: 2 }, { op: 'delete', key: k('b'), ifVersion: 0 }, { op: 'put', key: k('c'), value: k('d'), ifAbsent: true }] },
    ];
    for (const c of cmds) expect(decodeCommand(encodeCommand(c))).toEqual(c);
    const digests = [
      ...cmds,
      { type: 'put', key: k('a'), value: k('b') },
      { type: 'put', key: k('a'), value: k('b'), ifVersion: 1 },
      { type: 'delete', key: k('a') },
      { type: 'append', key: k('a'), value: k('b'), ifAbsent: true },
    ].map((c) => Buffer.from(commandDigest(c as WriteCommand)).toString('hex'));
    expect(new Set(digests).size).toBe(digests.length);
  });

  it('evaluates conditions and appends at apply and replays them to the same state', async () => {
    const dir = path.join(tmpDir(), 'data');
    const first = await openAt(dir);
    const outcomes: string[] = [];
    const run = async (cmd: WriteCommand) => {
      try {
        const o = await first.wp.propose(cmd);
        outcomes.push(JSON.stringify(o.type === 'batch' ? o.results.map((r) => r.version) : o.type === 'checkpoint' ? 'cp' : o.type === 'cosign' ? 'cs' : o.type === 'member' ? 'member' : o.result.version));
      } catch (err) {
        outcomes.push((err as { code?: string }).code ?? 'error');
      }
    };
    await run({ type: 'append', key: k('x'), value: k('a') });
    await run({ type: 'checkpoint' });
    await run({ type: 'append', key: k('x'), value: k('b'), ifVersion: 1 });
    await run({ type: 'put', key: k('x'), value: k('no'), ifAbsent: true });
    await run({ type: 'batch', ops: [{ op: 'append', key: k('x'), value: k('c') }, { op: 'delete', key: k('y'), ifVersion: 3 }] });
    await run({ type: 'batch', ops: [{ op: 'append', key: k('x'), value: k('c') }, { op: 'put', key: k('y'), value: k('y1'), ifVersion: 0 }] });
    await run({ type: 'delete', key: k('x'), ifVersion: 3 });
    await run({ type: 'append', key: k('x'), value: k('z'), ifAbsent: true });
    expect(outcomes).toEqual(['1', '"cp"', '2', 'CONDITION_FAILED', 'CONDITION_FAILED', '[3,1]', '4', '5']);
    const want = { x: td.decode(await first.db.get('x')), y: td.decode(await first.db.get('y')), hx: (await first.db.getVersionHistory('x')).length };
    expect(want).toEqual({ x: 'z', y: 'y1', hx: 5 });
    await first.wp.close();
    await first.db.close();
    opened.splice(0);
    // Only the checkpoint reached the tables: the reopen replays the log after it.
    const second = await openAt(dir);
    expect({ x: td.decode(await second.db.get('x')), y: td.decode(await second.db.get('y')), hx: (await second.db.getVersionHistory('x')).length }).toEqual(want);
  });
});
