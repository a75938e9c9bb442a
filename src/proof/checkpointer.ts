/**
 * The node's side of checkpoints and proofs: computes the MasterRoot of the table set at a
 * checkpoint, appends the checkpoint to the persistent log, signs the new log head with the node
 * key, keeps that checkpoint's table set pinned, and builds get, history and scan proofs against it.
 *
 * Proofs are served against the latest checkpoint (its tables stay on disk until the next one,
 * across restarts). An older checkpoint can still be checked for inclusion and consistency, but
 * its tables may be gone, so reads against it are refused with `CHECKPOINT_UNAVAILABLE`.
 * @module
 */
import { checkpointLeafHash, signHead, type Checkpoint, type HeadSignature, type KeyPair, type LogHead } from '../../proofs/checkpoint.js';
import { HASH_LEN, Kind } from '../../proofs/hash.js';
import { masterRootOf, type TableDescriptor } from '../../proofs/lsm.js';
import type { CheckpointCertificate, GetProof, HistoryProof } from '../../proofs/lsm_proof.js';
import type { ScanProof } from '../../proofs/lsm_scan.js';
import { ErrorCode, InvalidArgumentError, ProofKVError } from '../errors.js';
import { MAX_VERSION, type Entry } from '../keys.js';
import { nodeHasher } from '../table/node_hasher.js';
import type { DBCore } from '../db/core.js';
import type { Version } from '../version/version.js';
import { CheckpointLog, versionOfStored, type StoredCheckpoint } from './checkpoint_log.js';
import { openNodeKey, type KeyRotation } from './node_key.js';
import { MerkleLevels } from './merkle_levels.js';
import { buildProof, buildScanProof, ProofBlockCache, ProofContext } from './prover.js';
import { ByteLru } from '../util/byte_lru.js';
import { signerSetHash, singleSignerSet, type SignerSet } from '../../proofs/signer_set.js';

/** A signed checkpoint as the node publishes it. */
export interface SignedCheckpoint {
  checkpoint: Checkpoint;
  /** The log head that ends with this checkpoint. */
  head: LogHead;
  signatures: HeadSignature[];
  /** The signer set the checkpoint commits to (v2); absent for a v1 checkpoint. */
  signers?: SignerSet;
}

/** What a v2 checkpoint records besides the table set (docs/proofs.md §5.1). */
export interface CheckpointStamp {
  /**
   * Time in ms since the epoch, from the log entry that asks for the checkpoint. Default: the
   * clock in local mode, the previous checkpoint's time (0 for the first) in external-log mode.
   * Raised to the previous checkpoint's time when lower, so times never decrease along the log.
   */
  time?: number;
  /** The signer set that certifies the new head; default this node alone (`{ quorum: 1, members: [{ id: 1, publicKey } ] }`). */
  signers?: SignerSet;
}

/** Checkpoint log, node key and proof building for one database. */
export class Checkpointer {
  private pinned: { stored: StoredCheckpoint; version: Version; ctx: ProofContext } | null = null;
  /** Block trees of tables, by table number, bounded by bytes (`blockTreeCacheBytes`). */
  readonly blockTrees: ByteLru<number, MerkleLevels>;
  /** Decoded proof blocks, bounded by bytes (`proofBlockCacheBytes`). */
  readonly blockCache: ProofBlockCache;

  private constructor(
    private readonly core: DBCore,
    readonly key: KeyPair,
    readonly log: CheckpointLog,
    /** The node's key rotations, oldest first (see `node_key.ts`). */
    readonly rotations: KeyRotation[],
    /** The rotation this open made, if any. */
    readonly rotated: KeyRotation | undefined,
  ) {
    this.blockTrees = new ByteLru(core.opts.blockTreeCacheBytes);
    this.blockCache = new ProofBlockCache(core.opts.proofBlockCacheBytes);
  }

  /**
   * Loads the checkpoint log and the node key (refusing a missing key beside a non-empty log
   * unless `rotateKey`); pins the latest checkpoint's tables.
   */
  static open(core: DBCore, rotateKey = false): Checkpointer {
    const log = CheckpointLog.open(core.dir);
    let ks;
    try {
      ks = openNodeKey(core.dir, { logSize: log.size, lastSigner: log.latest()?.signatures[0]?.publicKey }, rotateKey);
    } catch (err) {
      void log.close().catch(() => undefined);
      throw err;
    }
    const c = new Checkpointer(core, ks.key, log, ks.rotations, ks.rotated);
    const latest = c.log.latest();
    if (latest) c.pin(latest, versionOfStored(latest));
    return c;
  }

  /** Table numbers the latest checkpoint needs (kept on disk across restarts). */
  pinnedTables(): Set<number> {
    return this.pinned ? this.pinned.version.tableNumbers() : new Set();
  }

