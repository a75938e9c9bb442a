/**
 * The node's side of checkpoints and proofs: computes the MasterRoot of the table set at a
 * checkpoint, appends the checkpoint to the persistent log, signs the new log head with the node
 * key, collects the co-signatures of the other members (src/replication/cosign.ts), keeps the
 * table sets of the latest certified and the latest pending checkpoint pinned, and builds get,
 * history and scan proofs against the certified one.
 *
 * **Pending and certified.** A checkpoint is *pending* until signatures of a quorum of its signer
 * set and of the previous checkpoint's set are collected (one-member set: at once, by this
 * node's own signature); then it is *certified*. Everything served — the latest checkpoint, its
 * certificate, inclusion and consistency proofs, past heads, proofs — is served against the
 * latest certified checkpoint; a pending one is invisible. An older checkpoint can still be
 * checked for inclusion and consistency, but its tables may be gone, so reads against it are
 * refused with `CHECKPOINT_UNAVAILABLE`.
 *
 * **Divergence.** When a quorum signs a root that differs from this node's root at the same size,
 * the node records it (a `CHECKPOINTS` record), signs nothing more and serves no proofs
 * (`DIVERGED`) until an operator replaces its data (docs/replication.md § Co-signing).
 * @module
 */
import { checkpointLeafHash, type Checkpoint, type HeadSignature, type KeyPair, type LogHead } from '../../proofs/checkpoint.js';
import { equalBytes, toHex } from '../../proofs/bytes.js';
import { HASH_LEN, Kind } from '../../proofs/hash.js';
import { masterRootOf, type TableDescriptor } from '../../proofs/lsm.js';
import type { CheckpointCertificate, GetProof, HistoryProof } from '../../proofs/lsm_proof.js';
import type { ScanProof } from '../../proofs/lsm_scan.js';
import { ErrorCode, InvalidArgumentError, ProofKVError } from '../errors.js';
import { MAX_VERSION, type Entry } from '../keys.js';
import { nodeHasher } from '../table/node_hasher.js';
import type { DBCore } from '../db/core.js';
import type { Version } from '../version/version.js';
import {
  CheckpointLog,
  encodeCosignRecord,
  encodeDivergenceRecord,
  encodeIntentRecord,
  isCheckpointRecord,
  versionOfStored,
  type CheckpointIntent,
  type CheckpointLogAmendment,
  type SetChangeCertificate,
  type StoredCheckpoint,
} from './checkpoint_log.js';
import { openNodeKey, type KeyRotation } from './node_key.js';
import { MerkleLevels } from './merkle_levels.js';
import { buildProof, buildScanProof, ProofBlockCache, ProofContext } from './prover.js';
import { ByteLru } from '../util/byte_lru.js';
import {
  checkSignerSet,
  CosignTally,
  HeadCosigns,
  meetsQuorums,
  newCosignCounters,
  sameSignerSet,
  soloSignerSet,
  type CosignCommand,
  type CosignCounters,
  type CosignLogView,
  type CosignVerdict,
  type Divergence,
  type MemberSignature,
} from '../replication/cosign.js';
import { signHeadNative } from './ed25519_node.js';
import { signerSetHash, type SignerSet } from '../../proofs/signer_set.js';
import type { SetChange } from '../../proofs/set_changes.js';

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

/** What taking a checkpoint did (see `Checkpointer.checkpoint`). */
export interface TakenCheckpoint extends SignedCheckpoint {
  /** The checkpoint's time (ms): the command's, never below the previous checkpoint's. */
  time: number;
  /** The members that certify it. */
  signers: SignerSet;
  /** True when this node's own signature certified it at once (one-member set). */
  certified: boolean;
  /**
   * This node's signature on the new head, to put in the replicated log; absent when the node is
   * not in the signer set, is diverged, or certified the head alone.
   */
  cosign?: CosignCommand;
}

/** What applying a cosign command did (see `Checkpointer.cosign`). */
export interface CosignResult {
  verdict: CosignVerdict;
  /** Set when this command certified this node's latest head. */
  certified?: SignedCheckpoint;
  /** Set when this command made the node diverge. */
  divergence?: Divergence;
}

/** Options of `Checkpointer.checkpoint`. */
export interface CheckpointMeta {
  /** From the log command (ms since the epoch); default the previous checkpoint's time. */
  time?: number;
  /** The members at apply; default this node alone (quorum 1). */
  signers?: SignerSet;
}

