/**
 * Get and history proofs over the LSM, and their verifiers. Isomorphic: no `node:` imports.
 *
 * A proof has three layers, each checked against the one above:
 * 1. a **certificate**: a log head signed by a quorum of trusted keys, and the RFC 9162 inclusion
 *    of the checkpoint in that head;
 * 2. the **master tree**: table descriptors (level, position, key range, entry count, table root)
 *    revealed with one multiproof against the checkpoint's MasterRoot, which also commits to the
 *    number of tables per level — so the verifier knows the read order and which tables exist;
 * 3. **windows**: runs of consecutive entries of a table, revealed with range proofs through the
 *    block trees and the table's tree of block roots.
 *
 * The verifier replays the engine's read. Level 0 tables may overlap, so every one is revealed;
 * in a deeper level tables are sorted and disjoint, so one covering table — or the one or two
 * tables around the gap where the key would be — shows what the level holds for the key. Each
 * table whose key range covers the key needs a window that reaches past both sides of the searched
 * position (the neighbours prove nothing is hidden between them) or ends at the table's edge.
 * The first table in read order holding a qualifying entry answers a get: a key's newer versions
 * always sit earlier in the read order (the LSM invariant the signers attest by signing the root).
 * A history proof searches every covering table and unions the runs.
 *
 * On request (`edges: true` in the query) every consulted table that does not cover the key also
 * proves its first or last entry, so the descriptors' key ranges are checked against the tables'
 * committed contents instead of trusted (docs/proofs.md §8.12). Cheap structural limits — list
 * lengths from the level counts and the query — are checked before any signature or hash.
 * @module
 */
import { checkTimeOrder } from './lsm_time.js';
import { compareBytes, equalBytes } from './bytes.js';
import {
  checkCheckpoint,
  verifyCheckpoint,
  verifyCheckpointInclusion,
  verifyHeadExtends,
  type Checkpoint,
  type HeadSignature,
  type LogHead,
  type TrustPolicy,
} from './checkpoint.js';
import { fail, Reason, type Verified, type VerifyFailure } from './errors.js';
import { CERTIFICATE_MEMO_MAX_ITEMS, copyCertificate, sameBytes, sameCertificate, sameList } from './certificate_copy.js';
import { cloneSignerSet, verifyCertifiedHead, verifySignerSet, type SignerSet } from './signer_set.js';
import { Domain, HASH_LEN, Kind, defaultHasher, type Hasher } from './hash.js';
import {
  compareEntries,
  descriptorHash,
  internalKeyOf,
  levelOffsets,
  masterRootOf,
  NUM_LEVELS,
  parseInternalKey,
  type EntryLeaf,
  type TableDescriptor,
} from './lsm.js';
import { rootFromMultiproof } from './multiproof.js';
import { _describe, rootFromTreeRange } from './tree.js';

/** The revealed part of one data block: entries `[offset, offset + entries.length)`. */
export interface WindowBlock {
  /** Block index in the table. */
  index: number;
  /** Entries in the block (the block root commits to it). */
  entryCount: number;
  offset: number;
  entries: EntryLeaf[];
  /** Range proof of the entries in the block's entry tree. */
  proof: Uint8Array[];
}

/** Consecutive entries of one table, possibly across consecutive blocks. */
export interface TableWindow {
  /** Master-tree index of the table (its place in read order). */
  table: number;
  /** Data blocks in the table (the table root commits to it). */
  blockCount: number;
  blocks: WindowBlock[];
  /** Range proof of the blocks' roots in the table's block tree. */
  blockProof: Uint8Array[];
}

/** The part of a proof below the checkpoint: descriptors and windows. */
export interface LsmProofBody {
  levelCounts: number[];
  /** Revealed descriptors, in read order. */
  descriptors: TableDescriptor[];
  /** Multiproof of the descriptors in the master tree. */
  masterProof: Uint8Array[];
  /** Windows, in read order of their tables. */
  windows: TableWindow[];
}

/** A checkpoint and the signed log head that includes it. */
export interface CheckpointCertificate {
  checkpoint: Checkpoint;
  head: LogHead;
  signatures: HeadSignature[];
  /** RFC 9162 inclusion path of the checkpoint (leaf `checkpoint.index`) in `head`. */
  inclusion: Uint8Array[];
  /**
   * The signer set `checkpoint` commits to (`checkpoint.signerSetHash`, v2); absent for a v1
   * checkpoint. When the checkpoint ends `head`, a quorum of this set must have signed the head
   * besides a quorum of the trusted set (docs/proofs.md §5.3).
   */
  signers?: SignerSet;
}

/** Proof for "the newest version of K at or below V is this entry / there is none". */
export interface GetProof {
  certificate: CheckpointCertificate;
  body: LsmProofBody;
  /** The value, when the answer is a put. */
  value?: Uint8Array;
}

/** Proof for "these are all versions of K in [minVersion, bound]". */
export interface HistoryProof {
  certificate: CheckpointCertificate;
  body: LsmProofBody;
  /** Highest version the proof covers: the asked maximum, or lower when a limit cut the answer. */
  bound: number;
  /** One value per returned entry, oldest first (empty for tombstones). */
  values: Uint8Array[];
}

/** What the client trusts and what it asked about the checkpoint. */
export interface CheckpointExpectation {
  trust: TrustPolicy;
  /** The head the client already trusts; the proof's head must equal or provably extend it. */
  trustedHead?: LogHead;
  /** RFC 9162 consistency proof from `trustedHead` to the proof's head, when that head is newer. */
  consistency?: Uint8Array[];
  /** The checkpoint asked for; by default the head's latest checkpoint. */
  checkpointIndex?: number;
  hasher?: Hasher;
}

