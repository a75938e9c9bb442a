/**
 * Replication snapshots: the engine's tables at a certified checkpoint, for a member that is
 * behind the leader's first log index (issue 10, requirement 6; docs/replication.md § Snapshots).
 *
 * A snapshot is never copied as a whole. Its **descriptor** (small CBOR, the `data` of a Raft
 * snapshot) names the latest checkpoint — its certificate (checkpoint, head, signatures), its table
 * list, the length of the `CHECKPOINTS` prefix that ends with it, the engine's log index and the
 * replicated session table — and the files travel in ≤ 1 MiB chunks
 * ({@link readSnapshotChunk} on the member that has them, through `Transport.fetchSnapshotChunk`).
 * {@link installSnapshot} checks the certificate against the trusted keys and the table list
 * against the certified MasterRoot before it fetches anything, fetches into a staging folder,
 * re-verifies every file there (the backup's verification: tables re-hashed, MasterRoot
 * recomputed, checkpoint log rebuilt to the certified head root), and only then replaces the
 * engine's state in one crash-safe step (`src/db/snapshot_install.ts`).
 *
 * Pure parts (descriptor codec, certificate and table-list checks) are separate from the I/O.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkpointBytes, verifyCheckpoint, verifyCheckpointInclusion, verifyHeadExtends, type Checkpoint, type HeadSignature, type LogHead, type TrustPolicy } from '../../proofs/checkpoint.js';
import { arrayOf, bytes, checkpointSchema, codec, hash, headSignatureSchema, logHeadSchema, MAX_PROOF_PATH, MAX_SIGNATURES, optional, refine, signerSetSchema, struct, uint, type Schema } from '../../proofs/encoding.js';
import { MAX_SET_CHANGES, startSetChain, verifySetChanges, type SetChainState, type SetChange, type SetChangePredecessor } from '../../proofs/set_changes.js';
import { signerSetHash, signerSetPolicy, verifySignerSet, type SignerSet } from '../../proofs/signer_set.js';
import { equalBytes, toHex } from '../../proofs/bytes.js';
import { computeMasterRoot, NUM_LEVELS, type TableDescriptor } from '../../proofs/lsm.js';
import { maxTimeOfTables, verifyCheckpointFiles } from '../backup/backup.js';
import type { ProofDB } from '../db/db.js';
import { lockDir } from '../db/lock.js';
import { commitStagedSnapshot, sealStagedSnapshot, SNAPSHOT_FETCHED_DIR, SNAPSHOT_STAGING_DIR, type InstallStep } from '../db/snapshot_install.js';
import { ErrorCode, ProofKVError } from '../errors.js';
import { readJournal } from '../journal/reader.js';
import { formatRecords } from '../journal/writer.js';
import { CHECKPOINT_LOG_FILE, decodeRecord, isCheckpointRecord, versionOfStored, type StoredCheckpoint } from '../proof/checkpoint_log.js';
import { nodeHasher } from '../table/node_hasher.js';
import { TableReader } from '../table/table_reader.js';
import type { TableMeta } from '../version/edit.js';
import { files, VersionSet } from '../version/version_set.js';
import { syncDir, syncFile } from '../util/durable.js';
import { shapeOf, type Shape } from '../options.js';
import { askShape, encodeShape, SHAPE_FILE, type ShapeError } from './shape.js';
import { GuessedInitialSignerSet } from './initial_set.js';

/** Largest chunk {@link readSnapshotChunk} serves and {@link installSnapshot} asks for: 1 MiB. */
export const SNAPSHOT_CHUNK_BYTES = 1 << 20;
/** Largest descriptor {@link decodeSnapshotDescriptor} accepts (session table included): 32 MiB. */
export const MAX_DESCRIPTOR_BYTES = 32 << 20;
/** Most tables a descriptor may list. */
export const MAX_SNAPSHOT_TABLES = 100_000;
/** Longest smallest/largest internal key in a descriptor (the engine's key limit is far below). */
export const MAX_SNAPSHOT_KEY_BYTES = 1 << 20;
/** File in the data directory holding the descriptor of the last installed snapshot. */
export const SNAPSHOT_FILE = 'SNAPSHOT';

/** Stable codes of {@link SnapshotError}. */
export enum SnapshotErrorCode {
  /** The descriptor bytes are not a well-formed descriptor (or exceed a bound). */
  Invalid = 'SNAPSHOT_INVALID',
  /** The certificate does not carry a quorum of valid signatures by trusted keys. */
  Untrusted = 'SNAPSHOT_UNTRUSTED',
  /** Fetched data (or the table list) does not match the certified checkpoint. */
  Mismatch = 'SNAPSHOT_MISMATCH',
  /** This member does not serve that snapshot (no checkpoint, not its latest, journal mode). */
  Unavailable = 'SNAPSHOT_UNAVAILABLE',
  /** A chunk request for a file that is not part of the snapshot, or out of bounds. */
  BadRequest = 'SNAPSHOT_BAD_REQUEST',
  /** The install could not be carried out (I/O, the directory is in use); nothing was installed. */
  InstallFailed = 'SNAPSHOT_INSTALL_FAILED',
  /**
   * A joiner whose cluster file does not commit to the initial signer set (written before
   * `initialSignerSet` existed: {@link GuessedInitialSignerSet}) was sent a snapshot whose log
   * starts from another set than the one guessed. Nothing can be trusted until the operator fills
   * the field (`proofkv cluster initial-set`, docs/cluster.md § An old cluster file).
   */
  InitialSetUnknown = 'SNAPSHOT_INITIAL_SET_UNKNOWN',
  /**
   * The serving member did not tell its shape (a release from before shapes were told) and the
   * installing directory records none: the tables built after the install could not be the
   * cluster's (docs/engine.md § Shape options). Nothing was installed.
   */
  ShapeUnknown = 'SNAPSHOT_SHAPE_UNKNOWN',
}

