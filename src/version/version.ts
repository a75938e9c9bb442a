/**
 * A version: the immutable set of tables of the LSM tree at one point of its history.
 *
 * Read order (also the MasterRoot order): level 0 newest table first, then levels 1..6, each
 * sorted by key. Level 0 tables may overlap; in deeper levels tables are disjoint, and one user
 * key never spans two tables of a level (compaction only cuts between user keys), so a read
 * consults at most one table per deeper level.
 * @module
 */
import { compareBytes } from '../../proofs/bytes.js';
import { compareInternalKeys, compareUserKeyOf, userKeyOf } from '../keys.js';
import { NUM_LEVELS } from '../options.js';
import type { TableMeta, VersionEdit } from './edit.js';

/** Where a table sits in the read order. */
export interface PlacedTable {
  level: number;
  /** Index within its level in read order. */
  position: number;
  meta: TableMeta;
}

/** An immutable table set. */
export class Version {
  /** Live readers (iterators) holding this version; files of unreferenced old versions may go. */
  refs = 0;

  constructor(readonly levels: readonly (readonly TableMeta[])[]) {}

  /** The empty version. */
  static empty(): Version {
    return new Version(Array.from({ length: NUM_LEVELS }, () => []));
  }

  /** A new version with `edit`'s deletions and additions applied. */
  apply(edit: VersionEdit): Version {
    const levels = this.levels.map((l) => l.slice());
    for (const [level, number] of edit.deleted ?? []) {
      levels[level] = levels[level].filter((t) => t.number !== number);
    }
    for (const [level, meta] of edit.added ?? []) levels[level].push(meta);
    levels[0].sort((a, b) => b.number - a.number);
    for (let l = 1; l < NUM_LEVELS; l++) levels[l].sort((a, b) => compareInternalKeys(a.smallest, b.smallest));
    return new Version(levels);
  }

  /** Every table in read order with its place. */
  placed(): PlacedTable[] {
    const out: PlacedTable[] = [];
    this.levels.forEach((tables, level) => tables.forEach((meta, position) => out.push({ level, position, meta })));
    return out;
  }

  /** Table numbers referenced by this version. */
  tableNumbers(): Set<number> {
    const s = new Set<number>();
    for (const l of this.levels) for (const t of l) s.add(t.number);
    return s;
  }

  /** Total bytes of a level. */
  levelBytes(level: number): number {
    let n = 0;
    for (const t of this.levels[level]) n += t.size;
    return n;
  }

  /** Number of tables. */
  tableCount(): number {
    let n = 0;
    for (const l of this.levels) n += l.length;
    return n;
  }

  /**
   * Tables whose user-key range contains `userKey`, in read order: every overlapping level-0
   * table (newest first), then at most one table per deeper level.
   */
  tablesForKey(userKey: Uint8Array): TableMeta[] {
    const out: TableMeta[] = [];
    for (const t of this.levels[0]) if (containsUserKey(t, userKey)) out.push(t);
    for (let l = 1; l < this.levels.length; l++) {
      const t = findTable(this.levels[l], userKey);
      if (t) out.push(t);
    }
    return out;
  }
}

/** True when `userKey` lies in the table's user-key range. */
export function containsUserKey(t: TableMeta, userKey: Uint8Array): boolean {
  return compareUserKeyOf(t.smallest, userKey) <= 0 && compareUserKeyOf(t.largest, userKey) >= 0;
}

/** Binary search in a sorted, disjoint level for the table containing `userKey`. */
export function findTable(tables: readonly TableMeta[], userKey: Uint8Array): TableMeta | undefined {
  let lo = 0;
  let hi = tables.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareUserKeyOf(tables[mid].largest, userKey) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo < tables.length && containsUserKey(tables[lo], userKey)) return tables[lo];
  return undefined;
}

/** Tables of a sorted level overlapping the user-key range [lo, hi]. */
export function overlapping(tables: readonly TableMeta[], lo: Uint8Array, hi: Uint8Array): TableMeta[] {
  return tables.filter(
    (t) => compareBytes(userKeyOf(t.largest), lo) >= 0 && compareBytes(userKeyOf(t.smallest), hi) <= 0,
  );
}
