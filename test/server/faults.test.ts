/**
 * Write faults in the engine, injected in-process: a failed sync of the checkpoint log append and
 * of a manifest edit. Neither may stick: the failed checkpoint does not exist (no fork of the log),
 * the node retries, and after it recovers and reopens every acknowledged write is there. On the
 * Raft write path the same manifest fault pauses applying at the refused log entry, which is
 * applied again (with the entries after it) once the engine recovered.
 * Faults are injected by replacing `fs.fdatasyncSync` and `fs.fdatasync` (or `fs.writeSync`: the
 * checkpoint log's appends on the Raft path are written at once and synced later, before the
 * engine's recorded log index passes them) and syncing the ESM bindings, for calls made from one
 * function.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { RaftWritePath } from '../../server/raft_write_path.js';
import { tmpDir } from './harness.js';

const real = fs.fdatasyncSync;
const realAsync = fs.fdatasync;
const realWrite = fs.writeSync;
afterEach(() => {
  fs.fdatasyncSync = real;
  fs.fdatasync = realAsync;
  fs.writeSync = realWrite;
  syncBuiltinESMExports();
});

const eio = () => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });

/**
 * Replaces both `fdatasyncSync` and the threadpool `fdatasync` (the checkpoint log syncs in the
 * threadpool): `fail()` says, from the caller's stack (async frames included), whether this sync throws EIO.
 */
function injectSyncFaults(fail: (stack: string) => boolean): void {
  fs.fdatasyncSync = (fd: number) => {
    if (fail(new Error().stack ?? '')) throw eio();
    real(fd);
  };
  fs.fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    if (fail(new Error().stack ?? '')) process.nextTick(cb, eio());
    else realAsync(fd, cb);
  }) as typeof fs.fdatasync;
  syncBuiltinESMExports();
}

/** The next sync called from `caller` throws EIO; returns how many were failed so far. */
function failNextSyncFrom(caller: string): () => number {
  let failed = 0;
  injectSyncFaults((stack) => failed === 0 && stack.includes(caller) && ++failed > 0);
  return () => failed;
}

/** Every sync called from `caller` throws EIO until `heal()`; `count()` says how many did. */
function failSyncsFrom(caller: string): { count: () => number; heal: () => void } {
  let failed = 0;
  let on = true;
  injectSyncFaults((stack) => on && stack.includes(caller) && ++failed > 0);
  return { count: () => failed, heal: () => (on = false) };
}

/** Every `fs.writeSync` called from `caller` throws ENOSPC until `heal()`; `count()` says how many did. */
function failWritesFrom(caller: string): { count: () => number; heal: () => void } {
  let failed = 0;
  let on = true;
  fs.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    if (on && (new Error().stack ?? '').includes(caller) && ++failed > 0) {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    }
    return (realWrite as (...a: Parameters<typeof fs.writeSync>) => number)(...args);
  }) as typeof fs.writeSync;
  syncBuiltinESMExports();
  return { count: () => failed, heal: () => (on = false) };
}

/** A one-member Raft write path over an external-log engine in `dir`. */
async function openRaftPath(dir: string): Promise<{ db: ProofDB; wp: RaftWritePath }> {
  const db = await ProofDB.open(dir, { compactionThread: 'inline', writeAheadLog: 'external' });
  return { db, wp: await RaftWritePath.open(db, path.join(dir, 'raft'), { tickMs: 10 }) };
}

/** Proposes a put through `wp`, with session `('c', seq)` when `seq` is given. */
function putter(wp: RaftWritePath) {
  const te = new TextEncoder();
  return (k: string, v: string, seq?: number) => wp.propose({ type: 'put', key: te.encode(k), value: te.encode(v), ...(seq ? { session: { clientId: 'c', seq } } : {}) });
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(check()).toBe(true);
}