export { GuessedInitialSignerSet, guessedInitialSignerSet } from './initial_set.js';

/** A snapshot refused or failed; `code` is stable. Nothing was installed. */
export class SnapshotError extends Error {
  constructor(
    readonly code: SnapshotErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SnapshotError';
  }
}

/** One table of a snapshot, as the checkpoint's record names it (`number`: its file `NNNNNN.sst` on the serving member). */
export interface SnapshotTable extends TableMeta {
  level: number;
}

/** What a snapshot descriptor says. */
export interface SnapshotDescriptor {
  /** Log index of the entry that asked for the checkpoint: the engine's recorded index after install. */
  index: number;
  /** The checkpoint and the certificate on the log head that ends with it. */
  checkpoint: Checkpoint;
  head: LogHead;
  signatures: HeadSignature[];
  /** The checkpoint's tables in read order (level 0 newest first, then each level by key). */
  tables: SnapshotTable[];
  /** The `CHECKPOINTS` prefix that ends with the checkpoint: record count and bytes. */
  log: { size: number; bytes: number };
  /** The replicated session table as of `index` (opaque). */
  sessions: Uint8Array;
  /** The cluster's member registry as of `index` (opaque; absent without a registry). */
  members?: Uint8Array;
  /**
   * The signer-set changes at checkpoints `0 .. checkpoint.index`, each proven against `head` —
   * what `GET /v1/checkpoints/set-changes?from=0&size=<head.size>` lists (docs/proofs.md §5.6).
   * A member that knows no voters yet walks them from the initial set, one that fell behind a
   * membership change from the set it knows ({@link SnapshotTrust}).
   * Absent for a v1 checkpoint (no committed signer set).
   */
  setChanges?: SetChange[];
}

/**
 * Which signers an installing member trusts:
 * - a set of keys and how many of them must have signed the snapshot's head (no committed set:
 *   a member without a registry, or one whose own key is all it has);
 * - `signerSet`: the signer set a member that knows its voters has at its applied index — when
 *   the snapshot's checkpoint commits to another set (the member fell behind a membership
 *   change), the descriptor's {@link SnapshotDescriptor.setChanges} are followed from the change
 *   that committed to this set to the snapshot's, and the head needs the quorum of the set reached;
 * - `initialSignerSet`: a member that joined and knows no voters yet trusts the hash of the
 *   cluster's initial signer set (`initialSignerSet` of `cluster.json`) and follows the changes
 *   from checkpoint 0.
 * See {@link snapshotPolicy}.
 */
export type SnapshotTrust = TrustPolicy | { signerSet: SignerSet } | { initialSignerSet: Uint8Array };

/** Reads `length` bytes at `offset` of snapshot file `name` (a shorter answer: end of file). */
export type FetchChunk = (name: string, offset: number, length: number) => Promise<Uint8Array>;

// ---- pure: codec and checks ------------------------------------------------------------------

const FORMAT = 1;

const tableSchema: Schema<SnapshotTable> = struct<SnapshotTable>({
  level: refine(uint, (l) => (l < NUM_LEVELS ? undefined : `level ${l} >= ${NUM_LEVELS}`)),
  number: refine(uint, (n) => (n > 0 ? undefined : 'table number 0')),
  size: uint,
  entryCount: uint,
  smallest: bytes({ min: 0, max: MAX_SNAPSHOT_KEY_BYTES }),
  largest: bytes({ min: 0, max: MAX_SNAPSHOT_KEY_BYTES }),
  root: hash,
});

const predecessorSchema: Schema<SetChangePredecessor> = struct<SetChangePredecessor>({
  checkpoint: checkpointSchema,
  inclusion: arrayOf(hash, MAX_PROOF_PATH),
  signers: optional(signerSetSchema),
});

const setChangeSchema: Schema<SetChange> = struct<SetChange>({
  checkpoint: checkpointSchema,
  head: logHeadSchema,
  signatures: arrayOf(headSignatureSchema, MAX_SIGNATURES),
  inclusion: arrayOf(hash, MAX_PROOF_PATH),
  signers: signerSetSchema,
  consistency: arrayOf(hash, MAX_PROOF_PATH),
  previous: optional(predecessorSchema),
});

const descriptorCodec = codec(
  struct<SnapshotDescriptor & { format: number }>({
    format: refine(uint, (f) => (f === FORMAT ? undefined : `format ${f}, want ${FORMAT}`)),
    index: uint,
    checkpoint: checkpointSchema,
    head: logHeadSchema,
    signatures: arrayOf(headSignatureSchema, MAX_SIGNATURES),
    tables: refine(arrayOf(tableSchema, MAX_SNAPSHOT_TABLES), (ts) => (new Set(ts.map((t) => t.number)).size === ts.length ? undefined : 'table numbers repeat')),
    log: struct<{ size: number; bytes: number }>({ size: uint, bytes: uint }),
    sessions: bytes({ min: 0, max: MAX_DESCRIPTOR_BYTES }),
    members: optional(bytes({ min: 0, max: MAX_DESCRIPTOR_BYTES })),
    setChanges: optional(arrayOf(setChangeSchema, MAX_SET_CHANGES)),
  }),
  MAX_DESCRIPTOR_BYTES,
);

/** Encodes a descriptor: canonical CBOR (a map with text keys, the checkpoint as in proofs). */
export function encodeSnapshotDescriptor(d: SnapshotDescriptor): Uint8Array {
  return descriptorCodec.encode({ ...d, format: FORMAT });
}

/**
 * Decodes descriptor bytes, bounded: at most {@link MAX_DESCRIPTOR_BYTES}, at most
 * {@link MAX_SNAPSHOT_TABLES} tables and `MAX_SIGNATURES` signatures, the canonical encoding only
 * (a linear pre-scan before anything is decoded), every field checked for type and range.
 * Throws `SNAPSHOT_INVALID`.
 */
