/**
 * Following signer-set changes forward (docs/proofs.md §5.6): a client that trusts a set (or its
 * configured keys) walks the list of the checkpoints where the set changed between its trusted
 * head and a newer head (the *anchor*), and learns the set in force just before the anchor's last
 * checkpoint. Isomorphic: no `node:` imports.
 *
 * Each listed change `k` at checkpoint `c_k` carries its own certificate (the head of size
 * `c_k + 1`, its signatures, the inclusion of `c_k` there and the new set), an RFC 9162
 * consistency proof from that head to the anchor, and its predecessor `c_k - 1` with its inclusion
 * in the same head and the set it commits to. A change is followed only when:
 * - changes come in increasing index order, after the trusted head and at most the anchor's last
 *   checkpoint (`CHAIN_MISMATCH`, `INDEX_OUT_OF_RANGE`);
 * - the certificate's head is a prefix of the anchor (`FORK`) and includes `c_k`;
 * - `c_k - 1` is that head's leaf, `c_k` links to it (`CHAIN_MISMATCH`), and it commits to the set
 *   trusted so far (`SIGNER_SET_MISMATCH`: a change was left out) — so the set is known at both
 *   ends of every interval between two listed changes;
 * - a quorum of the set trusted so far **and** of the new set signed the head
 *   ({@link verifyCertifiedHead}).
 * The anchor's own checkpoint ends the last interval: it must commit to the set reached, or be
 * listed itself (then only its predecessor is checked; the caller verifies the anchor's signatures
 * under the set returned).
 *
 * While the client trusts configured keys (no committed set yet), a change whose predecessor
 * commits to a set with other keys or quorum (at checkpoint 0: whose own set has other keys or
 * quorum) is skipped: it lies before those keys were in force, and nothing is learnt from it.
 * @module
 */
import { equalBytes, toHex } from './bytes.js';
import { verifyCheckpointInclusion, verifyCheckpointLink, verifyHeadExtends, type Checkpoint, type HeadSignature, type LogHead, type TrustPolicy } from './checkpoint.js';
import { fail, OK, Reason, type Verified } from './errors.js';
import { defaultHasher, type Hasher } from './hash.js';
import { signerSetPolicy, verifyCertifiedHead, verifySignerSet, type SignerSet } from './signer_set.js';

/** Checkpoint `index - 1` of a set change at `index`, shown to prove which set was in force just before it. */
export interface SetChangePredecessor {
  checkpoint: Checkpoint;
  /** Its RFC 9162 inclusion path in the change's head (of size `index + 1`). */
  inclusion: Uint8Array[];
  /** The set it commits to (v2; checked against its hash); absent for a v1 checkpoint. */
  signers?: SignerSet;
}

/**
 * One listed signer-set change (`GET /v1/checkpoints/set-changes`): the changing checkpoint's own
 * certificate, its consistency with the anchor, and its predecessor.
 */
export interface SetChange {
  /** The checkpoint that changed the set (v2). */
  checkpoint: Checkpoint;
  /** The head of size `checkpoint.index + 1`. */
  head: LogHead;
  /** The signatures on `head` collected for the change. */
  signatures: HeadSignature[];
  /** The inclusion path of `checkpoint` in `head`. */
  inclusion: Uint8Array[];
  /** The new set (`checkpoint.signerSetHash` is its hash). */
  signers: SignerSet;
  /** RFC 9162 consistency proof from `head` to the anchor. */
  consistency: Uint8Array[];
  /** Checkpoint `checkpoint.index - 1`; absent only for checkpoint 0. */
  previous?: SetChangePredecessor;
}

/** Where a walk of set changes stands (see {@link startSetChain}, {@link verifySetChange}). */
export interface SetChainState {
  /** The trust policy of the set trusted so far. */
  policy: TrustPolicy;
  /** That set's hash once it is a committed set; undefined while the client trusts configured keys. */
  setHash?: Uint8Array;
  /** Index of the last change consumed (followed or skipped); at the start the trusted head's last checkpoint (-1: none). */
  last: number;
  /** Changes followed (certificates verified). */
  followed: number;
  /** Changes consumed (followed or skipped): what {@link MAX_SET_CHANGES} bounds. */
  seen: number;
  /** True once the anchor's own checkpoint was listed (it must be the last change). */
  atTop: boolean;
}

/** Most changes one {@link verifySetChanges} (and one SDK acceptance) follows. */
export const MAX_SET_CHANGES = 1024;

/**
 * The state before the first change: trusting `policy` (with `setHash` when it is a committed set),
 * after a trusted head of `trustedSize` checkpoints (0: none).
 */
export function startSetChain(policy: TrustPolicy, setHash: Uint8Array | undefined, trustedSize: number): SetChainState {
  const s: SetChainState = { policy, last: trustedSize - 1, followed: 0, seen: 0, atTop: false };
  if (setHash) s.setHash = setHash;
  return s;
}

const describePolicy = (p: TrustPolicy) => `${p.publicKeys.length} keys, quorum ${p.quorum}`;