/** A proven entry. */
export interface ProvenEntry {
  key: Uint8Array;
  version: number;
  seq: number;
  /** Commit time (ms since the epoch), as the entry leaf commits to it. */
  time: number;
  kind: 'put' | 'delete';
  /** The value (empty for a tombstone). */
  value: Uint8Array;
}

/**
 * Edge proofs (docs/proofs.md §8.12): with `edges: true` the client requires, for every table the
 * read consults, proof that the descriptor's key range is the table's real one — an extra
 * one-entry window at the table's first (`smallest`) or last (`largest`) entry for a table that
 * does not cover the key, and the same equality wherever a covering table's window reaches an
 * edge. A signer that shrinks or widens a descriptor's range over an honest table root is then
 * caught (`RANGE_MISMATCH`). Without it such windows are `UNEXPECTED_ELEMENT`.
 */
export interface EdgeOption {
  edges?: boolean;
}

/** A get query: the key, the version (default latest), and whether edge proofs are required. */
export interface GetQuery extends EdgeOption {
  key: Uint8Array;
  version?: number;
}

/** A history query: the key, the version interval, the page size, and whether edge proofs are required. */
export interface HistoryQuery extends EdgeOption {
  key: Uint8Array;
  minVersion?: number;
  maxVersion?: number;
  limit?: number;
}

/** Facts a verified get proof establishes. */
export interface GetFacts {
  checkpoint: Checkpoint;
  head: LogHead;
  /** The newest entry at or below the asked version, or undefined when there is none. */
  entry?: ProvenEntry;
}