export function decodeSnapshotDescriptor(bytes: Uint8Array): SnapshotDescriptor {
  try {
    const { format: _format, ...d } = descriptorCodec.decode(bytes);
    return d;
  } catch (err) {
    throw new SnapshotError(SnapshotErrorCode.Invalid, `snapshot descriptor: ${(err as Error).message}`, { cause: err });
  }
}

/** The descriptors the MasterRoot commits to, from a snapshot's table list (read order). */
function tableDescriptors(tables: readonly SnapshotTable[]): TableDescriptor[] {
  const positions = new Array<number>(NUM_LEVELS).fill(0);
  return tables.map((t) => ({
    level: t.level,
    position: positions[t.level]++,
    smallest: t.smallest,
    largest: t.largest,
    entryCount: t.entryCount,
    tableRoot: t.root,
  }));
}

/**
 * The keys and quorum the descriptor's head must be signed by under `trust`. Throws
 * `SNAPSHOT_UNTRUSTED`. Pure.
 *
 * - A set of keys: those.
 * - The initial signer set's hash (a joiner): the set in force at the snapshot's checkpoint,
 *   reached by following `d.setChanges` from it with `verifySetChanges` (the SDK's walk): the
 *   first listed change must be checkpoint 0 committing to that hash (the log's first set,
 *   certified by a quorum of itself), and every later change must be certified by a quorum of the
 *   set before it and of the new one, with nothing left out up to the snapshot's checkpoint.
 * - A known signer set (a member that knows its voters): when the snapshot's checkpoint commits
 *   to that set (or to none: v1), its keys and quorum, as before. Otherwise the member fell
 *   behind a membership change: the walk starts after the last listed change whose checkpoint
 *   commits to the known set (its inclusion in the snapshot's log proven) and follows every later
 *   change the same way to the snapshot's set, whose quorum is required. A descriptor that lists
 *   no change to the known set (none, or it was left out) is refused.
 *
 * So a certificate by a made-up set, or by members removed since (a minority of the set in
 * force), is refused however many keys the member knows.
 */
export function snapshotPolicy(d: SnapshotDescriptor, trust: SnapshotTrust): TrustPolicy {
  if ('initialSignerSet' in trust) return initialSetPolicy(d, trust.initialSignerSet);
  if ('signerSet' in trust) return knownSetPolicy(d, trust.signerSet);
  return { publicKeys: trust.publicKeys, quorum: trust.quorum };
}

const untrustedSets = (m: string) => new SnapshotError(SnapshotErrorCode.Untrusted, `snapshot signer sets: ${m}`);

/** Follows `changes` from `start` to the snapshot's checkpoint; the policy of the set reached. */
function walkSetChanges(d: SnapshotDescriptor, start: SetChainState, changes: readonly SetChange[]): TrustPolicy {
  const walk = verifySetChanges(start, changes, d.head, d.checkpoint);
  if (!walk.ok) throw untrustedSets(`${walk.reason}: ${walk.message}`);
  // The walk starts on a committed set: it ends on one.
  if (walk.setHash === undefined) throw untrustedSets('the walk did not follow a committed signer set');
  return walk.policy;
}

/** A joiner's policy: the walk from checkpoint 0, which must commit to `initial`. */
function initialSetPolicy(d: SnapshotDescriptor, initial: Uint8Array): TrustPolicy {
  const changes = d.setChanges ?? [];
  const first = changes[0];
  if (first === undefined) throw untrustedSets('the descriptor lists no signer-set changes to follow from the initial set');
  if (first.checkpoint.index !== 0 || first.checkpoint.signerSetHash === undefined || !equalBytes(first.checkpoint.signerSetHash, initial)) {
    if (initial instanceof GuessedInitialSignerSet) {
      throw new SnapshotError(SnapshotErrorCode.InitialSetUnknown,
        `this member's cluster.json has no initialSignerSet (it was written before that field existed), and the initial signer set guessed from the members it lists other than this one (${initial.memberIds.join(', ')}) is not the set the snapshot's checkpoint 0 commits to; ` +
        'fill the field from the cluster\'s verified checkpoint 0 with `proofkv cluster initial-set --dir <cluster directory> --endpoint <a running member\'s client URL>` and restart this member');
    }
    throw untrustedSets(`the first listed change (checkpoint ${first.checkpoint.index}) is not checkpoint 0 committing to the initial signer set ${toHex(initial).slice(0, 16)}… of the cluster file`);
  }
  const own = verifySignerSet(first.signers, initial);
  if (!own.ok) throw untrustedSets(`the initial signer set shown: ${own.reason}: ${own.message}`);
  // The snapshot is checkpoint 0 itself (a log compacted behind its first certified checkpoint):
  // the set in force is the initial one, just shown to hash to what checkpoint 0 commits to. The
  // walk below would mark checkpoint 0 as its top without following it, and so end on no set.
  if (d.checkpoint.index === 0) {
    if (changes.length !== 1) throw untrustedSets(`the snapshot is checkpoint 0, but ${changes.length} changes are listed`);
    if (d.checkpoint.signerSetHash === undefined || !equalBytes(d.checkpoint.signerSetHash, initial)) throw untrustedSets('the snapshot is checkpoint 0, but it does not commit to the initial signer set');
    return signerSetPolicy(first.signers);
  }
  return walkSetChanges(d, startSetChain(signerSetPolicy(first.signers), undefined, 0), changes);
}

