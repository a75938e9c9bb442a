/**
 * Builds get and history proofs from a checkpoint's table set. The prover replays the read the
 * verifier will replay (`proofs/lsm_proof.ts`): all level-0 descriptors, then per deeper level the
 * covering table or the neighbours of the gap; for each covering table a window of consecutive
 * entries around the searched position or interval. It reads only the data blocks a window
 * touches, and in each hashes only the K-entry groups the window touches: the rest of the entry
 * tree comes from the group roots the table stores (format 3; a format-2 block is hashed whole).
 * Block trees and the master tree come from cached levels.
 * @module
 */
import { ByteLru } from '../util/byte_lru.js';
import { compareBytes } from '../../proofs/bytes.js';
import { Domain, HASH_LEN, Kind, type Hasher } from '../../proofs/hash.js';
import {
  compareEntries,
  descriptorHash,
  levelOffsets,
  NUM_LEVELS,
  type EntryLeaf,
  type TableDescriptor,
} from '../../proofs/lsm.js';
import type { LsmProofBody, TableWindow, WindowBlock } from '../../proofs/lsm_proof.js';
import { keyIntervalSide, scanInterval, type KeyInterval } from '../../proofs/lsm_scan.js';
import { _multiproof } from '../../proofs/multiproof.js';
import { _rangePath } from '../../proofs/tree.js';
import type { Entry } from '../keys.js';
import { MAX_SEQ, MAX_VERSION, seekKey, TIME_LEN, TRAILER_LEN, userKeyOf } from '../keys.js';
import { BlockHasher } from '../table/block_hasher.js';
import type { TableReader } from '../table/table_reader.js';
import type { TableMeta } from '../version/edit.js';
import { findTable, type Version } from '../version/version.js';
import { CorruptionError } from '../errors.js';
import { groupCount } from '../table/format.js';
import { GroupedTree, MerkleLevels } from './merkle_levels.js';

/** Source of open table readers. */
export interface ReaderSource {
  get(number: number): TableReader;
}

/** Everything about one checkpoint's table set that proofs reuse. */
export class ProofContext {
  readonly descriptors: TableDescriptor[];
  readonly metas: TableMeta[];
  readonly counts: number[];
  readonly offsets: number[];
  readonly master: MerkleLevels | null;
  /** Allocation-lean leaf hashing for the blocks windows touch. */
  readonly blockHasher: BlockHasher;

  constructor(
    readonly version: Version,
    readonly hasher: Hasher,
    private readonly readers: ReaderSource,
    private readonly blockTrees: ByteLru<number, MerkleLevels>,
    /** Shared across checkpoints: a table's blocks never change. */
    readonly blockCache: ProofBlockCache = new ProofBlockCache(),
  ) {
    this.blockHasher = new BlockHasher(hasher);
    this.descriptors = [];
    this.metas = [];
    this.counts = version.levels.map((l) => l.length);
    this.offsets = levelOffsets(this.counts);
    version.levels.forEach((tables, level) =>
      tables.forEach((meta, position) => {
        this.metas.push(meta);
        this.descriptors.push({
          level,
          position,
          smallest: meta.smallest,
          largest: meta.largest,
          entryCount: meta.entryCount,
          tableRoot: meta.root,
        });
      }),
    );
    this.master =
      this.descriptors.length === 0
        ? null
        : new MerkleLevels(hasher, Domain.MASTER_NODE, this.descriptors.map((d) => descriptorHash(hasher, d)));
  }

  reader(index: number): TableReader {
    return this.readers.get(this.metas[index].number);
  }

  blockTree(index: number): MerkleLevels {
    const number = this.metas[index].number;
    let t = this.blockTrees.get(number);
    if (!t) {
      const roots = this.reader(index).blockRoots;
      t = new MerkleLevels(this.hasher, Domain.BLOCK_NODE, roots);
      this.blockTrees.set(number, t, blockTreeCharge(roots.length));
    }
    return t;
  }
}

/** A position in a table: block and offset; `b === blockCount` means past the last entry. */
interface Pos {
  b: number;
  o: number;
}

/**
 * A data block as proofs use it, in a few flat arrays rather than an object per entry (a cold
 * proof decodes one or two blocks, and the decoded-block cache churns through them: objects per
 * entry were most of the garbage the collector spent its time on): a private copy of the block's
 * bytes, its internal keys back to back, where each entry's key and stored value are, its stored
 * group roots, and its entry tree once a window has used it.
 */
