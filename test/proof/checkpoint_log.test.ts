/**
 * The checkpoint log's deferred syncs (external-log mode, `CheckpointLog.setDeferSyncs`):
 * records are written at once and made durable by `sync()`; a failed write or sync loses no
 * record whose effects the caller kept — the repair cuts the file back to its last synced record
 * and writes the deferred ones again, once each, in order. Records here are intents (any record
 * kind takes the same path). Faults are injected by replacing `fs.fdatasync` / `fs.writeSync`
 * (and syncing the ESM bindings) for calls made from `CheckpointLog`.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CheckpointLog, CheckpointLogWriteError, MAX_DEFERRED_BYTES, decodeRecord, encodeIntentRecord, type CheckpointLogAmendment } from '../../src/proof/checkpoint_log.js';
import { readJournal } from '../../src/journal/reader.js';
import type { SignerSet } from '../../src/replication/cosign.js';
import { powerLossCopy, tempDir } from '../engine/harness.js';

const realSync = fs.fdatasync;
const realWrite = fs.writeSync;
const cleanups: Array<() => void> = [];
afterEach(() => {
  fs.fdatasync = realSync;
  fs.writeSync = realWrite;
  syncBuiltinESMExports();
  for (const c of cleanups.splice(0)) c();
});

function scratch(): string {
  const t = tempDir('proofkv-cplog-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const set = (members: number): SignerSet => ({
  quorum: Math.floor(members / 2) + 1,
  members: Array.from({ length: members }, (_, i) => ({ id: i + 1, publicKey: new Uint8Array(32).fill(i + 1) })),
});
const intent = (logIndex: number, members = 1) => encodeIntentRecord({ logIndex, time: logIndex * 10, signers: set(members) });

/** The log indexes of the intents the file `CHECKPOINTS` in `dir` holds, in file order (a torn tail ignored, as an open does). */
function intentsIn(dir: string): number[] {
  const { records } = readJournal(fs.readFileSync(path.join(dir, 'CHECKPOINTS')), 'CHECKPOINTS');
  return records.map((r) => decodeRecord(r) as CheckpointLogAmendment).map((a) => (a.kind === 'intent' ? a.logIndex : -1));
}

/** A copy of `dir` as a power loss now would leave it: `CHECKPOINTS` cut to `synced` bytes. */
function powerLoss(dir: string, synced: number): string {
  const to = scratch();
  powerLossCopy(dir, to, synced);
  return to;
}

/** Every `fs.fdatasync` (`fs.writeSync`) from `CheckpointLog` fails until `heal()`. */
function failFromLog(call: 'fdatasync' | 'writeSync'): { count: () => number; heal: () => void } {
  let failed = 0;
  let on = true;
  const hit = () => on && (new Error().stack ?? '').includes('CheckpointLog.') && ++failed > 0;
  if (call === 'fdatasync') {
    fs.fdatasync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      if (hit()) process.nextTick(cb, Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      else realSync(fd, cb);
    }) as typeof fs.fdatasync;
  } else {
    fs.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
      if (hit()) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return (realWrite as (...a: Parameters<typeof fs.writeSync>) => number)(...args);
    }) as typeof fs.writeSync;
  }
  syncBuiltinESMExports();
  return { count: () => failed, heal: () => (on = false) };
}