/** The policy of a member that knows `known`: its own, or the walk from the change to it. */
function knownSetPolicy(d: SnapshotDescriptor, known: SignerSet): TrustPolicy {
  let hash: Uint8Array;
  try {
    hash = signerSetHash(known);
  } catch (err) {
    throw untrustedSets(`the known signer set is invalid: ${(err as Error).message}`);
  }
  const own = signerSetPolicy(known);
  const top = d.checkpoint.signerSetHash;
  if (top === undefined || equalBytes(top, hash)) return own;
  const changes = d.setChanges ?? [];
  let at = -1;
  for (let i = changes.length - 1; i >= 0 && at < 0; i--) {
    const h = changes[i].checkpoint?.signerSetHash;
    if (h !== undefined && equalBytes(h, hash)) at = i;
  }
  const from = changes[at];
  if (from === undefined) {
    throw untrustedSets(`checkpoint ${d.checkpoint.index} commits to another set than the known one (${toHex(hash).slice(0, 16)}…), and no listed change commits to the known set`);
  }
  // The starting change is in the snapshot's log: its checkpoint in its head, that head a prefix.
  const ext = verifyHeadExtends(from.head, d.head, from.consistency);
  const incl = ext.ok ? verifyCheckpointInclusion(from.checkpoint, from.inclusion, from.head) : ext;
  if (!incl.ok) throw untrustedSets(`the change to the known set (checkpoint ${from.checkpoint.index}): ${incl.reason}: ${incl.message}`);
  return walkSetChanges(d, startSetChain(own, hash, from.checkpoint.index + 1), changes.slice(at + 1));
}

/**
 * Checks what a descriptor claims before anything is fetched: the head ends with the checkpoint
 * (`head.size = index + 1 = log.size`), a quorum of trusted keys ({@link snapshotPolicy}) signed
 * the head, the table list is in read order and hashes to the certified MasterRoot. Throws
 * `SNAPSHOT_UNTRUSTED` or `SNAPSHOT_MISMATCH`. Pure.
 */
export function checkSnapshotDescriptor(d: SnapshotDescriptor, trust: SnapshotTrust): void {
  const mismatch = (m: string) => new SnapshotError(SnapshotErrorCode.Mismatch, `snapshot: ${m}`);
  if (d.head.size !== d.checkpoint.index + 1 || d.log.size !== d.head.size) {
    throw mismatch(`the head (size ${d.head.size}) and log (${d.log.size} records) do not end with checkpoint ${d.checkpoint.index}`);
  }
  const policy = snapshotPolicy(d, trust);
  const v = verifyCheckpoint(d.head, d.signatures, { publicKeys: policy.publicKeys, quorum: policy.quorum, allowUntrusted: true });
  if (!v.ok) throw new SnapshotError(SnapshotErrorCode.Untrusted, `snapshot certificate: ${v.reason}: ${v.message}`);
  for (let i = 1; i < d.tables.length; i++) {
    if (d.tables[i].level < d.tables[i - 1].level) throw mismatch('the table list is not in level order');
  }
  if (!equalBytes(computeMasterRoot(nodeHasher, tableDescriptors(d.tables)), d.checkpoint.masterRoot)) {
    throw mismatch('the table list does not hash to the certified MasterRoot');
  }
}

// ---- serving ---------------------------------------------------------------------------------

interface Served {
  /** Checkpoint index (log record) this entry describes. */
  checkpoint: number;
  /** Log index of the snapshot. */
  index: number;
  stored: StoredCheckpoint;
  /** Files of the snapshot and the bytes of each that belong to it. */
  files: Map<string, number>;
  logBytes: number;
  logSize: number;
}

/** Per database: the latest checkpoint's snapshot files (a few dozen bytes per table). */
const served = new WeakMap<ProofDB, Served>();

function unavailable(m: string, cause?: unknown): SnapshotError {
  return new SnapshotError(SnapshotErrorCode.Unavailable, m, { cause });
}

/**
 * The snapshot this member serves: its latest checkpoint, with the length of the `CHECKPOINTS`
 * prefix that ends with it (computed once per checkpoint by re-formatting the records read from
 * the file and comparing them with its bytes).
 */
function servedSnapshot(db: ProofDB): Served {
  let latest;
  try {
    latest = db.servedCheckpointRecord();
  } catch (err) {
    throw unavailable(`no snapshot: ${(err as Error).message}`, err);
  }
  if (!latest) throw unavailable('no snapshot: no checkpoint has been taken yet');
  const stored = latest;
  // The log up to and including the checkpoint (a newer, not yet served record is left out).
  const logSize = stored.checkpoint.index + 1;
  const cached = served.get(db);
  if (cached && cached.checkpoint === stored.checkpoint.index && cached.stored === stored) return cached;
  if (stored.appliedIndex === undefined) throw unavailable('no snapshot: the latest checkpoint has no log index (journal mode)');
  const file = path.join(db.location, CHECKPOINT_LOG_FILE);
  const bytes = fs.readFileSync(file);
  const records = readJournal(bytes, CHECKPOINT_LOG_FILE).records;
  // The records up to the served checkpoint's, and the cosign records that certified it (so the
  // installing member serves the same certificate); a newer checkpoint, intent or anything else
  // after them is left out.
  let end = -1;
  let seen = 0;
  for (let i = 0; i < records.length; i++) {
    const r = decodeRecord(records[i]);
    if (isCheckpointRecord(r)) {
      if (seen === logSize) break;
      seen++;
    } else if (seen < logSize || r.kind !== 'cosign' || r.size !== logSize) {
      if (seen === logSize) break;
    }
    end = i;
  }
  if (seen < logSize) throw unavailable('no snapshot: the latest checkpoint is still being written');
  const prefix = formatRecords(records.slice(0, end + 1));
  if (!equalBytes(prefix, bytes.subarray(0, prefix.length))) throw unavailable(`no snapshot: ${CHECKPOINT_LOG_FILE} is not laid out as its records`);
  const names = new Map<string, number>();
  for (const [, meta] of stored.tables) names.set(files.table(meta.number), meta.size);
  names.set(CHECKPOINT_LOG_FILE, prefix.length);
  const s: Served = { checkpoint: stored.checkpoint.index, index: stored.appliedIndex, stored, files: names, logBytes: prefix.length, logSize };
  served.set(db, s);
  return s;
}

