/**
 * A flush's or compaction's output is written to its file as it is built, and a compaction reads
 * its inputs ahead (src/compaction/compact.ts, docs/engine.md § Flush and compaction worker): the
 * files are the tables a build in memory makes, the readahead returns what plain reads return,
 * and a job that fails leaves none of its temporary files behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Kind } from '../../proofs/hash.js';
import { runCompaction, runFlush, type TableShape } from '../../src/compaction/compact.js';
import { CorruptionError, InvalidArgumentError } from '../../src/errors.js';
import { compareInternalKeys, encodeInternalKey, encodeStoredValue } from '../../src/keys.js';
import { nodeHasher } from '../../src/table/node_hasher.js';
import { TableBuilder } from '../../src/table/table_builder.js';
import { TableReader } from '../../src/table/table_reader.js';
import { files } from '../../src/version/version_set.js';
import { mulberry32 } from '../support/prng.js';
import { flushTable, packedOf, tempDir } from './harness.js';

const SHAPE: TableShape = { blockSize: 512, blockRestartInterval: 16, bloomBitsPerKey: 10, targetFileSize: 64 * 1024, merkleGroup: 16 };
const te = new TextEncoder();
type Ent = [Uint8Array, Uint8Array];

/** Sorted entries: `n` versions over 400 keys, sequence numbers from `base`. */
function entries(seed: number, n: number, base: number): Ent[] {
  const r = mulberry32(seed);
  const out: Ent[] = [];
  for (let i = 0; i < n; i++) {
    const k = te.encode(`key-${String(Math.floor(r() * 400)).padStart(4, '0')}`);
    const value = te.encode('v'.repeat(Math.floor(r() * 200)) + i);
    out.push([encodeInternalKey(k, base + i, base + i, Kind.PUT), encodeStoredValue(1_700_000_000_000 + base + i, value)]);
  }
  return out.sort((a, b) => compareInternalKeys(a[0], b[0]));
}

/** Flushes `ents` as table `number` of `dir`. */
function writeTable(dir: string, number: number, ents: Ent[]): void {
  flushTable(dir, number, ents, SHAPE);
}

/** The table a build in memory makes of `ents` with the shape. */
function inMemory(ents: Ent[]): Uint8Array {
  const b = new TableBuilder({ blockSize: SHAPE.blockSize, restartInterval: SHAPE.blockRestartInterval, bloomBitsPerKey: SHAPE.bloomBitsPerKey, merkleGroup: SHAPE.merkleGroup, hasher: nodeHasher });
  for (const [k, v] of ents) b.add(k, v);
  return b.finish().bytes;
}

const tmpFiles = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'));