describe('checkpoint log: deferred syncs', () => {
  it('without deferral every append is synced; with it appends are written, and sync() makes them durable', async () => {
    const plain = scratch();
    const a = CheckpointLog.open(plain);
    await a.appendAmendment(intent(1));
    expect(a.syncedLength).toBe(fs.statSync(path.join(plain, 'CHECKPOINTS')).size);
    await a.close();

    const dir = scratch();
    const log = CheckpointLog.open(dir);
    await log.setDeferSyncs(true);
    for (let i = 1; i <= 3; i++) await log.appendAmendment(intent(i));
    const size = fs.statSync(path.join(dir, 'CHECKPOINTS')).size;
    // Written (a killed process keeps them), not synced (a power loss drops them).
    expect(intentsIn(dir)).toEqual([1, 2, 3]);
    expect(log.syncedLength).toBe(0);
    expect(intentsIn(powerLoss(dir, log.syncedLength))).toEqual([]);
    await log.sync();
    expect(log.syncedLength).toBe(size);
    expect(intentsIn(powerLoss(dir, log.syncedLength))).toEqual([1, 2, 3]);
    // A forced sync (a divergence record) covers the deferred records before it.
    await log.appendAmendment(intent(4));
    await log.appendAmendment(intent(5), { sync: true });
    expect(intentsIn(powerLoss(dir, log.syncedLength))).toEqual([1, 2, 3, 4, 5]);
    // Turning deferral off syncs what is deferred; later appends are synced as they come.
    await log.appendAmendment(intent(6));
    await log.setDeferSyncs(false);
    expect(intentsIn(powerLoss(dir, log.syncedLength))).toEqual([1, 2, 3, 4, 5, 6]);
    await log.appendAmendment(intent(7));
    expect(intentsIn(powerLoss(dir, log.syncedLength))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await log.close();
  });

  it('a failed sync keeps the records deferred; the next sync cuts the file back and writes them again, once each', async () => {
    const dir = scratch();
    const log = CheckpointLog.open(dir);
    await log.setDeferSyncs(true);
    await log.appendAmendment(intent(1));
    await log.sync();
    const synced = log.syncedLength;
    await log.appendAmendment(intent(2));
    await log.appendAmendment(intent(3));
    const fault = failFromLog('fdatasync');
    await expect(log.sync()).rejects.toBeInstanceOf(CheckpointLogWriteError);
    await expect(log.sync()).rejects.toBeInstanceOf(CheckpointLogWriteError); // the repair's sync fails too
    expect(fault.count()).toBe(2);
    expect(log.syncedLength).toBe(synced);
    fault.heal();
    await log.sync();
    expect(intentsIn(powerLoss(dir, log.syncedLength))).toEqual([1, 2, 3]);
    // The log goes on after the repair.
    await log.appendAmendment(intent(4));
    await log.sync();
    expect(intentsIn(dir)).toEqual([1, 2, 3, 4]);
    await log.close();
  });

  it('a failed write: that record does not exist; the deferred ones before it are written again at the next append', async () => {
    const dir = scratch();
    const log = CheckpointLog.open(dir);
    await log.setDeferSyncs(true);
    await log.appendAmendment(intent(1));
    await log.appendAmendment(intent(2));
    const fault = failFromLog('writeSync');
    await expect(log.appendAmendment(intent(3))).rejects.toBeInstanceOf(CheckpointLogWriteError);
    expect(fault.count()).toBe(1);
    fault.heal();
    await log.appendAmendment(intent(4));
    // The repair synced the records it wrote again; 4 is deferred.
    expect(intentsIn(powerLoss(dir, log.syncedLength))).toEqual([1, 2]);
    expect(intentsIn(dir)).toEqual([1, 2, 4]);
    await log.close();
    // A clean close syncs what was deferred.
    expect(intentsIn(dir)).toEqual([1, 2, 4]);
  });

  it(`deferred records are bounded: past ${MAX_DEFERRED_BYTES} bytes an append syncs at once`, async () => {
    const dir = scratch();
    const log = CheckpointLog.open(dir);
    await log.setDeferSyncs(true);
    const one = intent(1, 1000).length;
    const n = Math.ceil(MAX_DEFERRED_BYTES / one) + 1;
    for (let i = 1; i <= n; i++) await log.appendAmendment(intent(i, 1000));
    expect(log.syncedLength).toBeGreaterThan(MAX_DEFERRED_BYTES);
    expect(intentsIn(powerLoss(dir, log.syncedLength)).length).toBeGreaterThan(MAX_DEFERRED_BYTES / one);
    await log.close();
  });
});
