/**
 * Co-signing of checkpoint-log heads (docs/replication.md § Co-signing): the pure core, without
 * I/O. Every replica computes each checkpoint itself, signs the log head it produced, and puts its
 * signature in the replicated log as a {@link CosignCommand}. Applying those entries in log order,
 * every replica collects the same list of signatures on its own head; once they meet the quorum of
 * the checkpoint's signer set *and* of the previous checkpoint's set, the head is **certified**
 * and served. A quorum of signatures on another root at a size this replica has is
 * **divergence**: this replica computed something the others did not.
 *
 * {@link HeadCosigns} holds the signatures of one head; {@link CosignTally} judges a cosign
 * command against this replica's log (verify, deduplicate, collect, count conflicts). The
 * `Checkpointer` (src/proof/checkpointer.ts) persists what they accept.
 * @module
 */
import { equalBytes, toHex } from '../../proofs/bytes.js';
import { PUBLIC_KEY_LEN, SIGNATURE_LEN, type HeadSignature, type LogHead } from '../../proofs/checkpoint.js';
import { verifyHeadSignatureNative } from '../proof/ed25519_node.js';
import { HASH_LEN } from '../../proofs/hash.js';

/**
 * The members that certify a checkpoint and how many of them must sign (the checkpoint's signer
 * set; docs/proofs.md §5). Members are sorted by id, ids and keys distinct.
 */
export interface SignerSet {
  /** Signatures needed: 1 <= quorum <= members.length (a majority in a cluster). */
  quorum: number;
  members: Array<{ id: number; publicKey: Uint8Array }>;
}

/** Member `nodeId`'s Ed25519 signature on the log head `(size, root)` it computed itself. */
export interface CosignCommand {
  type: 'cosign';
  nodeId: number;
  size: number;
  root: Uint8Array;
  signature: Uint8Array;
}

/** A collected head signature with the id of the member that made it. */
export interface MemberSignature extends HeadSignature {
  id: number;
}

/**
 * What applying a cosign command did:
 * - `accepted`: a new valid signature on this replica's latest head, collected;
 * - `duplicate`: that signer's signature on this head was already collected (a re-applied entry);
 * - `stale`: a valid signature on an older head of this replica's log (same root), not collected;
 * - `conflict`: a valid signature on a root that differs from this replica's root at that size,
 *   counted toward divergence;
 * - `unknown-head`: a size this replica's log has not reached (or size 0);
 * - `unknown-signer`: `nodeId` is in neither signer set of that size;
 * - `bad-signature`: the signature does not verify with `nodeId`'s key;
 * - `malformed`: not a well-formed cosign command;
 * - `diverged`: this replica is in divergence and collects nothing.
 */
export type CosignVerdict = 'accepted' | 'duplicate' | 'stale' | 'conflict' | 'unknown-head' | 'unknown-signer' | 'bad-signature' | 'malformed' | 'diverged';

/** Counts of every {@link CosignVerdict} since open (for metrics). */
export type CosignCounters = Record<CosignVerdict, number>;

/** A new zeroed {@link CosignCounters}. */
export function newCosignCounters(): CosignCounters {
  return { accepted: 0, duplicate: 0, stale: 0, conflict: 0, 'unknown-head': 0, 'unknown-signer': 0, 'bad-signature': 0, malformed: 0, diverged: 0 };
}

/**
 * This replica's root at `size` differs from the one a quorum signed. The replica stops signing,
 * serving proofs and taking writes until an operator replaces its data (docs/replication.md).
 */
export interface Divergence {
  /** The log size at which the roots differ. */
  size: number;
  /** This replica's root at `size`. */
  ownRoot: Uint8Array;
  /** The root a quorum of the signer set of `size` signed. */
  quorumRoot: Uint8Array;
  /** Ids of the members whose signatures on `quorumRoot` were counted. */
  signers: number[];
}

/** A one-line description of a divergence for logs: `DIVERGENCE at size s: own root …, quorum root … signed by …`. */
export function describeDivergence(d: Divergence): string {
  return `DIVERGENCE at checkpoint log size ${d.size}: own root ${toHex(d.ownRoot)}, quorum root ${toHex(d.quorumRoot)} signed by members ${d.signers.join(', ')}`;
}

/** The signer set of a single node: itself, quorum 1 (what a one-member group uses). */
export function soloSignerSet(publicKey: Uint8Array, id = 1): SignerSet {
  return { quorum: 1, members: [{ id, publicKey }] };
}

