/**
 * Pipelined checkpoints (external-log mode; docs/engine.md § Checkpoints): a checkpoint takes
 * effect at its freeze and the writes after it go into the new memtable while its flush, settle
 * and record run. Every test compares with a reference replica that applies the same log one
 * entry at a time (each checkpoint finished before the next entry): the checkpoint log, the
 * table set and every MasterRoot must be byte-identical, whatever was held, failed or crashed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { copyLiveDir, str, tempDir, TINY } from './harness.js';

/** Four frozen memtables: the writes after a held checkpoint fill more than one without the write stall. */
const OPTS: DBOptions = { ...TINY, writeBufferSize: 1024, targetFileSize: 1024, maxFrozenMemtables: 4, writeAheadLog: 'external' };
const TIME = 1_700_000_000_000;

type Cmd = { t: 'put'; k: string; v: string } | { t: 'checkpoint' };

/** Puts over a few keys with a checkpoint every 25 entries; enough bytes to fill several memtables between them. */
function makeLog(n: number): Cmd[] {
  const out: Cmd[] = [];
  for (let i = 1; i <= n; i++) out.push(i % 25 === 0 ? { t: 'checkpoint' } : { t: 'put', k: `key-${i % 13}`, v: `value-${i}-`.padEnd(40, 'x') });
  return out;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function scratch(): string {
  const t = tempDir('proofkv-pipe-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A directory holding only a node key, so every copy signs with the same key. */
async function seedDir(root: string): Promise<string> {
  const base = path.join(root, 'base');
  await (await ProofDB.open(base, OPTS)).close();
  return base;
}

function copyOf(base: string, root: string, name: string): string {
  const dir = path.join(root, name);
  // The engine is running: an obsolete table's unlink (off the event loop) may remove a file
  // between the listing and its copy, which a crash image would not have had either.
  copyLiveDir(base, dir);
  return dir;
}

/** Applies entry `index` and resolves once it took effect (a checkpoint: its freeze); `done` settles with its outcome. */
async function applyEntry(db: ProofDB, cmd: Cmd, index: number): Promise<{ done: Promise<unknown> }> {
  if (cmd.t === 'put') {
    const p = db.put(cmd.k, cmd.v, { logIndex: index, time: TIME + index });
    return { done: p };
  }
  const { result } = await db.startCheckpoint({ logIndex: index, time: TIME + index });
  return { done: result };
}

const tableIds = (db: ProofDB) => db.tables().map((t) => [t.level, t.number, Buffer.from(t.root).toString('hex')]);
const checkpointsOf = (dir: string) => fs.readFileSync(path.join(dir, 'CHECKPOINTS')).toString('hex');

/** The reference: entries one at a time, each checkpoint finished before the next entry. */
async function reference(base: string, root: string, log: Cmd[]): Promise<{ dir: string; checkpoints: string; tables: unknown; roots: string[] }> {
  const dir = copyOf(base, root, 'ref');
  const db = await ProofDB.open(dir, OPTS);
  const roots: string[] = [];
  try {
    for (let i = 1; i <= log.length; i++) {
      const r = await (await applyEntry(db, log[i - 1], i)).done;
      if (log[i - 1].t === 'checkpoint') roots.push(Buffer.from((r as { checkpoint: { masterRoot: Uint8Array } }).checkpoint.masterRoot).toString('hex'));
    }
    return { dir, checkpoints: checkpointsOf(dir), tables: tableIds(db), roots };
  } finally {
    await db.close();
  }
}

/** A gate a test opens by hand. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((res) => (open = res));
  return { wait, open };
}

/** The reference run of `log`, and a live copy that applied every entry before the first checkpoint (index 25). */
async function beforeFirstCheckpoint(log: Cmd[]): Promise<{ root: string; ref: Awaited<ReturnType<typeof reference>>; dir: string; db: ProofDB }> {
  const root = scratch();
  const base = await seedDir(root);
  const ref = await reference(base, root, log);
  const dir = copyOf(base, root, 'live');
  const db = await ProofDB.open(dir, OPTS);
  for (let i = 1; i < 25; i++) await (await applyEntry(db, log[i - 1], i)).done;
  return { root, ref, dir, db };
}

describe('pipelined checkpoints', () => {
  it("a write after a checkpoint entry is applied, answered and readable while that checkpoint's flush is held; the result equals the reference", async () => {
    const log = makeLog(100);
    const { ref, dir, db } = await beforeFirstCheckpoint(log);
    const held = gate();
    try {
      let heldFlushes = 0;
      db._engineHooks({
        beforeFlushInstall: async () => {
          heldFlushes++;
          await held.wait;
        },
      });
      const cp = await applyEntry(db, log[24], 25);
      let recorded = false;
      void cp.done.then(() => (recorded = true));
      // Every entry up to the next checkpoint: answered while the checkpoint's flush is held,
      // although they fill (and freeze) more than one memtable.
      const answered: unknown[] = [];
      for (let i = 26; i < 50; i++) answered.push(await (await applyEntry(db, log[i - 1], i)).done);
      expect(answered).toHaveLength(24);
      expect(str(await db.get('key-10'))).toBe(`value-49-`.padEnd(40, 'x'));
      expect(heldFlushes).toBeGreaterThanOrEqual(2);
      expect(recorded).toBe(false);
      expect(db.logIndex().applied).toBe(49);
      expect(db.logIndex().durable).toBeLessThan(25);
      // The next checkpoint waits for this one's record (one in flight).
      let second = false;
      const next = applyEntry(db, log[49], 50).then((r) => {
        second = true;
        return r;
      });
      await new Promise((res) => setTimeout(res, 20));
      expect(second).toBe(false);
      held.open();
      db._engineHooks({ beforeFlushInstall: null });
      await cp.done;
      await (await next).done;
      for (let i = 51; i <= log.length; i++) await (await applyEntry(db, log[i - 1], i)).done;
      expect(checkpointsOf(dir)).toBe(ref.checkpoints);
      expect(tableIds(db)).toEqual(ref.tables);
    } finally {
      held.open(); // a failed expectation must not leave the flush held
      await db.close();
    }
  });

  it('a cosign applied while the checkpoint is in flight gets the same verdict on every replica', async () => {
    const root = scratch();
    const dirA = path.join(root, 'a');
    const dirB = path.join(root, 'b');
    const a = await ProofDB.open(dirA, OPTS);
    const b = await ProofDB.open(dirB, OPTS);
    const held = gate();
    try {
      const signers = { quorum: 2, members: [{ id: 1, publicKey: a.publicKey() }, { id: 2, publicKey: b.publicKey() }] };
      for (const db of [a, b]) for (let i = 1; i <= 10; i++) await db.put(`k${i}`, `v${i}`, { logIndex: i, time: TIME + i });
      // Replica A finishes the checkpoint at once; replica B's flush is held.
      const onA = await a.checkpoint({ logIndex: 11, time: TIME, signers });
      b._engineHooks({ beforeFlushInstall: () => held.wait });
      const onB = await b.startCheckpoint({ logIndex: 11, time: TIME, signers });
      expect(onA.cosign).toBeDefined();
      // Entry 12: A's signature. B applies it while its record does not exist yet.
      const verdictA = a.cosign(onA.cosign!, { logIndex: 12 });
      const verdictB = b.cosign(onA.cosign!, { logIndex: 12 });
      // The cosign waits for B's record, not the writes after it: entry 13 is answered meanwhile.
      let judgedB = false;
      void verdictB.then(() => (judgedB = true));
      expect(await b.put('after', 'x', { logIndex: 13, time: TIME + 13 })).toMatchObject({ version: 1 });
      await new Promise((res) => setTimeout(res, 20));
      expect(judgedB).toBe(false);
      held.open();
      const [ra, rb] = await Promise.all([verdictA, verdictB]);
      expect(rb.verdict).toBe(ra.verdict);
      expect(rb.verdict).not.toBe('unknown-head');
      const takenB = await onB.result;
      expect(Buffer.from(takenB.checkpoint.masterRoot).equals(Buffer.from(onA.checkpoint.masterRoot))).toBe(true);
      // B's own signature (entry 14) certifies the head on both replicas alike.
      await a.put('after', 'x', { logIndex: 13, time: TIME + 13 });
      const [ca, cb] = await Promise.all([a.cosign(takenB.cosign!, { logIndex: 14 }), b.cosign(takenB.cosign!, { logIndex: 14 })]);
      expect(ca.verdict).toBe('accepted');
      expect(cb.verdict).toBe('accepted');
      expect(a.latestCheckpoint().checkpoint).toEqual(b.latestCheckpoint().checkpoint);
    } finally {
      held.open(); // a failed expectation must not leave the flush held
      await a.close();
      await b.close();
    }
  });

  it("a fault after the freeze (the checkpoint's flush fails once) is retried by the engine: the checkpoint is identical to the reference's", async () => {
    const log = makeLog(75);
    const { ref, dir, db } = await beforeFirstCheckpoint(log);
    try {
      let failures = 0;
      db._engineHooks({
        beforeFlushInstall: async () => {
          if (failures++ === 0) throw Object.assign(new Error('EIO: injected flush failure'), { code: 'EIO' });
        },
      });
      const cp = await applyEntry(db, log[24], 25);
      // The entries after it: refused while the engine is in the fault (nothing of them applied),
      // applied again in order as the group would, once it clears.
      for (let i = 26; i <= log.length; i++) {
        for (let attempt = 0; ; attempt++) {
          expect(attempt).toBeLessThan(200);
          const outcome = await (await applyEntry(db, log[i - 1], i)).done.then(
            () => 'ok',
            (err: { retryable?: boolean }) => {
              if (!err.retryable) throw err;
              return 'refused';
            },
          );
          if (outcome === 'ok') break;
          db.rewindLogIndex(i);
          await new Promise((res) => setTimeout(res, 20));
        }
      }
      await cp.done;
      expect(failures).toBeGreaterThanOrEqual(2);
      expect(db.stats().faultRecoveries).toBeGreaterThanOrEqual(1);
      expect(db.writeFault()).toBeUndefined();
      expect(checkpointsOf(dir)).toBe(ref.checkpoints);
      expect(tableIds(db)).toEqual(ref.tables);
    } finally {
      await db.close();
    }
  });

  it('a persistent fault after the freeze is a fail-stop; the reopened engine redoes the checkpoint to the same MasterRoot', async () => {
    const log = makeLog(50);
    const first = await beforeFirstCheckpoint(log);
    const { ref, dir } = first;
    let db = first.db;
    try {
      db._engineHooks({
        checkpointTailAttempts: 2,
        beforeFlushInstall: async () => {
          throw Object.assign(new Error('EIO: injected flush failure'), { code: 'EIO' });
        },
      });
      const cp = await applyEntry(db, log[24], 25);
      await expect(cp.done).rejects.toMatchObject({ code: 'IO_ERROR', retryable: false });
      expect(db.writeFault()).toMatchObject({ recoverable: false });
      await expect(db.put('later', 'x', { logIndex: 26 })).rejects.toMatchObject({ code: 'IO_ERROR', retryable: false });
      expect(db.logIndex().durable).toBeLessThan(25);
    } finally {
      await db.close();
    }
    db = await ProofDB.open(dir, OPTS);
    try {
      const { durable } = db.logIndex();
      expect(durable).toBeLessThan(25);
      for (let i = durable + 1; i <= log.length; i++) await (await applyEntry(db, log[i - 1], i)).done;
      expect(Buffer.from(db.latestCheckpoint().checkpoint.masterRoot).toString('hex')).toBe(ref.roots[ref.roots.length - 1]);
      expect(checkpointsOf(dir)).toBe(ref.checkpoints);
      expect(tableIds(db)).toEqual(ref.tables);
    } finally {
      await db.close();
    }
  });

  it('a crash copy taken while a checkpoint is in flight (later writes applied) reopens to the same MasterRoots', async () => {
    const log = makeLog(75);
    const { root, ref, dir, db } = await beforeFirstCheckpoint(log);
    const copies: string[] = [];
    const held = gate();
    try {
      db._engineHooks({ beforeFlushInstall: () => held.wait });
      const cp = await applyEntry(db, log[24], 25);
      for (let i = 26; i < 50; i++) {
        await (await applyEntry(db, log[i - 1], i)).done;
        // Nothing of the engine runs during a synchronous copy: what a SIGKILL now leaves.
        if (i % 8 === 0) copies.push(copyOf(dir, root, `crash-${i}`));
      }
      held.open();
      db._engineHooks({ beforeFlushInstall: null });
      // Copies between the turns that finish the checkpoint (its installs, its index edit, its record).
      const finished = cp.done.then(() => true);
      for (let turn = 0; turn < 400 && !(await Promise.race([finished, Promise.resolve(false)])); turn++) {
        if (turn % 3 === 0) copies.push(copyOf(dir, root, `crash-t${turn}`));
        await new Promise((res) => setImmediate(res));
      }
      await cp.done;
      for (let i = 50; i <= log.length; i++) await (await applyEntry(db, log[i - 1], i)).done;
      expect(checkpointsOf(dir)).toBe(ref.checkpoints);
    } finally {
      held.open(); // a failed expectation must not leave the flush held
      await db.close();
    }
    expect(copies.length).toBeGreaterThan(4);
    const durables = new Set<number>();
    for (const c of copies) {
      const re = await ProofDB.open(c, OPTS);
      try {
        const { durable } = re.logIndex();
        durables.add(durable);
        for (let i = durable + 1; i <= log.length; i++) await (await applyEntry(re, log[i - 1], i)).done;
        expect(checkpointsOf(c)).toBe(ref.checkpoints);
        expect(tableIds(re)).toEqual(ref.tables);
      } finally {
        await re.close();
      }
    }
    // Not vacuous: copies from before the checkpoint's index edit and after it.
    expect([...durables].some((d) => d < 25)).toBe(true);
  });
});
