/**
 * Helpers for the get/history proof suites: a test-side copy of a checkpoint's whole table set
 * (read straight from the table files), a reference prover over it, and the tools an attacker
 * with full knowledge of the data would use to assemble proofs (windows over any entry range,
 * multiproofs over any descriptor set, any level counts).
 */
import * as path from 'node:path';
import { expect } from 'vitest';
import { compareBytes, toHex } from '../../proofs/bytes.js';
import { Domain, Kind, nobleHasher as H } from '../../proofs/hash.js';
import { checkpointLeafHash, generateKeyPair, signHead, type Checkpoint } from '../../proofs/checkpoint.js';
import {
  compareEntries,
  computeMasterRoot,
  internalKeyOf,
  descriptorHash,
  levelOffsets,
  NUM_LEVELS,
  parseInternalKey,
  type EntryLeaf,
  type TableDescriptor,
} from '../../proofs/lsm.js';
import type { CheckpointCertificate, GetProof, HistoryProof, LsmProofBody, TableWindow } from '../../proofs/lsm_proof.js';
import type { ScanProof } from '../../proofs/lsm_scan.js';
import { _multiproof } from '../../proofs/multiproof.js';
import { _arraySource, _rangePath } from '../../proofs/tree.js';
import type { ProofDB } from '../../src/index.js';
import { TableReader } from '../../src/table/table_reader.js';

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Deep copy of a proof (Uint8Arrays copied), so an attack never aliases the honest proof. */
export function clone<T>(x: T): T {
  return structuredClone(x);
}

/** `x` with every byte array (Uint8Array or Buffer) replaced by its hex, for deep comparison. */
export function norm(x: unknown): unknown {
  if (x instanceof Uint8Array) return toHex(x);
  if (Array.isArray(x)) return x.map(norm);
  if (x && typeof x === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (v !== undefined) o[k] = norm(v);
    return o;
  }
  return x;
}

/** One entry of a table, with its place. */
export interface Placed {
  b: number;
  o: number;
  e: EntryLeaf;
  value: Uint8Array;
}

/** A table of the checkpoint, fully known to the test. */
export interface WTable {
  /** Master-tree index (read order). */
  index: number;
  d: TableDescriptor;
  /** Entries per block. */
  blocks: EntryLeaf[][];
  leaves: Uint8Array[][];
  blockRoots: Uint8Array[];
  /** All entries in order. */
  flat: Placed[];
  /** User-key range. */
  lo: Uint8Array;
  hi: Uint8Array;
}

const MAX = Number.MAX_SAFE_INTEGER;

/** A checkpoint's table set, reconstructed from the table files and checked against its MasterRoot. */
export class World {
  readonly offsets: number[];
  readonly descHashes: Uint8Array[];

  private constructor(
    readonly tables: WTable[],
    readonly counts: number[],
    readonly masterRoot: Uint8Array,
  ) {
    this.offsets = levelOffsets(counts);
    this.descHashes = tables.map((t) => descriptorHash(H, t.d));
  }

  /** Loads the current table set of `db`; call right after `db.checkpoint()` with no write since. */
  static load(db: ProofDB, masterRoot: Uint8Array): World {
    const infos = db.tables();
    const counts = new Array<number>(NUM_LEVELS).fill(0);
    const tables: WTable[] = infos.map((info, index) => {
      counts[info.level]++;
      const name = `${String(info.number).padStart(6, '0')}.sst`;
      const r = TableReader.open(path.join(db.location, name), { fileNumber: info.number, fileName: name });
      try {
        const blocks: EntryLeaf[][] = [];
        const flat: Placed[] = [];
        const leaves: Uint8Array[][] = [];
        for (let b = 0; b < r.blockCount; b++) {
          const es = r.readBlock(b);
          const leafs = es.map((e) => ({ key: e.key, version: e.version, seq: e.seq, time: e.time, kind: e.kind, valueHash: H.valueHash(e.value) }));
          blocks.push(leafs);
          leaves.push(leafs.map((l) => H.entryLeaf(l.key, l.version, l.seq, l.time, l.kind, l.valueHash)));
          es.forEach((e, o) => flat.push({ b, o, e: leafs[o], value: e.value }));
        }
        const d: TableDescriptor = {
          level: info.level,
          position: info.position,
          smallest: r.smallest,
          largest: r.largest,
          entryCount: r.entryCount,
          tableRoot: r.root,
        };
        return {
          index,
          d,
          blocks,
          leaves,
          blockRoots: r.blockRoots.map((x) => x.slice()),
          flat,
          lo: parseInternalKey(r.smallest)!.key,
          hi: parseInternalKey(r.largest)!.key,
        };
      } finally {
        r.close();
      }
    });
    const w = new World(tables, counts, masterRoot);
    expect(toHex(computeMasterRoot(H, tables.map((t) => t.d))), 'reconstructed MasterRoot').toBe(toHex(masterRoot));
    return w;
  }