/** A checkpoint's table set, pinned for proofs. */
interface Pinned {
  stored: StoredCheckpoint;
  version: Version;
  ctx: ProofContext;
}

/** The pending/certified state, rebuilt from the log's records at open and advanced live. */
class Certification {
  /** The latest certified checkpoint and its certificate (signatures in log order). */
  certified: { stored: StoredCheckpoint; signatures: MemberSignature[] } | undefined;
  /** The latest checkpoint while it is not certified. */
  pending: { stored: StoredCheckpoint; cosigns: HeadCosigns } | undefined;
  divergence: Divergence | undefined;
  /** The latest checkpoint intent (external-log mode). */
  intent: CheckpointIntent | undefined;

  /** A checkpoint was appended to `log` (it is its latest). */
  onCheckpoint(stored: StoredCheckpoint, log: CheckpointLog): void {
    const size = stored.checkpoint.index + 1;
    const { set, prev } = signersAt(log, size);
    const head = { size, root: log.tree.root(size) };
    if (!stored.signers) {
      // Legacy record (one node, before co-signing): its signatures are its certificate.
      this.certified = { stored, signatures: stored.signatures.map((g) => ({ id: set.members[0].id, publicKey: g.publicKey, signature: g.signature })) };
      this.pending = undefined;
      return;
    }
    const own = ownSignatures(stored.signatures, set, prev);
    if (meetsQuorums(set, prev, own)) {
      this.certified = { stored, signatures: own };
      this.pending = undefined;
    } else this.pending = { stored, cosigns: new HeadCosigns(head, set, prev) };
  }

  /** An accepted signature on the head of `size`; true when it certified the pending checkpoint. */
  onSignature(size: number, sig: MemberSignature): boolean {
    const p = this.pending;
    if (!p || p.cosigns.head.size !== size || !p.cosigns.add(sig)) return false;
    if (!p.cosigns.certified()) return false;
    this.certified = { stored: p.stored, signatures: p.cosigns.signatures.slice() };
    this.pending = undefined;
    return true;
  }

  replay(rec: StoredCheckpoint | CheckpointLogAmendment, log: CheckpointLog): void {
    if (isCheckpointRecord(rec)) this.onCheckpoint(rec, log);
    else if (rec.kind === 'cosign') this.onSignature(rec.size, rec.signature);
    else if (rec.kind === 'intent') this.intent = { logIndex: rec.logIndex, time: rec.time, signers: rec.signers };
    else this.divergence ??= rec.divergence;
  }
}

/**
 * The signer set of the checkpoint ending the head of `size` and the previous checkpoint's set (a
 * legacy record's set is its first signer alone). The previous set is not asked for when both are
 * one-member sets: one node alone is the whole trust, and a change of its key is approved by its
 * key-rotation record (`node_key.ts`), not by a signature of the old key.
 */
function signersAt(log: CheckpointLog, size: number): { set: SignerSet; prev?: SignerSet } {
  const set = log.signersOf(size - 1)!;
  if (size === 1) return { set };
  const prev = log.signersOf(size - 2)!;
  return set.members.length === 1 && prev.members.length === 1 ? { set } : { set, prev };
}

/** The signatures of a set-change certificate that cosign entries brought (what every replica holds). */
function loggedSignatures(change: SetChangeCertificate): HeadSignature[] {
  return change.signatures.filter((g) => change.logged.has(toHex(g.publicKey)));
}

/** `sigs` (a record's own signature) with the ids their keys have in `set` or `prev`. */
function ownSignatures(sigs: HeadSignature[], set: SignerSet, prev: SignerSet | undefined): MemberSignature[] {
  const out: MemberSignature[] = [];
  for (const g of sigs) {
    const m = set.members.find((x) => equalBytes(x.publicKey, g.publicKey)) ?? prev?.members.find((x) => equalBytes(x.publicKey, g.publicKey));
    if (m) out.push({ id: m.id, publicKey: g.publicKey, signature: g.signature });
  }
  return out;
}

/** Checkpoint log, node key, co-signing and proof building for one database. */
export class Checkpointer {
  /** Pinned table sets by checkpoint index: the certified checkpoint's and the pending one's. */
  private readonly pins = new Map<number, Pinned>();
  /** The last inclusion path a proof asked for ({@link proofInclusion}). */
  private lastInclusion: { index: number; size: number; root: Uint8Array; path: Uint8Array[] } | undefined;
  private readonly tally = new CosignTally();
  /** Verdicts of every cosign command applied since open. */
  readonly cosignCounters: CosignCounters = newCosignCounters();
  /** Block trees of tables, by table number, bounded by bytes (`blockTreeCacheBytes`). */
  readonly blockTrees: ByteLru<number, MerkleLevels>;
  /** Decoded proof blocks, bounded by bytes (`proofBlockCacheBytes`). */
  readonly blockCache: ProofBlockCache;