  private pin(stored: StoredCheckpoint, version: Version): void {
    const old = this.pinned;
    this.core.refVersion(version);
    this.pinned = { stored, version, ctx: new ProofContext(version, nodeHasher, this.core.tables, this.blockTrees, this.blockCache) };
    if (old) this.core.unrefVersion(old.version);
  }

  /**
   * Records a checkpoint of the current table set at `seq`: MasterRoot, log append (synced),
   * signature on the new head. Call only when the memtable is empty (everything up to `seq` is in
   * tables). `appliedIndex` (external-log mode) is stored with it: the log entry that asked for it.
   */
  async checkpoint(seq: number, appliedIndex?: number, stamp: CheckpointStamp = {}): Promise<SignedCheckpoint> {
    const version = this.core.vs.current;
    const ctx = new ProofContext(version, nodeHasher, this.core.tables, this.blockTrees, this.blockCache);
    const masterRoot = masterRootOf(nodeHasher, ctx.counts, ctx.master ? ctx.master.root() : new Uint8Array(HASH_LEN));
    const link = this.log.nextLink();
    const prevTime = this.log.latest()?.checkpoint.time ?? 0;
    const time = Math.max(stamp.time ?? (appliedIndex === undefined ? Date.now() : prevTime), prevTime);
    const signers = stamp.signers ?? singleSignerSet(this.key.publicKey);
    const checkpoint: Checkpoint = { index: link.index, seq, masterRoot, time, signerSetHash: signerSetHash(signers, nodeHasher) };
    if (link.prevCheckpointHash) checkpoint.prevCheckpointHash = link.prevCheckpointHash;
    const size = link.index + 1;
    // The head after appending: computed before the append so the signature goes in the record.
    this.log.tree.append(checkpointLeafHash(checkpoint, nodeHasher));
    const head: LogHead = { size, root: this.log.tree.root(size) };
    this.log.tree.truncate(size - 1);
    const signatures = [signHead(this.key.privateKey, head)];
    const stored: StoredCheckpoint = {
      checkpoint,
      signatures,
      tables: version.placed().map((p) => [p.level, p.meta]),
      signers,
    };
    if (appliedIndex !== undefined) stored.appliedIndex = appliedIndex;
    await this.log.append(stored);
    this.pin(stored, version);
    return { checkpoint, head, signatures, signers };
  }

  /** The latest checkpoint, signed. */
  latest(): SignedCheckpoint {
    const s = this.log.latest();
    if (!s) throw new ProofKVError(ErrorCode.CHECKPOINT_UNAVAILABLE, 'no checkpoint has been taken yet');
    return withSigners({ checkpoint: s.checkpoint, head: this.log.head(), signatures: s.signatures }, s.signers);
  }

