/** Small builders shared by the table tests. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareInternalKeys, encodeInternalKey, encodeStoredValue, type Entry } from '../../src/keys.js';
import { TableBuilder, type BuiltTable, type TableOptions } from '../../src/table/table_builder.js';
import type { Kind } from '../../proofs/hash.js';

import { mulberry32 as rng, randomBytes } from '../support/prng.js';
export { rng, randomBytes };

/** An entry plus its encoded internal key. */
export interface Rec extends Entry {
  ik: Uint8Array;
}

/** Commit time the harness gives a record of `seq` (grows with seq, so per key with version). */
export const timeOfSeq = (seq: number) => 1_700_000_000_000 + 7 * seq;

/** Makes a record (its time from {@link timeOfSeq} unless given). */
export function rec(key: Uint8Array, version: number, seq: number, kind: Kind, value: Uint8Array, time = timeOfSeq(seq)): Rec {
  return { key, version, seq, time, kind, value, ik: encodeInternalKey(key, version, seq, kind) };
}

/** Sorts records in engine order. */
export function sortRecs(recs: Rec[]): Rec[] {
  return recs.sort((a, b) => compareInternalKeys(a.ik, b.ik));
}

/**
 * A versioned history: `nKeys` user keys (with shared prefixes), each with 1..maxVersions versions
 * whose seqs grow with the version; seqs are globally unique and interleaved across keys.
 */
export function history(seed: number, nKeys: number, maxVersions = 4, valueLen = 20): Rec[] {
  const r = rng(seed);
  const keys = new Set<string>();
  while (keys.size < nKeys) {
    const prefix = ['user/', 'user/alice/', 'acct:', ''][Math.floor(r() * 4)];
    keys.add(prefix + Math.floor(r() * nKeys * 10).toString(36));
  }
  // Assign versions, then seqs in a random global write order.
  const writes: { key: string; version: number }[] = [];
  const pending = [...keys].map((k) => ({ k, left: 1 + Math.floor(r() * maxVersions), v: 0 }));
  while (pending.length > 0) {
    const i = Math.floor(r() * pending.length);
    const p = pending[i];
    p.v += 1 + Math.floor(r() * 3);
    writes.push({ key: p.k, version: p.v });
    if (--p.left === 0) pending.splice(i, 1);
  }
  const enc = new TextEncoder();
  const recs = writes.map((w, i) => {
    const kind: Kind = r() < 0.15 ? 0 : 1;
    const value = kind === 0 ? new Uint8Array(0) : randomBytes(r, Math.floor(r() * valueLen));
    return rec(enc.encode(w.key), w.version, 10 + 2 * i, kind, value);
  });
  return sortRecs(recs);
}

/** Builds a table from sorted records. */
export function build(recs: Rec[], opts: Partial<TableOptions> = {}): BuiltTable {
  const b = new TableBuilder(opts);
  for (const x of recs) b.add(x.ik, encodeStoredValue(x.time, x.value));
  return b.finish();
}

/** A temporary directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; file: (name: string, bytes: Uint8Array) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'proofkv-table-'));
  return {
    dir,
    file: (name, bytes) => {
      const p = join(dir, name);
      writeFileSync(p, bytes);
      return p;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The model answer for get: newest record of `key` with version <= v and seq <= s. */
export function modelGet(recs: Rec[], key: Uint8Array, v: number, s: number): Rec | undefined {
  for (const x of recs) {
    if (Buffer.compare(x.key, key) === 0 && x.version <= v && x.seq <= s) return x;
  }
  return undefined;
}
