/**
 * Test harness for the engine: temporary directories, a reference model of the versioned
 * semantics, and small helpers to compare the two.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { VersionEntry } from '../../src/index.js';
import { packEntries, runFlush, type CompactionOutput, type TableShape } from '../../src/compaction/compact.js';
import { files } from '../../src/version/version_set.js';

/** A fresh temporary directory; removed by `cleanup()`. */
export function tempDir(prefix = 'proofkv-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Copies the directory of a database that is open (`from`, recursively) to `to` as a crash now
 * would leave it. The copy is synchronous, so no engine step runs during it, but an unlink of an
 * obsolete table queued before it may finish meanwhile (src/db/table_deleter.ts): a table file
 * listed and then gone is skipped. Such a table left the version in a manifest edit made durable
 * before its unlink was queued, so a crash image may equally lack it. Any other file that
 * vanishes fails the copy; a live table that was skipped would fail the copy's open (the open
 * checks every table the manifest names), which is why callers open the copy. Returns the
 * skipped table names (relative to `from`).
 */
export function copyLiveDir(from: string, to: string): string[] {
  const skipped: string[] = [];
  const walk = (rel: string): void => {
    fs.mkdirSync(path.join(to, rel), { recursive: true });
    for (const d of fs.readdirSync(path.join(from, rel), { withFileTypes: true })) {
      const name = path.join(rel, d.name);
      if (d.isDirectory()) {
        walk(name);
        continue;
      }
      try {
        fs.copyFileSync(path.join(from, name), path.join(to, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !/^\d+\.sst$/.test(d.name)) throw err;
        skipped.push(name);
      }
    }
  };
  walk('');
  return skipped;
}

/**
 * Copies `from` into `to` as a power loss now would leave it, as far as `CHECKPOINTS` goes: only
 * its first `checkpointLogSynced` bytes are kept (`ProofDB._checkpointLogSyncedLength()`, or
 * `CheckpointLog.syncedLength`); the other files are copied as they are ({@link copyLiveDir}).
 */
export function powerLossCopy(from: string, to: string, checkpointLogSynced: number): void {
  copyLiveDir(from, to);
  fs.truncateSync(path.join(to, 'CHECKPOINTS'), checkpointLogSynced);
}

/** Options that make a tiny database flush and compact constantly. */
export const TINY = {
  writeBufferSize: 2048,
  targetFileSize: 2048,
  blockSize: 256,
  level0CompactionTrigger: 2,
  maxBytesForLevelBase: 4096,
  compactionThread: 'inline' as const,
};

export interface ModelEntry {
  version: number;
  seq: number;
  kind: 'put' | 'delete';
  value: string;
}

const dec = new TextDecoder();
export const str = (b: Uint8Array | undefined) => (b === undefined ? undefined : dec.decode(b));

/** The versioned semantics, written as plainly as possible. */
export class Model {
  readonly keys = new Map<string, ModelEntry[]>(); // ascending versions
  lastSeq = 0;

  latest(key: string): number {
    const h = this.keys.get(key);
    return h && h.length > 0 ? h[h.length - 1].version : 0;
  }

  /** Applies a batch; returns false (and changes nothing) if any explicit version is not increasing. */
  apply(ops: Array<{ kind: 'put' | 'delete'; key: string; value?: string; version?: number }>): boolean {
    const local = new Map<string, number>();
    const planned: Array<[string, ModelEntry]> = [];
    let seq = this.lastSeq;
    for (const op of ops) {
      const latest = local.get(op.key) ?? this.latest(op.key);
      const version = op.version ?? latest + 1;
      if (version <= latest) return false;
      local.set(op.key, version);
      planned.push([op.key, { version, seq: ++seq, kind: op.kind, value: op.kind === 'put' ? (op.value ?? '') : '' }]);
    }
    for (const [k, e] of planned) {
      if (!this.keys.has(k)) this.keys.set(k, []);
      this.keys.get(k)!.push(e);
    }
    this.lastSeq = seq;
    return true;
  }

  visible(key: string, seq: number): ModelEntry[] {
    return (this.keys.get(key) ?? []).filter((e) => e.seq <= seq);
  }

  getWithVersion(key: string, version: number, seq = Infinity): ModelEntry | undefined {
    const h = this.visible(key, seq).filter((e) => e.version <= version);
    return h[h.length - 1];
  }

  get(key: string, seq = Infinity): string | undefined {
    const e = this.getWithVersion(key, Number.MAX_SAFE_INTEGER, seq);
    return e && e.kind === 'put' ? e.value : undefined;
  }

  history(key: string, min = 0, max = Number.MAX_SAFE_INTEGER, limit?: number, seq = Infinity): ModelEntry[] {
    const h = this.visible(key, seq).filter((e) => e.version >= min && e.version <= max);
    return limit === undefined ? h : h.slice(0, limit);
  }

  /** Latest live values in key order (bytewise order of UTF-8 = code-unit order for ASCII keys). */
  scan(seq = Infinity, lo?: string, hi?: string): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (const k of [...this.keys.keys()].sort(cmp)) {
      if (lo !== undefined && cmp(k, lo) < 0) continue;
      if (hi !== undefined && cmp(k, hi) >= 0) continue;
      const v = this.get(k, seq);
      if (v !== undefined) out.push([k, v]);
    }
    return out;
  }
}

function cmp(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A VersionEntry as a model entry, for deep equality. */
export function asModel(e: VersionEntry | undefined): ModelEntry | undefined {
  return e && { version: e.version, seq: e.seq, kind: e.kind, value: str(e.value)! };
}

/** Sorted `[internalKey, storedValue]` pairs packed as a flush job's entries (`packEntries`). */
export function packedOf(ents: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Uint8Array {
  let i = 0;
  const it = { seekToFirst: () => (i = 0), valid: () => i < ents.length, next: () => i++, key: () => ents[i][0], value: () => ents[i][1] };
  return packEntries(it, 1024);
}

/** Flushes sorted `ents` as table `number` of `dir` with `shape` (as the engine's flush does); returns the flush's output. */
export function flushTable(dir: string, number: number, ents: ReadonlyArray<readonly [Uint8Array, Uint8Array]>, shape: TableShape, keepLeaves = false): CompactionOutput {
  const out = runFlush({ dir, tmpName: `t${number}.tmp`, shape, packed: packedOf(ents), keepLeaves });
  fs.renameSync(path.join(dir, out.tmpName), path.join(dir, files.table(number)));
  return out;
}