  private constructor(
    private readonly core: DBCore,
    readonly key: KeyPair,
    readonly log: CheckpointLog,
    private readonly state: Certification,
    /** The node's key rotations, oldest first (see `node_key.ts`). */
    readonly rotations: KeyRotation[],
    /** The rotation this open made, if any. */
    readonly rotated: KeyRotation | undefined,
  ) {
    this.blockTrees = new ByteLru(core.opts.blockTreeCacheBytes);
    this.blockCache = new ProofBlockCache(core.opts.proofBlockCacheBytes);
  }

  /**
   * Loads the checkpoint log (with its certificates and divergence) and the node key (refusing a
   * missing key beside a non-empty log unless `rotateKey`); pins the certified and the pending
   * checkpoint's tables.
   */
  static open(core: DBCore, rotateKey = false): Checkpointer {
    const state = new Certification();
    const log = CheckpointLog.open(core.dir, (rec, l) => state.replay(rec, l));
    let ks;
    try {
      const lastSigner = log.latest()?.signatures[0]?.publicKey ?? state.certified?.stored.signatures[0]?.publicKey;
      ks = openNodeKey(core.dir, { logSize: log.size, lastSigner }, rotateKey);
    } catch (err) {
      void log.close().catch(() => undefined);
      throw err;
    }
    const c = new Checkpointer(core, ks.key, log, state, ks.rotations, ks.rotated);
    c.repin();
    return c;
  }

  /** Table numbers the certified and the pending checkpoint need (kept on disk across restarts). */
  pinnedTables(): Set<number> {
    const out = new Set<number>();
    for (const p of this.pins.values()) for (const n of p.version.tableNumbers()) out.add(n);
    return out;
  }

  /** Pins exactly the certified and the pending checkpoint (`fresh`: the version just taken). */
  private repin(fresh?: { stored: StoredCheckpoint; version: Version }): void {
    const want = [this.state.certified?.stored, this.state.pending?.stored].filter((x): x is StoredCheckpoint => x !== undefined);
    const keep = new Set(want.map((x) => x.checkpoint.index));
    for (const stored of want) {
      const i = stored.checkpoint.index;
      if (this.pins.has(i)) continue;
      const version = fresh && fresh.stored === stored ? fresh.version : versionOfStored(stored);
      this.core.refVersion(version);
      this.pins.set(i, { stored, version, ctx: new ProofContext(version, nodeHasher, this.core.tables, this.blockTrees, this.blockCache) });
    }
    for (const [i, p] of this.pins) {
      if (keep.has(i)) continue;
      this.pins.delete(i);
      this.core.unrefVersion(p.version);
    }
  }

  /** The divergence this node is in, or undefined. */
  divergence(): Divergence | undefined {
    return this.state.divergence;
  }

  /**
   * Makes every checkpoint-log record appended so far durable (external-log mode defers their
   * syncs to this; `CheckpointLog.sync`). The engine awaits it before every manifest edit that
   * raises its recorded log index.
   */
  syncLog(): Promise<void> {
    return this.log.sync();
  }

  /** Whether the checkpoint log defers its syncs to {@link syncLog} (`CheckpointLog.setDeferSyncs`). */
  deferLogSyncs(on: boolean): Promise<void> {
    return this.log.setDeferSyncs(on);
  }

  /** After a failed checkpoint-log append: makes the log writable again, or throws while it is not (`CheckpointLog.repair`). */
  repairLog(): Promise<void> {
    return this.log.repair();
  }

  /**
   * Keeps the tables of the latest certified checkpoint on disk until the returned function is
   * called (once; later calls do nothing), even after newer checkpoints replace it: a member
   * serving that checkpoint as a replication snapshot holds it while another member fetches it.
   * Undefined before the first certified checkpoint.
   */
  holdCertifiedTables(): { checkpoint: StoredCheckpoint; release: () => void } | undefined {
    const stored = this.state.certified?.stored;
    const pin = stored && this.pins.get(stored.checkpoint.index);
    if (!stored || !pin) return undefined;
    const { version } = pin;
    this.core.refVersion(version);
    let held = true;
    return {
      checkpoint: stored,
      release: () => {
        if (!held) return;
        held = false;
        this.core.unrefVersion(version);
      },
    };
  }