  /**
   * The world a lying signer would sign: table `index` keeps its entries and table root, but its
   * descriptor becomes `d` (for example a shrunk key range); descriptor hashes and the MasterRoot
   * are recomputed honestly from the lie.
   */
  withDescriptor(index: number, d: TableDescriptor): World {
    const tables = this.tables.map((t) => (t.index === index ? { ...t, d, lo: parseInternalKey(d.smallest)!.key, hi: parseInternalKey(d.largest)!.key } : t));
    return new World(tables, this.counts, computeMasterRoot(H, tables.map((t) => t.d)));
  }

  level(l: number): WTable[] {
    return this.tables.filter((t) => t.d.level === l);
  }

  covers(t: WTable, key: Uint8Array): boolean {
    return compareBytes(key, t.lo) >= 0 && compareBytes(key, t.hi) <= 0;
  }

  /** First flat position in `t` not before (key, version); `t.flat.length` if none. */
  seek(t: WTable, key: Uint8Array, version: number): number {
    const target = { key, version, seq: MAX };
    let i = 0;
    while (i < t.flat.length && compareEntries(t.flat[i].e, target) < 0) i++;
    return i;
  }

  /** The window of flat positions [first, last] of table `t` (an attacker can build any). */
  window(t: WTable, first: number, last: number): TableWindow {
    const f = t.flat[first];
    const l = t.flat[last];
    const blocks = [];
    for (let b = f.b; b <= l.b; b++) {
      const n = t.blocks[b].length;
      const from = b === f.b ? f.o : 0;
      const to = b === l.b ? l.o + 1 : n;
      blocks.push({
        index: b,
        entryCount: n,
        offset: from,
        entries: t.blocks[b].slice(from, to),
        proof: _rangePath(_arraySource(H, Domain.ENTRY_NODE, t.leaves[b]), from, to, n) as Uint8Array[],
      });
    }
    return {
      table: t.index,
      blockCount: t.blocks.length,
      blocks,
      blockProof: _rangePath(_arraySource(H, Domain.BLOCK_NODE, t.blockRoots), f.b, l.b + 1, t.blocks.length) as Uint8Array[],
    };
  }

  /** A body revealing the descriptors at `indexes` (sorted) with a correct multiproof. */
  body(indexes: number[], windows: TableWindow[], counts: number[] = this.counts): LsmProofBody {
    return {
      levelCounts: counts.slice(),
      descriptors: indexes.map((i) => this.tables[i].d),
      masterProof: indexes.length === 0 ? [] : _multiproof(_arraySource(H, Domain.MASTER_NODE, this.descHashes), indexes, this.tables.length),
      windows,
    };
  }

  /**
   * The descriptors an honest read of `key` reveals at `level` (covering table, or gap neighbours),
   * and for a gap which edge of each neighbour shows it (the left one's last, the right one's first).
   */
  levelReveal(level: number, key: Uint8Array): { reveal: number[]; covering?: WTable; edges: Array<{ t: WTable; which: 'first' | 'last' }> } {
    const ts = this.level(level);
    const hit = ts.find((t) => this.covers(t, key));
    if (hit) return { reveal: [hit.index], covering: hit, edges: [] };
    let q = 0;
    while (q < ts.length && compareBytes(ts[q].lo, key) < 0) q++;
    const reveal: number[] = [];
    const edges: Array<{ t: WTable; which: 'first' | 'last' }> = [];
    if (q > 0) {
      reveal.push(ts[q - 1].index);
      edges.push({ t: ts[q - 1], which: 'last' });
    }
    if (q < ts.length) {
      reveal.push(ts[q].index);
      edges.push({ t: ts[q], which: 'first' });
    }
    return { reveal, edges };
  }