class ProofBlock {
  /** Entry count. */
  readonly count: number;
  /**
   * One allocation: a copy of the block's body, its stored group roots, then its internal keys back
   * to back (never a view of a cached block or of the table's bytes).
   */
  private readonly bytes: Uint8Array;
  /**
   * Entry i's internal key is `bytes[offs[i], offs[i + 1])`; its stored value (`u64 time || value`)
   * starts at `offs[n + 1 + i]` and is `offs[2n + 1 + i]` bytes long.
   */
  private readonly offs: Uint32Array;
  /** The stored group roots (format 3), or empty. */
  readonly roots: Uint8Array[];
  /** Built on first use by a window; its groups hashed as windows touch them. */
  tree?: GroupedTree;

  constructor(r: TableReader, b: number) {
    // The block only lives through this constructor, which copies all it keeps.
    const block = r.transientBlock(b);
    const body = block.data;
    const nodes = block.nodes;
    let keys: Uint8Array = keyScratch;
    let at: Uint32Array = offScratch;
    let used = 0;
    let n = 0;
    const it = block.iterator();
    for (it.seekToFirst(); it.valid(); it.next()) {
      const k = it.key();
      const v = it.value();
      if (v.length < TIME_LEN) throw new CorruptionError(r.fileName, `entry value of ${v.length} bytes has no commit time`, block.fileOffset + it.offset());
      if (used + k.length > keys.length) keys = keyScratch = grow(keys, used + k.length, used);
      if (3 * n + 3 > at.length) at = offScratch = growU32(at, 3 * n + 3);
      keys.set(k, used);
      used += k.length;
      at[3 * n] = used;
      at[3 * n + 1] = v.byteOffset - body.byteOffset;
      at[3 * n + 2] = v.length;
      n++;
    }
    this.count = n;
    const keysAt = body.length + nodes.length;
    this.bytes = new Uint8Array(keysAt + used);
    this.bytes.set(body);
    this.bytes.set(nodes, body.length);
    this.bytes.set(keys.subarray(0, used), keysAt);
    const offs = new Uint32Array(3 * n + 1);
    offs[0] = keysAt;
    for (let i = 0; i < n; i++) {
      offs[i + 1] = keysAt + at[3 * i];
      offs[n + 1 + i] = at[3 * i + 1];
      offs[2 * n + 1 + i] = at[3 * i + 2];
    }
    this.offs = offs;
    this.roots = [];
    const k = r.merkleGroup;
    const g = k === 0 ? 0 : groupCount(n, k);
    if (nodes.length !== HASH_LEN * g) {
      throw new CorruptionError(r.fileName, `data block ${b} stores ${nodes.length / HASH_LEN} group roots, want ${g}`, block.fileOffset);
    }
    for (let i = 0; i < g; i++) this.roots.push(this.bytes.subarray(body.length + HASH_LEN * i, body.length + HASH_LEN * (i + 1)));
  }

  /** Bytes charged in the cache: its two arrays, and the entry tree a window builds (about 2n hashes). */
  get charge(): number {
    return this.bytes.length + this.offs.byteLength + 2 * ARRAY_OVERHEAD + (this.roots.length + 8) * ARRAY_OVERHEAD + 2 * this.count * HASH_LEN;
  }

  /** Internal key of entry `i` (a view). */
  ik(i: number): Uint8Array {
    return this.bytes.subarray(this.offs[i], this.offs[i + 1]);
  }

  /** Stored value of entry `i` (a view). */
  stored(i: number): Uint8Array {
    const at = this.offs[this.count + 1 + i];
    return this.bytes.subarray(at, at + this.offs[2 * this.count + 1 + i]);
  }

  /**
   * Whether entry `i` comes before the search target (key, version, any seq) in engine order: a
   * smaller user key, or the same key at a higher version. Compared in place.
   */
  before(i: number, key: Uint8Array, version: number): boolean {
    const keys = this.bytes;
    const at = this.offs[i];
    const ukLen = this.offs[i + 1] - at - TRAILER_LEN;
    const n = ukLen < key.length ? ukLen : key.length;
    for (let j = 0; j < n; j++) {
      const d = keys[at + j] - key[j];
      if (d !== 0) return d < 0;
    }
    if (ukLen !== key.length) return ukLen < key.length;
    return readU64(keys, at + ukLen) > version;
  }