/** A reason `s` is not a well-formed signer set, or undefined. */
export function checkSignerSet(s: SignerSet): string | undefined {
  if (typeof s !== 'object' || s === null || !Array.isArray(s.members)) return 'signer set must have a members array';
  const n = s.members.length;
  if (n === 0 || n > 0xffff) return `signer set has ${n} members, want 1..65535`;
  if (!Number.isSafeInteger(s.quorum) || s.quorum < 1 || s.quorum > n) return `signer set quorum ${String(s.quorum)}, want 1..${n}`;
  const keys = new Set<string>();
  let last = -1;
  for (const m of s.members) {
    if (!Number.isSafeInteger(m.id) || m.id < 0 || m.id > 0xffffffff) return `signer id ${String(m.id)} is not a u32`;
    if (m.id <= last) return 'signer set members must be sorted by id, ids distinct';
    last = m.id;
    if (!(m.publicKey instanceof Uint8Array) || m.publicKey.length !== PUBLIC_KEY_LEN) return `signer ${m.id} key must be ${PUBLIC_KEY_LEN} bytes`;
    const k = toHex(m.publicKey);
    if (keys.has(k)) return `signer ${m.id} repeats another member's key`;
    keys.add(k);
  }
  return undefined;
}

/** True when `a` and `b` are the same set (quorum, ids, keys). */
export function sameSignerSet(a: SignerSet, b: SignerSet): boolean {
  return (
    a.quorum === b.quorum &&
    a.members.length === b.members.length &&
    a.members.every((m, i) => m.id === b.members[i].id && equalBytes(m.publicKey, b.members[i].publicKey))
  );
}

/** The key of member `id` in `set`, or undefined. */
export function memberKey(set: SignerSet | undefined, id: number): Uint8Array | undefined {
  return set?.members.find((m) => m.id === id)?.publicKey;
}

/**
 * Number of `sigs` made with a key of `set` (keys are distinct within a set; a member is its key,
 * whatever id it signed under — the signature was verified against that key).
 */
export function countSigners(set: SignerSet, sigs: readonly MemberSignature[]): number {
  let n = 0;
  for (const g of sigs) if (set.members.some((m) => equalBytes(m.publicKey, g.publicKey))) n++;
  return n;
}

/** A reason `c` is not a well-formed cosign command, or undefined. */
export function checkCosignCommand(c: CosignCommand): string | undefined {
  if (typeof c !== 'object' || c === null) return 'cosign command must be an object';
  if (!Number.isSafeInteger(c.nodeId) || c.nodeId < 0 || c.nodeId > 0xffffffff) return `cosign nodeId ${String(c.nodeId)} is not a u32`;
  if (!Number.isSafeInteger(c.size) || c.size < 1) return `cosign size ${String(c.size)} is not a positive integer`;
  if (!(c.root instanceof Uint8Array) || c.root.length !== HASH_LEN) return `cosign root must be ${HASH_LEN} bytes`;
  if (!(c.signature instanceof Uint8Array) || c.signature.length !== SIGNATURE_LEN) return `cosign signature must be ${SIGNATURE_LEN} bytes`;
  return undefined;
}

/**
 * The signatures collected on one head of this replica's log, in log order, one per member id,
 * and whether they certify it: a quorum of `set` (the checkpoint's signer set) and of `prev` (the
 * previous checkpoint's set, when there is one).
 */
export class HeadCosigns {
  readonly signatures: MemberSignature[] = [];

  constructor(
    readonly head: LogHead,
    readonly set: SignerSet,
    readonly prev: SignerSet | undefined,
  ) {}

  /** True when `sig`'s member (by id or by key) already signed. */
  has(sig: MemberSignature): boolean {
    return this.signatures.some((g) => g.id === sig.id || equalBytes(g.publicKey, sig.publicKey));
  }

  /** Adds `sig` unless its member already signed; true if added. */
  add(sig: MemberSignature): boolean {
    if (this.has(sig)) return false;
    this.signatures.push(sig);
    return true;
  }

  /** True when the collected signatures meet both quorums. */
  certified(): boolean {
    return meetsQuorums(this.set, this.prev, this.signatures);
  }
}

/** True when `sigs` meet the quorum of `set` and (if given) of `prev`. */
export function meetsQuorums(set: SignerSet, prev: SignerSet | undefined, sigs: readonly MemberSignature[]): boolean {
  return countSigners(set, sigs) >= set.quorum && (prev === undefined || countSigners(prev, sigs) >= prev.quorum);
}

