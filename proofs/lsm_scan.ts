/**
 * Scan proofs: "these are exactly the keys live in [start, end) at the checkpoint, each with its
 * newest version and value" (docs/proofs.md §8.9.1). Isomorphic: no `node:` imports.
 *
 * A scan composes the windows of get and history proofs (`lsm_proof.ts`). Every level-0 table is
 * revealed; each one whose key range overlaps the scanned range has a window over all its entries
 * in the range, bracketed at both ends by an entry outside the range or the table's edge. Per deeper
 * level the revealed tables are one consecutive run of positions: the first table that starts at or
 * before the range's lower end (or position 0), through the first table that ends after the range
 * (or the last position), so the run's own ranges prove that no other table of the level can hold a
 * key of the range. Merging the windows in engine order gives each key's newest version.
 *
 * A page cut by `limit` carries `bound`, its last key: it proves completeness for [start, bound],
 * and the next page starts right after `bound` — pages chain with no gap.
 * @module
 */
import { compareBytes, equalBytes } from './bytes.js';
import type { Checkpoint, LogHead } from './checkpoint.js';
import { fail, Reason, type Verified } from './errors.js';
import { Kind, defaultHasher } from './hash.js';
import { compareEntries, NUM_LEVELS, type EntryLeaf, type TableDescriptor } from './lsm.js';
import {
  _bracketedRun,
  _checkShape,
  _consultTable,
  _guard,
  _provenWithValues,
  _verifyMaster,
  _windowsByTable,
  verifyCertificate,
  type _Edge,
  type CheckpointCertificate,
  type CheckpointExpectation,
  type EdgeOption,
  type LsmProofBody,
  type ProvenEntry,
} from './lsm_proof.js';

/** Proof for "these are the newest versions of exactly the keys in [start, end) (or [start, bound])". */
export interface ScanProof {
  certificate: CheckpointCertificate;
  body: LsmProofBody;
  /**
   * The page's last key when the limit cut the answer: the proof covers [start, bound]; absent when
   * it covers the whole asked range.
   */
  bound?: Uint8Array;
  /** One value per returned entry, in key order (empty for a tombstone, when tombstones are returned). */
  values: Uint8Array[];
}

/** A scan query: a key range, a page size, whether tombstones are returned and edge proofs required. */
export interface ScanQuery extends EdgeOption {
  /** Lowest key, inclusive; empty: from the first key. */
  start: Uint8Array;
  /** First key after the range (exclusive); absent: to the last key. */
  end?: Uint8Array;
  /** Most keys the page covers (live or deleted); a page cut by it carries `bound`. */
  limit?: number;
  /** Also return keys whose newest version is a tombstone (kind `delete`, empty value). */
  includeTombstones?: boolean;
}

/** Facts a verified scan proof establishes. */
export interface ScanFacts {
  checkpoint: Checkpoint;
  head: LogHead;
  /** The newest entry of every returned key, in key order. */
  entries: ProvenEntry[];
  /** Keys the page covers, tombstoned ones included (so `entries.length <= keysCovered`). */
  keysCovered: number;
  /** The page's last key when the limit cut it; the answer is complete for [start, bound]. */
  bound?: Uint8Array;
  /** Where the next page starts (`bound || 0x00`, the smallest key after `bound`); undefined when complete. */
  nextStart?: Uint8Array;
}

/** A set of user keys `lo <= k < hi` (or `<= hi` when `hiInclusive`); `hi` absent: no upper end. */
export interface KeyInterval {
  lo: Uint8Array;
  hi?: Uint8Array;
  hiInclusive: boolean;
}

/** Where a user key lies relative to an interval: before it (−1), in it (0), after it (+1). */
export function keyIntervalSide(iv: KeyInterval, key: Uint8Array): -1 | 0 | 1 {
  if (compareBytes(key, iv.lo) < 0) return -1;
  if (iv.hi === undefined) return 0;
  const c = compareBytes(key, iv.hi);
  return c > 0 || (c === 0 && !iv.hiInclusive) ? 1 : 0;
}

