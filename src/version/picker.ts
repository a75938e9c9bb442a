/**
 * The compaction policy: a pure function of the version and the compaction pointers, so every
 * replica picks the same compaction at the same point of the write sequence. No seek-triggered
 * compactions, no timing, no randomness.
 *
 * Scores as in LevelDB: level 0 by table count over `level0CompactionTrigger`, deeper levels by
 * bytes over their budget (`maxBytesForLevelBase` x 10^(level-1)). The highest score >= 1 wins,
 * the lower level on a tie. Level 0 compacts all its tables with the overlapping level-1 tables; a deeper
 * level compacts the first table after its compaction pointer (round robin) with the overlapping
 * tables of the next level. A single input with nothing to merge is moved, not rewritten.
 *
 * A checkpoint's level-0 rule ({@link pickCheckpointLevel0}) is a function of the version and the
 * shape too: all of level 0 merged into one level-0 table while level 0 is under
 * `checkpointLevel0Bytes` (RocksDB's intra-L0 compaction; with `checkpointLevel0SizeRatio`, only the
 * newest level-0 tables, size-tiered), else all of level 0 into level 1.
 * @module
 */
import { compareBytes } from '../../proofs/bytes.js';
import { compareInternalKeys, userKeyOf } from '../keys.js';
import { NUM_LEVELS } from '../options.js';
import type { TableMeta } from './edit.js';
import { overlapping, type Version } from './version.js';

/** The knobs of the policy (part of the engine's shape options). */
export interface PickerOptions {
  level0CompactionTrigger: number;
  maxBytesForLevelBase: number;
}

/** The knobs of a checkpoint's level-0 rule. */
export interface CheckpointLevel0Options {
  checkpointLevel0Tables: number;
  checkpointLevel0Bytes: number;
  /** 0: a merge takes all of level 0; R > 0: the newest tables, size-tiered ({@link pickCheckpointLevel0}). */
  checkpointLevel0SizeRatio: number;
}

/** A picked compaction. */
export interface Compaction {
  /** Input level. */
  level: number;
  /** Where the outputs go: `level + 1`, or 0 for a merge within level 0. */
  outputLevel: number;
  /** Inputs from `level`, in read order. */
  inputs: TableMeta[];
  /** Inputs from `level + 1` (none for a merge within level 0). */
  nextInputs: TableMeta[];
  /** One table moved down unchanged. */
  trivialMove: boolean;
  /** The compaction pointer of `level` after this compaction (largest input key); none for a merge within level 0. */
  pointer?: Uint8Array;
}

/** Byte budget of a level >= 1. */
export function maxBytesForLevel(level: number, base: number): number {
  return base * 10 ** (level - 1);
}

/**
 * The compaction score of `level` (below the last): level 0 by table count over
 * `level0CompactionTrigger`, deeper levels by bytes over their budget. A level with score >= 1
 * is due for compaction; the scheduler's drain runs until every score is below 1.
 */
export function levelScore(v: Version, level: number, opts: PickerOptions): number {
  return level === 0 ? v.levels[0].length / opts.level0CompactionTrigger : v.levelBytes(level) / maxBytesForLevel(level, opts.maxBytesForLevelBase);
}

/** Picks the next compaction, or null when every level is within budget. */
export function pickCompaction(
  v: Version,
  pointers: ReadonlyMap<number, Uint8Array>,
  opts: PickerOptions,
): Compaction | null {
  let bestLevel = -1;
  let bestScore = 1;
  for (let level = 0; level < NUM_LEVELS - 1; level++) {
    const score = levelScore(v, level, opts);
    if (score >= bestScore && (bestLevel === -1 || score > bestScore)) {
      bestScore = score;
      bestLevel = level;
    }
  }
  if (bestLevel === -1) return null;
  return compactionAt(v, bestLevel, pointers);
}

/**
 * The compaction of all level-0 tables into level 1 (the one {@link pickCompaction} picks for level
 * 0), or null when level 0 is empty. A checkpoint runs it, whatever the scores, when it would
 * otherwise leave more than `checkpointLevel0Tables` tables in level 0 (docs/engine.md §
 * Checkpoints).
 */
export function pickLevel0Compaction(v: Version, pointers: ReadonlyMap<number, Uint8Array>): Compaction | null {
  return v.levels[0].length === 0 ? null : compactionAt(v, 0, pointers);
}

