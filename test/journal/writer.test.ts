import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptionError, ErrorCode, ProofKVError } from '../../src/errors.js';
import { BLOCK_SIZE } from '../../src/journal/format.js';
import { JournalWriter, formatRecords } from '../../src/journal/writer.js';
import { readJournal } from '../../src/journal/reader.js';
import { bytesOf, concat, expectSameRecords, sameBytes, tempDir } from './harness.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const file = () => path.join(dir, '000005.log');
const readFile = (p = file()) => new Uint8Array(fs.readFileSync(p));

describe('JournalWriter', () => {
  for (const syncMode of ['blocking', 'threadpool'] as const) {
    it(`writes what formatRecords formats, and tracks lengths (${syncMode})`, async () => {
      const ps = [bytesOf(0), bytesOf(1), bytesOf(BLOCK_SIZE - 7), bytesOf(100 * 1024), bytesOf(33)];
      const w = JournalWriter.open(file(), { syncMode });
      let expectLen = 0;
      for (const p of ps.slice(0, 3)) {
        expectLen = w.addRecord(p);
      }
      expect(w.length).toBe(expectLen);
      expect(w.pendingBytes).toBe(expectLen);
      expect(w.writtenLength).toBe(0);
      expect(fs.statSync(file()).size).toBe(0);
      await w.flush({ sync: false });
      expect(w.writtenLength).toBe(expectLen);
      expect(w.pendingBytes).toBe(0);
      expect(fs.statSync(file()).size).toBe(expectLen);
      w.addRecord(ps[3]);
      w.addRecord(ps[4]);
      await w.flush({ sync: true });
      expect(w.syncedLength).toBe(w.length);
      await w.close();
      const bytes = readFile();
      expect(sameBytes(bytes, formatRecords(ps))).toBe(true);
      const got = readJournal(bytes, '000005.log');
      expectSameRecords(got.records, ps);
      expect(got.tornTail).toBe(false);
    });
  }

  it('coalesces many concurrent synced flushes (threadpool mode) and loses nothing', async () => {
    const w = JournalWriter.open(file(), { syncMode: 'threadpool' });
    const ps = Array.from({ length: 200 }, (_, i) => bytesOf(50 + (i % 7) * 300, i));
    await Promise.all(
      ps.map(async (p) => {
        const myEnd = w.addRecord(p);
        await w.flush({ sync: true });
        // When my flush resolves, my record is durable.
        expect(w.syncedLength).toBeGreaterThanOrEqual(myEnd);
      }),
    );
    expect(w.syncedLength).toBe(w.length);
    await w.close();
    expectSameRecords(readJournal(readFile(), 'x').records, ps);
  });

  it('continues a file across reopen: the block offset resumes', async () => {
    const a = [bytesOf(BLOCK_SIZE - 100), bytesOf(50)];
    const b = [bytesOf(3000), bytesOf(70000)];
    const w1 = JournalWriter.open(file());
    a.forEach((p) => w1.addRecord(p));
    await w1.close();
    const first = readJournal(readFile(), 'x');
    expect(first.tornTail).toBe(false);
    const w2 = JournalWriter.open(file(), { existingLength: first.validLength });
    expect(w2.length).toBe(first.validLength);
    expect(w2.syncedLength).toBe(first.validLength);
    b.forEach((p) => w2.addRecord(p));
    await w2.close();
    const bytes = readFile();
    expect(sameBytes(bytes, formatRecords([...a, ...b]))).toBe(true);
    expectSameRecords(readJournal(bytes, 'x').records, [...a, ...b]);
  });

  it('recovers from a torn tail: truncate at validLength and keep appending', async () => {
    const a = [bytesOf(10), bytesOf(40000)];
    const full = formatRecords([...a, bytesOf(5000)]);
    // The crash left the third record half written.
    fs.writeFileSync(file(), full.subarray(0, full.length - 2000));
    const rec = readJournal(readFile(), 'x');
    expect(rec.tornTail).toBe(true);
    expectSameRecords(rec.records, a);
    const w = JournalWriter.open(file(), { existingLength: rec.validLength });
    expect(fs.statSync(file()).size).toBe(rec.validLength);
    w.addRecord(bytesOf(77));
    await w.close();
    const after = readJournal(readFile(), 'x');
    expect(after.tornTail).toBe(false);
    expectSameRecords(after.records, [...a, bytesOf(77)]);
  });

  it('refuses to create over an existing file, or to continue past its end', () => {
    fs.writeFileSync(file(), new Uint8Array(10));
    expect(() => JournalWriter.open(file())).toThrow(ProofKVError);
    try {
      JournalWriter.open(file());
    } catch (e) {
      expect((e as ProofKVError).code).toBe(ErrorCode.IO_ERROR);
    }
    expect(() => JournalWriter.open(file(), { existingLength: 11 })).toThrow(CorruptionError);
    expect(() => JournalWriter.open(file(), { existingLength: -1 })).toThrow(RangeError);
    expect(() => JournalWriter.open(path.join(dir, 'missing', 'x.log'), { existingLength: 0 })).toThrow(/journal open failed/);
  });

  it('copies the payload at addRecord, and rejects use after close', async () => {
    const w = JournalWriter.open(file());
    const p = bytesOf(20);
    w.addRecord(p);
    p.fill(0);
    await w.close();
    await w.close(); // idempotent
    expectSameRecords(readJournal(readFile(), 'x').records, [bytesOf(20)]);
    expect(() => w.addRecord(p)).toThrow(/closed/);
    await expect(w.flush({ sync: true })).rejects.toThrow(/closed/);
  });

  it('after an I/O failure the writer is broken: every later call rethrows the first error', async () => {
    const w = JournalWriter.open(file());
    w.addRecord(bytesOf(10));
    await w.flush({ sync: true });
    // Fault injection: pull the descriptor out from under the writer. Safe: vitest runs files in
    // separate processes (pool 'forks') and the failing write follows synchronously, so the fd
    // number cannot be reused in between.
    fs.closeSync((w as unknown as { fd: number }).fd);
    w.addRecord(bytesOf(11));
    const first = await w.flush({ sync: false }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(first).toBeInstanceOf(ProofKVError);
    expect((first as ProofKVError).code).toBe(ErrorCode.IO_ERROR);
    expect(() => w.addRecord(bytesOf(1))).toThrow(first as Error);
    await expect(w.flush({ sync: true })).rejects.toBe(first);
    await expect(w.close()).rejects.toBe(first);
    // What was synced before the failure is intact.
    expectSameRecords(readJournal(readFile(), 'x').records, [bytesOf(10)]);
  });

  it('a concatenation of flushes equals one-shot formatting', async () => {
    const ps = Array.from({ length: 300 }, (_, i) => bytesOf((i * 997) % 5000, i));
    const w = JournalWriter.open(file());
    for (let i = 0; i < ps.length; i++) {
      w.addRecord(ps[i]);
      if (i % 7 === 0) await w.flush({ sync: i % 21 === 0 });
    }
    await w.close();
    expect(sameBytes(readFile(), concat(formatRecords(ps)))).toBe(true);
  });
});