  /** The record of the latest certified checkpoint (the one served), if any. */
  certifiedRecord(): StoredCheckpoint | undefined {
    return this.state.certified?.stored;
  }

  /** The log size of the latest certified checkpoint (0 before the first) and of the latest checkpoint. */
  sizes(): { certified: number; latest: number } {
    const c = this.state.certified;
    return { certified: c ? c.stored.checkpoint.index + 1 : 0, latest: this.log.size };
  }

  /**
   * The time and signer set a checkpoint of log entry `logIndex` will record (`meta` resolved
   * against the previous checkpoint), and — external-log mode, before the checkpoint's last
   * install — persisted as an intent record, so that {@link intentFor} gives them back if the
   * checkpoint has to be finished at the next open.
   */
  async intend(logIndex: number, meta: CheckpointMeta): Promise<Required<CheckpointMeta>> {
    const resolved = this.resolveMeta(meta);
    const intent = { logIndex, ...resolved };
    const had = this.state.intent;
    // Re-applied after a crash between the intent and the install: the record is already there.
    if (had && had.logIndex === logIndex && had.time === intent.time && sameSignerSet(had.signers, intent.signers)) return resolved;
    await this.log.appendAmendment(encodeIntentRecord(intent));
    this.state.intent = intent;
    return resolved;
  }

  /** The recorded intent of the checkpoint of log entry `logIndex`, if any (see {@link intend}). */
  intentFor(logIndex: number): CheckpointMeta | undefined {
    const i = this.state.intent;
    return i && i.logIndex === logIndex ? { time: i.time, signers: i.signers } : undefined;
  }