/** Facts a verified history proof establishes. */
export interface HistoryFacts {
  checkpoint: Checkpoint;
  head: LogHead;
  /** Every version in [minVersion, bound], oldest first. */
  entries: ProvenEntry[];
  bound: number;
  /** Where to continue (`bound + 1`) when the limit cut the answer; undefined when complete. */
  nextMinVersion?: number;
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
/**
 * Counts the hash layouts store as u32 (level counts, descriptor positions, blocks per table,
 * entries per block). `writeU32BE` keeps only the low 32 bits, so without this check a count and
 * the same count plus 2^32 would hash alike; the verifier then relied on tree shapes alone to
 * tell them apart. Refused up front instead.
 */
const isU32 = (v: unknown): v is number => isUint(v) && v <= 0xffffffff;
const isHash = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.length === HASH_LEN;

/**
 * Verifies the certificate: quorum signatures, consistency with trusted state, inclusion. When the
 * checkpoint ends the head and is v2, the head must carry a quorum of `exp.trust` and a quorum of
 * the checkpoint's own signer set (`cert.signers`, checked against its hash); for an older
 * checkpoint of the head, a quorum of `exp.trust`, and `cert.signers` (if given) must match the
 * checkpoint's hash.
 */
export function verifyCertificate(cert: CheckpointCertificate, exp: CheckpointExpectation): Verified<{ checkpoint: Checkpoint; head: LogHead; signerSet?: SignerSet }> {
  return certificateVerdict(cert, exp, true);
}

/**
 * {@link verifyCertificate}; with `wantSet` false a remembered certificate's signer set is not
 * copied out (the get, history and scan verifiers use only the checkpoint and the head).
 */
function certificateVerdict(cert: CheckpointCertificate, exp: CheckpointExpectation, wantSet: boolean): Verified<{ checkpoint: Checkpoint; head: LogHead; signerSet?: SignerSet }> {
  if (!exp || typeof exp !== 'object') return fail(Reason.MALFORMED_INPUT, 'expectation must be an object');
  const hasher = exp.hasher ?? defaultHasher();
  if (!cert || typeof cert !== 'object') return fail(Reason.MALFORMED_INPUT, 'certificate missing');
  if (lastCertificate !== undefined && sameRemembered(lastCertificate, cert, exp, hasher)) {
    const out: { checkpoint: Checkpoint; head: LogHead; signerSet?: SignerSet } = { checkpoint: cert.checkpoint, head: cert.head };
    if (wantSet && lastCertificate.signerSet) out.signerSet = cloneSignerSet(lastCertificate.signerSet);
    return { ok: true, ...out };
  }
  const r = verifyCertificateOnce(cert, exp, hasher);
  lastCertificate = r.ok ? rememberCertificate(cert, exp, hasher, r.signerSet) : undefined;
  return r;
}

/**
 * The last certificate that verified, with the expectation and hasher it verified under: every
 * proof against one head carries the same certificate, and verifying it again — signer set hash,
 * checkpoint leaf, inclusion, the trust policy's and signatures' checks — was about a sixth of
 * `verifyGetProof` at 1M keys. Verification is a deterministic function of the certificate's
 * content, the expectation's content and the hasher, so a certificate equal byte for byte to the
 * remembered one, under an equal expectation and the same hasher, has the same result. One entry,
 * a deep copy the caller cannot reach, kept only for certificates of at most
 * {@link CERTIFICATE_MEMO_MAX_ITEMS} signatures, signer-set members, inclusion and consistency
 * hashes and trusted keys each (so at most about 30 KiB); failures are never remembered.
 */
let lastCertificate: RememberedCertificate | undefined;
export { CERTIFICATE_MEMO_MAX_ITEMS };

interface RememberedCertificate {
  cert: CheckpointCertificate;
  trust: TrustPolicy;
  trustedHead?: LogHead;
  consistency?: Uint8Array[];
  checkpointIndex?: number;
  hasher: Hasher;
  signerSet?: SignerSet;
}

const copyBytes = (b: Uint8Array): Uint8Array => b.slice();

function rememberCertificate(cert: CheckpointCertificate, exp: CheckpointExpectation, hasher: Hasher, signerSet: SignerSet | undefined): RememberedCertificate | undefined {
  try {
    return copyRemembered(cert, exp, hasher, signerSet);
  } catch {
    return undefined; // an expectation field the verification did not use was malformed: not remembered
  }
}

function copyRemembered(cert: CheckpointCertificate, exp: CheckpointExpectation, hasher: Hasher, signerSet: SignerSet | undefined): RememberedCertificate | undefined {
  if ((exp.consistency ?? []).length > CERTIFICATE_MEMO_MAX_ITEMS || exp.trust.publicKeys.length > CERTIFICATE_MEMO_MAX_ITEMS) return undefined;
  const copy = copyCertificate(cert);
  if (!copy) return undefined;
  const out: RememberedCertificate = { cert: copy, trust: { publicKeys: exp.trust.publicKeys.map(copyBytes), quorum: exp.trust.quorum }, hasher };
  if (exp.trust.allowUntrusted !== undefined) out.trust.allowUntrusted = exp.trust.allowUntrusted;
  if (exp.trustedHead) out.trustedHead = { size: exp.trustedHead.size, root: copyBytes(exp.trustedHead.root) };
  if (exp.consistency) out.consistency = exp.consistency.map(copyBytes);
  if (exp.checkpointIndex !== undefined) out.checkpointIndex = exp.checkpointIndex;
  if (signerSet) out.signerSet = cloneSignerSet(signerSet);
  return out;
}

/** Whether `cert` under `exp` and `hasher` is the remembered certificate, field by field. Never throws on malformed input. */
function sameRemembered(m: RememberedCertificate, cert: CheckpointCertificate, exp: CheckpointExpectation, hasher: Hasher): boolean {
  const t = exp.trust;
  if (hasher !== m.hasher || !t || typeof t !== 'object' || !sameCertificate(m.cert, cert)) return false;
  if (t.quorum !== m.trust.quorum || t.allowUntrusted !== m.trust.allowUntrusted || !sameList(m.trust.publicKeys, t.publicKeys)) return false;
  if (exp.checkpointIndex !== m.checkpointIndex || !sameList(m.consistency, exp.consistency)) return false;
  const th = exp.trustedHead;
  if (m.trustedHead === undefined) return th === undefined;
  return !!th && typeof th === 'object' && th.size === m.trustedHead.size && sameBytes(m.trustedHead.root, th.root);
}

/** {@link verifyCertificate} without the memo. */
function verifyCertificateOnce(cert: CheckpointCertificate, exp: CheckpointExpectation, hasher: Hasher): Verified<{ checkpoint: Checkpoint; head: LogHead; signerSet?: SignerSet }> {
  const { checkpoint, head, signatures, inclusion, signers } = cert;
  if (!head || !isUint(head.size) || !isHash(head.root)) return fail(Reason.MALFORMED_INPUT, 'malformed log head');
  const badCp0 = checkCheckpoint(checkpoint);
  if (badCp0) return badCp0;
  const sig =
    checkpoint.index === head.size - 1
      ? verifyCertifiedHead(head, signatures, exp.trust, signers, checkpoint.signerSetHash, hasher)
      : verifyCheckpoint(head, signatures, exp.trust);
  if (!sig.ok) return sig;
  if (checkpoint.index !== head.size - 1 && signers !== undefined) {
    if (checkpoint.signerSetHash === undefined) return fail(Reason.SIGNER_SET_MISMATCH, 'a v1 checkpoint commits to no signer set, but one was given');
    const set = verifySignerSet(signers, checkpoint.signerSetHash, hasher);
    if (!set.ok) return set;
  }
  if (exp.trustedHead) {
    const t = exp.trustedHead;
    if (!(t.size === head.size && equalBytes(t.root, head.root))) {
      const ext = verifyHeadExtends(t, head, exp.consistency ?? []);
      if (!ext.ok) return ext;
    }
  }
  if (checkpoint.index >= head.size) {
    return fail(Reason.INDEX_OUT_OF_RANGE, `checkpoint ${checkpoint.index} is not in a log of size ${head.size}`);
  }
  const wantIndex = exp.checkpointIndex ?? head.size - 1;
  if (checkpoint.index !== wantIndex) {
    return fail(Reason.CHECKPOINT_MISMATCH, `proof is at checkpoint ${checkpoint.index}, want ${wantIndex}`);
  }
  const inc = verifyCheckpointInclusion(checkpoint, inclusion, head, hasher);
  if (!inc.ok) return inc;
  const out: { checkpoint: Checkpoint; head: LogHead; signerSet?: SignerSet } = { checkpoint, head };
  const signerSet = (sig as { signerSet?: SignerSet }).signerSet;
  if (signerSet) out.signerSet = signerSet;
  return { ok: true, ...out };
}

interface EvaluatedWindow {
  entries: EntryLeaf[];
  atStart: boolean;
  atEnd: boolean;
}

/** Recomputes a window's table root and checks it against the descriptor. */
function evaluateWindow(hasher: Hasher, w: TableWindow, d: TableDescriptor): Verified<EvaluatedWindow> {
  if (!isU32(w.blockCount) || w.blockCount === 0) return fail(Reason.MALFORMED_INPUT, 'window blockCount');
  if (!Array.isArray(w.blocks) || w.blocks.length === 0) return fail(Reason.MALFORMED_INPUT, 'window has no blocks');
  const blockRoots: Uint8Array[] = [];
  const entries: EntryLeaf[] = [];
  for (let k = 0; k < w.blocks.length; k++) {
    const b = w.blocks[k];
    if (!isUint(b.index) || !isU32(b.entryCount) || !isUint(b.offset) || !Array.isArray(b.entries)) {
      return fail(Reason.MALFORMED_INPUT, `window block ${k} malformed`);
    }
    if (b.index !== w.blocks[0].index + k) return fail(Reason.ENTRY_ORDER, `window blocks not consecutive at ${k}`);
    if (b.entries.length === 0 || b.offset + b.entries.length > b.entryCount) {
      return fail(Reason.INDEX_OUT_OF_RANGE, `block ${b.index}: entries [${b.offset}, ${b.offset + b.entries.length}) of ${b.entryCount}`);
    }
    if (k > 0 && b.offset !== 0) return fail(Reason.ENTRY_ORDER, `block ${b.index} must be revealed from its first entry`);
    if (k < w.blocks.length - 1 && b.offset + b.entries.length !== b.entryCount) {
      return fail(Reason.ENTRY_ORDER, `block ${b.index} must be revealed to its last entry`);
    }
    const leaves: Uint8Array[] = [];
    for (const e of b.entries) {
      if (!(e.key instanceof Uint8Array) || !isUint(e.version) || !isUint(e.seq) || !isUint(e.time) || !isHash(e.valueHash)) {
        return fail(Reason.MALFORMED_INPUT, 'malformed entry');
      }
      if (e.kind !== Kind.PUT && e.kind !== Kind.DELETE) return fail(Reason.MALFORMED_INPUT, `entry kind ${_describe(e.kind)}`);
      leaves.push(hasher.entryLeaf(e.key, e.version, e.seq, e.time, e.kind, e.valueHash));
      entries.push(e);
    }
    const r = rootFromTreeRange(hasher, Domain.ENTRY_NODE, b.offset, b.entryCount, leaves, b.proof);
    if (!r.ok) return r;
    blockRoots.push(hasher.blockRoot(b.entryCount, r.root));
  }
  for (let i = 1; i < entries.length; i++) {
    if (compareEntries(entries[i - 1], entries[i]) >= 0) return fail(Reason.ENTRY_ORDER, `window entries out of order at ${i}`);
  }
  const first = w.blocks[0];
  const last = w.blocks[w.blocks.length - 1];
  const t = rootFromTreeRange(hasher, Domain.BLOCK_NODE, first.index, w.blockCount, blockRoots, w.blockProof);
  if (!t.ok) return t;
  const tableRoot = hasher.tableRoot(w.blockCount, d.entryCount, t.root);
  if (!equalBytes(tableRoot, d.tableRoot)) return fail(Reason.ROOT_MISMATCH, `window of table ${w.table} does not match its table root`);
  return {
    ok: true,
    entries,
    atStart: first.index === 0 && first.offset === 0,
    atEnd: last.index === w.blockCount - 1 && last.offset + last.entries.length === last.entryCount,
  };
}

/** The window of a covering table, checked against its descriptor; marks the window used. */
function consultWindow(
  hasher: Hasher,
  windows: ReadonlyMap<number, TableWindow>,
  used: Set<number>,
  t: { index: number; d: TableDescriptor },
): Verified<EvaluatedWindow> {
  const w = windows.get(t.index);
  if (!w) return fail(Reason.MISSING_WINDOW, `table ${t.index} covers the key but has no window`);
  used.add(t.index);
  return evaluateWindow(hasher, w, t.d);
}

/** Which edge of a table an edge window must show. */
type Edge = 'first' | 'last';

/** With edge proofs: a window that reaches a table's edge must show the descriptor's key there. */
function checkEdges(ev: EvaluatedWindow, t: { index: number; d: TableDescriptor }): VerifyFailure | undefined {
  const es = ev.entries;
  if (ev.atStart && !equalBytes(internalKeyOf(es[0]), t.d.smallest)) {
    return fail(Reason.RANGE_MISMATCH, `table ${t.index}: first entry is not the descriptor's smallest key`);
  }
  if (ev.atEnd && !equalBytes(internalKeyOf(es[es.length - 1]), t.d.largest)) {
    return fail(Reason.RANGE_MISMATCH, `table ${t.index}: last entry is not the descriptor's largest key`);
  }
  return undefined;
}

/**
 * The edge window of a consulted table that does not cover the key: exactly its first or last
 * entry, authenticated against its table root, equal to the descriptor's `smallest` / `largest`.
 */
function consultEdge(hasher: Hasher, windows: ReadonlyMap<number, TableWindow>, used: Set<number>, t: { index: number; d: TableDescriptor }, edge: Edge): VerifyFailure | undefined {
  const w = windows.get(t.index);
  if (!w) return fail(Reason.MISSING_WINDOW, `table ${t.index} has no edge window (its ${edge} entry)`);
  used.add(t.index);
  const ev = evaluateWindow(hasher, w, t.d);
  if (!ev.ok) return ev;
  if (ev.entries.length !== 1) return fail(Reason.UNEXPECTED_ELEMENT, `table ${t.index}: edge window of ${ev.entries.length} entries, want 1`);
  if (edge === 'first' ? !ev.atStart : !ev.atEnd) return fail(Reason.WINDOW_NOT_BRACKETING, `table ${t.index}: edge window is not at the table's ${edge} entry`);
  return checkEdges(ev, t);
}

/**
 * Consults one table of the read: a table that does not cover the key (or range) needs only its
 * edge window, and only with `edges`; a covering one has its window evaluated (and, with `edges`,
 * its edges checked). Returns the evaluated window, or `window: undefined` for a non-covering table.
 */
function consultTable(
  hasher: Hasher,
  windows: ReadonlyMap<number, TableWindow>,
  used: Set<number>,
  t: { index: number; d: TableDescriptor; edge?: Edge },
  covers: boolean,
  edges: boolean,
): Verified<{ window?: EvaluatedWindow }> {
  if (!covers) {
    const bad = edges ? consultEdge(hasher, windows, used, t, t.edge!) : undefined;
    return bad ?? { ok: true };
  }
  const ev = consultWindow(hasher, windows, used, t);
  if (!ev.ok) return ev;
  const badEdge = edges ? checkEdges(ev, t) : undefined;
  return badEdge ?? { ok: true, window: ev };
}

/**
 * The entries of a window inside a searched interval (`sideOf` = 0), which the window must bracket
 * (§8.6): exactly one entry before the interval or the table's start, exactly one after it or the
 * table's end. Entries are strictly ordered, so the sides are non-decreasing along the window.
 */
function bracketedRun(ev: EvaluatedWindow, sideOf: (e: EntryLeaf) => -1 | 0 | 1, table: number): Verified<{ entries: EntryLeaf[] }> {
  const sides = ev.entries.map(sideOf);
  const beforeCount = sides.filter((s) => s < 0).length;
  const afterCount = sides.filter((s) => s > 0).length;
  if (beforeCount === 0 && !ev.atStart) return fail(Reason.WINDOW_NOT_BRACKETING, `table ${table}: no entry before the interval`);
  if (afterCount === 0 && !ev.atEnd) return fail(Reason.WINDOW_NOT_BRACKETING, `table ${table}: no entry after the interval`);
  if (beforeCount > 1 || afterCount > 1) return fail(Reason.UNEXPECTED_ELEMENT, `table ${table}: window reaches further than needed`);
  return { ok: true, entries: ev.entries.filter((_, i) => sides[i] === 0) };
}

/** Where an entry lies relative to the searched interval of one key's versions [lo, hi]. */
function side(e: EntryLeaf, key: Uint8Array, lo: number, hi: number): -1 | 0 | 1 {
  const c = compareBytes(e.key, key);
  if (c < 0) return -1;
  if (c > 0) return 1;
  if (e.version > hi) return -1;
  if (e.version < lo) return 1;
  return 0;
}

/** One level of the read: the tables to consult, or why the revealed descriptors fall short. */
interface LevelStep {
  level: number;
  /** Set when the revealed descriptors do not show what this level holds for the key. */
  error?: VerifyFailure;
  /**
   * Tables of this level the read consults, in read order: every level-0 table, and at a deeper
   * level the covering table or the neighbours of the gap. `edge` (when not covering): which of
   * the table's edges shows that the key is outside it.
   */
  tables: Array<{ index: number; d: TableDescriptor; covers: boolean; edge?: Edge }>;
  /** Positions in `body.descriptors` this level uses. */
  uses: number[];
}

/** The master layer, checked, as the sequence of levels the read walks. */
interface Plan {
  steps: LevelStep[];
  descriptorCount: number;
}

/** The master layer, checked: each revealed descriptor's master index and user-key range. */
interface MasterLayer {
  offsets: number[];
  /** Master index of `body.descriptors[i]`. */
  indexes: number[];
  /** User-key range of `body.descriptors[i]`. */
  ranges: Array<{ lo: Uint8Array; hi: Uint8Array }>;
  /** Position in `body.descriptors` by master index. */
  byIndex: Map<number, number>;
}

/**
 * Checks the descriptors (§8.8 M2–M4): well formed, in read order, and with the multiproof and the
 * level counts recomputing the checkpoint's MasterRoot. `body` has passed {@link checkShape}.
 */
function verifyMaster(hasher: Hasher, body: LsmProofBody, masterRoot: Uint8Array): Verified<MasterLayer> {
  const counts = body.levelCounts;
  const offsets = levelOffsets(counts);
  const total = counts.reduce((a, b) => a + b, 0);
  const indexes: number[] = [];
  const leaves: Uint8Array[] = [];
  const ranges: Array<{ lo: Uint8Array; hi: Uint8Array }> = [];
  for (const d of body.descriptors) {
    if (!d || !isUint(d.level) || d.level >= NUM_LEVELS || !isUint(d.position) || !isUint(d.entryCount) || !isHash(d.tableRoot)) {
      return fail(Reason.MALFORMED_INPUT, 'malformed descriptor');
    }
    if (d.position >= counts[d.level]) {
      return fail(Reason.INDEX_OUT_OF_RANGE, `descriptor position ${d.position} in level ${d.level} of ${counts[d.level]}`);
    }
    const lo = parseInternalKey(d.smallest);
    const hi = parseInternalKey(d.largest);
    if (!lo || !hi) return fail(Reason.MALFORMED_INPUT, 'descriptor key range');
    indexes.push(offsets[d.level] + d.position);
    leaves.push(descriptorHash(hasher, d));
    ranges.push({ lo: lo.key, hi: hi.key });
  }
  let treeRoot: Uint8Array;
  if (total === 0) {
    if (body.descriptors.length > 0 || body.masterProof.length > 0) return fail(Reason.UNEXPECTED_ELEMENT, 'descriptors for an empty table set');
    treeRoot = new Uint8Array(HASH_LEN);
  } else {
    if (indexes.length === 0) return fail(Reason.MISSING_TABLE, 'no descriptor revealed');
    const r = rootFromMultiproof(hasher, Domain.MASTER_NODE, total, indexes, leaves, body.masterProof);
    if (!r.ok) return r.reason === Reason.INDEX_OUT_OF_RANGE ? fail(Reason.ENTRY_ORDER, r.message) : r;
    treeRoot = r.root;
  }
  const root = masterRootOf(hasher, counts, treeRoot);
  if (!equalBytes(root, masterRoot)) return fail(Reason.ROOT_MISMATCH, 'descriptors do not match the checkpoint MasterRoot');
  const byIndex = new Map<number, number>();
  indexes.forEach((x, i) => byIndex.set(x, i));
  return { ok: true, offsets, indexes, ranges, byIndex };
}

/** Checks the master layer and works out, level by level, which tables cover `key`; `body` has passed {@link checkShape}. */
function planRead(hasher: Hasher, body: LsmProofBody, masterRoot: Uint8Array, key: Uint8Array): Verified<Plan> {
  const m = verifyMaster(hasher, body, masterRoot);
  if (!m.ok) return m;
  const counts = body.levelCounts;
  const { offsets, indexes, ranges, byIndex } = m;
  const covers = (i: number) => compareBytes(key, ranges[i].lo) >= 0 && compareBytes(key, ranges[i].hi) <= 0;
  const steps: LevelStep[] = [];
  // Level 0: tables may overlap, so every one is consulted in order (newest first).
  if (counts[0] > 0) {
    const step: LevelStep = { level: 0, tables: [], uses: [] };
    for (let p = 0; p < counts[0]; p++) {
      const i = byIndex.get(offsets[0] + p);
      if (i === undefined) {
        step.error = fail(Reason.MISSING_TABLE, `level-0 table ${p} not revealed`);
        break;
      }
      step.uses.push(i);
      const c = covers(i);
      step.tables.push({ index: offsets[0] + p, d: body.descriptors[i], covers: c, edge: c ? undefined : compareBytes(key, ranges[i].lo) < 0 ? 'first' : 'last' });
    }
    steps.push(step);
  }
  // Deeper levels: sorted and disjoint; one covering table, or the neighbours around the gap.
  for (let level = 1; level < NUM_LEVELS; level++) {
    if (counts[level] === 0) continue;
    // The revealed tables of this level, in position order. Walked over the revealed descriptors
    // (their master indexes are strictly increasing, checked by the multiproof), not over the
    // level's positions: a signed count can be as large as 2^32 − 1.
    const revealed: number[] = [];
    const lo = offsets[level];
    const hi = lo + counts[level];
    for (let i = 0; i < indexes.length; i++) if (indexes[i] >= lo && indexes[i] < hi) revealed.push(i);
    const step: LevelStep = { level, tables: [], uses: revealed };
    if (revealed.length === 1 && covers(revealed[0])) {
      step.tables.push({ index: indexes[revealed[0]], d: body.descriptors[revealed[0]], covers: true });
    } else {
      const pos = (i: number) => body.descriptors[i].position;
      const side = (i: number, edge: Edge) => ({ index: indexes[i], d: body.descriptors[i], covers: false, edge });
      const [a, b] = revealed;
      if (revealed.length === 1 && pos(a) === 0 && compareBytes(key, ranges[a].lo) < 0) {
        step.tables.push(side(a, 'first')); // before the level
      } else if (revealed.length === 1 && pos(a) === counts[level] - 1 && compareBytes(key, ranges[a].hi) > 0) {
        step.tables.push(side(a, 'last')); // after the level
      } else if (revealed.length === 2 && pos(b) === pos(a) + 1 && compareBytes(key, ranges[a].hi) > 0 && compareBytes(key, ranges[b].lo) < 0) {
        step.tables.push(side(a, 'last'), side(b, 'first')); // in the gap
      } else {
        step.error = fail(Reason.MISSING_TABLE, `level ${level}: revealed tables neither cover the key nor bracket it`);
      }
    }
    steps.push(step);
  }
  return { ok: true, steps, descriptorCount: body.descriptors.length };
}

/**
 * Structural limits checked before any signature check or hash: list lengths the read can need at
 * most, from the level counts and the query alone. Only counts are looked at, so the cost is
 * linear in the number of list items, and an oversized proof is refused before it is hashed.
 * (The precise checks come later; these only bound the work of reaching them.)
 */
function checkShape(body: LsmProofBody, maxWindowEntries: number, maxDescriptorsFor?: (counts: number[]) => number): VerifyFailure | undefined {
  const counts = body.levelCounts;
  if (!Array.isArray(counts) || counts.length !== NUM_LEVELS || !counts.every(isU32)) {
    return fail(Reason.MALFORMED_INPUT, `levelCounts must be ${NUM_LEVELS} integers`);
  }
  if (!Array.isArray(body.descriptors) || !Array.isArray(body.masterProof) || !Array.isArray(body.windows)) {
    return fail(Reason.MALFORMED_INPUT, 'descriptors, masterProof and windows must be arrays');
  }
  // Every level-0 table, and at most two per deeper level (a scan passes its own bound).
  const maxDescriptors = maxDescriptorsFor ? maxDescriptorsFor(counts) : counts[0] + 2 * (NUM_LEVELS - 1);
  if (body.descriptors.length > maxDescriptors) {
    return fail(Reason.UNEXPECTED_ELEMENT, `${body.descriptors.length} descriptors, a read reveals at most ${maxDescriptors}`);
  }
  // A multiproof has at most one hash per level of the tree (< 2^32 leaves) per revealed leaf.
  if (body.masterProof.length > 32 * Math.max(1, body.descriptors.length)) {
    return fail(Reason.PROOF_SIZE, `master proof of ${body.masterProof.length} hashes for ${body.descriptors.length} descriptors`);
  }
  // At most one window per revealed table.
  if (body.windows.length > body.descriptors.length) {
    return fail(Reason.UNEXPECTED_ELEMENT, `${body.windows.length} windows for ${body.descriptors.length} descriptors`);
  }
  for (const w of body.windows) {
    if (!w || typeof w !== 'object' || !Array.isArray(w.blocks)) return fail(Reason.MALFORMED_INPUT, 'window without blocks');
    let n = 0;
    for (const b of w.blocks) {
      if (!b || typeof b !== 'object' || !Array.isArray(b.entries)) return fail(Reason.MALFORMED_INPUT, 'window block without entries');
      n += b.entries.length;
    }
    if (n > maxWindowEntries) return fail(Reason.UNEXPECTED_ELEMENT, `window of ${n} entries, this read needs at most ${maxWindowEntries}`);
  }
  return undefined;
}

/** Shared front half of both verifiers. */
function verifyFront(
  proof: { certificate: CheckpointCertificate; body: LsmProofBody },
  key: Uint8Array,
  exp: CheckpointExpectation,
  maxWindowEntries: number,
): Verified<{ checkpoint: Checkpoint; head: LogHead; plan: Plan; windows: Map<number, TableWindow> }> {
  const hasher = exp.hasher ?? defaultHasher();
  if (!proof || typeof proof !== 'object' || !proof.body || typeof proof.body !== 'object') return fail(Reason.MALFORMED_INPUT, 'proof missing');
  const shape = checkShape(proof.body, maxWindowEntries);
  if (shape) return shape;
  const cert = certificateVerdict(proof.certificate, exp, false);
  if (!cert.ok) return cert;
  const plan = planRead(hasher, proof.body, cert.checkpoint.masterRoot, key);
  if (!plan.ok) return plan;
  const windows = windowsByTable(proof.body);
  if (!windows.ok) return windows;
  return { ok: true, checkpoint: cert.checkpoint, head: cert.head, plan, windows: windows.map };
}

/** The windows by table (master index); they must be in read order, one per table (§8.8 M6). */
function windowsByTable(body: LsmProofBody): Verified<{ map: Map<number, TableWindow> }> {
  const map = new Map<number, TableWindow>();
  let prev = -1;
  for (const w of body.windows) {
    if (!w || !isUint(w.table) || w.table <= prev) return fail(Reason.ENTRY_ORDER, 'windows must be in read order, one per table');
    prev = w.table;
    map.set(w.table, w);
  }
  return { ok: true, map };
}

function proven(e: EntryLeaf, value: Uint8Array): ProvenEntry {
  return { key: e.key, version: e.version, seq: e.seq, time: e.time, kind: e.kind === Kind.DELETE ? 'delete' : 'put', value };
}

/** The proven entries with their values: one value per entry, in order, each hashing to its entry's valueHash. */
function provenWithValues(hasher: Hasher, found: EntryLeaf[], values: unknown): Verified<{ entries: ProvenEntry[] }> {
  if (!Array.isArray(values) || values.length !== found.length) {
    return fail(Reason.VALUE_MISMATCH, `${Array.isArray(values) ? values.length : 'no'} values for ${found.length} entries`);
  }
  const entries: ProvenEntry[] = [];
  for (let i = 0; i < found.length; i++) {
    const v: unknown = values[i];
    if (!(v instanceof Uint8Array) || !equalBytes(hasher.valueHash(v), found[i].valueHash)) {
      return fail(Reason.VALUE_MISMATCH, `value ${i} does not match its hash`);
    }
    entries.push(proven(found[i], v));
  }
  return { ok: true, entries };
}

function guard<T extends object>(f: () => Verified<T>): Verified<T> {
  try {
    return f();
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `malformed proof: ${err instanceof Error ? err.message : _describe(err)}`) as VerifyFailure;
  }
}