/**
 * A checkpoint's level-0 rule (docs/engine.md § Checkpoints): null when level 0 holds at most
 * `checkpointLevel0Tables` tables. Otherwise, when one level-0 table is allowed
 * (`checkpointLevel0Tables` >= 1), `checkpointLevel0Bytes` is not 0 and level 0 holds fewer bytes
 * than it and than level 1, the **merge of level-0 tables into one level-0 table** — all of them,
 * or with `checkpointLevel0SizeRatio` the newest ones, size-tiered (`level0Merge`) — (no
 * level-1 table is read or rewritten: the cost is bounded by level 0's bytes, not level 1's); else — level
 * 0 has reached its byte bound, or level 1 is no larger than level 0, so that rewriting it costs
 * at most as much again — the compaction of all of level 0 into level 1
 * ({@link pickLevel0Compaction}), which is how level 0 moves on when merges keep it under
 * `level0CompactionTrigger` tables. A pure function of the version and the shape, so every replica
 * and a replay pick the same.
 */
export function pickCheckpointLevel0(v: Version, pointers: ReadonlyMap<number, Uint8Array>, opts: CheckpointLevel0Options): Compaction | null {
  const level0 = v.levels[0];
  if (level0.length <= opts.checkpointLevel0Tables) return null;
  const level0Bytes = v.levelBytes(0);
  if (opts.checkpointLevel0Tables >= 1 && opts.checkpointLevel0Bytes > 0 && level0Bytes < opts.checkpointLevel0Bytes && level0Bytes < v.levelBytes(1)) {
    return { level: 0, outputLevel: 0, inputs: level0Merge(level0, opts), nextInputs: [], trivialMove: false };
  }
  return pickLevel0Compaction(v, pointers);
}

/**
 * The inputs of a checkpoint's merge within level 0 (`level0` newest first, more than
 * `checkpointLevel0Tables` tables). With `checkpointLevel0SizeRatio` 0, all of level 0 (one
 * level-0 table after it). With R > 0, **size-tiered** (RocksDB's universal compaction, its
 * `size_ratio`): the newest `n - checkpointLevel0Tables + 1` tables, the fewest that leave
 * `checkpointLevel0Tables`, then each next older table while its bytes are at most R % of the
 * bytes taken so far — so a small recent table is merged with the other recent ones, not into the
 * large old one, until the recent ones have grown to its size. Always a run of the newest tables,
 * so the output (numbered after every input) is level 0's newest table and the read order holds.
 */
function level0Merge(level0: readonly TableMeta[], opts: CheckpointLevel0Options): TableMeta[] {
  if (opts.checkpointLevel0SizeRatio === 0) return level0.slice();
  let take = level0.length - opts.checkpointLevel0Tables + 1;
  let bytes = 0;
  for (let i = 0; i < take; i++) bytes += level0[i].size;
  while (take < level0.length && level0[take].size * 100 <= bytes * opts.checkpointLevel0SizeRatio) bytes += level0[take++].size;
  return level0.slice(0, take);
}

/** The compaction of `level` (non-empty) into the next level, by the rules of the module comment. */
function compactionAt(v: Version, level: number, pointers: ReadonlyMap<number, Uint8Array>): Compaction {
  let inputs: TableMeta[];
  if (level === 0) {
    inputs = v.levels[0].slice();
  } else {
    const tables = v.levels[level];
    const ptr = pointers.get(level);
    const next = ptr === undefined ? undefined : tables.find((t) => compareInternalKeys(t.largest, ptr) > 0);
    inputs = [next ?? tables[0]];
  }
  let lo = userKeyOf(inputs[0].smallest);
  let hi = userKeyOf(inputs[0].largest);
  let largest = inputs[0].largest;
  for (const t of inputs) {
    if (compareBytes(userKeyOf(t.smallest), lo) < 0) lo = userKeyOf(t.smallest);
    if (compareBytes(userKeyOf(t.largest), hi) > 0) hi = userKeyOf(t.largest);
    if (compareInternalKeys(t.largest, largest) > 0) largest = t.largest;
  }
  const nextInputs = overlapping(v.levels[level + 1], lo, hi);
  return {
    level,
    outputLevel: level + 1,
    inputs,
    nextInputs,
    trivialMove: level > 0 && inputs.length === 1 && nextInputs.length === 0,
    pointer: largest,
  };
}