/** The smallest key greater than `key`: `key || 0x00`. Where the page after `bound` starts. */
export function keySuccessor(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

/** The smallest key greater than every key with prefix `p`, or undefined when there is none (all 0xff): a prefix scan is [p, prefixEnd(p)). */
export function prefixEnd(p: Uint8Array): Uint8Array | undefined {
  let i = p.length - 1;
  while (i >= 0 && p[i] === 0xff) i--;
  if (i < 0) return undefined;
  const out = p.slice(0, i + 1);
  out[i]++;
  return out;
}

/**
 * The interval a scan page proves: [start, bound] when cut, else [start, end). Also the rule by
 * which the prover picks a deeper level's run of tables, shared so prover and verifier agree.
 */
export function scanInterval(start: Uint8Array, end: Uint8Array | undefined, bound: Uint8Array | undefined): KeyInterval {
  return bound ? { lo: start, hi: bound, hiInclusive: true } : { lo: start, hi: end, hiInclusive: false };
}

/** A table a scan consults: one whose range overlaps the interval (a window), or a neighbour that shows where the interval ends (no window, or an edge window). */
interface ScanTable {
  index: number;
  d: TableDescriptor;
  overlaps: boolean;
  edge?: _Edge;
}

/** Which tables the scan consults, in read order; checks that each level's revealed tables prove it. */
function planScan(body: LsmProofBody, master: { offsets: number[]; indexes: number[]; ranges: Array<{ lo: Uint8Array; hi: Uint8Array }>; byIndex: Map<number, number> }, iv: KeyInterval): Verified<{ tables: ScanTable[] }> {
  const counts = body.levelCounts;
  const { offsets, indexes, ranges, byIndex } = master;
  const tables: ScanTable[] = [];
  const classify = (i: number): ScanTable => {
    const below = keyIntervalSide(iv, ranges[i].hi) < 0;
    const above = keyIntervalSide(iv, ranges[i].lo) > 0;
    return { index: indexes[i], d: body.descriptors[i], overlaps: !below && !above, edge: below ? 'last' : above ? 'first' : undefined };
  };
  for (let p = 0; p < counts[0]; p++) {
    const i = byIndex.get(offsets[0] + p);
    if (i === undefined) return fail(Reason.MISSING_TABLE, `level-0 table ${p} not revealed`);
    tables.push(classify(i));
  }
  for (let level = 1; level < NUM_LEVELS; level++) {
    if (counts[level] === 0) continue;
    // The level's revealed descriptors, in position order (descriptors are in master-index order).
    const run: number[] = [];
    body.descriptors.forEach((d, i) => d.level === level && run.push(i));
    if (run.length === 0) return fail(Reason.MISSING_TABLE, `level ${level}: no table revealed`);
    const pos = (i: number) => body.descriptors[i].position;
    for (let k = 1; k < run.length; k++) {
      if (pos(run[k]) !== pos(run[k - 1]) + 1) return fail(Reason.MISSING_TABLE, `level ${level}: revealed tables are not consecutive at position ${pos(run[k])}`);
    }
    const first = run[0];
    const last = run[run.length - 1];
    // The run starts at a table that begins at or before the range (or at the level's start), and
    // ends at a table that ends after the range (or at the level's end): by the level's order, no
    // table outside the run holds a key of the range.
    if (pos(first) !== 0 && compareBytes(ranges[first].lo, iv.lo) > 0) {
      return fail(Reason.MISSING_TABLE, `level ${level}: the table before position ${pos(first)} may hold keys of the range`);
    }
    if (pos(last) !== counts[level] - 1 && keyIntervalSide(iv, ranges[last].hi) <= 0) {
      return fail(Reason.MISSING_TABLE, `level ${level}: the table after position ${pos(last)} may hold keys of the range`);
    }
    // And no wider than that: a canonical run.
    for (let k = 1; k < run.length; k++) {
      if (compareBytes(ranges[run[k]].lo, iv.lo) <= 0) return fail(Reason.UNEXPECTED_ELEMENT, `level ${level}: table at position ${pos(run[k - 1])} is not needed`);
      if (keyIntervalSide(iv, ranges[run[k - 1]].hi) > 0) return fail(Reason.UNEXPECTED_ELEMENT, `level ${level}: table at position ${pos(run[k])} is not needed`);
    }
    for (const i of run) tables.push(classify(i));
  }
  return { ok: true, tables };
}

/** Number of runs of equal consecutive user keys in a window: the keys it reveals; −1 for an entry without a byte-string key. */
function distinctKeys(w: LsmProofBody['windows'][number]): number {
  let n = 0;
  let prev: Uint8Array | undefined;
  for (const b of w.blocks) {
    for (const e of b.entries) {
      if (!e || !(e.key instanceof Uint8Array)) return -1;
      if (!prev || !equalBytes(prev, e.key)) n++;
      prev = e.key;
    }
  }
  return n;
}

/**
 * Verifies a scan proof: the returned entries are the newest versions of exactly the keys in
 * [start, end) — or in [start, bound] when the limit cut the page — tombstoned keys left out unless
 * `includeTombstones`. With `limit`, the page covers at most `limit` keys, and a page with `bound`
 * exactly `limit`, the last of them `bound`; `nextStart` says where the next page starts. Never throws.
 */
export function verifyScanProof(proof: ScanProof, query: ScanQuery, exp: CheckpointExpectation): Verified<ScanFacts> {
  return _guard(() => {
    if (!query || typeof query !== 'object' || !exp || typeof exp !== 'object') return fail(Reason.MALFORMED_INPUT, 'query and expectation must be objects');
    const hasher = exp.hasher ?? defaultHasher();
    const { start, end, limit } = query;
    if (!(start instanceof Uint8Array)) return fail(Reason.MALFORMED_INPUT, 'start must be a byte string');
    if (end !== undefined && (!(end instanceof Uint8Array) || compareBytes(start, end) >= 0)) return fail(Reason.MALFORMED_INPUT, 'end must be a byte string above start');
    if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)) return fail(Reason.MALFORMED_INPUT, 'bad limit');
    for (const flag of ['edges', 'includeTombstones'] as const) {
      if (query[flag] !== undefined && typeof query[flag] !== 'boolean') return fail(Reason.MALFORMED_INPUT, `${flag} must be a boolean`);
    }
    const edges = query.edges === true;
    const tombstones = query.includeTombstones === true;
    if (!proof || typeof proof !== 'object' || !proof.body || typeof proof.body !== 'object') return fail(Reason.MALFORMED_INPUT, 'proof missing');
    const bound = proof.bound;
    if (bound !== undefined) {
      if (!(bound instanceof Uint8Array) || bound.length === 0 || keyIntervalSide(scanInterval(start, end, undefined), bound) !== 0) {
        return fail(Reason.SCAN_BOUND, 'bound outside the asked range');
      }
      if (limit === undefined) return fail(Reason.SCAN_BOUND, 'a page cut by a bound needs a limit');
    }
    if (!Array.isArray(proof.values)) return fail(Reason.VALUE_MISMATCH, 'values must be an array');
    if (limit !== undefined && proof.values.length > limit) return fail(Reason.SCAN_BOUND, `${proof.values.length} values for limit ${limit}`);

    // Structural limits, before any hash: a page of at most `limit` keys reveals per deeper level
    // at most limit + 1 overlapping tables and two neighbours, and per window at most limit keys
    // in the range and one on each side.
    const body = proof.body;
    const perLevel = (n: number) => (limit === undefined ? n : Math.min(n, limit + 3));
    const shape = _checkShape(body, Infinity, (counts) => counts[0] + counts.slice(1).reduce((a, n) => a + perLevel(n), 0));
    if (shape) return shape;
    if (limit !== undefined) {
      for (const w of body.windows) {
        const n = distinctKeys(w);
        if (n < 0) return fail(Reason.MALFORMED_INPUT, 'malformed entry');
        if (n > limit + 2) return fail(Reason.UNEXPECTED_ELEMENT, `window of ${n} keys, a page of ${limit} needs at most ${limit + 2}`);
      }
    }

    const cert = verifyCertificate(proof.certificate, exp);
    if (!cert.ok) return cert;
    const master = _verifyMaster(hasher, body, cert.checkpoint.masterRoot);
    if (!master.ok) return master;
    const iv = scanInterval(start, end, bound);
    const plan = planScan(body, master, iv);
    if (!plan.ok) return plan;
    const windows = _windowsByTable(body);
    if (!windows.ok) return windows;

    const found: EntryLeaf[] = [];
    const used = new Set<number>();
    for (const t of plan.tables) {
      const c = _consultTable(hasher, windows.map, used, t, t.overlaps, edges);
      if (!c.ok) return c;
      const ev = c.window;
      if (!ev) continue;
      const run = _bracketedRun(ev, (e) => keyIntervalSide(iv, e.key), t.index);
      if (!run.ok) return run;
      found.push(...run.entries);
    }
    for (const idx of windows.map.keys()) {
      if (!used.has(idx)) return fail(Reason.UNEXPECTED_ELEMENT, `window for table ${idx} the scan does not reach`);
    }

    // Merge in engine order: per key, the first entry is its newest version.
    found.sort(compareEntries);
    const newest: EntryLeaf[] = [];
    for (let i = 0; i < found.length; i++) {
      const e = found[i];
      const prev = found[i - 1];
      if (prev && equalBytes(prev.key, e.key)) {
        if (prev.version === e.version) return fail(Reason.ENTRY_ORDER, `version ${e.version} of one key appears twice`);
        continue;
      }
      newest.push(e);
    }
    if (bound !== undefined) {
      if (newest.length !== limit || !equalBytes(newest[newest.length - 1].key, bound)) {
        return fail(Reason.SCAN_BOUND, `a page cut at its bound covers exactly ${limit} keys ending at the bound, got ${newest.length}`);
      }
    } else if (limit !== undefined && newest.length > limit) {
      return fail(Reason.SCAN_BOUND, `${newest.length} keys for limit ${limit}`);
    }
    const answer = tombstones ? newest : newest.filter((e) => e.kind === Kind.PUT);
    const withValues = _provenWithValues(hasher, answer, proof.values);
    if (!withValues.ok) return withValues;
    return {
      ok: true,
      checkpoint: cert.checkpoint,
      head: cert.head,
      entries: withValues.entries,
      keysCovered: newest.length,
      bound,
      nextStart: bound ? keySuccessor(bound) : undefined,
    };
  });
}