  /**
   * Checkpoint `index` with its inclusion in the latest head (`signers`: the latest head's set);
   * when checkpoint `index` changed the signer set, also its own certificate (`setChange`: the
   * head of size `index + 1`, its stored signatures, the inclusion there and the new set).
   */
  at(index: number): SignedCheckpoint & { inclusion: Uint8Array[]; setChange?: CheckpointCertificate } {
    const latest = this.latest();
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.log.size) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `checkpoint ${String(index)} does not exist (log size ${this.log.size})`);
    }
    const checkpoint = this.log.at(index)!;
    const out: SignedCheckpoint & { inclusion: Uint8Array[]; setChange?: CheckpointCertificate } = { ...latest, checkpoint, inclusion: this.log.tree.inclusionProof(index, this.log.size) };
    const change = this.log.setChangeAt(index);
    if (change) {
      out.setChange = { checkpoint, head: this.headAt(index + 1), signatures: change.signatures, inclusion: this.log.tree.inclusionProof(index, index + 1), signers: change.signers };
    }
    return out;
  }

  /** The log head of size `size` (1 <= size <= log size): every head this node's log passed through. */
  headAt(size: number): LogHead {
    if (!Number.isSafeInteger(size) || size < 1 || size > this.log.size) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `log size ${String(size)} does not exist (log size ${this.log.size})`);
    }
    return { size, root: this.log.tree.root(size) };
  }

  /**
   * The latest checkpoint's table set as descriptors in read order (what its MasterRoot commits
   * to), with the checkpoint, the head it ends and its inclusion path there: what an auditing
   * witness checks.
   */
  latestTables(): { checkpoint: Checkpoint; head: LogHead; inclusion: Uint8Array[]; descriptors: TableDescriptor[] } {
    const s = this.log.latest();
    if (!s) throw new ProofKVError(ErrorCode.CHECKPOINT_UNAVAILABLE, 'no checkpoint has been taken yet');
    const size = s.checkpoint.index + 1;
    const positions = new Array<number>(8).fill(0);
    const descriptors = s.tables.map(([level, m]) => ({
      level,
      position: positions[level]++,
      smallest: m.smallest,
      largest: m.largest,
      entryCount: m.entryCount,
      tableRoot: m.root,
    }));
    return { checkpoint: s.checkpoint, head: this.headAt(size), inclusion: this.log.tree.inclusionProof(s.checkpoint.index, size), descriptors };
  }

  /** RFC 9162 consistency proof between two head sizes. */
  consistency(fromSize: number, toSize: number): Uint8Array[] {
    const ok = (n: number) => Number.isSafeInteger(n) && n >= 1 && n <= this.log.size;
    if (!ok(fromSize) || !ok(toSize) || fromSize > toSize) {
      throw new InvalidArgumentError(
        ErrorCode.INVALID_ARGUMENT,
        `consistency needs 1 <= from <= to <= ${this.log.size}, got ${String(fromSize)}, ${String(toSize)}`,
      );
    }
    return this.log.tree.consistencyProof(fromSize, toSize);
  }

  private certificate(index?: number): { cert: CheckpointCertificate; ctx: ProofContext } {
    const latest = this.latest();
    const pinned = this.pinned;
    const want = index ?? latest.checkpoint.index;
    if (!pinned || pinned.stored.checkpoint.index !== want) {
      if (!Number.isSafeInteger(want) || want < 0 || want >= this.log.size) {
        throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `checkpoint ${String(want)} does not exist`);
      }
      throw new ProofKVError(
        ErrorCode.CHECKPOINT_UNAVAILABLE,
        `proofs are served against the latest checkpoint (${latest.checkpoint.index}); checkpoint ${want}'s tables are no longer kept`,
      );
    }
    return {
      cert: withSigners(
        {
          checkpoint: pinned.stored.checkpoint,
          head: latest.head,
          signatures: latest.signatures,
          inclusion: this.log.tree.inclusionProof(want, this.log.size),
        },
        pinned.stored.signers,
      ),
      ctx: pinned.ctx,
    };
  }

  /** A get proof for `key` at or below `version`, at the latest (or the given) checkpoint; `edges`: with edge windows. */
  getProof(key: Uint8Array, version = MAX_VERSION, checkpoint?: number, edges = false): { proof: GetProof; entry?: Entry } {
    const { cert, ctx } = this.certificate(checkpoint);
    const built = buildProof(ctx, key, { kind: 'get', version }, { edges });
    const entry = built.entries[0];
    const proof: GetProof = { certificate: cert, body: built.body };
    if (entry && entry.kind === 1) proof.value = entry.value;
    return { proof, entry };
  }

  /** A history proof for `key` in [min, max], cut after `limit` entries (oldest first). */
  historyProof(key: Uint8Array, min: number, max: number, limit?: number, checkpoint?: number, edges = false): { proof: HistoryProof; entries: Entry[] } {
    const { cert, ctx } = this.certificate(checkpoint);
    let built = buildProof(ctx, key, { kind: 'history', min, bound: max }, { edges });
    let entries = built.entries.slice().sort((a, b) => a.version - b.version);
    let bound = max;
    if (limit !== undefined && entries.length > limit) {
      bound = entries[limit - 1].version;
      built = buildProof(ctx, key, { kind: 'history', min, bound }, { edges });
      entries = built.entries.slice().sort((a, b) => a.version - b.version);
    }
    return {
      proof: { certificate: cert, body: built.body, bound, values: entries.map((e) => e.value) },
      entries,
    };
  }

  /**
   * A scan proof for [start, end) covering at most `limit` keys (docs/proofs.md §8.9.1): the newest
   * entry of each covered key (tombstones too, in key order) and the proof; values are sent for the
   * put entries only, or for every entry with `includeTombstones`.
   */
  scanProof(start: Uint8Array, end: Uint8Array | undefined, limit: number | undefined, includeTombstones: boolean, checkpoint?: number, edges = false): { proof: ScanProof; entries: Entry[] } {
    const { cert, ctx } = this.certificate(checkpoint);
    const built = buildScanProof(ctx, start, end, limit, { edges });
    const returned = includeTombstones ? built.entries : built.entries.filter((e) => e.kind === Kind.PUT);
    const proof: ScanProof = { certificate: cert, body: built.body, values: returned.map((e) => e.value) };
    if (built.bound) proof.bound = built.bound;
    return { proof, entries: built.entries };
  }

  /** Closes the log. The pinned tables stay on disk: the next open pins them again. */
  async close(): Promise<void> {
    this.pinned = null;
    await this.log.close();
  }
}

/** `o` with `signers` set when there is a set (v2), so a v1 answer carries no `signers` field. */
function withSigners<T extends object>(o: T, signers: SignerSet | undefined): T & { signers?: SignerSet } {
  return signers ? { ...o, signers } : o;
}