/**
 * Verifies a get proof for `key` at or below `version` (default: the latest). Returns the proven
 * newest entry (value or tombstone), or proves there is none. Never throws.
 */
export function verifyGetProof(proof: GetProof, query: GetQuery, exp: CheckpointExpectation): Verified<GetFacts> {
  return guard(() => {
    if (!query || typeof query !== 'object' || !exp || typeof exp !== 'object') return fail(Reason.MALFORMED_INPUT, 'query and expectation must be objects');
    const hasher = exp.hasher ?? defaultHasher();
    const key = query.key;
    const version = query.version ?? Number.MAX_SAFE_INTEGER;
    const edges = query.edges === true;
    if (!(key instanceof Uint8Array) || key.length === 0 || !isUint(version)) return fail(Reason.MALFORMED_INPUT, 'bad query');
    if (query.edges !== undefined && typeof query.edges !== 'boolean') return fail(Reason.MALFORMED_INPUT, 'edges must be a boolean');
    // A get window is the entry before the searched position and the entry at it.
    const front = verifyFront(proof, key, exp, 2);
    if (!front.ok) return front;
    const used = new Set<number>();
    const usedDescriptors = new Set<number>();
    let answer: EntryLeaf | undefined;
    walk: for (const step of front.plan.steps) {
      if (step.error) return step.error;
      for (const i of step.uses) usedDescriptors.add(i);
      for (const t of step.tables) {
        const c = consultTable(hasher, front.windows, used, t, t.covers, edges);
        if (!c.ok) return c;
        const ev = c.window;
        if (!ev) continue;
        // The searched position: the first entry at or after (key, version). The window must show
        // the entry before it (or start the table) and the entry at it (or end the table).
        const es = ev.entries;
        const firstAt = es.findIndex((e) => side(e, key, 0, version) >= 0);
        const before = firstAt === -1 ? es.length : firstAt;
        if (before === 0 && !ev.atStart) return fail(Reason.WINDOW_NOT_BRACKETING, `table ${t.index}: no entry before the searched position`);
        if (firstAt === -1 && !ev.atEnd) return fail(Reason.WINDOW_NOT_BRACKETING, `table ${t.index}: no entry at the searched position`);
        if (firstAt !== -1 && es.length - firstAt > 1) return fail(Reason.UNEXPECTED_ELEMENT, `table ${t.index}: window reaches further than needed`);
        if (before > 1) return fail(Reason.UNEXPECTED_ELEMENT, `table ${t.index}: window starts earlier than needed`);
        if (firstAt !== -1 && side(es[firstAt], key, 0, version) === 0) {
          answer = es[firstAt];
          break walk;
        }
      }
    }
    if (usedDescriptors.size !== front.plan.descriptorCount) return fail(Reason.UNEXPECTED_ELEMENT, 'descriptor the read does not use');
    for (const idx of front.windows.keys()) {
      if (!used.has(idx)) return fail(Reason.UNEXPECTED_ELEMENT, `window for table ${idx} the read does not reach`);
    }
    if (!answer) {
      if (proof.value !== undefined) return fail(Reason.UNEXPECTED_ELEMENT, 'a value for an absent key');
      return { ok: true, checkpoint: front.checkpoint, head: front.head };
    }
    if (answer.kind === Kind.DELETE) {
      if (proof.value !== undefined) return fail(Reason.UNEXPECTED_ELEMENT, 'a value for a tombstone');
      return { ok: true, checkpoint: front.checkpoint, head: front.head, entry: proven(answer, new Uint8Array(0)) };
    }
    if (!(proof.value instanceof Uint8Array)) return fail(Reason.VALUE_MISMATCH, 'value missing');
    if (!equalBytes(hasher.valueHash(proof.value), answer.valueHash)) return fail(Reason.VALUE_MISMATCH, 'value does not match its hash');
    return { ok: true, checkpoint: front.checkpoint, head: front.head, entry: proven(answer, proof.value) };
  });
}