/**
 * The descriptor of this member's latest checkpoint, with `sessions` (the session table exported
 * as of log index `index`, which must be the checkpoint's own log index: the installing member
 * replays the log from `index + 1`, so a session table from a later index would make it skip
 * entries). Throws `SNAPSHOT_UNAVAILABLE` before the first checkpoint, in journal mode, or when
 * `index` is not the checkpoint's.
 */
export function snapshotDescriptor(db: ProofDB, options: { index: number; sessions?: Uint8Array; members?: Uint8Array }): { index: number; data: Uint8Array } {
  const s = servedSnapshot(db);
  if (options.index !== s.index) {
    throw unavailable(`the session table is as of log index ${String(options.index)}, the latest checkpoint is at ${s.index}`);
  }
  const signed = db.checkpointAt(s.checkpoint);
  const head = db.logHead(s.logSize);
  // The signatures the node reports for its latest head when the log ends with the checkpoint
  // (co-signatures included), else the ones its record holds.
  const signatures = signed.head.size === head.size ? signed.signatures : s.stored.signatures;
  const d: SnapshotDescriptor = {
    index: s.index,
    checkpoint: s.stored.checkpoint,
    head,
    signatures,
    tables: s.stored.tables.map(([level, m]) => ({ level, number: m.number, size: m.size, entryCount: m.entryCount, smallest: m.smallest, largest: m.largest, root: m.root })),
    log: { size: s.logSize, bytes: s.logBytes },
    sessions: options.sessions ?? new Uint8Array(0),
  };
  if (options.members) d.members = options.members;
  // The signer-set changes up to the checkpoint, proven against its head, for a member that knows
  // no voters yet or fell behind a membership change (at most MAX_SET_CHANGES; with more, a
  // joiner refuses the snapshot, and so does a member whose known set's change is cut off).
  if (s.stored.checkpoint.signerSetHash !== undefined) d.setChanges = db.signerSetChanges(0, head.size, MAX_SET_CHANGES, MAX_DESCRIPTOR_BYTES / 2).changes;
  const data = encodeSnapshotDescriptor(d);
  if (data.length > MAX_DESCRIPTOR_BYTES) throw unavailable(`the descriptor is ${data.length} bytes, limit ${MAX_DESCRIPTOR_BYTES}`);
  return { index: s.index, data };
}

/**
 * Serves `length` (1 ≤ length ≤ 1 MiB) bytes at `offset` of snapshot file `name` of the snapshot
 * at log index `index` (the transport's `onSnapshotRead`). Only the files of this member's latest
 * checkpoint are served — its tables (pinned while it is the latest) and the `CHECKPOINTS` prefix
 * that ends with it — by exact name; anything else is `SNAPSHOT_BAD_REQUEST`, and an `index` that
 * is no longer the latest checkpoint's is `SNAPSHOT_UNAVAILABLE`. An answer shorter than `length`
 * means the end of the file.
 */
export async function readSnapshotChunk(db: ProofDB, index: number, name: string, offset: number, length: number): Promise<Uint8Array> {
  if (name === SHAPE_FILE) return shapeChunk(db, offset, length);
  const s = servedSnapshot(db);
  if (index !== s.index) throw unavailable(`snapshot ${String(index)} is not served: the latest checkpoint is at log index ${s.index}`);
  return readServedChunk(db, s, name, offset, length);
}

/** The snapshot a member serves: its log index and its files (name → bytes served). */
export interface ServedSnapshot {
  /** Log index of its checkpoint's entry. */
  readonly index: number;
  /** The files served, by exact name: its tables and the `CHECKPOINTS` prefix. */
  readonly files: ReadonlyMap<string, number>;
}

/**
 * The snapshot `db` serves now (its latest certified checkpoint); `SNAPSHOT_UNAVAILABLE` when
 * there is none (see {@link readSnapshotChunk}). With `ProofDB.holdServedCheckpoint` taken in the
 * same turn, {@link readServedChunk} can go on serving it after newer checkpoints.
 */
export function servedSnapshotOf(db: ProofDB): ServedSnapshot {
  return servedSnapshot(db);
}

/**
 * {@link readSnapshotChunk} of snapshot `s` ({@link servedSnapshotOf}), whether or not it is
 * still the latest: its tables must be held (`ProofDB.holdServedCheckpoint`) — a file no longer
 * there is `SNAPSHOT_UNAVAILABLE`. The `CHECKPOINTS` prefix is unchanged by later checkpoints (the
 * log is append-only); whatever is served, the installing member checks it against the
 * certified checkpoint.
 */