/** True when two policies trust the same keys with the same quorum. */
export function samePolicy(a: TrustPolicy, b: TrustPolicy): boolean {
  const keys = (p: TrustPolicy) => p.publicKeys.map(toHex).sort().join(',');
  return a.quorum === b.quorum && keys(a) === keys(b);
}

/**
 * Consumes one listed change (see the module comment) against `anchor`, whose last checkpoint is
 * `top`. Returns the next state; never throws.
 */
export function verifySetChange(state: SetChainState, change: SetChange, anchor: LogHead, top: Checkpoint, hasher: Hasher = defaultHasher()): Verified<{ state: SetChainState }> {
  try {
    if (typeof state !== 'object' || state === null || ![state.last, state.seen, state.followed].every(Number.isSafeInteger)) return fail(Reason.MALFORMED_INPUT, 'a set chain state needs its counts');
    if (typeof change !== 'object' || change === null) return fail(Reason.MALFORMED_INPUT, 'a set change must be an object');
    const c = change.checkpoint;
    const i = c?.index;
    if (!Number.isSafeInteger(i) || !Number.isSafeInteger(top?.index)) return fail(Reason.MALFORMED_INPUT, 'a set change needs a checkpoint index');
    if (state.atTop || i <= state.last) return fail(Reason.CHAIN_MISMATCH, `set change at checkpoint ${i} does not come after checkpoint ${state.atTop ? top.index : state.last}`);
    if (i > top.index) return fail(Reason.INDEX_OUT_OF_RANGE, `set change at checkpoint ${i} is after the head's last checkpoint ${top.index}`);
    if (c.signerSetHash === undefined) return fail(Reason.SIGNER_SET_MISMATCH, `checkpoint ${i} is v1 and commits to no signer set: not a set change`);
    if (change.head?.size !== i + 1) return fail(Reason.CHECKPOINT_MISMATCH, `the certificate of the set change at checkpoint ${i} has a head of size ${String(change.head?.size)}, want ${i + 1}`);
    // The change's head is a prefix of the anchor (equal when the change is the anchor's checkpoint).
    const ext = verifyHeadExtends(change.head, anchor, change.consistency, hasher);
    if (!ext.ok) return ext.reason === Reason.ROOT_MISMATCH ? fail(Reason.FORK, `the head of the set change at checkpoint ${i} is not a prefix of head ${anchor.size}: ${ext.message}`) : ext;
    const incl = verifyCheckpointInclusion(c, change.inclusion, change.head, hasher);
    if (!incl.ok) return incl;
    // Which set was in force just before the change.
    const before = verifyPredecessor(state, change, hasher);
    if (!before.ok) return before;
    if (before.skip) return { ok: true, state: { ...state, last: i, seen: state.seen + 1 } };
    if (i === top.index) {
      // The anchor's own checkpoint (its head is the anchor, proven above): its signatures, under
      // the set reached, are the caller's to check.
      return { ok: true, state: { ...state, last: i, seen: state.seen + 1, atTop: true } };
    }
    const cert = verifyCertifiedHead(change.head, change.signatures, state.policy, change.signers, c.signerSetHash, hasher);
    if (!cert.ok) return cert;
    const set = cert.signerSet!;
    return { ok: true, state: { policy: signerSetPolicy(set), setHash: c.signerSetHash, last: i, followed: state.followed + 1, seen: state.seen + 1, atTop: false } };
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `set change: ${(err as Error).message}`);
  }
}

/**
 * Checks the predecessor of `change`: leaf `index - 1` of the change's head, linked to by the
 * change, committing to the set trusted so far. `skip` when the client trusts configured keys and
 * the predecessor commits to another set (the change lies before those keys were in force).
 */