  /** The one-entry window at a table's first or last entry (edge proofs, docs/proofs.md §8.12). */
  edgeWindow(t: WTable, which: 'first' | 'last'): TableWindow {
    const p = which === 'first' ? 0 : t.flat.length - 1;
    return this.window(t, p, p);
  }

  /** Which edge of a level-0 table that does not cover `key` shows it. */
  private edgeOf(t: WTable, key: Uint8Array): 'first' | 'last' {
    return compareBytes(key, t.lo) < 0 ? 'first' : 'last';
  }

  /** Reference prover for a get; `answer` is where the read stops; `edges` adds edge windows. */
  refGet(key: Uint8Array, version: number, edges = false): { body: LsmProofBody; answer?: Placed; answerTable?: WTable; consulted: WTable[] } {
    const reveal: number[] = this.level(0).map((t) => t.index);
    const windows: TableWindow[] = [];
    const consulted: WTable[] = [];
    let answer: Placed | undefined;
    let answerTable: WTable | undefined;
    const consult = (t: WTable): void => {
      consulted.push(t);
      const p = this.seek(t, key, version);
      const first = p > 0 ? p - 1 : p;
      const last = p < t.flat.length ? p : p - 1;
      windows.push(this.window(t, first, last));
      if (p < t.flat.length && compareBytes(t.flat[p].e.key, key) === 0) {
        answer = t.flat[p];
        answerTable = t;
      }
    };
    for (const t of this.level(0)) {
      if (answer) break;
      if (this.covers(t, key)) consult(t);
      else if (edges) windows.push(this.edgeWindow(t, this.edgeOf(t, key)));
    }
    for (let level = 1; level < NUM_LEVELS && !answer; level++) {
      const { reveal: r, covering, edges: gap } = this.levelReveal(level, key);
      reveal.push(...r);
      if (covering) consult(covering);
      else if (edges) for (const g of gap) windows.push(this.edgeWindow(g.t, g.which));
    }
    return { body: this.body(reveal, windows), answer, answerTable, consulted };
  }

  /** Reference prover for a history search of [min, bound]; `edges` adds edge windows. */
  refHistory(key: Uint8Array, min: number, bound: number, edges = false): { body: LsmProofBody; found: Placed[] } {
    const reveal: number[] = this.level(0).map((t) => t.index);
    const windows: TableWindow[] = [];
    const found: Placed[] = [];
    const consult = (t: WTable): void => {
      const start = this.seek(t, key, bound);
      let p = start;
      while (p < t.flat.length && compareBytes(t.flat[p].e.key, key) === 0 && t.flat[p].e.version >= min) found.push(t.flat[p++]);
      const first = start > 0 ? start - 1 : start;
      const last = p < t.flat.length ? p : p - 1;
      windows.push(this.window(t, first, last));
    };
    for (const t of this.level(0)) {
      if (this.covers(t, key)) consult(t);
      else if (edges) windows.push(this.edgeWindow(t, this.edgeOf(t, key)));
    }
    for (let level = 1; level < NUM_LEVELS; level++) {
      const { reveal: r, covering, edges: gap } = this.levelReveal(level, key);
      reveal.push(...r);
      if (covering) consult(covering);
      else if (edges) for (const g of gap) windows.push(this.edgeWindow(g.t, g.which));
    }
    found.sort((a, b) => a.e.version - b.e.version);
    return { body: this.body(reveal, windows), found };
  }

  getProof(cert: CheckpointCertificate, key: Uint8Array, version = MAX, edges = false): GetProof {
    const r = this.refGet(key, version, edges);
    const proof: GetProof = { certificate: cert, body: r.body };
    if (r.answer && r.answer.e.kind === Kind.PUT) proof.value = r.answer.value;
    return proof;
  }

  historyProof(cert: CheckpointCertificate, key: Uint8Array, min: number, bound: number, edges = false): HistoryProof {
    const r = this.refHistory(key, min, bound, edges);
    return { certificate: cert, body: r.body, bound, values: r.found.map((p) => p.value) };
  }