  /**
   * Entry `i`, decoded. Its key is a copy; its value a view into this cached block (as before this
   * representation, when callers got the cached entry objects themselves): not to be modified. A
   * value copy per entry made history proofs of 100 versions twice as slow.
   */
  entry(i: number): Entry {
    const ik = this.ik(i);
    const ukLen = ik.length - TRAILER_LEN;
    const stored = this.stored(i);
    return { key: ik.slice(0, ukLen), version: readU64(ik, ukLen), seq: readU56(ik, ukLen + 8), time: readU64(stored, 0), kind: ik[ik.length - 1] as Kind, value: stored.subarray(TIME_LEN) };
  }

  /** The entry leaf fields of entry `i` (the key a copy). */
  leafFields(hasher: Hasher, i: number): EntryLeaf {
    const ik = this.ik(i);
    const ukLen = ik.length - TRAILER_LEN;
    const stored = this.stored(i);
    return { key: ik.slice(0, ukLen), version: readU64(ik, ukLen), seq: readU56(ik, ukLen + 8), time: readU64(stored, 0), kind: ik[ik.length - 1] as Kind, valueHash: hasher.valueHash(stored.subarray(TIME_LEN)) };
  }
}

/** Scratch of {@link ProofBlock}'s decode (keys, offsets), reused: grown to the largest block seen. */
let keyScratch: Uint8Array = new Uint8Array(4096);
let offScratch: Uint32Array = new Uint32Array(3 * 128);

/** `a` grown to at least `need` bytes, its first `keep` bytes kept. */
function grow(a: Uint8Array, need: number, keep: number): Uint8Array {
  const out = new Uint8Array(Math.max(need, 2 * a.length));
  out.set(a.subarray(0, keep));
  return out;
}

/** `a` grown to at least `need` entries, contents kept. */
function growU32(a: Uint32Array, need: number): Uint32Array {
  const out = new Uint32Array(Math.max(need, 2 * a.length));
  out.set(a);
  return out;
}

/** Default byte budget of the decoded proof blocks ({@link ProofBlockCache}). */
export const DEFAULT_PROOF_BLOCK_CACHE_BYTES = 32 * 1024 * 1024;
/** Default byte budget of the per-table block trees ({@link blockTreeCharge}). */
export const DEFAULT_BLOCK_TREE_CACHE_BYTES = 8 * 1024 * 1024;

/** Estimated heap of one `Uint8Array` beyond its bytes (object, backing store header). */
const ARRAY_OVERHEAD = 96;

/**
 * What a table's block tree ({@link MerkleLevels} over `blocks` leaves) is charged: about 2n
 * hashes in one flat array per level (at most 33 levels).
 */
export function blockTreeCharge(blocks: number): number {
  return 2 * Math.max(1, blocks) * HASH_LEN + (2 + Math.ceil(Math.log2(Math.max(1, blocks)))) * ARRAY_OVERHEAD;
}

/**
 * Decoded, hashed blocks by `table:block`, least recently used evicted first, bounded by bytes
 * (`ProofBlock.charge`; default {@link DEFAULT_PROOF_BLOCK_CACHE_BYTES}). Tables never change,
 * so entries stay valid; a proof for a hot key then rehashes nothing.
 */
export class ProofBlockCache {
  readonly lru: ByteLru<string, ProofBlock>;
  constructor(capacity = DEFAULT_PROOF_BLOCK_CACHE_BYTES) {
    this.lru = new ByteLru(capacity);
  }

  get(table: number, block: number, load: () => ProofBlock): ProofBlock {
    const id = `${table}:${block}`;
    let e = this.lru.get(id);
    if (e) return e;
    e = load();
    this.lru.set(id, e, e.charge);
    return e;
  }
}

/** Reads and hashes blocks of one table while one window is built. */
class TableCursor {
  constructor(
    readonly r: TableReader,
    private readonly hasher: Hasher,
    private readonly leaves: BlockHasher,
    private readonly cache: ProofBlockCache,
  ) {}

  private block(b: number): ProofBlock {
    return this.cache.get(this.r.fileNumber, b, () => new ProofBlock(this.r, b));
  }

  /** Entries in block `b`. */
  count(b: number): number {
    return this.block(b).count;
  }