/**
 * Verifies a history proof: the returned entries are all versions of `key` with
 * `minVersion <= version <= bound`, none omitted, none added. With `limit`, a `bound` below
 * `maxVersion` is accepted only when exactly `limit` entries came back, and `nextMinVersion`
 * says where to continue. Never throws.
 */
export function verifyHistoryProof(proof: HistoryProof, query: HistoryQuery, exp: CheckpointExpectation): Verified<HistoryFacts> {
  return guard(() => {
    if (!query || typeof query !== 'object' || !exp || typeof exp !== 'object') return fail(Reason.MALFORMED_INPUT, 'query and expectation must be objects');
    const hasher = exp.hasher ?? defaultHasher();
    const edges = query.edges === true;
    if (query.edges !== undefined && typeof query.edges !== 'boolean') return fail(Reason.MALFORMED_INPUT, 'edges must be a boolean');
    const key = query.key;
    const min = query.minVersion ?? 0;
    const max = query.maxVersion ?? Number.MAX_SAFE_INTEGER;
    const limit = query.limit;
    if (!(key instanceof Uint8Array) || key.length === 0 || !isUint(min) || !isUint(max) || min > max) {
      return fail(Reason.MALFORMED_INPUT, 'bad query');
    }
    if (limit !== undefined && (!isUint(limit) || limit === 0)) return fail(Reason.MALFORMED_INPUT, 'bad limit');
    if (!proof || typeof proof !== 'object') return fail(Reason.MALFORMED_INPUT, 'proof missing');
    const bound = proof.bound;
    if (!isUint(bound) || bound > max || bound < min) return fail(Reason.HISTORY_BOUND, `bound ${_describe(bound)} outside [${min}, ${max}]`);
    // Versions are distinct integers: a table holds at most bound - min + 1 of them in the
    // interval, with one bracketing entry on each side; never more than the limit in all.
    const inInterval = bound - min + 1;
    const maxValues = limit === undefined ? inInterval : Math.min(limit, inInterval);
    if (!Array.isArray(proof.values) || proof.values.length > maxValues) {
      const got = Array.isArray(proof.values) ? proof.values.length : 'no';
      return fail(Array.isArray(proof.values) ? Reason.HISTORY_BOUND : Reason.VALUE_MISMATCH, `${got} values, this query returns at most ${maxValues}`);
    }
    // Every in-interval entry of a window is returned, so a window holds at most maxValues of them.
    const front = verifyFront(proof, key, exp, maxValues + 2);
    if (!front.ok) return front;
    const found: EntryLeaf[] = [];
    const used = new Set<number>();
    const covering: Plan['steps'][number]['tables'] = [];
    for (const step of front.plan.steps) {
      if (step.error) return step.error;
      covering.push(...step.tables);
    }
    for (const t of covering) {
      const c = consultTable(hasher, front.windows, used, t, t.covers, edges);
      if (!c.ok) return c;
      const ev = c.window;
      if (!ev) continue;
      const run = bracketedRun(ev, (e) => side(e, key, min, bound), t.index);
      if (!run.ok) return run;
      found.push(...run.entries);
    }
    for (const idx of front.windows.keys()) {
      if (!used.has(idx)) return fail(Reason.UNEXPECTED_ELEMENT, `window for table ${idx} the read does not reach`);
    }
    found.sort((a, b) => a.version - b.version);
    for (let i = 1; i < found.length; i++) {
      if (found[i].version === found[i - 1].version) return fail(Reason.ENTRY_ORDER, `version ${found[i].version} appears twice`);
    }
    if (bound < max) {
      if (limit === undefined || found.length !== limit) {
        return fail(Reason.HISTORY_BOUND, `bound ${bound} below the asked ${max} needs exactly limit entries, got ${found.length}`);
      }
      // A cut answer ends at its last entry. Without this, any bound up to the next version was
      // accepted (true but malleable: one answer, many valid proofs and continuations).
      if (bound !== found[found.length - 1].version) {
        return fail(Reason.HISTORY_BOUND, `bound ${bound} of a cut answer, want its last version ${found[found.length - 1].version}`);
      }
    } else if (limit !== undefined && found.length > limit) {
      return fail(Reason.HISTORY_BOUND, `${found.length} entries for limit ${limit}`);
    }
    const withValues = provenWithValues(hasher, found, proof.values);
    if (!withValues.ok) return withValues;
    // One key's commit times never decrease with its version (§1.1).
    const order = checkTimeOrder(withValues.entries);
    if (!order.ok) return order;
    return {
      ok: true,
      checkpoint: front.checkpoint,
      head: front.head,
      entries: withValues.entries,
      bound,
      nextMinVersion: bound < max ? bound + 1 : undefined,
    };
  });
}

/**
 * Building blocks shared with the scan verifier (`lsm_scan.ts`); not part of the public API.
 * @internal
 */
export {
  bracketedRun as _bracketedRun,
  checkShape as _checkShape,
  consultTable as _consultTable,
  guard as _guard,
  isU32 as _isU32,
  isUint as _isUint,
  provenWithValues as _provenWithValues,
  verifyMaster as _verifyMaster,
  windowsByTable as _windowsByTable,
  type Edge as _Edge,
};