describe('flush and compaction outputs written as they are built', () => {
  it('a flush writes the table a build in memory makes; a merge into one output too, from inputs read ahead', () => {
    const { dir, cleanup } = tempDir('proofkv-output-');
    try {
      const parts = [1, 2, 3, 4, 5].map((n) => entries(n, 600 + 150 * n, n * 10_000));
      parts.forEach((ents, i) => writeTable(dir, i + 1, ents));
      for (let i = 0; i < parts.length; i++) {
        expect(fs.readFileSync(path.join(dir, files.table(i + 1))).equals(inMemory(parts[i]))).toBe(true);
      }
      const all = parts.flat().sort((a, b) => compareInternalKeys(a[0], b[0]));
      const [one] = runCompaction({ dir, inputs: [1, 2, 3, 4, 5], tmpPrefix: 'merge', shape: SHAPE, singleOutput: true });
      const bytes = fs.readFileSync(path.join(dir, one.tmpName));
      expect(bytes.length).toBeGreaterThan(256 * 1024); // more than one streamed piece
      expect(one.meta.size).toBe(bytes.length);
      expect(bytes.equals(inMemory(all))).toBe(true);
      // Cut into several outputs: together the same entries, each table sound.
      const outs = runCompaction({ dir, inputs: [5, 3, 1, 2, 4], tmpPrefix: 'cut', shape: SHAPE });
      expect(outs.length).toBeGreaterThan(3);
      const got: Ent[] = [];
      for (const o of outs) {
        const t = TableReader.open(path.join(dir, o.tmpName), { fileNumber: 0 });
        expect(t.size).toBe(o.meta.size);
        t.verify();
        const it = t.iterator();
        for (it.seekToFirst(); it.valid(); it.next()) got.push([it.key().slice(), it.value().slice()]);
        t.close();
      }
      expect(got.length).toBe(all.length);
      got.forEach(([k, v], i) => {
        expect(Buffer.from(k)).toEqual(Buffer.from(all[i][0]));
        expect(Buffer.from(v)).toEqual(Buffer.from(all[i][1]));
      });
    } finally {
      cleanup();
    }
  });

  it('a reader with a readahead returns what plain reads return, in order, backwards and at random', () => {
    const { dir, cleanup } = tempDir('proofkv-output-');
    try {
      const ents = entries(7, 3000, 1);
      writeTable(dir, 1, ents);
      const file = path.join(dir, files.table(1));
      for (const readahead of [600, 4096, 64 * 1024, 1 << 20]) {
        const plain = TableReader.open(file, { fileNumber: 1 });
        const ahead = TableReader.open(file, { fileNumber: 1, readahead });
        const walk = (t: TableReader) => {
          const it = t.iterator();
          const fwd: string[] = [];
          const back: string[] = [];
          for (it.seekToFirst(); it.valid(); it.next()) fwd.push(Buffer.from(it.key()).toString('hex') + Buffer.from(it.value()).toString('hex'));
          for (it.seekToLast(); it.valid(); it.prev()) back.push(Buffer.from(it.key()).toString('hex'));
          const r = mulberry32(readahead);
          const sought: string[] = [];
          for (let i = 0; i < 200; i++) {
            it.seek(ents[Math.floor(r() * ents.length)][0]);
            sought.push(Buffer.from(it.value()).toString('hex'));
          }
          return { fwd, back, sought };
        };
        const want = walk(plain);
        expect(want.fwd.length).toBe(ents.length);
        expect(walk(ahead)).toEqual(want);
        plain.close();
        ahead.close();
      }
    } finally {
      cleanup();
    }
  });

  it('a compaction that fails on a damaged input after writing outputs removes every file it wrote', async () => {
    const { dir, cleanup } = tempDir('proofkv-output-');
    try {
      writeTable(dir, 1, entries(11, 4000, 1));
      writeTable(dir, 2, entries(12, 4000, 100_000));
      // Damage the last data block of table 2: the merge fails near its end, outputs already written.
      const file2 = path.join(dir, files.table(2));
      const t = TableReader.open(file2, { fileNumber: 2 });
      const h = t.blockHandle(t.blockCount - 1);
      t.close();
      const bytes = fs.readFileSync(file2);
      bytes[h.offset + 3] ^= 0x40;
      fs.writeFileSync(file2, bytes);
      const seen: string[] = [];
      const watcher = fs.watch(dir, (_e, name) => {
        if (name && name.startsWith('bad-')) seen.push(name);
      });
      try {
        expect(() => runCompaction({ dir, inputs: [1, 2], tmpPrefix: 'bad', shape: SHAPE })).toThrow(CorruptionError);
        // inotify's events arrive after the synchronous job: outputs were on disk before the failure.
        for (let i = 0; i < 50 && new Set(seen).size < 3; i++) await new Promise((r) => setTimeout(r, 10));
      } finally {
        watcher.close();
      }
      expect(new Set(seen).size).toBeGreaterThanOrEqual(3);
      expect(tmpFiles(dir)).toEqual([]);
      expect(fs.readdirSync(dir).sort()).toEqual([files.table(1), files.table(2)].sort());
    } finally {
      cleanup();
    }
  });

  it('a flush that fails mid-build removes its file and throws the builder’s error', () => {
    const { dir, cleanup } = tempDir('proofkv-output-');
    try {
      const ents = entries(21, 2000, 1);
      // Out of order in the middle: the builder refuses the entry after thousands were written.
      const bad = [...ents.slice(0, 1500), ents[10], ...ents.slice(1500)];
      expect(() => runFlush({ dir, tmpName: 'f.tmp', shape: SHAPE, packed: packedOf(bad) })).toThrow(InvalidArgumentError);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      cleanup();
    }
  });
});
