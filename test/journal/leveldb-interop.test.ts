/**
 * Interoperability with real LevelDB (classic-level): our reader and batch decoder read the
 * `.log` LevelDB writes, our writer reproduces its bytes exactly, and LevelDB recovers a journal
 * our writer wrote.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Kind } from '../../proofs/hash.js';
import { decodeBatch, encodeBatch, type BatchOp } from '../../src/journal/batch.js';
import { BLOCK_SIZE, RecordType } from '../../src/journal/format.js';
import { readJournal } from '../../src/journal/reader.js';
import { JournalWriter, formatRecords } from '../../src/journal/writer.js';
import { bytesOf, physicalLayout, sameBytes, tempDir } from './harness.js';

const enc = new TextEncoder();
const b = (s: string) => enc.encode(s);
const hex = (u: Uint8Array | undefined) => (u === undefined ? undefined : Buffer.from(u).toString('hex'));

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

function logFiles(d: string): string[] {
  return fs.readdirSync(d).filter((f) => f.endsWith('.log')).sort();
}

describe('LevelDB interoperability', () => {
  it('reads the .log written by classic-level: exact keys, values, deletes and sequence numbers', async () => {
    const big = bytesOf(100 * 1024, 99);
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    // Each awaited call is one LevelDB write batch, hence one journal record.
    await db.put(b('alpha'), b('1'));
    await db.put(b('beta'), b(''));
    await db.del(b('alpha'));
    await db.put(b('big'), big);
    await db.batch([
      { type: 'put', key: b('k1'), value: b('v1') },
      { type: 'del', key: b('k0') },
      { type: 'put', key: Uint8Array.of(0, 255, 0), value: Uint8Array.of(1, 2, 3) },
    ]);
    await db.put(b('after-big'), bytesOf(33000, 5));
    await db.close(); // LevelDB does not flush the memtable on close: the data stays in the .log

    const logs = logFiles(dir);
    expect(logs.length).toBe(1);
    const bytes = new Uint8Array(fs.readFileSync(path.join(dir, logs[0])));
    const journal = readJournal(bytes, logs[0]);
    expect(journal.tornTail).toBe(false);
    expect(journal.validLength).toBe(bytes.length);

    // FIRST/MIDDLE/LAST all occur in LevelDB's own file.
    const types = new Set(physicalLayout(bytes).map((r) => r[1]));
    for (const t of [RecordType.FULL, RecordType.FIRST, RecordType.MIDDLE, RecordType.LAST]) expect(types.has(t)).toBe(true);

    const flat = journal.records.flatMap((rec) => {
      const { seq, ops } = decodeBatch(rec, logs[0]);
      return ops.map((op, i) => ({ seq: seq + i, kind: op.kind, key: hex(op.key), version: op.version, value: hex(op.value) }));
    });
    const P = Kind.PUT;
    const D = Kind.DELETE;
    expect(flat).toEqual([
      { seq: 1, kind: P, key: hex(b('alpha')), version: undefined, value: hex(b('1')) },
      { seq: 2, kind: P, key: hex(b('beta')), version: undefined, value: '' },
      { seq: 3, kind: D, key: hex(b('alpha')), version: undefined, value: undefined },
      { seq: 4, kind: P, key: hex(b('big')), version: undefined, value: hex(big) },
      { seq: 5, kind: P, key: hex(b('k1')), version: undefined, value: hex(b('v1')) },
      { seq: 6, kind: D, key: hex(b('k0')), version: undefined, value: undefined },
      { seq: 7, kind: P, key: '00ff00', version: undefined, value: '010203' },
      { seq: 8, kind: P, key: hex(b('after-big')), version: undefined, value: hex(bytesOf(33000, 5)) },
    ]);
    expect(journal.records.length).toBe(6);

    // Our encoder and writer reproduce LevelDB's bytes exactly.
    for (const rec of journal.records) {
      const { seq, ops } = decodeBatch(rec, logs[0]);
      expect(sameBytes(encodeBatch(seq, ops), rec)).toBe(true);
    }
    expect(sameBytes(formatRecords(journal.records), bytes)).toBe(true);
  });

  it('LevelDB recovers a journal written by JournalWriter', async () => {
    // Let LevelDB create the directory (CURRENT, MANIFEST), then replace its empty log with ours.
    const db0 = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db0.open();
    await db0.close();
    const logs = logFiles(dir);
    expect(logs.length).toBe(1);
    const logPath = path.join(dir, logs[0]);
    expect(fs.statSync(logPath).size).toBe(0);
    fs.rmSync(logPath);

    const big = bytesOf(2 * BLOCK_SIZE + 123, 7);
    const batches: Array<[number, BatchOp[]]> = [
      [1, [{ kind: Kind.PUT, key: b('a'), value: b('A') }]],
      [2, [{ kind: Kind.PUT, key: b('big'), value: big }, { kind: Kind.PUT, key: b('b'), value: b('B') }]],
      [4, [{ kind: Kind.DELETE, key: b('a') }]],
    ];
    const w = JournalWriter.open(logPath);
    for (const [seq, ops] of batches) w.addRecord(encodeBatch(seq, ops));
    await w.close();

    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      expect(await db.get(b('a'))).toBeUndefined();
      expect(hex(await db.get(b('b')))).toBe(hex(b('B')));
      expect(sameBytes((await db.get(b('big')))!, big)).toBe(true);
    } finally {
      await db.close();
    }
  });
});
