/**
 * Write faults in the engine, injected in-process: a failed sync of the checkpoint log append and
 * of a manifest edit. Neither may stick: the failed checkpoint does not exist (no fork of the log),
 * the node retries, and after it recovers and reopens every acknowledged write is there.
 * Faults are injected by replacing `fs.fdatasyncSync` (and syncing the ESM bindings) for calls
 * made from one function, once.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { tmpDir } from './harness.js';

const real = fs.fdatasyncSync;
afterEach(() => {
  fs.fdatasyncSync = real;
  syncBuiltinESMExports();
});

/** The next `fdatasyncSync` called from `caller` throws EIO; returns how many were failed so far. */
function failNextSyncFrom(caller: string): () => number {
  let failed = 0;
  fs.fdatasyncSync = (fd: number) => {
    if (failed === 0 && (new Error().stack ?? '').includes(caller)) {
      failed++;
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
    }
    real(fd);
  };
  syncBuiltinESMExports();
  return () => failed;
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
});