describe('engine write faults', () => {
  it('a failed checkpoint-log sync leaves no checkpoint behind; the next one takes its index', async () => {
    const dir = path.join(tmpDir(), 'db');
    const db = await ProofDB.open(dir, { compactionThread: 'inline' });
    await db.put('a', '1');
    const first = await db.checkpoint();
    await db.put('b', '2');
    const failed = failNextSyncFrom('CheckpointLog.append');
    await expect(db.checkpoint()).rejects.toThrow(/EIO/);
    expect(failed()).toBe(1);
    expect(db.latestCheckpoint().checkpoint.index).toBe(first.checkpoint.index);
    const second = await db.checkpoint();
    expect(second.checkpoint.index).toBe(first.checkpoint.index + 1);
    expect(db.consistencyProof(first.head.size, second.head.size)).toBeDefined();
    await db.close();
    const again = await ProofDB.open(dir, { compactionThread: 'inline' });
    expect(again.latestCheckpoint().checkpoint).toEqual(second.checkpoint);
    expect(new TextDecoder().decode(await again.get('b'))).toBe('2');
    await again.close();
  });

  it('a failed manifest sync pauses writes, then a new manifest is written and writes resume by themselves', async () => {
    const dir = path.join(tmpDir(), 'db');
    const db = await ProofDB.open(dir, { compactionThread: 'inline' });
    for (let i = 0; i < 50; i++) await db.put(`k${i}`, `v${i}`);
    const failed = failNextSyncFrom('VersionSet.logAndApply');
    await expect(db.checkpoint()).rejects.toThrow(/writes are paused: flush failed \(EIO\)/);
    expect(failed()).toBe(1);
    expect(db.writeFault()?.component).toBe('flush');
    await expect(db.put('during', 'x')).rejects.toThrow(/writes are paused/);
    await until(() => db.writeFault() === undefined);
    expect(db.stats().faultRecoveries).toBe(1);
    await db.put('after', 'y');
    await db.checkpoint();
    await db.close();
    const again = await ProofDB.open(dir, { compactionThread: 'inline' });
    for (let i = 0; i < 50; i++) expect(new TextDecoder().decode(await again.get(`k${i}`))).toBe(`v${i}`);
    expect(await again.get('during')).toBeUndefined();
    expect(new TextDecoder().decode(await again.get('after'))).toBe('y');
    await again.close();
  });

  it("on the Raft path, a failed manifest sync after a checkpoint's freeze is retried by the engine; the entries after it pause and are applied again, nothing acknowledged is lost", async () => {
    const dir = path.join(tmpDir(), 'db');
    const openPath = () => openRaftPath(dir);
    const { db, wp } = await openPath();
    const put = putter(wp);
    for (let i = 0; i < 50; i++) await put(`k${i}`, `v${i}`);
    const fault = failSyncsFrom('VersionSet.'); // every manifest write: the edit and a new manifest
    // The checkpoint takes effect at its freeze; its flush's install fails after it. The two writes
    // after it (in the same turn) are applied at once, or refused by the fault and applied again.
    const cp = wp.propose({ type: 'checkpoint', time: 1 });
    const [w1, w2] = await Promise.allSettled([put('x1', 'a', 1), put('x2', 'b', 2)]);
    for (const r of [w1, w2]) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'UNAVAILABLE', headers: { 'Retry-After': '1' } });
    await until(() => fault.count() >= 1);
    // The checkpoint's proposer waits for its record; the engine keeps retrying while the disk fails.
    let answered = false;
    void cp.then(() => (answered = true), () => (answered = true));
    expect(db.writeFault()).toMatchObject({ component: 'flush', recoverable: true });
    // A write now is refused by the engine: applying pauses at it (or it is not even appended).
    await expect(put('during', 'x')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await until(() => fault.count() >= 3);
    expect(answered).toBe(false);
    expect(db.writeFault()).toBeDefined();
    fault.heal();
    const taken = await cp;
    expect(taken).toMatchObject({ type: 'checkpoint', checkpoint: { certified: true } });
    await until(() => wp.writeFault() === undefined && db.writeFault() === undefined);
    expect(db.stats().faultRecoveries).toBeGreaterThanOrEqual(1);
    // Every write was applied once, in order.
    expect(new TextDecoder().decode(await db.get('x1'))).toBe('a');
    expect((await db.getVersionHistory('x2')).map((e) => e.version)).toEqual([1]);
    expect(db.latestCheckpoint().checkpoint.time).toBeGreaterThanOrEqual(1);
    // Their retries are answered from the session table, not applied again.
    expect(await put('x1', 'a', 1)).toMatchObject({ replayed: true });
    await put('after', 'y');
    const checkpoint = db.latestCheckpoint().checkpoint;
    await wp.close();
    await db.close();
    const again = await openPath();
    expect(again.db.latestCheckpoint().checkpoint).toEqual(checkpoint);
    for (let i = 0; i < 50; i++) expect(new TextDecoder().decode(await again.db.get(`k${i}`))).toBe(`v${i}`);
    expect((await again.db.getVersionHistory('x1')).map((e) => e.version)).toEqual([1]);
    expect(new TextDecoder().decode(await again.db.get('after'))).toBe('y');
    await again.wp.close();
    await again.db.close();
  });

  // The checkpoint log's intent (time and signer set, before the checkpoint's freeze): failing,
  // it refuses the checkpoint entry (nothing of it took effect) and pauses applying at it; the
  // entry is applied again (once) when the disk heals.
  it('on the Raft path, a failed checkpoint-log append (the intent) pauses applying; the checkpoint is taken once when it heals', async () => {
    const { dir, openPath, db, wp, put, before } = await afterOneCheckpoint();
    const fault = failWritesFrom('CheckpointLog.appendAmendment');
    const [cp, w1] = await Promise.allSettled([wp.propose({ type: 'checkpoint', time: 5 }), put('x1', 'a', 1)]);
    expect(fault.count()).toBeGreaterThanOrEqual(1);
    for (const r of [cp, w1]) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'UNAVAILABLE', headers: { 'Retry-After': '1' } });
    }
    expect((cp as PromiseRejectedResult).reason.message).toMatch(/applying is paused at log index \d+ \(writes are paused: checkpoint-log failed \(ENOSPC\)/);
    expect(wp.writeFault()).toMatchObject({ component: 'raft-apply' });
    await expect(put('during', 'x')).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/not appended/) });
    await until(() => fault.count() >= 2);
    expect(db.latestCheckpoint().checkpoint.index).toBe(before);
    fault.heal();
    await until(() => wp.writeFault() === undefined && db.writeFault() === undefined);
    // The entry applied again is recorded after its freeze.
    await until(() => db.latestCheckpoint().checkpoint.index > before);
    await expectOneCheckpoint(db, wp, dir, openPath, before, put);
  });

  // Its record (after the freeze, when the tables are installed): the checkpoint already took
  // effect, so it is not refused; the engine retries the append until the disk heals.
  it("on the Raft path, a failed checkpoint-log append (the record) is retried by the engine; the checkpoint's proposer is answered once it is recorded", async () => {
    const { dir, openPath, db, wp, put, before } = await afterOneCheckpoint();
    const fault = failWritesFrom('CheckpointLog.append (');
    const cp = wp.propose({ type: 'checkpoint', time: 5 });
    const w1 = await put('x1', 'a', 1).then(
      () => 'applied',
      (err: { code?: string }) => err.code,
    );
    // Applied at once (the checkpoint took effect at its freeze), or refused by the fault and applied again.
    expect(['applied', 'UNAVAILABLE']).toContain(w1);
    await until(() => fault.count() >= 2);
    expect(db.writeFault()).toMatchObject({ component: 'checkpoint-log', recoverable: true });
    expect(db.latestCheckpoint().checkpoint.index).toBe(before);
    fault.heal();
    expect(await cp).toMatchObject({ type: 'checkpoint', checkpoint: { certified: true, checkpoint: { index: before + 1, time: 5 } } });
    await until(() => wp.writeFault() === undefined && db.writeFault() === undefined);
    await expectOneCheckpoint(db, wp, dir, openPath, before, put);
  });

  // The checkpoint log's records are synced before the install that moves the recorded log index
  // past them (docs/replication.md § Co-signing, Crash safety). That sync failing fails the
  // install: the engine retries it, cutting the log back to its last synced record and writing
  // the deferred records (here the checkpoint's intent) again.
  it("on the Raft path, a failed sync of the checkpoint log's deferred records fails the install that needs them; the engine retries it and writes them again", async () => {
    const { dir, openPath, db, wp, put, before } = await afterOneCheckpoint();
    const synced = db._checkpointLogSyncedLength();
    const fault = failSyncsFrom('CheckpointLog.'); // its deferred sync, then the repair's
    const cp = wp.propose({ type: 'checkpoint', time: 5 });
    let answered = false;
    void cp.then(() => (answered = true), () => (answered = true));
    await until(() => fault.count() >= 2);
    // The intent was written, never synced; the install that needs it is refused and retried
    // (each retry cuts the file back to its last synced record and writes the intent again).
    expect(db._checkpointLogSyncedLength()).toBe(synced);
    expect(db.writeFault()).toMatchObject({ recoverable: true });
    expect(db.latestCheckpoint().checkpoint.index).toBe(before);
    expect(answered).toBe(false);
    fault.heal();
    expect(await cp).toMatchObject({ type: 'checkpoint', checkpoint: { certified: true, checkpoint: { index: before + 1, time: 5 } } });
    await until(() => wp.writeFault() === undefined && db.writeFault() === undefined);
    expect(db._checkpointLogSyncedLength()).toBeGreaterThan(synced);
    await put('x1', 'a', 1);
    await expectOneCheckpoint(db, wp, dir, openPath, before, put);
  });

});