export async function readServedChunk(db: ProofDB, s: ServedSnapshot, name: string, offset: number, length: number): Promise<Uint8Array> {
  const index = s.index;
  const size = typeof name === 'string' ? s.files.get(name) : undefined;
  if (size === undefined) throw new SnapshotError(SnapshotErrorCode.BadRequest, `${JSON.stringify(String(name)).slice(0, 80)} is not a file of snapshot ${index}`);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1 || length > SNAPSHOT_CHUNK_BYTES) {
    throw new SnapshotError(SnapshotErrorCode.BadRequest, `chunk [${String(offset)}, +${String(length)}) out of bounds (length 1..${SNAPSHOT_CHUNK_BYTES})`);
  }
  const n = Math.max(0, Math.min(length, size - offset));
  const out = new Uint8Array(n);
  if (n === 0) return out;
  let fd: number;
  try {
    // Opened in the same turn as the check: a newer checkpoint cannot delete the table in between.
    fd = fs.openSync(path.join(db.location, name), 'r');
  } catch (err) {
    throw unavailable(`snapshot file ${name}: ${(err as Error).message}`, err);
  }
  try {
    let got = 0;
    while (got < n) {
      const r = fs.readSync(fd, out, got, n - got, offset + got);
      if (r === 0) throw unavailable(`snapshot file ${name} is shorter than ${size} bytes`);
      got += r;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/**
 * The {@link SHAPE_FILE} pseudo-file of any snapshot index: this member's recorded shape
 * (`src/replication/shape.ts`), served whether or not it has a checkpoint, so that a joining member
 * learns it before it opens its engine and an installing member records it with the tables.
 */
function shapeChunk(db: ProofDB, offset: number, length: number): Uint8Array {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1 || length > SNAPSHOT_CHUNK_BYTES) {
    throw new SnapshotError(SnapshotErrorCode.BadRequest, `chunk [${String(offset)}, +${String(length)}) out of bounds (length 1..${SNAPSHOT_CHUNK_BYTES})`);
  }
  return encodeShape(shapeOf(db.options)).slice(offset, offset + length);
}

// ---- installing ------------------------------------------------------------------------------

/** What {@link installSnapshot} installed. */
export interface InstalledSnapshot {
  /** The engine's log index now (replay the log from `index + 1`). */
  index: number;
  checkpoint: Checkpoint;
  head: LogHead;
  /** The session table bytes the snapshot carried (import them). */
  sessions: Uint8Array;
  /** The member registry bytes the snapshot carried, if any (import them). */
  members?: Uint8Array;
  /** Tables installed and their total bytes. */
  tables: number;
  bytes: number;
  /**
   * Of those, the tables not fetched: found already in the data directory (the member's own,
   * from before it fell behind) or kept from a failed attempt, each verified against the
   * certified descriptor before it was used; and their bytes.
   */
  reusedTables: number;
  reusedBytes: number;
  /**
   * The shape the staged manifest records: the serving member's when it told it (`'told'`), else
   * the installing directory's own (`'own'`: a serving member of a release from before shapes were
   * told). The engine reopens with it.
   */
  shape: Shape;
  shapeFrom: 'told' | 'own';
}

/** Options of {@link installSnapshot}. */
export interface InstallOptions {
  /**
   * Called once everything is fetched and verified, just before the engine's files are replaced:
   * close the engine here if it is open (the install takes the directory's lock).
   */
  beforeCommit?: () => Promise<void>;
  /** Most bytes fetched in all (declared file sizes are not certified). Default 2^40. */
  maxBytes?: number;
  /** Observes the steps of the commit (tests copy the directory there to simulate crashes). */
  onStep?: (step: InstallStep | 'fetched' | 'verified' | 'staged') => void;
}

/** Fetches `size` bytes of `name` in chunks into `to` (created), synced. */
async function fetchFile(fetchChunk: FetchChunk, name: string, size: number, to: string): Promise<void> {
  const fd = fs.openSync(to, 'wx', 0o600);
  try {
    let offset = 0;
    while (offset < size) {
      const want = Math.min(SNAPSHOT_CHUNK_BYTES, size - offset);
      const chunk = await fetchChunk(name, offset, want);
      if (!(chunk instanceof Uint8Array) || chunk.length > want) {
        throw new SnapshotError(SnapshotErrorCode.Mismatch, `snapshot file ${name}: a chunk at ${offset} is not ${want} bytes or fewer`);
      }
      if (chunk.length === 0) throw new SnapshotError(SnapshotErrorCode.Mismatch, `snapshot file ${name} ends at ${offset}, want ${size} bytes`);
      let w = 0;
      while (w < chunk.length) w += fs.writeSync(fd, chunk, w, chunk.length - w, offset + w);
      offset += chunk.length;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Why the file `file` is not the table `t` of a checked descriptor, or undefined when it is: its
 * size, and — opened and every block re-read and re-hashed (`TableReader.verify`) — its root,
 * entry count and smallest and largest keys. The descriptor's table list is checked against the
 * certified MasterRoot, so a table that passes holds the certified entries. Never throws (a
 * damaged or missing file is a reason).
 */
function notSnapshotTable(file: string, t: SnapshotTable): string | undefined {
  let r: TableReader | undefined;
  try {
    const size = fs.statSync(file).size;
    if (size !== t.size) return `${size} bytes, the certified table has ${t.size}`;
    r = TableReader.open(file, { fileNumber: t.number, fileName: files.table(t.number), hasher: nodeHasher });
    r.verify();
    const same = r.entryCount === t.entryCount && equalBytes(r.root, t.root) && equalBytes(r.smallest, t.smallest) && equalBytes(r.largest, t.largest);
    return same ? undefined : 'its root, entry count or key range differs from the certified table\'s';
  } catch (err) {
    return (err as Error).message;
  } finally {
    r?.close();
  }
}

/** Whether `file` is the table `t` ({@link notSnapshotTable} finds nothing wrong). */
const isSnapshotTable = (file: string, t: SnapshotTable): boolean => notSnapshotTable(file, t) === undefined;

/**
 * Puts table `t` into the staging folder without fetching it when a verified copy is at hand:
 * kept from a failed attempt in `<dataDir>/SNAPSHOT-FETCHED` (moved), or the member's own file of
 * that name in `dataDir` (hard-linked — table files are immutable once named — or copied and
 * synced where links fail). A candidate is used only if {@link isSnapshotTable} passes on it (an
 * own file once linked, so that what is checked is what is installed).
 * Returns whether the table is staged.
 */
function stageKnownTable(dataDir: string, t: SnapshotTable, to: string): boolean {
  const name = files.table(t.number);
  const kept = path.join(dataDir, SNAPSHOT_FETCHED_DIR, name);
  if (isSnapshotTable(kept, t)) {
    fs.renameSync(kept, to);
    return true;
  }
  const own = path.join(dataDir, name);
  try {
    if (fs.statSync(own).size !== t.size) return false;
    fs.linkSync(own, to);
  } catch {
    try {
      fs.copyFileSync(own, to, fs.constants.COPYFILE_EXCL);
      syncFile(to);
    } catch {
      fs.rmSync(to, { force: true });
      return false;
    }
  }
  // Checked through the staged name, once linked: what is checked is what gets installed, even
  // if a compaction deleted the own file and its number was reused meanwhile.
  if (isSnapshotTable(to, t)) return true;
  fs.rmSync(to, { force: true });
  return false;
}

/**
 * After a failed attempt: the staged tables that passed {@link notSnapshotTable} move to
 * `<dataDir>/SNAPSHOT-FETCHED`, beside what earlier attempts kept that this attempt did not reach;
 * anything there that the descriptor `d` does not name is removed, so the folder never holds more
 * than one snapshot's tables. The next attempt, usually of the same snapshot or a newer one
 * sharing most tables, fetches only the others. Best effort.
 */
function keepVerifiedTables(dataDir: string, staging: string, verified: readonly string[], d: SnapshotDescriptor): void {
  const kept = path.join(dataDir, SNAPSHOT_FETCHED_DIR);
  const named = new Set(d.tables.map((t) => files.table(t.number)));
  try {
    fs.mkdirSync(kept, { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(kept)) if (!named.has(name)) fs.rmSync(path.join(kept, name), { recursive: true, force: true });
    for (const name of verified) fs.renameSync(path.join(staging, name), path.join(kept, name));
    if (fs.readdirSync(kept).length === 0) fs.rmSync(kept, { recursive: true, force: true });
    else syncDir(kept);
  } catch {
    fs.rmSync(kept, { recursive: true, force: true });
  }
}

/**
 * Installs the snapshot `descriptorBytes` into the data directory `dataDir` (which must exist):
 *
 * 1. decode the descriptor (bounded); check its certificate against `trust` and its table list
 *    against the certified MasterRoot ({@link checkSnapshotDescriptor}) — before fetching;
 * 2. stage every table in `<dataDir>/SNAPSHOT-STAGING/`: one this directory already holds (its
 *    own file of that number, or one kept from a failed attempt) is used when it verifies
 *    against the descriptor ({@link isSnapshotTable}); every other table is fetched in ≤ 1 MiB
 *    chunks, synced, and verified the same way at once (a bad table stops the fetch there); then
 *    the `CHECKPOINTS` prefix is fetched;
 * 3. verify the staged files as a backup is verified (`verifyCheckpointFiles`: every table re-read
 *    and re-hashed, MasterRoot recomputed, log tree rebuilt) and compare them with the certified
 *    checkpoint and head and with the descriptor's table list;
 * 4. ask the serving member for its shape ({@link SHAPE_FILE}); write a manifest naming exactly
 *    those tables, at the checkpoint's seq, log index and compaction pointers, recording that
 *    shape — or, from a member of a release that does not tell it, the installing directory's
 *    own; with neither, `SNAPSHOT_SHAPE_UNKNOWN` — and `SNAPSHOT` (the descriptor);
 * 5. `beforeCommit` (close the engine), take the lock, and commit: the staged set replaces the
 *    engine's files in one crash-safe step (`src/db/snapshot_install.ts`).
 *
 * Any failure before the commit leaves the engine's files as they were and removes the staging
 * folder, keeping only its verified tables in `<dataDir>/SNAPSHOT-FETCHED/` for the next attempt
 * (removed by the next attempt, the next open, or a successful install); a crash leaves either
 * the old state or a committed install the next open finishes. `NODE_KEY` and the Raft log are
 * kept. Returns what was installed, session bytes included.
 */
export async function installSnapshot(dataDir: string, descriptorBytes: Uint8Array, fetchChunk: FetchChunk, trust: SnapshotTrust, options: InstallOptions = {}): Promise<InstalledSnapshot> {
  const d = decodeSnapshotDescriptor(descriptorBytes);
  checkSnapshotDescriptor(d, trust);
  const total = d.tables.reduce((a, t) => a + t.size, d.log.bytes);
  const maxBytes = options.maxBytes ?? 2 ** 40;
  if (total > maxBytes) throw new SnapshotError(SnapshotErrorCode.Invalid, `snapshot of ${total} bytes exceeds the limit of ${maxBytes}`);
  const staging = path.join(dataDir, SNAPSHOT_STAGING_DIR);
  let committed = false;
  let stagedShape: { shape: Shape; shapeFrom: 'told' | 'own' } | undefined;
  const verified: string[] = [];
  let reusedTables = 0;
  let reusedBytes = 0;
  try {
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { mode: 0o700 });
    for (const t of d.tables) {
      const name = files.table(t.number);
      const to = path.join(staging, name);
      if (stageKnownTable(dataDir, t, to)) {
        reusedTables++;
        reusedBytes += t.size;
      } else {
        await fetchFile(fetchChunk, name, t.size, to);
        const wrong = notSnapshotTable(to, t);
        if (wrong !== undefined) throw new SnapshotError(SnapshotErrorCode.Mismatch, `snapshot: the fetched table ${name} is not the certified one: ${wrong}`);
      }
      verified.push(name);
    }
    await fetchFile(fetchChunk, CHECKPOINT_LOG_FILE, d.log.bytes, path.join(staging, CHECKPOINT_LOG_FILE));
    options.onStep?.('fetched');
    const stored = verifyStaged(staging, d);
    options.onStep?.('verified');
    const { shape, from } = await installShape(dataDir, fetchChunk);
    stagedShape = { shape, shapeFrom: from };
    const vs = VersionSet.create(staging);
    // The shape the tables were built with, which the member builds with from now on (docs/engine.md
    // § Shape options): a manifest without one would open with the pre-issue-13 defaults.
    vs.shape = shape;
    vs.current = versionOfStored(stored);
    vs.nextTableNumber = Math.max(0, ...d.tables.map((t) => t.number)) + 1;
    vs.lastSeq = stored.checkpoint.seq;
    vs.flushedSeq = stored.checkpoint.seq;
    // The checkpoint's tables hold every write up to it: commit times resume from their largest,
    // as on the serving member (a later command with an earlier time gets that time).
    vs.lastTime = maxTimeOfTables(staging, stored);
    vs.appliedIndex = d.index;
    vs.checkpointIndex = d.index;
    for (const [level, key] of stored.compactPointers ?? []) vs.pointers.set(level, key);
    await vs.writeNewManifest();
    await vs.close();
    fs.writeFileSync(path.join(staging, SNAPSHOT_FILE), descriptorBytes, { mode: 0o600 });
    syncFile(path.join(staging, SNAPSHOT_FILE));
    sealStagedSnapshot(staging);
    options.onStep?.('staged');
    await options.beforeCommit?.();
    const lock = lockDir(dataDir);
    try {
      commitStagedSnapshot(dataDir, (step) => {
        if (step === 'committed') committed = true;
        options.onStep?.(step);
      });
    } finally {
      lock.release();
    }
  } catch (err) {
    if (!committed) {
      keepVerifiedTables(dataDir, staging, verified, d);
      fs.rmSync(staging, { recursive: true, force: true });
    }
    if (err instanceof SnapshotError) throw err;
    const code = err instanceof ProofKVError && err.code === ErrorCode.CORRUPTION ? SnapshotErrorCode.Mismatch : SnapshotErrorCode.InstallFailed;
    throw new SnapshotError(code, `installing snapshot ${d.index}${committed ? ' (committed: the next open finishes it)' : ''}: ${(err as Error).message}`, { cause: err });
  }
  fs.rmSync(path.join(dataDir, SNAPSHOT_FETCHED_DIR), { recursive: true, force: true });
  syncDir(dataDir);
  return {
    index: d.index,
    checkpoint: d.checkpoint,
    head: d.head,
    sessions: d.sessions,
    ...(d.members ? { members: d.members } : {}),
    tables: d.tables.length,
    bytes: total,
    reusedTables,
    reusedBytes,
    ...stagedShape!,
  };
}

/**
 * The shape an install records: the serving member's (asked through `fetchChunk` as
 * {@link SHAPE_FILE}), or — when it refuses the read, a release from before shapes were told — the
 * shape `dataDir` records. A malformed or out-of-bounds shape is `SNAPSHOT_INVALID`; a refusal with
 * no recorded shape `SNAPSHOT_SHAPE_UNKNOWN`; a failure to reach the member is rethrown.
 */
async function installShape(dataDir: string, fetchChunk: FetchChunk): Promise<{ shape: Shape; from: 'told' | 'own' }> {
  let told;
  try {
    told = await askShape((_id, name, offset, length) => fetchChunk(name, offset, length), 0);
  } catch (err) {
    throw new SnapshotError(SnapshotErrorCode.Invalid, `snapshot: ${(err as ShapeError).message}`, { cause: err });
  }
  if ('shape' in told) return { shape: told.shape, from: 'told' };
  if ('unreachable' in told) throw new SnapshotError(SnapshotErrorCode.Unavailable, `snapshot: the serving member's shape: ${told.unreachable}`);
  const own = VersionSet.recordedShape(dataDir);
  if (own === undefined) {
    throw new SnapshotError(SnapshotErrorCode.ShapeUnknown,
      `snapshot: the serving member did not tell its shape (${told.refused.slice(0, 160)}: a release from before shapes were told) and this data directory records none, ` +
      'so the tables it would build after the install could differ from the cluster\'s; install from an upgraded member, or copy a member\'s data directory');
  }
  return { shape: own, from: 'own' };
}

/**
 * Verifies the staged files against the descriptor: the backup's verification of the folder, then
 * the rebuilt head and checkpoint equal to the certified ones, the last record's table list equal
 * to the descriptor's and its log index equal to the descriptor's. Returns the last record.
 */
function verifyStaged(staging: string, d: SnapshotDescriptor): StoredCheckpoint {
  const mismatch = (m: string) => new SnapshotError(SnapshotErrorCode.Mismatch, `snapshot: ${m}`);
  const info = verifyCheckpointFiles(staging);
  if (info.head.size !== d.head.size || info.head.root !== toHex(d.head.root)) {
    throw mismatch(`the fetched checkpoint log has head (${info.head.size}, ${info.head.root.slice(0, 16)}), the certified head is (${d.head.size}, ${toHex(d.head.root).slice(0, 16)})`);
  }
  const records = readJournal(fs.readFileSync(path.join(staging, CHECKPOINT_LOG_FILE)), CHECKPOINT_LOG_FILE);
  const checkpoints = records.records.map(decodeRecord).filter(isCheckpointRecord);
  if (records.tornTail || checkpoints.length !== d.log.size) throw mismatch('the fetched checkpoint log is not exactly the certified records');
  const stored = checkpoints[checkpoints.length - 1];
  if (!equalBytes(checkpointBytes(stored.checkpoint), checkpointBytes(d.checkpoint))) throw mismatch('the fetched checkpoint log ends with another checkpoint');
  if (stored.appliedIndex !== d.index) throw mismatch(`the checkpoint's log index is ${String(stored.appliedIndex)}, the descriptor says ${d.index}`);
  const same =
    stored.tables.length === d.tables.length &&
    stored.tables.every(([level, m], i) => {
      const t = d.tables[i];
      return level === t.level && m.number === t.number && m.size === t.size && m.entryCount === t.entryCount && equalBytes(m.smallest, t.smallest) && equalBytes(m.largest, t.largest) && equalBytes(m.root, t.root);
    });
  if (!same) throw mismatch("the checkpoint's record names other tables than the descriptor");
  return stored;
}

/**
 * The descriptor of the last snapshot installed in `dataDir` (its `SNAPSHOT` file), or undefined:
 * after a crash right after an install, the caller imports its session table from here when its
 * own session state is older than the engine's log index.
 */
export function readInstalledSnapshot(dataDir: string): SnapshotDescriptor | undefined {
  const file = path.join(dataDir, SNAPSHOT_FILE);
  if (!fs.existsSync(file)) return undefined;
  return decodeSnapshotDescriptor(new Uint8Array(fs.readFileSync(file)));
}