  /**
   * Reference prover for a scan of [start, end), or of [start, bound] when `bound` is given (a page
   * cut by a limit); `edges` adds edge windows. `found` is the newest entry of each key, in key order.
   */
  refScan(start: Uint8Array, end: Uint8Array | undefined, bound: Uint8Array | undefined, edges = false): { body: LsmProofBody; found: Placed[] } {
    const below = (k: Uint8Array) => compareBytes(k, start) < 0;
    const above = (k: Uint8Array) => (bound ? compareBytes(k, bound) > 0 : end !== undefined && compareBytes(k, end) >= 0);
    const reveal: number[] = this.level(0).map((t) => t.index);
    for (let level = 1; level < NUM_LEVELS; level++) {
      const ts = this.level(level);
      if (ts.length === 0) continue;
      // From the last table starting at or before `start` (or the first) to the first ending after the range (or the last).
      let p = 0;
      ts.forEach((t, i) => compareBytes(t.lo, start) <= 0 && (p = i));
      let q = p;
      while (q < ts.length - 1 && !above(ts[q].hi)) q++;
      for (let i = p; i <= q; i++) reveal.push(ts[i].index);
    }
    const windows: TableWindow[] = [];
    const all: Placed[] = [];
    for (const index of reveal) {
      const t = this.tables[index];
      if (below(t.hi) || above(t.lo)) {
        if (edges) windows.push(this.edgeWindow(t, below(t.hi) ? 'last' : 'first'));
        continue;
      }
      const inside = t.flat.map((x, i) => (!below(x.e.key) && !above(x.e.key) ? i : -1)).filter((i) => i >= 0);
      const firstIn = inside.length ? inside[0] : t.flat.findIndex((x) => !below(x.e.key));
      const lastIn = inside.length ? inside[inside.length - 1] : firstIn - 1;
      inside.forEach((i) => all.push(t.flat[i]));
      windows.push(this.window(t, Math.max(0, firstIn - 1), Math.min(t.flat.length - 1, lastIn + 1)));
    }
    all.sort((a, b) => compareEntries(a.e, b.e));
    const found = all.filter((x, i) => i === 0 || compareBytes(all[i - 1].e.key, x.e.key) !== 0);
    return { body: this.body(reveal, windows), found };
  }

  /** The honest scan proof of a page: cut after `limit` keys (live or deleted), values of the returned entries. */
  scanProof(cert: CheckpointCertificate, q: { start: Uint8Array; end?: Uint8Array; limit?: number; includeTombstones?: boolean; edges?: boolean }): ScanProof {
    let bound: Uint8Array | undefined;
    const keys = this.refScan(q.start, q.end, undefined).found.map((x) => x.e.key);
    if (q.limit !== undefined && keys.length > q.limit) bound = keys[q.limit - 1];
    const r = this.refScan(q.start, q.end, bound, q.edges === true);
    const returned = r.found.filter((x) => q.includeTombstones || x.e.kind === Kind.PUT);
    const proof: ScanProof = { certificate: cert, body: r.body, values: returned.map((x) => x.value) };
    if (bound) proof.bound = bound;
    return proof;
  }

  /** Every distinct user key in the table set, sorted. */
  keys(): Uint8Array[] {
    const m = new Map<string, Uint8Array>();
    for (const t of this.tables) for (const p of t.flat) m.set(Buffer.from(p.e.key).toString('hex'), p.e.key);
    return [...m.values()].sort(compareBytes);
  }

  /** Every entry of `key` across tables, newest version first. */
  versionsOf(key: Uint8Array): Array<{ t: WTable; pos: number; p: Placed }> {
    const out: Array<{ t: WTable; pos: number; p: Placed }> = [];
    for (const t of this.tables) t.flat.forEach((p, pos) => compareBytes(p.e.key, key) === 0 && out.push({ t, pos, p }));
    return out.sort((a, b) => b.p.e.version - a.p.e.version);
  }
}

/**
 * The signer is the attacker here: it holds the key the client trusts, signs a one-checkpoint log
 * whose MasterRoot commits to the lying descriptors — every hash recomputed honestly from the lie —
 * and serves proofs built by the reference prover over that lie (or variants of them).
 */
