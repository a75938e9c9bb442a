/**
 * RaftWritePath: single-node mode as a one-member Raft group whose log is the write-ahead log.
 * Commands go through the log and are applied in order through the shared CommandApplier;
 * failures are per command; a restart or a crash (a copy of the live directory) applies nothing
 * twice — a retry after it included — and loses nothing acknowledged; `serve` (whose only write path this is) answers PUT/GET/proof over HTTP and takes over a directory the local path wrote.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getProofCodec, verifyGetProof } from '../../proofs/index.js';
import { ProofDB } from '../../src/index.js';
import { RaftWritePath, decodeCommand, encodeCommand, encodeCommandCbor, type LogCommandFormat } from '../../server/raft_write_path.js';
import type { WriteOutcome } from '../../server/write_path.js';
import { b64, call, startServer, tmpDir, unb64, type ServerProc } from './harness.js';
import { copyLiveDir } from '../engine/harness.js';

const te = new TextEncoder();
const td = new TextDecoder();
const k = (s: string) => te.encode(s);

interface Opened {
  db: ProofDB;
  wp: RaftWritePath;
}

/** Small memtables: flushes (and so recorded indexes) every few dozen writes. */
const SMALL = { writeBufferSize: 4096, targetFileSize: 4096 };

const open: Opened[] = [];
async function openAt(dataDir: string, db0: { writeBufferSize?: number; targetFileSize?: number } = {}, logCommands?: LogCommandFormat): Promise<Opened> {
  const db = await ProofDB.open(dataDir, { compactionThread: 'inline', writeAheadLog: 'external', ...db0 });
  const wp = await RaftWritePath.open(db, path.join(dataDir, 'raft'), { tickMs: 5, logCommands });
  const o = { db, wp };
  open.push(o);
  return o;
}
async function closeIt(o: Opened): Promise<void> {
  open.splice(open.indexOf(o), 1);
  await o.wp.close();
  await o.db.close();
}
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.wp.close().catch(() => undefined);
    await o.db.close().catch(() => undefined);
  }
});

const result = (o: WriteOutcome) => (o.type === 'put' || o.type === 'delete' ? o.result : undefined);