/** A one-member Raft path that applied 20 writes, a checkpoint and a write; `before` is that checkpoint's index. */
async function afterOneCheckpoint() {
  const dir = path.join(tmpDir(), 'db');
  const openPath = () => openRaftPath(dir);
  const { db, wp } = await openPath();
  const put = putter(wp);
  for (let i = 0; i < 20; i++) await put(`k${i}`, `v${i}`);
  await wp.propose({ type: 'checkpoint', time: 1 });
  await put('k20', 'v20');
  return { dir, openPath, db, wp, put, before: db.latestCheckpoint().checkpoint.index };
}

/** One checkpoint was taken after `before`, with time 5; the write x1 after it applied once; all of it survives a restart. */
async function expectOneCheckpoint(
  db: ProofDB,
  wp: RaftWritePath,
  dir: string,
  openPath: () => Promise<{ db: ProofDB; wp: RaftWritePath }>,
  before: number,
  put: ReturnType<typeof putter>,
): Promise<void> {
  const taken = db.latestCheckpoint().checkpoint;
  expect(taken.index).toBe(before + 1);
  expect(taken.time).toBe(5);
  // x1 is applied (again, if the fault refused it) by the time the group's pause has cleared.
  expect((await db.getVersionHistory('x1')).map((e) => e.version)).toEqual([1]);
  expect(await put('x1', 'a', 1)).toMatchObject({ replayed: true });
  await put('after', 'y');
  const log = fs.readFileSync(path.join(dir, 'CHECKPOINTS'));
  await wp.close();
  await db.close();
  const again = await openPath();
  expect(again.db.latestCheckpoint().checkpoint).toEqual(taken);
  expect(fs.readFileSync(path.join(dir, 'CHECKPOINTS')).equals(log)).toBe(true);
  for (let i = 0; i < 20; i++) expect(new TextDecoder().decode(await again.db.get(`k${i}`))).toBe(`v${i}`);
  expect((await again.db.getVersionHistory('x1')).map((e) => e.version)).toEqual([1]);
  await again.wp.close();
  await again.db.close();
}