export const liar = generateKeyPair(new Uint8Array(32).fill(0x4c));
export const liarTrust = { publicKeys: [liar.publicKey], quorum: 1 };
/** The certificate of a one-checkpoint log over `world`, signed by {@link liar}. */
export function signedBy(world: World): CheckpointCertificate {
  const checkpoint: Checkpoint = { index: 0, seq: 1 << 20, masterRoot: world.masterRoot };
  const head = { size: 1, root: checkpointLeafHash(checkpoint) };
  return { checkpoint, head, signatures: [signHead(liar.privateKey, head)], inclusion: [] };
}
/** Internal key of the first entry of `t` whose user key is above `key`. */
export const ikAfter = (t: WTable, key: Uint8Array): Uint8Array | undefined => {
  const p = t.flat.find((x) => compareBytes(x.e.key, key) > 0);
  return p && internalKeyOf(p.e);
};
/** Internal key of the last entry of `t` whose user key is below `key`. */
export const ikBefore = (t: WTable, key: Uint8Array): Uint8Array | undefined => {
  const p = [...t.flat].reverse().find((x) => compareBytes(x.e.key, key) < 0);
  return p && internalKeyOf(p.e);
};

/** A hex rendering of a fast-check seed/path for replay messages. */
export function replayHint(seed: number, path?: string): string {
  return `replay with fc.assert(..., { seed: ${seed}${path ? `, path: '${path}'` : ''} })`;
}

/** Engine options for the fixed scenario: several level-0 tables, a level 1 with a gap, a level 2. */
export const SCENARIO_OPTIONS = {
  // Sized for stored values that carry their 8-byte commit time.
  writeBufferSize: 4640,
  targetFileSize: 2540,
  blockSize: 256,
  level0CompactionTrigger: 4,
  maxBytesForLevelBase: 9200,
  // Checkpoints leave level 0 as the policy left it (several overlapping tables): the verifier
  // must handle any number of them, whatever an honest engine's `checkpointLevel0Tables` is.
  checkpointLevel0Tables: 64,
  compactionThread: 'inline' as const,
};

export const skey = (i: number): string => `key${String(i).padStart(3, '0')}`;
/** The scan whose proof the scenario keeps from the previous checkpoint. */
export const STALE_SCAN = { start: enc(skey(25)), end: enc(skey(75)) };

/** What the fixed scenario leaves behind for the suites. */
export interface Scenario {
  db: ProofDB;
  cleanup: () => Promise<void>;
  world: World;
  trust: { publicKeys: Uint8Array[]; quorum: number };
  /** The honest certificate of the latest checkpoint. */
  cert: CheckpointCertificate;
  /** A get proof and a history proof taken at the previous checkpoint (stale once the last is taken). */
  stale: { get: GetProof; history: HistoryProof; scan: ScanProof; key: Uint8Array; head: { size: number; root: Uint8Array } };
}

/**
 * Builds the fixed scenario: 500 puts over 100 keys, then three small checkpointed rounds (updates,
 * deletes, explicit versions), each leaving a level-0 table. Deterministic (the engine is).
 */
export async function buildScenario(open: (dir: string) => Promise<ProofDB>, dir: string, cleanupDir: () => void): Promise<Scenario> {
  const db = await open(dir);
  for (let r = 0; r < 5; r++) for (let i = 0; i < 100; i++) await db.put(skey(i), `v${r}-${i}-${'x'.repeat((i * 7) % 23)}`);
  await db.checkpoint();
  for (let i = 10; i < 90; i += 3) await db.put(skey(i), `late-${i}`);
  await db.checkpoint();
  for (let i = 20; i < 80; i += 10) await db.delete(skey(i));
  const before = await db.checkpoint();
  const staleKey = enc(skey(13));
  const stale = {
    get: (await db.getWithProof(staleKey)).proof,
    history: (await db.getVersionHistoryWithProof(staleKey)).proof,
    scan: (await db.scanWithProof(STALE_SCAN)).proof,
    key: staleKey,
    head: before.head,
  };
  for (let i = 40; i < 60; i += 4) await db.putWithVersion(skey(i), `explicit-${i}`, 1000 + i);
  const cp = await db.checkpoint();
  const world = World.load(db, cp.checkpoint.masterRoot);
  const cert = (await db.getWithProof(enc(skey(0)))).proof.certificate;
  return {
    db,
    cleanup: async () => {
      await db.close();
      cleanupDir();
    },
    world,
    trust: { publicKeys: [db.publicKey()], quorum: 1 },
    cert,
    stale,
  };
}