  /** First position whose entry is not before (key, version) — i.e. key > K, or key K at version <= V. */
  seek(key: Uint8Array, version: number): Pos {
    // Block whose last entry is >= the target (the reader's index search).
    const b = this.r.findBlock(seekKey(key, version, MAX_SEQ));
    if (b === this.r.blockCount) return { b, o: 0 };
    const pb = this.block(b);
    let lo = 0;
    let hi = pb.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pb.before(mid, key, version)) lo = mid + 1;
      else hi = mid;
    }
    return { b, o: lo };
  }

  prev(p: Pos): Pos | null {
    if (p.o > 0) return { b: p.b, o: p.o - 1 };
    if (p.b > 0) return { b: p.b - 1, o: this.count(p.b - 1) - 1 };
    return null;
  }

  next(p: Pos): Pos {
    if (p.o + 1 < this.count(p.b)) return { b: p.b, o: p.o + 1 };
    return { b: p.b + 1, o: 0 };
  }

  isEnd(p: Pos): boolean {
    return p.b >= this.r.blockCount;
  }

  /** The table's first or last entry. */
  edge(which: 'first' | 'last'): Pos {
    if (which === 'first') return { b: 0, o: 0 };
    const b = this.r.blockCount - 1;
    return { b, o: this.count(b) - 1 };
  }

  /** The entry at `p` (a fresh copy). */
  at(p: Pos): Entry {
    return this.block(p.b).entry(p.o);
  }

  /** Whether the entry at `p` has user key `key`, compared in place. */
  hasKey(p: Pos, key: Uint8Array): boolean {
    const ik = this.block(p.b).ik(p.o);
    if (ik.length - TRAILER_LEN !== key.length) return false;
    for (let i = 0; i < key.length; i++) if (ik[i] !== key[i]) return false;
    return true;
  }

  /** The window of entries from `first` to `last` inclusive (both real positions). */
  window(ctx: ProofContext, table: number, first: Pos, last: Pos): TableWindow {
    const blocks: WindowBlock[] = [];
    for (let b = first.b; b <= last.b; b++) {
      const pb = this.block(b);
      const n = pb.count;
      const from = b === first.b ? first.o : 0;
      const to = b === last.b ? last.o + 1 : n;
      pb.tree ??= new GroupedTree(this.hasher, Domain.ENTRY_NODE, n, this.r.merkleGroup, pb.roots);
      pb.tree.prepare(from, to, (lo, hi) => {
        const out: Uint8Array[] = [];
        for (let i = lo; i < hi; i++) out.push(this.leaves.leaf(pb.ik(i), pb.stored(i)));
        return out;
      });
      const entries: EntryLeaf[] = [];
      for (let i = from; i < to; i++) entries.push(pb.leafFields(this.hasher, i));
      blocks.push({
        index: b,
        entryCount: n,
        offset: from,
        entries,
        proof: _rangePath(pb.tree.source, from, to, n) as Uint8Array[],
      });
    }
    const tree = ctx.blockTree(table);
    return {
      table,
      blockCount: this.r.blockCount,
      blocks,
      blockProof: _rangePath(tree.source, first.b, last.b + 1, this.r.blockCount) as Uint8Array[],
    };
  }
}