  /** `local`: journal mode, where a checkpoint without a time takes the clock's (never below the previous). */
  private resolveMeta(meta: CheckpointMeta, local = false): Required<CheckpointMeta> {
    const signers = meta.signers ?? soloSignerSet(this.key.publicKey);
    const bad = checkSignerSet(signers);
    if (bad) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, bad);
    if (meta.time !== undefined && (!Number.isSafeInteger(meta.time) || meta.time < 0)) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `checkpoint time ${String(meta.time)} is not a non-negative integer (ms)`);
    }
    const prevTime = this.log.latest()?.time ?? 0;
    return { time: Math.max(meta.time ?? (local ? Date.now() : prevTime), prevTime), signers };
  }

  /**
   * This node's cosign command for its latest head when that head is pending, this node signed
   * it and its signature is not among those collected: what to propose again after a restart
   * (a checkpoint finished at open, or a proposal lost with the process).
   */
  ownCosign(): CosignCommand | undefined {
    const p = this.state.pending;
    if (!p || this.state.divergence) return undefined;
    const own = ownSignatures(p.stored.signatures, p.cosigns.set, p.cosigns.prev).find((g) => equalBytes(g.publicKey, this.key.publicKey));
    if (!own || p.cosigns.signatures.some((g) => g.id === own.id)) return undefined;
    const head = p.cosigns.head;
    return { type: 'cosign', nodeId: own.id, size: head.size, root: head.root, signature: own.signature };
  }

  /**
   * This node's cosign commands for the newest set-change checkpoints before the latest one (at
   * most `limit`, newest first) whose own certificate in this log still lacks a quorum of its set or of the previous
   * one, and that this node signed when it took them. A newer head can be certified first, and a
   * signature proposed when the change was taken can be lost (a leader change, a restart that
   * replayed the checkpoint before the group served): clients that trust the previous set walk
   * this certificate (docs/proofs.md §5.6), so it is proposed again until the signatures that cosign
   * entries brought meet both quorums (what every replica holds: a replica's own record signature
   * is only in its own copy) or this node's own entry is among them.
   */
  setChangeCosigns(limit = 4): CosignCommand[] {
    if (this.state.divergence) return [];
    const out: CosignCommand[] = [];
    const changes = this.log.setChangeIndexes(0, this.log.size, Number.MAX_SAFE_INTEGER);
    for (let k = changes.length - 1; k >= 0 && out.length < limit; k--) {
      const i = changes[k];
      const size = i + 1;
      // The latest head is the pending one: `ownCosign` proposes this node's signature on it.
      if (size >= this.log.size) continue;
      const change = this.log.setChangeAt(i)!;
      if (change.logged.has(toHex(this.key.publicKey))) continue;
      const { set, prev } = signersAt(this.log, size);
      if (meetsQuorums(set, prev, ownSignatures(loggedSignatures(change), set, prev))) continue;
      const mine = ownSignatures(change.signatures, set, prev).find((g) => equalBytes(g.publicKey, this.key.publicKey));
      if (!mine) continue;
      out.push({ type: 'cosign', nodeId: mine.id, size, root: this.log.tree.root(size), signature: mine.signature });
    }
    return out;
  }

  /**
   * Sizes of the set-change checkpoints of this log (checkpoint 0's set included) whose
   * certificate, as cosign entries brought it — what every replica holds, not a replica's own
   * record signature — lacks a quorum of the new set or of the previous one; the latest head is
   * among them while it is not certified. A verifier that trusts the previous set cannot follow
   * such a change (docs/proofs.md §5.6): neither a client walking set changes nor a member far
   * behind checking a snapshot (src/replication/snapshot.ts). Increasing sizes.
   */
  incompleteSetChanges(): number[] {
    return this.incompleteSetChangeRecords().map((c) => c.size);
  }

  /**
   * {@link incompleteSetChanges} with the log index of the entry that asked for each checkpoint
   * (external-log mode; undefined in a record without one).
   */
  incompleteSetChangeRecords(): Array<{ size: number; appliedIndex?: number }> {
    const out: Array<{ size: number; appliedIndex?: number }> = [];
    for (const i of this.log.setChangeIndexes(0, this.log.size, Number.MAX_SAFE_INTEGER)) {
      const size = i + 1;
      const change = this.log.setChangeAt(i)!;
      const { set, prev } = signersAt(this.log, size);
      if (!meetsQuorums(set, prev, ownSignatures(loggedSignatures(change), set, prev))) out.push({ size, ...(change.appliedIndex === undefined ? {} : { appliedIndex: change.appliedIndex }) });
    }
    return out;
  }

  /**
   * Records a checkpoint of the current table set at `seq`: MasterRoot, time and signer set, log
   * append (synced, or written and synced before the recorded log index passes it: `deferLogSyncs`), this node's signature on the new head. Call only when the memtable is empty
   * (everything up to `seq` is in tables). `appliedIndex` (external-log mode) is stored with it:
   * the log entry that asked for it. The checkpoint is certified at once when this node's
   * signature alone meets the quorums; otherwise `cosign` is what to propose to the group.
   */
  async checkpoint(seq: number, appliedIndex?: number, meta: CheckpointMeta = {}): Promise<TakenCheckpoint> {
    const { time, signers } = this.resolveMeta(meta, appliedIndex === undefined);
    const version = this.core.vs.current;
    const ctx = new ProofContext(version, nodeHasher, this.core.tables, this.blockTrees, this.blockCache);
    const masterRoot = masterRootOf(nodeHasher, ctx.counts, ctx.master ? ctx.master.root() : new Uint8Array(HASH_LEN));
    const link = this.log.nextLink();
    const checkpoint: Checkpoint = { index: link.index, seq, masterRoot, time, signerSetHash: signerSetHash(signers, nodeHasher) };
    if (link.prevCheckpointHash) checkpoint.prevCheckpointHash = link.prevCheckpointHash;
    const size = link.index + 1;
    // The head after appending: computed before the append so the signature goes in the record.
    this.log.tree.append(checkpointLeafHash(checkpoint, nodeHasher));
    const head: LogHead = { size, root: this.log.tree.root(size) };
    this.log.tree.truncate(size - 1);
    const prevSet = size > 1 ? this.log.signersOf(size - 2) : undefined;
    const me = signers.members.find((m) => equalBytes(m.publicKey, this.key.publicKey)) ?? prevSet?.members.find((m) => equalBytes(m.publicKey, this.key.publicKey));
    const signatures = me && !this.state.divergence ? [signHeadNative(this.key.privateKey, head)] : [];
    const stored: StoredCheckpoint = { checkpoint, signatures, tables: version.placed().map((p) => [p.level, p.meta]), time, signers };
    if (appliedIndex !== undefined) stored.appliedIndex = appliedIndex;
    // The next compaction pick depends on these: a member installing this checkpoint continues alike.
    const pointers = [...this.core.vs.pointers.entries()].sort((a, b) => a[0] - b[0]);
    if (pointers.length > 0) stored.compactPointers = pointers;
    await this.log.append(stored);
    this.state.onCheckpoint(stored, this.log);
    this.repin({ stored, version });
    const certified = this.state.certified?.stored === stored;
    const taken: TakenCheckpoint = { checkpoint, head, signatures, time, signers, certified };
    if (me && signatures.length > 0 && !certified) taken.cosign = { type: 'cosign', nodeId: me.id, size, root: head.root, signature: signatures[0].signature };
    return taken;
  }

  /**
   * Applies a cosign command (from the replicated log, in log order): verifies it against the
   * signer sets of its size, collects a valid signature on this node's latest head (persisted
   * before this returns: synced, or written and synced before the recorded log index passes this
   * entry: `deferLogSyncs`), certifies the head once the quorums are met, and records a
   * divergence when a quorum signed another root at a size this node has. Anything else is
   * ignored and counted (see {@link CosignVerdict}). Re-applying a command is a `duplicate`.
   */
  async cosign(c: CosignCommand): Promise<CosignResult> {
    const result = await this.judgeCosign(c);
    this.cosignCounters[result.verdict]++;
    return result;
  }

  private async judgeCosign(c: CosignCommand): Promise<CosignResult> {
    if (this.state.divergence) return { verdict: 'diverged' };
    const view: CosignLogView = { size: this.log.size, rootAt: (s) => this.log.tree.root(s), signersAt: (s) => signersAt(this.log, s) };
    const judged = this.tally.judge(c, view, this.state.pending?.cosigns);
    if (judged.divergence) {
      // Synced at once, in every mode: the replica stops signing on it, across restarts.
      await this.log.appendAmendment(encodeDivergenceRecord(judged.divergence), { sync: true });
      this.state.divergence = judged.divergence;
      return { verdict: judged.verdict, divergence: judged.divergence };
    }
    if (judged.verdict === 'stale' && judged.signature && (await this.lateSetChangeSignature(c.size, judged.signature))) return { verdict: 'accepted' };
    if (judged.verdict !== 'accepted' || !judged.signature) return { verdict: judged.verdict };
    await this.log.appendAmendment(encodeCosignRecord(c.size, judged.signature));
    this.log.noteCosign(c.size, judged.signature);
    if (!this.state.onSignature(c.size, judged.signature)) return { verdict: 'accepted' };
    this.repin();
    return { verdict: 'accepted', certified: this.latest() };
  }

  /**
   * A valid signature on the head of an older checkpoint that changed the signer set: it joins
   * that change's certificate (persisted like any cosign), which clients that trust the previous
   * set walk to adopt the new one (docs/proofs.md §5.6). A newer checkpoint may be certified
   * before the change's own certificate has the previous set's quorum (checkpoints close
   * together); without this its late signatures would be dropped as stale and the walk would fail.
   * True when it was recorded.
   */
  private async lateSetChangeSignature(size: number, g: MemberSignature): Promise<boolean> {
    const change = this.log.setChangeAt(size - 1);
    // Judged on what cosign entries brought (the same on every replica), not on this replica's own
    // record signature: this node's own signature, arriving as an entry, is recorded too, so that
    // it stops proposing it again (setChangeCosigns).
    if (!change || change.logged.has(toHex(g.publicKey))) return false;
    // Only while the change's logged certificate lacks a quorum (of its set or of the previous one).
    const { set, prev } = signersAt(this.log, size);
    if (meetsQuorums(set, prev, ownSignatures(loggedSignatures(change), set, prev))) return false;
    await this.log.appendAmendment(encodeCosignRecord(size, g));
    this.log.noteCosign(size, g);
    return true;
  }

  /** The latest certified checkpoint, with its certificate. */
  latest(): SignedCheckpoint {
    const c = this.state.certified;
    if (!c) throw new ProofKVError(ErrorCode.CHECKPOINT_UNAVAILABLE, this.log.size > 0 ? 'no checkpoint has been certified yet' : 'no checkpoint has been taken yet');
    const size = c.stored.checkpoint.index + 1;
    return withSigners({ checkpoint: c.stored.checkpoint, head: this.headAt(size), signatures: c.signatures.map((g) => ({ publicKey: g.publicKey, signature: g.signature })) }, c.stored.signers);
  }

  /** The latest certified checkpoint's certificate with the ids of its signers, in log order. */
  certificate(): { size: number; signatures: MemberSignature[] } | undefined {
    const c = this.state.certified;
    return c && { size: c.stored.checkpoint.index + 1, signatures: c.signatures.slice() };
  }

  /** The latest checkpoint, certified or pending, with its time and signer set (for status). */
  latestStored(): StoredCheckpoint | undefined {
    return this.log.latest();
  }

  /**
   * Checkpoint `index` with its inclusion in the latest head (`signers`: the latest head's set);
   * when checkpoint `index` changed the signer set, also its own certificate (`setChange`: the
   * head of size `index + 1`, its stored signatures, the inclusion there and the new set).
   */
  at(index: number): SignedCheckpoint & { inclusion: Uint8Array[]; setChange?: CheckpointCertificate } {
    const latest = this.latest();
    const size = latest.head.size;
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `checkpoint ${String(index)} does not exist (certified log size ${size})`);
    }
    const checkpoint = this.log.at(index)!;
    const out: SignedCheckpoint & { inclusion: Uint8Array[]; setChange?: CheckpointCertificate } = { ...latest, checkpoint, inclusion: this.log.tree.inclusionProof(index, size) };
    const change = this.log.setChangeAt(index);
    if (change) {
      out.setChange = { checkpoint, head: this.headAt(index + 1), signatures: change.signatures, inclusion: this.log.tree.inclusionProof(index, index + 1), signers: change.signers };
    }
    return out;
  }

  /**
   * The signer-set changes at checkpoints `from .. size - 1` (docs/proofs.md §5.6), oldest first,
   * each proven against the head of `size` (1 <= size <= certified log size): its own certificate,
   * the consistency proof from its head to `size`, and its predecessor with the inclusion in its
   * head and the set it commits to. At most `limit` changes and — past the first — about
   * `maxBytes` of them ({@link setChangeBytes}); `next` is where the following page starts when
   * changes were left for it.
   */
  setChanges(from: number, size: number, limit: number, maxBytes: number): { changes: SetChange[]; next?: number } {
    const max = this.sizes().certified;
    if (!Number.isSafeInteger(size) || size < 1 || size > max) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `log size ${String(size)} does not exist (certified log size ${max})`);
    }
    if (!Number.isSafeInteger(from) || from < 0) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `from ${String(from)} is not a checkpoint index`);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `limit ${String(limit)} is not a positive integer`);
    // One more than the page takes: whether a next page exists.
    const indexes = this.log.setChangeIndexes(from, size, limit + 1);
    const changes: SetChange[] = [];
    let bytes = 0;
    for (const i of indexes) {
      if (changes.length >= limit) break;
      const change = this.setChangeProof(i, size);
      bytes += setChangeBytes(change);
      if (changes.length > 0 && bytes > maxBytes) break;
      changes.push(change);
    }
    const out: { changes: SetChange[]; next?: number } = { changes };
    if (changes.length < indexes.length) out.next = changes[changes.length - 1].checkpoint.index + 1;
    return out;
  }

  /** The set change at checkpoint `i` (one of {@link CheckpointLog.setChangeIndexes}), proven against the head of `size`. */
  private setChangeProof(i: number, size: number): SetChange {
    const change = this.log.setChangeAt(i)!;
    const checkpoint = this.log.at(i)!;
    const out: SetChange = {
      checkpoint,
      head: this.headAt(i + 1),
      signatures: change.signatures.map((g) => ({ publicKey: g.publicKey, signature: g.signature })),
      inclusion: this.log.tree.inclusionProof(i, i + 1),
      signers: change.signers,
      consistency: this.log.tree.consistencyProof(i + 1, size),
    };
    if (i > 0) {
      const prev = this.log.at(i - 1)!;
      out.previous = { checkpoint: prev, inclusion: this.log.tree.inclusionProof(i - 1, i + 1) };
      if (prev.signerSetHash !== undefined) out.previous.signers = this.log.signersOf(i - 1);
    }
    return out;
  }

  /** The log head of size `size` (1 <= size <= certified log size): every certified head this node's log passed through. */
  headAt(size: number): LogHead {
    const max = this.sizes().certified;
    if (!Number.isSafeInteger(size) || size < 1 || size > max) {
      throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `log size ${String(size)} does not exist (certified log size ${max})`);
    }
    return { size, root: this.log.tree.root(size) };
  }

  /**
   * The latest checkpoint's table set as descriptors in read order (what its MasterRoot commits
   * to), with the checkpoint, the head it ends and its inclusion path there: what an auditing
   * witness checks.
   */
  latestTables(): { checkpoint: Checkpoint; head: LogHead; inclusion: Uint8Array[]; descriptors: TableDescriptor[] } {
    this.latest();
    const s = this.state.certified!.stored;
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

  /** RFC 9162 consistency proof between two certified head sizes. */
  consistency(fromSize: number, toSize: number): Uint8Array[] {
    const max = this.sizes().certified;
    const ok = (n: number) => Number.isSafeInteger(n) && n >= 1 && n <= max;
    if (!ok(fromSize) || !ok(toSize) || fromSize > toSize) {
      throw new InvalidArgumentError(
        ErrorCode.INVALID_ARGUMENT,
        `consistency needs 1 <= from <= to <= ${max} (the certified log size), got ${String(fromSize)}, ${String(toSize)}`,
      );
    }
    return this.log.tree.consistencyProof(fromSize, toSize);
  }

  /**
   * The inclusion path of checkpoint `index` in `head`, as fresh copies: every proof against one
   * head needs the same path, so the last one is kept (a few hundred bytes), keyed by the index
   * and the head's size and root, and copied out, never handed out itself.
   */
  private proofInclusion(index: number, head: LogHead): Uint8Array[] {
    let last = this.lastInclusion;
    if (last === undefined || last.index !== index || last.size !== head.size || !equalBytes(last.root, head.root)) {
      last = { index, size: head.size, root: head.root.slice(), path: this.log.tree.inclusionProof(index, head.size) };
      this.lastInclusion = last;
    }
    return last.path.map((h) => h.slice());
  }

  private proofCertificate(index?: number): { cert: CheckpointCertificate; ctx: ProofContext } {
    const d = this.state.divergence;
    if (d) throw new ProofKVError(ErrorCode.DIVERGED, `this replica diverged from its signer set at checkpoint log size ${d.size}: it serves no proofs until an operator restores it`);
    const latest = this.latest();
    const want = index ?? latest.checkpoint.index;
    const pinned = want === latest.checkpoint.index ? this.pins.get(want) : undefined;
    if (!pinned) {
      if (!Number.isSafeInteger(want) || want < 0 || want >= this.log.size) {
        throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `checkpoint ${String(want)} does not exist`);
      }
      if (want > latest.checkpoint.index) {
        throw new ProofKVError(ErrorCode.CHECKPOINT_UNAVAILABLE, `checkpoint ${want} is not certified yet; proofs are served against the latest certified checkpoint (${latest.checkpoint.index})`);
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
          inclusion: this.proofInclusion(want, latest.head),
        },
        pinned.stored.signers,
      ),
      ctx: pinned.ctx,
    };
  }

  /** A get proof for `key` at or below `version`, at the latest (or the given) checkpoint; `edges`: with edge windows. */
  getProof(key: Uint8Array, version = MAX_VERSION, checkpoint?: number, edges = false): { proof: GetProof; entry?: Entry } {
    const { cert, ctx } = this.proofCertificate(checkpoint);
    const built = buildProof(ctx, key, { kind: 'get', version }, { edges });
    const entry = built.entries[0];
    const proof: GetProof = { certificate: cert, body: built.body };
    if (entry && entry.kind === 1) proof.value = entry.value;
    return { proof, entry };
  }

  /** A history proof for `key` in [min, max], cut after `limit` entries (oldest first). */
  historyProof(key: Uint8Array, min: number, max: number, limit?: number, checkpoint?: number, edges = false): { proof: HistoryProof; entries: Entry[] } {
    const { cert, ctx } = this.proofCertificate(checkpoint);
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
    const { cert, ctx } = this.proofCertificate(checkpoint);
    const built = buildScanProof(ctx, start, end, limit, { edges });
    const returned = includeTombstones ? built.entries : built.entries.filter((e) => e.kind === Kind.PUT);
    const proof: ScanProof = { certificate: cert, body: built.body, values: returned.map((e) => e.value) };
    if (built.bound) proof.bound = built.bound;
    return { proof, entries: built.entries };
  }

  /** Closes the log. The pinned tables stay on disk: the next open pins them again. */
  async close(): Promise<void> {
    this.pins.clear();
    await this.log.close();
  }
}

/** `o` with `signers` set when there is a set (v2), so a v1 answer carries no `signers` field. */
function withSigners<T extends object>(o: T, signers: SignerSet | undefined): T & { signers?: SignerSet } {
  return signers ? { ...o, signers } : o;
}

/**
 * About the bytes of a listed set change (raw, before the wire encoding): two checkpoint messages,
 * a head, the signatures, both sets' members and the proof hashes — what bounds a page.
 */
export function setChangeBytes(c: SetChange): number {
  const hashes = c.inclusion.length + c.consistency.length + (c.previous?.inclusion.length ?? 0);
  const members = c.signers.members.length + (c.previous?.signers?.members.length ?? 0);
  return 2 * 160 + 40 + c.signatures.length * 96 + members * 36 + hashes * 32;
}