function verifyPredecessor(state: SetChainState, change: SetChange, hasher: Hasher): Verified<{ skip: boolean }> {
  const c = change.checkpoint;
  const p = change.previous;
  if (c.index === 0) {
    // The log's first set: certified by itself alone; followed only when it is the configured keys.
    if (p !== undefined) return fail(Reason.MALFORMED_INPUT, 'checkpoint 0 has no predecessor, but one was shown');
    if (state.setHash) return fail(Reason.SIGNER_SET_MISMATCH, 'a set change at checkpoint 0 cannot follow a trusted set');
    const own = verifySignerSet(change.signers, c.signerSetHash!, hasher);
    if (!own.ok) return own;
    return { ok: true, skip: !samePolicy(signerSetPolicy(change.signers), state.policy) };
  }
  if (typeof p !== 'object' || p === null) return fail(Reason.MALFORMED_INPUT, `the set change at checkpoint ${c.index} shows no predecessor`);
  if (p.checkpoint?.index !== c.index - 1) return fail(Reason.CHECKPOINT_MISMATCH, `the predecessor shown for checkpoint ${c.index} is checkpoint ${String(p.checkpoint?.index)}`);
  const link = verifyCheckpointLink(p.checkpoint, c, hasher);
  if (!link.ok) return link;
  const incl = verifyCheckpointInclusion(p.checkpoint, p.inclusion, change.head, hasher);
  if (!incl.ok) return incl;
  const prevHash = p.checkpoint.signerSetHash;
  if (prevHash !== undefined && equalBytes(prevHash, c.signerSetHash!)) {
    return fail(Reason.SIGNER_SET_MISMATCH, `checkpoint ${c.index} commits to the same set as its predecessor: not a set change`);
  }
  if (state.setHash) {
    // A committed set is trusted: the predecessor must commit to exactly it.
    if (prevHash === undefined) return fail(Reason.CHAIN_MISMATCH, `checkpoint ${c.index - 1} is v1 after the trusted signer set`);
    if (!equalBytes(prevHash, state.setHash)) {
      return fail(
        Reason.SIGNER_SET_MISMATCH,
        `checkpoint ${c.index - 1} commits to set ${toHex(prevHash).slice(0, 16)}…, not to the set trusted since checkpoint ${state.last} (${toHex(state.setHash).slice(0, 16)}…): a set change was left out`,
      );
    }
    return { ok: true, skip: false };
  }
  // Configured keys: a v1 predecessor was certified under them; a v2 one must commit to exactly them.
  if (prevHash === undefined) {
    if (p.signers !== undefined) return fail(Reason.SIGNER_SET_MISMATCH, `checkpoint ${c.index - 1} is v1 and commits to no signer set, but one was shown`);
    return { ok: true, skip: false };
  }
  if (p.signers === undefined) return fail(Reason.SIGNER_SET_MISMATCH, `checkpoint ${c.index - 1} commits to a signer set, but none was shown`);
  const set = verifySignerSet(p.signers, prevHash, hasher);
  if (!set.ok) return set;
  return { ok: true, skip: !samePolicy(signerSetPolicy(p.signers), state.policy) };
}

/**
 * Ends a walk at `top` (the anchor's last checkpoint): unless `top` was listed itself, it must
 * commit to the set reached (`SIGNER_SET_MISMATCH`: a change after the last listed one was left
 * out). While the client still trusts configured keys nothing is known to compare with. Returns
 * the policy under which the anchor's signatures must be verified.
 */
export function finishSetChain(state: SetChainState, top: Checkpoint): Verified<{ policy: TrustPolicy; setHash?: Uint8Array; followed: number }> {
  if (typeof state !== 'object' || state === null || typeof top !== 'object' || top === null) return fail(Reason.MALFORMED_INPUT, 'finishSetChain needs a state and a checkpoint');
  if (!state.atTop && state.setHash && top.signerSetHash !== undefined && !equalBytes(top.signerSetHash, state.setHash)) {
    return fail(Reason.SIGNER_SET_MISMATCH, `checkpoint ${top.index} commits to another set than the last listed change (checkpoint ${state.last}) made: a set change was left out`);
  }
  if (!state.atTop && state.setHash && top.signerSetHash === undefined) return fail(Reason.CHAIN_MISMATCH, `checkpoint ${top.index} is v1 after a followed signer set`);
  const out: { ok: true; policy: TrustPolicy; setHash?: Uint8Array; followed: number } = { ok: true, policy: state.policy, followed: state.followed };
  if (state.setHash) out.setHash = state.setHash;
  return out;
}

/**
 * Follows `changes` (increasing index) from `start` to the anchor (`anchor`, ending with `top`):
 * {@link verifySetChange} for each, at most {@link MAX_SET_CHANGES} (`QUORUM_NOT_MET` beyond), then
 * {@link finishSetChain}. Never throws.
 */
export function verifySetChanges(
  start: SetChainState,
  changes: readonly SetChange[],
  anchor: LogHead,
  top: Checkpoint,
  hasher: Hasher = defaultHasher(),
): Verified<{ policy: TrustPolicy; setHash?: Uint8Array; followed: number }> {
  try {
    if (!Array.isArray(changes)) return fail(Reason.MALFORMED_INPUT, 'set changes must be a list');
    let state = start;
    for (const change of changes) {
      const bound = checkSetChainBound(state);
      if (!bound.ok) return bound;
      const r = verifySetChange(state, change, anchor, top, hasher);
      if (!r.ok) return r;
      state = r.state;
    }
    return finishSetChain(state, top);
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `set changes: ${(err as Error).message}`);
  }
}

/** `QUORUM_NOT_MET` once `state` has consumed {@link MAX_SET_CHANGES} changes (the next one would exceed the bound). */
export function checkSetChainBound(state: SetChainState): Verified {
  if (typeof state !== 'object' || state === null || !Number.isSafeInteger(state.seen)) return fail(Reason.MALFORMED_INPUT, 'a set chain state needs a count of changes seen');
  if (state.seen >= MAX_SET_CHANGES) {
    return fail(Reason.QUORUM_NOT_MET, `more than ${MAX_SET_CHANGES} signer-set changes lie between the trusted set (${describePolicy(state.policy)}) and the head: configure the client with newer keys`);
  }
  return OK;
}