/** The u64 big-endian integer at `off` (safe-integer range, as keys.ts and the stored values write it). */
function readU64(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) * 0x100000000 + (((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0);
}

/** The u56 big-endian seq at `off`. */
function readU56(b: Uint8Array, off: number): number {
  return b[off] * 2 ** 48 + b[off + 1] * 2 ** 40 + b[off + 2] * 2 ** 32 + (((b[off + 3] << 24) | (b[off + 4] << 16) | (b[off + 5] << 8) | b[off + 6]) >>> 0);
}

function coversKey(m: TableMeta, key: Uint8Array): boolean {
  return compareBytes(key, userKeyOf(m.smallest)) >= 0 && compareBytes(key, userKeyOf(m.largest)) <= 0;
}

/** Which entries of one key a proof searches for. */
type Search = { kind: 'get'; version: number } | { kind: 'history'; min: number; bound: number };

/** The result of a proof build: the body and the entries it proves (with values). */
export interface BuiltProof {
  body: LsmProofBody;
  /** get: the answer, if any. history: every entry in the interval, in read order. */
  entries: Entry[];
}

/**
 * Builds the proof body for a get or a history search of `key`. With `edges`, every consulted
 * table that does not cover the key also gets a one-entry window at the edge that shows it (its
 * first entry when the key is below its range, its last when above): docs/proofs.md §8.12. Without
 * it the body is exactly the one of a proof without edge windows.
 */
export function buildProof(ctx: ProofContext, key: Uint8Array, search: Search, options: { edges?: boolean } = {}): BuiltProof {
  const reveal: number[] = [];
  const windows: TableWindow[] = [];
  const found: Entry[] = [];
  let done = false;

  const edgeWindow = (index: number, which: 'first' | 'last'): void => {
    if (!options.edges) return;
    const cur = new TableCursor(ctx.reader(index), ctx.hasher, ctx.blockHasher, ctx.blockCache);
    const p = cur.edge(which);
    windows.push(cur.window(ctx, index, p, p));
  };

  const consult = (index: number): void => {
    const cur = new TableCursor(ctx.reader(index), ctx.hasher, ctx.blockHasher, ctx.blockCache);
    if (search.kind === 'get') {
      const p = cur.seek(key, search.version);
      const before = cur.prev(p);
      const first = before ?? p;
      const last = cur.isEnd(p) ? (before as Pos) : p;
      windows.push(cur.window(ctx, index, first, last));
      if (!cur.isEnd(p) && cur.hasKey(p, key)) {
        found.push(cur.at(p));
        done = true;
      }
      return;
    }
    // History: from the entry before (key, bound) to the first entry after (key, min).
    const start = cur.seek(key, search.bound);
    let p = start;
    while (!cur.isEnd(p)) {
      const e = cur.at(p);
      if (compareBytes(e.key, key) !== 0 || e.version < search.min) break;
      found.push(e);
      p = cur.next(p);
    }
    const before = cur.prev(start);
    const first = before ?? start;
    const last = cur.isEnd(p) ? (cur.prev(p) as Pos) : p;
    windows.push(cur.window(ctx, index, first, last));
  };

  for (let p = 0; p < ctx.counts[0]; p++) reveal.push(ctx.offsets[0] + p);
  for (let p = 0; p < ctx.counts[0] && !done; p++) {
    const index = ctx.offsets[0] + p;
    if (coversKey(ctx.metas[index], key)) consult(index);
    else edgeWindow(index, compareBytes(key, userKeyOf(ctx.metas[index].smallest)) < 0 ? 'first' : 'last');
  }
  for (let level = 1; level < NUM_LEVELS && !done; level++) {
    const tables = ctx.version.levels[level];
    if (tables.length === 0) continue;
    const hit = findTable(tables, key);
    if (hit) {
      const index = ctx.offsets[level] + tables.indexOf(hit);
      reveal.push(index);
      consult(index);
      continue;
    }
    // The gap: first table whose smallest key is above the key.
    let q = 0;
    while (q < tables.length && compareBytes(userKeyOf(tables[q].smallest), key) < 0) q++;
    if (q > 0) {
      reveal.push(ctx.offsets[level] + q - 1);
      edgeWindow(ctx.offsets[level] + q - 1, 'last');
    }
    if (q < tables.length) {
      reveal.push(ctx.offsets[level] + q);
      edgeWindow(ctx.offsets[level] + q, 'first');
    }
  }
  const body: LsmProofBody = {
    levelCounts: ctx.counts.slice(),
    descriptors: reveal.map((i) => ctx.descriptors[i]),
    masterProof: ctx.master ? _multiproof(ctx.master.source, reveal, ctx.descriptors.length) : [],
    windows,
  };
  return { body, entries: found };
}

/** True for a put entry. */
export function isPut(e: Entry): boolean {
  return e.kind === Kind.PUT;
}

/** The result of a scan proof build. */
export interface BuiltScan {
  body: LsmProofBody;
  /** The newest entry of every key the page covers (tombstones included), in key order. */
  entries: Entry[];
  /** The page's last key when `limit` cut it. */
  bound?: Uint8Array;
}

/**
 * Builds the proof body of a scan of [start, end) (docs/proofs.md §8.9.1): every level-0 table, per
 * deeper level the run of tables from the one that starts at or before `start` to the one that ends
 * after the range; a window over each overlapping table's entries in the range with one entry (or
 * the table's edge) on each side. With `limit`, the page covers the first `limit` keys and ends at
 * `bound`. With `edges`, each consulted table that does not overlap gets its edge window.
 */
export function buildScanProof(ctx: ProofContext, start: Uint8Array, end: Uint8Array | undefined, limit: number | undefined, options: { edges?: boolean } = {}): BuiltScan {
  const cursor = (index: number) => new TableCursor(ctx.reader(index), ctx.hasher, ctx.blockHasher, ctx.blockCache);
  /** Entries of table `index` with keys in `iv`, at most `maxKeys` keys; and the positions around them. */
  const inRange = (index: number, iv: KeyInterval, maxKeys = Infinity) => {
    const cur = cursor(index);
    const first = cur.seek(iv.lo, MAX_VERSION);
    const found: Entry[] = [];
    let keys = 0;
    let p = first;
    while (!cur.isEnd(p)) {
      const e = cur.at(p);
      if (keyIntervalSide(iv, e.key) !== 0) break;
      if (found.length === 0 || compareBytes(found[found.length - 1].key, e.key) !== 0) {
        if (keys === maxKeys) break;
        keys++;
      }
      found.push(e);
      p = cur.next(p);
    }
    return { cur, first, after: p, found };
  };
  const overlaps = (m: TableMeta, iv: KeyInterval) => keyIntervalSide(iv, userKeyOf(m.largest)) >= 0 && keyIntervalSide(iv, userKeyOf(m.smallest)) <= 0;

  // The tables a scan of `iv` consults, in read order.
  const consulted = (iv: KeyInterval): number[] => {
    const out: number[] = [];
    for (let p = 0; p < ctx.counts[0]; p++) out.push(ctx.offsets[0] + p);
    for (let level = 1; level < NUM_LEVELS; level++) {
      const tables = ctx.version.levels[level];
      if (tables.length === 0) continue;
      let p = 0;
      for (let i = 0; i < tables.length && compareBytes(userKeyOf(tables[i].smallest), iv.lo) <= 0; i++) p = i;
      let q = p;
      while (q < tables.length - 1 && keyIntervalSide(iv, userKeyOf(tables[q].largest)) <= 0) q++;
      for (let i = p; i <= q; i++) out.push(ctx.offsets[level] + i);
    }
    return out;
  };

  let bound: Uint8Array | undefined;
  if (limit !== undefined) {
    // The page's keys: the first limit + 1 keys of each overlapping table decide the first limit + 1 overall.
    const iv0 = scanInterval(start, end, undefined);
    const keys: Uint8Array[] = [];
    for (const index of consulted(iv0)) {
      if (!overlaps(ctx.metas[index], iv0)) continue;
      for (const e of inRange(index, iv0, limit + 1).found) keys.push(e.key);
    }
    keys.sort(compareBytes);
    let distinct = 0;
    for (let i = 0; i < keys.length && bound === undefined; i++) {
      if (i > 0 && compareBytes(keys[i - 1], keys[i]) === 0) continue;
      if (++distinct === limit && compareBytes(keys[keys.length - 1], keys[i]) !== 0) bound = keys[i];
    }
  }
  const iv = scanInterval(start, end, bound);
  const reveal = consulted(iv);
  const windows: TableWindow[] = [];
  const found: Entry[] = [];
  for (const index of reveal) {
    const m = ctx.metas[index];
    if (!overlaps(m, iv)) {
      if (!options.edges) continue;
      const cur = cursor(index);
      const p = cur.edge(keyIntervalSide(iv, userKeyOf(m.largest)) < 0 ? 'last' : 'first');
      windows.push(cur.window(ctx, index, p, p));
      continue;
    }
    const r = inRange(index, iv);
    found.push(...r.found);
    const before = r.cur.prev(r.first);
    const last = r.cur.isEnd(r.after) ? (r.cur.prev(r.after) as Pos) : r.after;
    windows.push(r.cur.window(ctx, index, before ?? r.first, last));
  }
  found.sort(compareEntries);
  const entries = found.filter((e, i) => i === 0 || compareBytes(found[i - 1].key, e.key) !== 0);
  const body: LsmProofBody = {
    levelCounts: ctx.counts.slice(),
    descriptors: reveal.map((i) => ctx.descriptors[i]),
    masterProof: ctx.master ? _multiproof(ctx.master.source, reveal, ctx.descriptors.length) : [],
    windows,
  };
  return { body, entries, bound };
}