/** What {@link CosignTally.judge} needs to know about this replica's checkpoint log. */
export interface CosignLogView {
  /** Number of checkpoints in this replica's log. */
  readonly size: number;
  /** This replica's root at `size` (1 <= size <= the log size). */
  rootAt(size: number): Uint8Array;
  /** The signer set of checkpoint `size - 1` and of the one before it (none for size 1). */
  signersAt(size: number): { set: SignerSet; prev?: SignerSet };
}

/** Conflicting `(size, root)` pairs remembered at once; the oldest is forgotten first. */
export const MAX_CONFLICTS = 64;

/**
 * Judges cosign commands against this replica's log: checks the signer and the signature,
 * tells which valid signatures on the latest head are new (for {@link HeadCosigns}), and counts
 * signatures on roots that differ from this replica's until one reaches the quorum of its size's
 * signer set (divergence). Bounded: at most {@link MAX_CONFLICTS} conflicting roots, each with at
 * most one id per member of that size's two signer sets (≤ 64 × (40 + 2 × 65535 × 8) bytes in the
 * worst case of the largest set; a few KiB for a five-member cluster).
 */
export class CosignTally {
  /** `size:rootHex` → the members (id → key) that signed that root, insertion order = age. */
  private readonly conflicts = new Map<string, { size: number; root: Uint8Array; signers: Map<number, Uint8Array> }>();

  /**
   * Judges `c` against `log`; `current` holds the signatures on the latest head (its head size
   * is `log.size`). Returns the verdict, the signature to collect when `accepted`, and the
   * divergence when a conflicting root reached its quorum.
   */
  judge(c: CosignCommand, log: CosignLogView, current: HeadCosigns | undefined): { verdict: CosignVerdict; signature?: MemberSignature; divergence?: Divergence } {
    if (checkCosignCommand(c)) return { verdict: 'malformed' };
    if (c.size > log.size) return { verdict: 'unknown-head' };
    const { set, prev } = log.signersAt(c.size);
    const head: LogHead = { size: c.size, root: c.root };
    let publicKey = memberKey(set, c.nodeId);
    let valid = publicKey !== undefined && verifyHeadSignatureNative(head, { publicKey, signature: c.signature });
    if (!valid) {
      // A member of the previous set only (being removed) also approves the head; so does a key
      // that was replaced in this checkpoint's set.
      const old = memberKey(prev, c.nodeId);
      if (old && !(publicKey && equalBytes(old, publicKey))) {
        publicKey = old;
        valid = verifyHeadSignatureNative(head, { publicKey, signature: c.signature });
      } else if (!publicKey) publicKey = old;
    }
    if (!publicKey) return { verdict: 'unknown-signer' };
    if (!valid) return { verdict: 'bad-signature' };
    const signature: MemberSignature = { id: c.nodeId, publicKey, signature: c.signature };
    const own = log.rootAt(c.size);
    if (equalBytes(own, c.root)) {
      // (The signature is returned with a stale verdict too: a checkpoint that changed the signer
      // set keeps collecting its certificate after a newer one — see Checkpointer.cosign.)
      if (c.size < log.size || !current) return { verdict: 'stale', signature };
      // Collected by the caller once it is persisted.
      return current.has(signature) ? { verdict: 'duplicate' } : { verdict: 'accepted', signature };
    }
    const key = `${c.size}:${toHex(c.root)}`;
    let entry = this.conflicts.get(key);
    if (!entry) {
      entry = { size: c.size, root: c.root.slice(), signers: new Map() };
      this.conflicts.set(key, entry);
      if (this.conflicts.size > MAX_CONFLICTS) this.conflicts.delete(this.conflicts.keys().next().value!);
    }
    if (!entry.signers.has(c.nodeId)) entry.signers.set(c.nodeId, publicKey);
    const signers = [...entry.signers.keys()].sort((a, b) => a - b);
    const sigs = [...entry.signers].map(([id, key]) => ({ id, publicKey: key, signature: new Uint8Array(0) }));
    if (countSigners(set, sigs) >= set.quorum) {
      return { verdict: 'conflict', divergence: { size: c.size, ownRoot: own.slice(), quorumRoot: entry.root.slice(), signers } };
    }
    return { verdict: 'conflict' };
  }
}