describe('RaftWritePath', () => {
  it('encodes commands with their session', () => {
    const cmd = { type: 'batch' as const, ops: [{ op: 'put' as const, key: k('a'), value: k('b'), version: 3 }, { op: 'delete' as const, key: k('c') }], session: { clientId: 'c', seq: 9 } };
    expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd);
  });

  it('proposes put and delete in the form logCommands names, and applies either form alike', async () => {
    /** Whether any file of the Raft log holds `bytes`. */
    const logHolds = (dir: string, bytes: Uint8Array): boolean => {
      const files = fs.readdirSync(path.join(dir, 'raft'), { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
      return files.some((f) => fs.readFileSync(path.join(f.parentPath ?? (f as unknown as { path: string }).path, f.name)).indexOf(Buffer.from(bytes)) >= 0);
    };
    const cmds = [
      { type: 'put' as const, key: k('log-form'), value: k('value-1'), time: 1_700_000_000_000 },
      { type: 'delete' as const, key: k('log-form'), time: 1_700_000_000_001 },
    ];
    const seen: Record<string, unknown[]> = {};
    for (const form of [undefined, 'binary', 'cbor'] as const) {
      const dir = tmpDir();
      const o = await openAt(dir, {}, form);
      seen[String(form)] = [];
      for (const c of cmds) seen[String(form)].push(result(await o.wp.propose(c)));
      await closeIt(o);
      for (const c of cmds) {
        expect(encodeCommand(c)[0]).toBeLessThan(0xa0); // the binary form of this command exists
        expect(logHolds(dir, encodeCommandCbor(c))).toBe(form === 'cbor');
        expect(logHolds(dir, encodeCommand(c))).toBe(form !== 'cbor');
      }
    }
    expect(seen.cbor).toEqual(seen.binary);
    expect(seen.undefined).toEqual(seen.binary);
  });

  it('applies concurrent proposals in order and answers each with its own version and seq', async () => {
    const { db, wp } = await openAt(path.join(tmpDir(), 'data'));
    const outs = await Promise.all(Array.from({ length: 40 }, (_, i) => wp.propose({ type: 'put', key: k('k'), value: k(`v${i}`) })));
    expect(outs.map((o) => result(o)).map((r) => ({ version: r?.version, seq: r?.seq }))).toEqual(Array.from({ length: 40 }, (_, i) => ({ version: i + 1, seq: i + 1 })));
    expect(result(await wp.propose({ type: 'delete', key: k('k') }))).toMatchObject({ version: 41, seq: 41 });
    const hist = await db.getVersionHistory(k('k'));
    expect(hist).toHaveLength(41);
    expect(td.decode((await db.getWithVersion(k('k'), 40))!.value)).toBe('v39');
    const c = await wp.propose({ type: 'checkpoint' });
    expect(c.type === 'checkpoint' && c.checkpoint.seq).toBe(41);
    expect(wp.appliedIndex).toBe(wp.lastIndex);
  });

  it('applies a batch atomically: all of it, or none of it with its error', async () => {
    const { db, wp } = await openAt(path.join(tmpDir(), 'data'));
    const ok = await wp.propose({ type: 'batch', ops: [{ op: 'put', key: k('a'), value: k('1') }, { op: 'put', key: k('b'), value: k('2'), version: 5 }, { op: 'delete', key: k('a') }] });
    expect(ok).toMatchObject({ type: 'batch', results: [{ version: 1, seq: 1 }, { version: 5, seq: 2 }, { version: 2, seq: 3 }] });
    const bad = wp.propose({ type: 'batch', ops: [{ op: 'put', key: k('c'), value: k('x') }, { op: 'put', key: k('b'), value: k('y'), version: 5 }] });
    await expect(bad).rejects.toMatchObject({ code: 'VERSION_NOT_INCREASING' });
    expect(await db.get(k('c'))).toBeUndefined();
    expect(db.stats().lastSeq).toBe(3);
  });

  it('a failing command returns its error and the loop keeps going', async () => {
    const { db, wp } = await openAt(path.join(tmpDir(), 'data'));
    await wp.propose({ type: 'put', key: k('k'), value: k('a'), version: 5 });
    const [x, y, z] = await Promise.allSettled([
      wp.propose({ type: 'put', key: k('k'), value: k('b'), version: 5 }),
      wp.propose({ type: 'put', key: k('k'), value: k('c') }),
      wp.propose({ type: 'put', key: k('k'), value: k('d'), version: 4 }),
    ]);
    expect(x).toMatchObject({ status: 'rejected', reason: { code: 'VERSION_NOT_INCREASING' } });
    expect(y).toMatchObject({ status: 'fulfilled', value: { result: { version: 6, seq: 2 } } });
    expect(z).toMatchObject({ status: 'rejected', reason: { code: 'VERSION_NOT_INCREASING' } });
    expect(result(await wp.propose({ type: 'put', key: k('k'), value: k('e') }))).toMatchObject({ version: 7, seq: 3 });
    expect((await db.getVersionHistory(k('k'))).map((e) => e.version)).toEqual([5, 6, 7]);
  });

  it('deduplicates a retried (clientId, seq) at apply time', async () => {
    const { db, wp } = await openAt(path.join(tmpDir(), 'data'));
    const session = { clientId: 'c1', seq: 1 };
    const [a, b] = await Promise.all([
      wp.propose({ type: 'put', key: k('k'), value: k('v'), session }),
      wp.propose({ type: 'put', key: k('k'), value: k('v'), session }),
    ]);
    expect(result(a)).toMatchObject({ version: 1, seq: 1 });
    expect(b).toMatchObject({ result: { version: 1, seq: 1 }, replayed: true });
    expect(await db.getVersionHistory(k('k'))).toHaveLength(1);
    expect(wp.sessionCount).toBe(1);
  });

  it('survives a clean restart: nothing applied twice, nothing acknowledged lost', async () => {
    const dir = path.join(tmpDir(), 'data');
    let o = await openAt(dir);
    for (let i = 0; i < 25; i++) await o.wp.propose({ type: 'put', key: k(`k${i % 5}`), value: k(`v${i}`) });
    await o.wp.propose({ type: 'batch', ops: [{ op: 'put', key: k('b'), value: k('1') }, { op: 'delete', key: k('k0') }] });
    const applied = o.wp.appliedIndex;
    await closeIt(o);

    o = await openAt(dir);
    expect(o.db.stats().lastSeq).toBe(27);
    expect(o.wp.appliedIndex).toBeGreaterThanOrEqual(applied);
    for (let j = 1; j < 5; j++) expect(await o.db.getVersionHistory(k(`k${j}`))).toHaveLength(5);
    expect(await o.db.getVersionHistory(k('k0'))).toHaveLength(6);
    expect(td.decode((await o.db.get(k('k4')))!)).toBe('v24');
    expect(result(await o.wp.propose({ type: 'put', key: k('k1'), value: k('after') }))).toMatchObject({ version: 6, seq: 28 });
    await closeIt(o);

    o = await openAt(dir);
    expect(o.db.stats().lastSeq).toBe(28);
    expect(o.wp.appliedIndex).toBe(o.wp.lastIndex);
  });

  it('a crash (a copy of the live directory) loses nothing acknowledged and replays to the same state', async () => {
    const dir = path.join(tmpDir(), 'data');
    const o = await openAt(dir, SMALL);
    const acked: string[] = [];
    for (let round = 0; round < 6; round++) {
      const outs = await Promise.all(Array.from({ length: 25 }, (_, i) => o.wp.propose({ type: 'put', key: k(`k${i % 9}`), value: k(`r${round}-${i}-${'x'.repeat(40)}`) })));
      acked.push(...outs.map((x) => JSON.stringify(result(x))));
      if (round === 2) await o.wp.propose({ type: 'checkpoint' });
      const copy = path.join(tmpDir(), `crash-${round}`);
      copyLiveDir(dir, copy); // the directory as a SIGKILL now would leave it
      fs.rmSync(path.join(copy, 'LOCK'), { force: true });
      const c = await openAt(copy, SMALL);
      expect(c.db.logIndex().durable).toBeLessThanOrEqual(c.wp.lastIndex);
      expect(c.db.stats().lastSeq).toBe(o.db.stats().lastSeq);
      for (let j = 0; j < 9; j++) expect(await c.db.getVersionHistory(k(`k${j}`))).toEqual(await o.db.getVersionHistory(k(`k${j}`)));
      await closeIt(c);
    }
    expect(new Set(acked).size).toBe(150);
    // The engine wrote no journal: the Raft log is the only one.
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.log'))).toEqual([]);
  });

  it('a retry answered from the session table before the recorded index is answered from the restored table at open, not re-applied', async () => {
    const dir = path.join(tmpDir(), 'data');
    const o = await openAt(dir);
    const cmd = { type: 'put' as const, key: k('s'), value: k('v'), session: { clientId: 'cl', seq: 4 } };
    await o.wp.propose(cmd);
    await o.wp.propose({ type: 'checkpoint' }); // the engine records this index: the put is behind it
    expect(await o.wp.propose(cmd)).toMatchObject({ replayed: true });
    const copy = path.join(tmpDir(), 'copy');
    copyLiveDir(dir, copy);
    fs.rmSync(path.join(copy, 'LOCK'), { force: true });
    const c = await openAt(copy);
    expect(c.db.logIndex().durable).toBeLessThan(c.wp.lastIndex);
    expect(await c.db.getVersionHistory(k('s'))).toHaveLength(1);
    expect(c.wp.appliedIndex).toBe(c.wp.lastIndex);
  });

  it('needs an external-log engine, and refuses a directory of the earlier applied-record design', async () => {
    const dir = path.join(tmpDir(), 'data');
    const db = await ProofDB.open(dir, { compactionThread: 'inline' });
    try {
      await expect(RaftWritePath.open(db, path.join(dir, 'raft'))).rejects.toThrow(/writeAheadLog: 'external'/);
    } finally {
      await db.close();
    }
    fs.mkdirSync(path.join(dir, 'raft'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'raft', 'applied'), new Uint8Array(64));
    await expect(openAt(dir)).rejects.toMatchObject({ code: 'REPLICATION_BAD_STATE' });
  });

  // docs/replication.md § Co-signing, Crash safety: with a synced Raft log a checkpoint's record
  // waits for the next install that raises the recorded index; with --no-sync (entries not
  // durable before they are applied) it is synced as it is appended.
  it('defers the checkpoint log\'s syncs only when the Raft log syncs; a journal-mode engine refuses to', async () => {
    for (const sync of [true, false]) {
      const dir = path.join(tmpDir(), `data-${sync}`);
      const db = await ProofDB.open(dir, { compactionThread: 'inline', writeAheadLog: 'external' });
      const wp = await RaftWritePath.open(db, path.join(dir, 'raft'), { tickMs: 5, sync });
      open.push({ db, wp });
      for (let i = 0; i < 5; i++) await wp.propose({ type: 'put', key: k(`k${i}`), value: k('v') });
      await wp.propose({ type: 'checkpoint', time: 1 });
      const size = fs.statSync(path.join(dir, 'CHECKPOINTS')).size;
      if (sync) expect(db._checkpointLogSyncedLength()).toBeLessThan(size);
      else expect(db._checkpointLogSyncedLength()).toBe(size);
      // The next checkpoint's install syncs the first one's record before it names a later index.
      await wp.propose({ type: 'put', key: k('after'), value: k('v') });
      await wp.propose({ type: 'checkpoint', time: 2 });
      expect(db._checkpointLogSyncedLength()).toBeGreaterThanOrEqual(size);
    }
    const dir = path.join(tmpDir(), 'journal');
    const db = await ProofDB.open(dir, { compactionThread: 'inline' });
    try {
      await expect(db.deferCheckpointLogSyncs(true)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await db.close();
    }
  });
});

describe('serve (the Raft write path, its only one)', () => {
  let s: ServerProc | undefined;
  afterEach(async () => {
    await s?.stop('SIGKILL');
    s = undefined;
  });

  it('answers PUT, GET and verified proofs, and keeps them across a restart', async () => {
    // --raft is still accepted (hidden, no effect): the group is the default.
    s = await startServer({ args: ['--raft', '--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    expect(s.stdout()).toContain('write path  raft (one-member group)');
    const req = (method: string, p: string, init: Parameters<typeof call>[3] = {}) => call(s!.url, method, p, init);
    const st = await req('GET', '/v1/status');
    const trust = { publicKeys: [unb64(st.body.publicKey)], quorum: 1 };
    const oct = { 'content-type': 'application/octet-stream' };
    expect((await req('PUT', '/v1/kv/user%3A1', { body: 'alice', headers: oct })).body).toMatchObject({ version: 1, seq: 1 });
    expect((await req('PUT', '/v1/kv/user%3A1', { body: 'bob', headers: oct })).body).toMatchObject({ version: 2, seq: 2 });
    const bad = await req('PUT', '/v1/kv/user%3A1', { body: 'x', headers: { ...oct, 'content-type': 'application/json' }, ...{} });
    expect(bad.status).toBe(400);
    expect((await req('GET', '/v1/kv/user:1')).body).toMatchObject({ key: b64('user:1'), version: 2, seq: 2, valueUtf8: 'bob' });
    const h = { ...oct, 'proofkv-client-id': 'client-A', 'proofkv-request-seq': '1' };
    const first = await req('PUT', '/v1/kv/idem', { body: 'once', headers: h });
    const again = await req('PUT', '/v1/kv/idem', { body: 'once', headers: h });
    expect(again.body).toEqual(first.body);
    expect((await req('POST', '/v1/checkpoints')).status).toBe(200);
    const r = await req('GET', '/v1/kv/user:1/proof');
    const v = verifyGetProof(getProofCodec.decode(unb64(r.body.proof)), { key: te.encode('user:1') }, { trust });
    expect(v.ok).toBe(true);
    if (v.ok) expect(td.decode(v.entry!.value)).toBe('bob');

    const dataDir = s.dataDir;
    expect(await s.stop('SIGTERM')).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'raft', 'wal'))).toBe(true);
    s = await startServer({ dataDir });
    expect((await call(s.url, 'GET', '/v1/kv/user:1')).body).toMatchObject({ version: 2, valueUtf8: 'bob' });
    expect((await call(s.url, 'GET', '/v1/kv/idem')).body).toMatchObject({ version: 1 });
    // The retry reaches the restarted node: answered from the replicated session table.
    expect((await call(s.url, 'PUT', '/v1/kv/idem', { body: 'once', headers: h })).body).toEqual(first.body);
    expect((await call(s.url, 'PUT', '/v1/kv/idem', { body: 'twice', headers: h })).status).toBe(422);
    expect((await call(s.url, 'GET', '/v1/kv/idem/history')).body.entries).toHaveLength(1);
    expect((await call(s.url, 'PUT', '/v1/kv/user%3A1', { body: 'carol', headers: oct })).body).toMatchObject({ version: 3, seq: 4 });
  });

  it('loses no acknowledged write to a SIGKILL under load, and a refused local start leaves the data alone', async () => {
    s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    const oct = { 'content-type': 'application/octet-stream' };
    const acked = new Map<string, number>(); // key -> highest acknowledged version
    let stop = false;
    const writer = async (w: number) => {
      for (let i = 0; !stop && i < 400; i++) {
        const key = `w${w}-${i % 7}`;
        try {
          const r = await call(s!.url, 'PUT', `/v1/kv/${key}`, { body: `v${i}`, headers: oct });
          if (r.status === 200) acked.set(key, Math.max(acked.get(key) ?? 0, r.body.version));
        } catch {
          return; // the server is gone
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    while (acked.size < 40) await new Promise((r) => setTimeout(r, 5));
    const dataDir = s.dataDir;
    await s.stop('SIGKILL');
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThanOrEqual(40);

    // The local path (a benchmark reference) refuses: the Raft log holds writes the engine does not.
    await expect(startServer({ dataDir, args: ['--local-write-path'] })).rejects.toThrow(/belongs to a Raft group/);
    s = await startServer({ dataDir });
    for (const [key, version] of acked) {
      const r = await call(s.url, 'GET', `/v1/kv/${key}`);
      expect(r.status).toBe(200);
      expect(r.body.version).toBeGreaterThanOrEqual(version);
    }
  });

  it('takes over a data directory the local path wrote (its journal included), at the first start', async () => {
    const oct = { 'content-type': 'application/octet-stream' };
    s = await startServer({ args: ['--local-write-path', '--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    expect(s.stdout()).toContain('write path  local');
    for (let i = 0; i < 5; i++) expect((await call(s.url, 'PUT', `/v1/kv/k${i}`, { body: `a${i}`, headers: oct })).status).toBe(200);
    expect((await call(s.url, 'POST', '/v1/checkpoints')).status).toBe(200);
    // These are only in the engine's journal when the process dies.
    for (let i = 0; i < 5; i++) expect((await call(s.url, 'PUT', `/v1/kv/k${i}`, { body: `b${i}`, headers: oct })).status).toBe(200);
    const before = (await call(s.url, 'GET', '/v1/status')).body;
    const dataDir = s.dataDir;
    await s.stop('SIGKILL');
    s = await startServer({ dataDir, args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    expect(s.stdout()).toContain('write path  raft');
    const st = (await call(s.url, 'GET', '/v1/status')).body;
    expect(st.publicKey).toBe(before.publicKey);
    for (let i = 0; i < 5; i++) expect((await call(s.url, 'GET', `/v1/kv/k${i}`)).body).toMatchObject({ version: 2, valueUtf8: `b${i}` });
    expect((await call(s.url, 'PUT', '/v1/kv/k0', { body: 'c0', headers: oct })).body).toMatchObject({ version: 3, seq: 11 });
    expect((await call(s.url, 'POST', '/v1/checkpoints')).status).toBe(200);
    const dir2 = s.dataDir;
    await s.stop('SIGTERM');
    expect(fs.existsSync(path.join(dir2, 'raft', 'wal'))).toBe(true);
    s = await startServer({ dataDir: dir2 });
    expect((await call(s.url, 'GET', '/v1/kv/k0')).body).toMatchObject({ version: 3, valueUtf8: 'c0' });
  });
});
