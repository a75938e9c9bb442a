/**
 * The client's trust: which keys sign checkpoints, and the newest log head (and its last
 * checkpoint) it has verified. Isomorphic: no `node:` imports.
 *
 * Every answer of a verified call — a signed head with the checkpoint that ends it, from
 * `GET /v1/checkpoints/…` or inside a proof's certificate — goes through
 * {@link TrustKeeper.acceptAnswer}, one at a time:
 * 1. quorum signatures under the trust policy; the checkpoint is the head's last leaf
 *    (`index = size - 1`); the caller's own checks (the proof);
 * 2. **freshness, per request**: the head is at least the trusted head *when the request was
 *    sent* (else `ROLLBACK`) — so concurrent calls on one client never turn each other's honest
 *    answers into rollbacks;
 * 3. **consistency with the current trusted head**: a newer head must extend it (RFC 9162
 *    consistency proof), the same size must have the same root, an older one must be its prefix
 *    (a consistency proof from the answer's head to the trusted one); else `FORK`;
 * 4. **the checkpoint chain** (`checkChain`): seq never decreases against the trusted checkpoint;
 *    a new checkpoint must link (`prevCheckpointHash`, seq) to its predecessor, and so on back
 *    to the trusted checkpoint — each predecessor fetched by index with its inclusion proof — for
 *    up to {@link MAX_CHAIN_LINKS} links; with no trusted checkpoint (first contact, or state
 *    from older versions) only the newest link is checked (`CHAIN_MISMATCH` otherwise);
 * 5. only an answer newer than the trusted head advances and persists it: it never moves back.
 *
 * Signer sets (docs/proofs.md §5.6): when the head's last checkpoint is v2, the head must carry a
 * quorum of the trusted set and a quorum of the set the checkpoint commits to (the answer's
 * `signers`, checked against its hash); that set is then adopted and persisted with the head. When
 * the trusted set's quorum did not sign the head, the keeper follows every set change in between
 * ({@link TrustKeeper.followSignerSets}): from the server's list of changes
 * (`GET /v1/checkpoints/set-changes`, verified forward by `proofs/set_changes.ts`), or — a few
 * checkpoints back, or from a server without the list — by walking back one checkpoint at a time;
 * each change with its own certificate, each set adopted only from a head a quorum of the set
 * trusted before it signed.
 *
 * When a head is signed by a key the client does not trust (`UNTRUSTED_KEY`, or `QUORUM_NOT_MET`
 * for want of a trusted signer) and no chain of signer sets leads to it, the keeper follows the
 * node's key rotations ({@link TrustKeeper.followRotations}) once and verifies again.
 *
 * Trust on first use pins the first key that signs a head the client sees (with a warning), and
 * persists it under an id derived from the endpoints, like SSH's known_hosts.
 * @module
 */
import { equalBytes, fromHex, toHex } from '../proofs/bytes.js';
import {
  checkCheckpoint,
  checkpointBytes,
  checkpointVersion,
  verifyCheckpoint,
  verifyCheckpointInclusion,
  verifyCheckpointLink,
  verifyHeadExtends,
  type Checkpoint,
  type HeadSignature,
  type LogHead,
  type TrustPolicy,
} from '../proofs/checkpoint.js';
import { checkSignerSet, signerSetHash, signerSetPolicy, verifyCertifiedHead, type SignerSet } from '../proofs/signer_set.js';
import { Reason, VerificationError, type Verified } from '../proofs/errors.js';
import { checkSetChainBound, finishSetChain, samePolicy, startSetChain, verifySetChange, type SetChainState, type SetChange } from '../proofs/set_changes.js';
import { KEY_TYPE_COSIGNATURE, formatCheckpointNote, parseNote, parseSignatureLines, parseVerifierKey, verifyNote, type VerifierKey } from '../proofs/note.js';
import { verifyKeyRotation, type KeyRotation } from '../proofs/rotation.js';
import { ClientReason, verificationFailure } from './errors.js';
import { parsePublicKey } from './keys.js';
import type { StateStore, TrustedState } from './state.js';

/**
 * Witnesses a head must be cosigned by (docs/witness.md): the log's checkpoint-note origin, the
 * witnesses' cosignature verifier keys (`name+hash+base64(0x04 || key)`, as `proofkv witness`
 * prints them) and how many of them must have cosigned each accepted head (1 <= quorum <= keys).
 */
export interface WitnessPolicy {
  origin: string;
  keys: string[];
  quorum: number;
}

/**
 * What the client trusts: a set of Ed25519 public keys and a quorum, or — explicitly, with a
 * warning — the first key it sees (TOFU). A key is 32 bytes or a string in a form the node prints
 * (hex, base64url, base64, or a note verifier key `name+hash+key`; see {@link parsePublicKey}).
 * With `witnesses`, every accepted head must also carry k of n witness cosignatures.
 */
export type TrustConfig = { publicKeys: Array<Uint8Array | string>; quorum: number; witnesses?: WitnessPolicy } | { tofu: true; witnesses?: WitnessPolicy };

/** The id under which trusted state of `config` is stored. */
export function trustId(config: TrustConfig, endpoints: readonly string[]): string {
  if ('tofu' in config) return `tofu:${[...endpoints].sort().join(',')}`;
  return `keys:${config.publicKeys.map((k) => toHex(parsePublicKey(k))).sort().join(',')}:q${config.quorum}`;
}

/** A checkpoint with a signed head and its RFC 9162 inclusion path in that head (`GET /v1/checkpoints/{index}`). */
export interface IncludedCheckpoint {
  checkpoint: Checkpoint;
  head: LogHead;
  signatures: HeadSignature[];
  inclusion: Uint8Array[];
  /** The signer set of `head`'s last checkpoint (v2), as the server sent it (unverified). */
  signers?: SignerSet;
  /**
   * When `checkpoint` changed the signer set: its own certificate — the head of size
   * `checkpoint.index + 1`, that head's signatures, the inclusion there and the new `signers`.
   */
  setChange?: IncludedCheckpoint;
}

/** What {@link TrustKeeper.accept} needs besides the head: how to prove extension. */
export interface AcceptContext {
  /** Fetches an RFC 9162 consistency proof between two log sizes. */
  consistency(from: number, to: number): Promise<Uint8Array[]>;
  /**
   * Fetches checkpoint `index` with its inclusion in a signed head, to check the link of a new
   * checkpoint to its predecessor; without it that link is not checked.
   */
  checkpointAt?(index: number): Promise<IncludedCheckpoint>;
  /**
   * Fetches one page of the signer-set changes at checkpoints `from .. size - 1`, each proven
   * against the head of `size` (`GET /v1/checkpoints/set-changes`), or `undefined` when the server
   * does not list them. Without it (or on `undefined`) set changes are found by walking back one
   * checkpoint at a time ({@link checkpointAt}).
   */
  signerSetChanges?(from: number, size: number): Promise<SetChangePage | undefined>;
  /** Fetches the node's key rotation statements, oldest first (`GET /v1/key-rotations`); without it rotations are not followed. */
  keyRotations?(): Promise<KeyRotation[]>;
  /** Fetches the checkpoint note of log size `size` (`GET /v1/checkpoints/{size}/note`), for witness cosignatures. */
  note?(size: number): Promise<string>;
}

/** One page of `GET /v1/checkpoints/set-changes` (unverified). */
export interface SetChangePage {
  /** Changes in increasing checkpoint index. */
  changes: SetChange[];
  /** The `from` of the next page; absent on the last page. */
  next?: number;
}

/** One answer of a verified call, for {@link TrustKeeper.acceptAnswer}. */
export interface Answer {
  head: LogHead;
  signatures: HeadSignature[];
  /** The checkpoint that ends `head` (leaf `head.size - 1`), proven so by `verify`. */
  checkpoint: Checkpoint;
  /** The trusted head when the request was sent (undefined: there was none). */
  sent?: LogHead;
  /** Witness cosignature lines the answer carried next to the head (`cosignatures`), if any. */
  cosignatures?: unknown;
  /** The signer set `checkpoint` commits to (v2), as the answer carried it; checked against the hash. */
  signers?: SignerSet;
}

/** The verified trust a call ran under, returned with the head it accepted. */
export interface AcceptedHead {
  head: LogHead;
  policy: TrustPolicy;
  /** The trusted head before this acceptance (undefined on first contact). */
  previous?: LogHead;
  /** The consistency proof from `previous` to `head` (empty when they are equal). */
  consistency: Uint8Array[];
  /** Names of the configured witnesses whose cosignature on `head` verified (empty without a witness policy). */
  witnesses: string[];
  /** The signer set the head's v2 checkpoint commits to, verified (and adopted when the head was newer). */
  signerSet?: SignerSet;
}

function validateState(s: TrustedState, id: string): TrustedState {
  const ok =
    typeof s === 'object' &&
    s !== null &&
    Array.isArray(s.publicKeys) &&
    s.publicKeys.every((k) => typeof k === 'string' && /^[0-9a-f]{64}$/.test(k)) &&
    Number.isSafeInteger(s.quorum) &&
    s.quorum >= 1 &&
    s.quorum <= s.publicKeys.length &&
    (s.rotations === undefined ||
      (Array.isArray(s.rotations) &&
        s.rotations.every(
          (r) => typeof r === 'object' && r !== null && Number.isSafeInteger(r.logSize) && r.logSize >= 0 && /^[0-9a-f]{64}$/.test(String(r.oldPublicKey)) && /^[0-9a-f]{64}$/.test(String(r.newPublicKey)),
        ))) &&
    (s.head === undefined ||
      (Number.isSafeInteger(s.head.size) && s.head.size >= 0 && typeof s.head.root === 'string' && /^[0-9a-f]{64}$/.test(s.head.root))) &&
    (s.checkpoint === undefined ||
      (s.head !== undefined &&
        typeof s.checkpoint === 'object' &&
        s.checkpoint !== null &&
        s.checkpoint.index === s.head.size - 1 &&
        Number.isSafeInteger(s.checkpoint.seq) &&
        s.checkpoint.seq >= 0 &&
        /^[0-9a-f]{64}$/.test(String(s.checkpoint.masterRoot)) &&
        (s.checkpoint.prevCheckpointHash === undefined ? s.checkpoint.index === 0 : s.checkpoint.index > 0 && /^[0-9a-f]{64}$/.test(String(s.checkpoint.prevCheckpointHash))) &&
        (s.checkpoint.time === undefined) === (s.checkpoint.signerSetHash === undefined) &&
        (s.checkpoint.time === undefined || (Number.isSafeInteger(s.checkpoint.time) && s.checkpoint.time >= 0 && /^[0-9a-f]{64}$/.test(String(s.checkpoint.signerSetHash)))))) &&
    (s.signers === undefined || storedSignerSet(s.signers) !== undefined);
  if (!ok) verificationFailure(ClientReason.STATE_MISMATCH, `stored trusted state ${id} is malformed`);
  return s;
}

/** Holds and advances the trusted state of one identity. */
export class TrustKeeper {
  /** The id of this identity's state in the store. */
  readonly id: string;
  private state: TrustedState | undefined;
  private loaded = false;
  private queue: Promise<unknown> = Promise.resolve();
  /** The configuration with every public key as 32 bytes. */
  private readonly config: { publicKeys: Uint8Array[]; quorum: number } | { tofu: true };
  /** The witness policy, keys parsed. */
  private readonly witnessPolicy?: { origin: string; keys: VerifierKey[]; quorum: number };
  /** `size:root` → the witnesses that vouched for it, for the last {@link WITNESS_MEMO_SIZE} heads. */
  private readonly witnessMemo = new Map<string, string[]>();

  constructor(
    config: TrustConfig,
    private readonly store: StateStore,
    endpoints: readonly string[],
    private readonly warn: (message: string) => void,
  ) {
    if (typeof config !== 'object' || config === null) throw new TypeError('trust must be { publicKeys, quorum } or { tofu: true }');
    const witnesses = config.witnesses;
    if (!('tofu' in config)) {
      if (!Array.isArray(config.publicKeys) || config.publicKeys.length === 0) {
        throw new TypeError('trust.publicKeys must be a non-empty list of 32-byte Ed25519 keys (bytes, hex, base64url or base64)');
      }
      config = { publicKeys: config.publicKeys.map((k, i) => withIndex(i, () => parsePublicKey(k))), quorum: config.quorum };
      if (!Number.isInteger(config.quorum) || config.quorum < 1 || config.quorum > config.publicKeys.length) {
        throw new RangeError(`trust.quorum ${String(config.quorum)} out of range [1, ${config.publicKeys.length}]`);
      }
    } else if (config.tofu !== true) {
      throw new TypeError('trust must be { publicKeys, quorum } or { tofu: true }');
    }
    this.config = config as TrustKeeper['config'];
    this.id = trustId(config, endpoints);
    if (witnesses !== undefined) this.witnessPolicy = parseWitnessPolicy(witnesses);
  }

  /**
   * The configured witnesses that cosigned `head`: from the cosignature lines the answer carried
   * (`inline`) when they make the quorum, else from the head's checkpoint note, whose text must be
   * exactly this head under the policy's origin (`CHECKPOINT_MISMATCH`). At least `quorum` listed
   * witnesses' cosignatures over that text must verify (`QUORUM_NOT_MET`; a listed witness's bad
   * cosignature is `BAD_SIGNATURE`). Without a policy, `[]`.
   */
  async witnessesOf(head: LogHead, ctx: AcceptContext, inline?: unknown): Promise<string[]> {
    const p = this.witnessPolicy;
    if (!p) return [];
    const id = `${head.size}:${toHex(head.root)}`;
    const memo = this.witnessMemo.get(id);
    if (memo) return memo;
    const want = formatCheckpointNote({ origin: p.origin, size: head.size, root: head.root, extensions: [] });
    // 1. The cosignature lines the answer carried (no extra request), when they make the quorum.
    if (typeof inline === 'string' && inline.length > 0) {
      let sigs;
      try {
        sigs = parseSignatureLines(inline);
      } catch (err) {
        verificationFailure(Reason.MALFORMED_ENCODING, `cosignatures of head ${head.size}: ${(err as Error).message}`);
      }
      const r = verifyNote({ text: want, signatures: sigs }, p.keys);
      if (!r.ok && r.reason !== Reason.MISSING_SIGNATURE) check(r);
      if (r.ok && r.signers.length >= p.quorum) return this.rememberWitnesses(id, r.signers.map((k) => k.name));
    }
    // 2. The head's checkpoint note, which holds every cosignature the node has collected.
    if (!ctx.note) verificationFailure(Reason.QUORUM_NOT_MET, 'witness cosignatures are required but this client cannot fetch checkpoint notes');
    const raw = await ctx.note(head.size);
    let note;
    try {
      note = parseNote(raw);
    } catch (err) {
      verificationFailure(Reason.MALFORMED_ENCODING, `checkpoint note of size ${head.size}: ${(err as Error).message}`);
    }
    if (note.text !== want) verificationFailure(Reason.CHECKPOINT_MISMATCH, `the checkpoint note of size ${head.size} is not the signed head under origin ${JSON.stringify(p.origin)}`);
    const r = verifyNote(note, p.keys);
    const names = r.ok ? r.signers.map((k) => k.name) : [];
    if (!r.ok && r.reason !== Reason.MISSING_SIGNATURE) check(r);
    if (names.length < p.quorum) {
      verificationFailure(Reason.QUORUM_NOT_MET, `${names.length} witness cosignature(s) on head ${head.size} (${names.join(', ') || 'none'}), want ${p.quorum} of ${p.keys.map((k) => k.name).join(', ')}`);
    }
    return this.rememberWitnesses(id, names);
  }

  private rememberWitnesses(id: string, names: string[]): string[] {
    this.witnessMemo.set(id, names);
    if (this.witnessMemo.size > WITNESS_MEMO_SIZE) this.witnessMemo.delete(this.witnessMemo.keys().next().value as string);
    return names;
  }

  /** Runs `fn` after every earlier `exclusive` call has finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async current(): Promise<TrustedState | undefined> {
    if (!this.loaded) {
      let s: TrustedState | undefined;
      try {
        s = await this.store.load(this.id);
      } catch (err) {
        throw new VerificationError(ClientReason.STATE_MISMATCH, `cannot read trusted state: ${(err as Error).message}`, { cause: err });
      }
      if (s !== undefined) {
        validateState(s, this.id);
        if (!('tofu' in this.config)) {
          const want = applyRotations(this.config.publicKeys.map(toHex), s.rotations ?? [])?.sort().join(',');
          if ([...s.publicKeys].sort().join(',') !== want || s.quorum !== this.config.quorum) {
            verificationFailure(ClientReason.STATE_MISMATCH, `stored trusted state ${this.id} holds other keys or quorum`);
          }
        }
      }
      this.state = s;
      this.loaded = true;
    }
    return this.state;
  }

  /** The trusted head, or `undefined` before the first verified checkpoint. */
  async trustedHead(): Promise<LogHead | undefined> {
    const s = await this.current();
    return s?.head ? { size: s.head.size, root: fromHex(s.head.root) } : undefined;
  }

  /**
   * The checkpoint that ends the trusted head, when the client has verified it (state written by
   * older versions, or advanced by {@link accept}, holds only the head).
   */
  async trustedCheckpoint(): Promise<Checkpoint | undefined> {
    const c = (await this.current())?.checkpoint;
    if (!c) return undefined;
    const out: Checkpoint = { index: c.index, seq: c.seq, masterRoot: fromHex(c.masterRoot) };
    if (c.prevCheckpointHash !== undefined) out.prevCheckpointHash = fromHex(c.prevCheckpointHash);
    if (c.time !== undefined && c.signerSetHash !== undefined) {
      out.time = c.time;
      out.signerSetHash = fromHex(c.signerSetHash);
    }
    return out;
  }

  /** The signer set the client adopted (docs/proofs.md §5.6), or `undefined` while it trusts the configured keys. */
  async trustedSignerSet(): Promise<SignerSet | undefined> {
    const s = await this.current();
    return s?.signers ? storedSignerSet(s.signers) : undefined;
  }

  /**
   * The trust policy; under TOFU before any key is pinned, the policy that pins the first
   * signature's key (persisted once that head verifies).
   */
  async policy(signatures: readonly HeadSignature[]): Promise<TrustPolicy> {
    const s = await this.current();
    const set = s?.signers ? storedSignerSet(s.signers) : undefined;
    if (set) return signerSetPolicy(set);
    if (!('tofu' in this.config) && !s?.rotations?.length) return { publicKeys: this.config.publicKeys, quorum: this.config.quorum };
    if (s) return { publicKeys: s.publicKeys.map(fromHex), quorum: s.quorum };
    const first = Array.isArray(signatures) ? signatures[0] : undefined;
    if (!first || !(first.publicKey instanceof Uint8Array) || first.publicKey.length !== 32) {
      verificationFailure(Reason.MISSING_SIGNATURE, 'trust on first use: the first checkpoint carries no signature to pin');
    }
    return { publicKeys: [first.publicKey], quorum: 1 };
  }

  /**
   * Verifies `head` and its signatures against the policy and the trusted head (fetching a
   * consistency proof when it is newer) and advances the trusted state. Throws
   * {@link VerificationError} and leaves the state as it was on any failure. Call inside
   * {@link exclusive}.
   */
  async accept(head: LogHead, signatures: HeadSignature[], ctx: AcceptContext): Promise<AcceptedHead> {
    return this.acceptWith(head, signatures, ctx, (_policy, trusted, consistency) => {
      if (trusted) check(verifyHeadExtends(trusted, head, consistency));
    });
  }

  /**
   * Like {@link accept}, for a head that comes with something else to verify (a proof's
   * certificate): after the signatures and the rollback/fork checks,
   * `verify(policy, trustedHead, consistency)` must check the rest and throw on failure.
   * Advances the head only; the trusted checkpoint is dropped. Call inside {@link exclusive}.
   */
  async acceptWith(
    head: LogHead,
    signatures: HeadSignature[],
    ctx: AcceptContext,
    verify: (policy: TrustPolicy, trusted: LogHead | undefined, consistency: Uint8Array[]) => void,
  ): Promise<AcceptedHead> {
    const policy = await this.signedPolicy(head, signatures, ctx);
    const witnesses = await this.witnessesOf(head, ctx);
    const trusted = await this.trustedHead();
    const consistency = await consistencyFor(trusted, head, ctx);
    verify(policy, trusted, consistency);
    if (!trusted || head.size > trusted.size) await this.commit(head, policy, undefined);
    return { head, policy, previous: trusted, consistency, witnesses };
  }

  /**
   * Accepts the answer of one verified call (the module comment's steps 1-5): runs exclusively
   * (after every earlier acceptance of this keeper), so each check is against the newest trusted
   * state. `verify(policy)` checks what the answer carries (a proof, an inclusion path) and must
   * prove `answer.checkpoint` is leaf `head.size - 1` of `answer.head`. Throws
   * {@link VerificationError} and leaves the trusted state as it was on any failure.
   */
  acceptAnswer(answer: Answer, ctx: AcceptContext, verify: (policy: TrustPolicy) => void | Promise<void>): Promise<AcceptedHead> {
    return this.exclusive(async () => {
      const { head, checkpoint, sent } = answer;
      const { policy, adopt } = await this.certifiedPolicy(answer, ctx);
      if (typeof checkpoint?.index !== 'number' || checkpoint.index !== head.size - 1) {
        verificationFailure(Reason.CHECKPOINT_MISMATCH, `checkpoint ${String(checkpoint?.index)} is not the last of a log of size ${head.size}`);
      }
      await verify(policy);
      const witnesses = await this.witnessesOf(head, ctx, answer.cosignatures);
      // 2. Fresh enough for this request.
      if (sent && head.size < sent.size) verificationFailure(Reason.ROLLBACK, `head size ${head.size} is below the trusted size ${sent.size} when the request was sent`);
      // 3. Consistent with the current trusted head.
      const trusted = await this.trustedHead();
      const tcp = await this.trustedCheckpoint();
      let consistency: Uint8Array[] = [];
      if (trusted) {
        if (head.size > trusted.size) {
          consistency = trusted.size === 0 ? [] : await ctx.consistency(trusted.size, head.size);
          check(verifyHeadExtends(trusted, head, consistency));
        } else if (head.size === trusted.size) {
          if (!equalBytes(head.root, trusted.root)) verificationFailure(Reason.FORK, `head root differs from the trusted root at size ${head.size}`);
        } else {
          const r = verifyHeadExtends(head, trusted, await ctx.consistency(head.size, trusted.size));
          if (!r.ok) verificationFailure(Reason.FORK, `head ${head.size} is not a prefix of the trusted head ${trusted.size}: ${r.message}`);
        }
      }
      // 4. The checkpoint chain (no v2 → v1 downgrade, times never decrease).
      if (tcp && checkpoint.index > tcp.index && checkpointVersion(tcp) === 2) {
        if (checkpointVersion(checkpoint) !== 2) verificationFailure(Reason.CHAIN_MISMATCH, `checkpoint ${checkpoint.index} is v1 after the trusted v2 checkpoint ${tcp.index}`);
        if (checkpoint.time! < tcp.time!) verificationFailure(Reason.CHAIN_MISMATCH, `checkpoint ${checkpoint.index} time ${checkpoint.time} is below the trusted checkpoint's ${tcp.time}`);
      }
      if (tcp) {
        if (checkpoint.index > tcp.index && checkpoint.seq < tcp.seq) {
          verificationFailure(Reason.CHAIN_MISMATCH, `checkpoint ${checkpoint.index} seq ${checkpoint.seq} is below the trusted checkpoint ${tcp.index} seq ${tcp.seq}`);
        }
        if (checkpoint.index < tcp.index && checkpoint.seq > tcp.seq) {
          verificationFailure(Reason.CHAIN_MISMATCH, `older checkpoint ${checkpoint.index} seq ${checkpoint.seq} is above the trusted checkpoint ${tcp.index} seq ${tcp.seq}`);
        }
      }
      const learns = !trusted || head.size > trusted.size || (head.size === trusted.size && !tcp);
      if (learns) await checkChain(checkpoint, tcp, head, policy, ctx);
      // 5. Advance, never back.
      if (learns) await this.commit(head, policy, checkpoint, adopt);
      const out: AcceptedHead = { head, policy, consistency, witnesses };
      if (trusted) out.previous = trusted;
      if (adopt) out.signerSet = adopt;
      return out;
    });
  }

  /**
   * The policy under which the answer's head is certified, and the signer set to adopt with it.
   * For a v2 checkpoint that ends the head: {@link verifyCertifiedHead} under the trusted policy and
   * the answer's `signers`; when the trusted set's quorum did not sign (`UNTRUSTED_KEY`,
   * `QUORUM_NOT_MET`), {@link followSignerSets} finds the set trusted just before the head's, and
   * failing that the node's key rotations are followed. Otherwise (v1) {@link signedPolicy}.
   */
  private async certifiedPolicy(answer: Answer, ctx: AcceptContext): Promise<{ policy: TrustPolicy; adopt?: SignerSet }> {
    const { head, signatures, checkpoint, signers } = answer;
    const wellFormed = checkCheckpoint(checkpoint) === undefined && typeof head?.size === 'number' && checkpoint.index === head.size - 1;
    if (!wellFormed || checkpoint.signerSetHash === undefined) {
      if (wellFormed && signers !== undefined) verificationFailure(Reason.SIGNER_SET_MISMATCH, `checkpoint ${checkpoint.index} is v1 and commits to no signer set, but the answer carries one`);
      return { policy: await this.signedPolicy(head, signatures, ctx) };
    }
    const hash = checkpoint.signerSetHash;
    const policy = await this.policy(signatures);
    const r = verifyCertifiedHead(head, signatures, policy, signers, hash);
    if (r.ok) return { policy, adopt: r.signerSet };
    const byQuorum = (reason: string) => reason === Reason.UNTRUSTED_KEY || reason === Reason.QUORUM_NOT_MET;
    if (!byQuorum(r.reason) || (!ctx.checkpointAt && !ctx.signerSetChanges)) check(r);
    let parent: TrustPolicy;
    let again: ReturnType<typeof verifyCertifiedHead>;
    try {
      parent = await this.followSignerSets(answer, policy, ctx);
      again = verifyCertifiedHead(head, signatures, parent, signers, hash);
      if (!again.ok) throw VerificationError.from(again);
    } catch (err) {
      const s = await this.current();
      if (!(err instanceof VerificationError) || !byQuorum(err.reason) || !ctx.keyRotations || (s === undefined && 'tofu' in this.config)) throw err;
      // No chain of signer sets leads to the head: a rotation of the node key may.
      await this.followRotations(head, ctx, err);
      parent = await this.policy(signatures);
      again = verifyCertifiedHead(head, signatures, parent, signers, hash);
    }
    if (!again.ok) throw VerificationError.from(again);
    return { policy: parent, adopt: again.signerSet };
  }

  /**
   * The trust policy of the signer set in force just before the answer's checkpoint, reached from
   * the trusted set through every signer-set change in between (docs/proofs.md §5.6): from a
   * trusted head at most {@link BACK_WALK_CHECKPOINTS} checkpoints back, or when the server does
   * not list set changes, by {@link walkBackSignerSets}; otherwise by {@link listSignerSets}.
   * Nothing is persisted here: the caller adopts the answer's set with its head. Throws
   * {@link VerificationError}.
   */
  private async followSignerSets(answer: Answer, trusted: TrustPolicy, ctx: AcceptContext): Promise<TrustPolicy> {
    const s = await this.current();
    const floor = s?.head ? s.head.size - 1 : -1;
    const stored = s?.signers ? storedSignerSet(s.signers) : undefined;
    const trustedHash = stored ? signerSetHash(stored) : undefined;
    if (ctx.signerSetChanges && answer.checkpoint.index - floor > BACK_WALK_CHECKPOINTS) {
      const listed = await this.listSignerSets(answer, startSetChain(trusted, trustedHash, floor + 1), ctx);
      if (listed) return listed;
    }
    if (!ctx.checkpointAt) verificationFailure(Reason.QUORUM_NOT_MET, `head ${answer.head.size} is not signed by a quorum of the trusted set, and the server lists no set changes`);
    return this.walkBackSignerSets(answer, trusted, trustedHash, floor, ctx);
  }

  /**
   * Follows the set changes the server lists (`ctx.signerSetChanges`, page by page from the
   * checkpoint after the trusted head) forward with {@link verifySetChange}: each change after the
   * last, certified by a quorum of the set trusted so far and of its own, its head a prefix of the
   * answer's, its predecessor committing to the set trusted so far; at most
   * {@link MAX_SET_CHANGES} changes (`QUORUM_NOT_MET` beyond); then {@link finishSetChain}: the
   * answer's checkpoint commits to the set reached (or was listed). `undefined` when the server
   * does not list set changes (its first answer is `undefined`).
   */
  private async listSignerSets(answer: Answer, start: SetChainState, ctx: AcceptContext): Promise<TrustPolicy | undefined> {
    const { head: anchor, checkpoint: top } = answer;
    let state = start;
    for (let from = start.last + 1, pages = 0; ; pages++) {
      const page = await ctx.signerSetChanges!(from, anchor.size);
      if (page === undefined) {
        if (pages === 0) return undefined;
        verificationFailure(ClientReason.RESPONSE_MISMATCH, `the server stopped listing signer-set changes at checkpoint ${from}`);
      }
      if (!Array.isArray(page.changes)) verificationFailure(ClientReason.RESPONSE_MISMATCH, 'a page of signer-set changes holds no list');
      for (const change of page.changes) {
        check(checkSetChainBound(state));
        const r = verifySetChange(state, change, anchor, top);
        if (!r.ok) throw VerificationError.from(r);
        state = r.state;
      }
      if (page.next === undefined) break;
      if (page.changes.length === 0 || page.next !== state.last + 1) {
        verificationFailure(ClientReason.RESPONSE_MISMATCH, `a page of signer-set changes from checkpoint ${from} ends at ${state.last} but says the next starts at ${String(page.next)}`);
      }
      from = page.next;
    }
    const end = finishSetChain(state, top);
    if (!end.ok) throw VerificationError.from(end);
    return end.policy;
  }

  /**
   * The trust policy of the signer set in force just before the answer's checkpoint, found by
   * walking back one checkpoint at a time (docs/proofs.md §5.6):
   * 1. back from the answer's checkpoint, each predecessor fetched (`ctx.checkpointAt`) and
   *    authenticated by its `prevCheckpointHash` link (`CHAIN_MISMATCH`), until a checkpoint that
   *    commits to the trusted set (by hash, or — while the client trusts configured keys — a set
   *    change whose set has exactly those keys and quorum), a v1 checkpoint, or the trusted head;
   *    at most {@link MAX_SIGNER_SET_WALK} checkpoints (`QUORUM_NOT_MET` beyond);
   * 2. forward, at each checkpoint whose set hash differs from the set trusted so far, its own
   *    certificate (`setChange`: the head ending with it) must be signed by a quorum of that set
   *    and of the new one ({@link verifyCertifiedHead}), include the checkpoint, and be a prefix of
   *    the answer's head (`FORK`); the new set is trusted from there on.
   * Throws {@link VerificationError}.
   */
  private async walkBackSignerSets(answer: Answer, trusted: TrustPolicy, storedHash: Uint8Array | undefined, floor: number, ctx: AcceptContext): Promise<TrustPolicy> {
    const { head: anchor, checkpoint: top } = answer;
    let trustedHash = storedHash;
    const chain: Checkpoint[] = [];
    const certs = new Map<number, IncludedCheckpoint>();
    for (let next = top; next.index - 1 > floor; ) {
      if (top.index - next.index >= MAX_SIGNER_SET_WALK) {
        verificationFailure(Reason.QUORUM_NOT_MET, `head ${anchor.size} is not signed by a quorum of the trusted set, and no set change within ${MAX_SIGNER_SET_WALK} checkpoints leads to its set`);
      }
      const c = await ctx.checkpointAt!(next.index - 1);
      check(verifyCheckpointLink(c.checkpoint, next));
      const cp = c.checkpoint;
      chain.unshift(cp);
      if (c.setChange) certs.set(cp.index, c.setChange);
      if (cp.signerSetHash === undefined) break;
      if (trustedHash && equalBytes(cp.signerSetHash, trustedHash)) break;
      const set = c.setChange?.signers;
      if (!trustedHash && set && samePolicy(signerSetPolicy(set), trusted) && equalBytes(signerSetHash(set), cp.signerSetHash)) {
        trustedHash = cp.signerSetHash;
        break;
      }
      next = cp;
    }
    let policy = trusted;
    let hash = trustedHash;
    for (const c of chain) {
      if (c.signerSetHash === undefined || (hash && equalBytes(hash, c.signerSetHash))) continue;
      const own = certs.get(c.index);
      if (!own?.signers) {
        verificationFailure(Reason.QUORUM_NOT_MET, `the signer set changes at checkpoint ${c.index}, but the server sent no certificate of that checkpoint (setChange)`);
      }
      if (!sameCheckpoint(own.checkpoint, c) || own.head?.size !== c.index + 1) {
        verificationFailure(Reason.CHECKPOINT_MISMATCH, `the certificate of the signer set change at checkpoint ${c.index} is not for that checkpoint's head`);
      }
      check(verifyCertifiedHead(own.head, own.signatures, policy, own.signers, c.signerSetHash));
      check(verifyCheckpointInclusion(c, own.inclusion, own.head));
      const r = verifyHeadExtends(own.head, anchor, await ctx.consistency(own.head.size, anchor.size));
      if (!r.ok) verificationFailure(Reason.FORK, `the head of the signer set change at checkpoint ${c.index} is not a prefix of head ${anchor.size}: ${r.message}`);
      policy = signerSetPolicy(own.signers);
      hash = c.signerSetHash;
    }
    return policy;
  }

  /**
   * The policy under which `signatures` sign `head` (`verifyCheckpoint`). When that fails for want
   * of a trusted key (`UNTRUSTED_KEY`, `QUORUM_NOT_MET`), follows the node's key rotations once
   * ({@link followRotations}) and verifies again under the new policy.
   */
  private async signedPolicy(head: LogHead, signatures: HeadSignature[], ctx: AcceptContext): Promise<TrustPolicy> {
    const policy = await this.policy(signatures);
    const r = verifyCheckpoint(head, signatures, policy);
    if (r.ok) return policy;
    const s = await this.current();
    const followable = (r.reason === Reason.UNTRUSTED_KEY || r.reason === Reason.QUORUM_NOT_MET) && ctx.keyRotations !== undefined && (s !== undefined || !('tofu' in this.config));
    if (!followable) check(r);
    await this.followRotations(head, ctx, r);
    const next = await this.policy(signatures);
    check(verifyCheckpoint(head, signatures, next));
    return next;
  }

  /**
   * Follows the node's key rotations (`ctx.keyRotations`, oldest first) from the trusted keys, for
   * a head (`head`) the trusted keys do not sign (`failure`). A statement whose `oldPublicKey` is a
   * trusted key is followed only when both signatures verify, the old key's is present (else the
   * key was lost and the new key must be confirmed out of band), its `logSize` is at least the
   * trusted head's size and the previous followed rotation of that key (the old key signed every
   * head up to `logSize`, so a rotation below the trusted head contradicts it), and the new key is
   * not already trusted (a rotation replaces exactly one member; the quorum stays). `head` must be
   * larger than the last followed `logSize`. Statements from keys the client does not trust are
   * ignored. On success the new keys and the followed rotations are persisted (the trusted head
   * stays, so the head must still extend it) with a warning; on any refusal
   * (`KEY_ROTATION_REFUSED`), or when no rotation leads away from a trusted key or the rotations
   * cannot be fetched (`failure`'s reason), nothing changes. Call inside {@link exclusive}.
   */
  private async followRotations(head: LogHead, ctx: AcceptContext, failure: { reason: Reason; message: string }): Promise<void> {
    const why = failure.message;
    const s = await this.current();
    const keys = s ? [...s.publicKeys] : (this.config as { publicKeys: Uint8Array[] }).publicKeys.map(toHex);
    const quorum = s ? s.quorum : (this.config as { quorum: number }).quorum;
    const trustedSize = s?.head?.size ?? 0;
    let rotations: KeyRotation[] = [];
    try {
      if (ctx.keyRotations) rotations = await ctx.keyRotations();
    } catch (err) {
      // A node that predates rotations (404), or one that cannot answer: the head stays refused.
      verificationFailure(failure.reason, `${why}; the node's key rotations could not be read: ${(err as Error).message}`);
    }
    const floors = keys.map(() => trustedSize);
    const followed: NonNullable<TrustedState['rotations']> = [];
    const refuse = (m: string): never => verificationFailure(ClientReason.KEY_ROTATION_REFUSED, `${why}; ${m}`);
    for (const r of rotations.slice(0, MAX_KEY_ROTATIONS)) {
      const oldKey = toHex(r.oldPublicKey);
      const at = keys.indexOf(oldKey);
      if (at < 0) continue;
      const newKey = toHex(r.newPublicKey);
      const what = `the rotation of trusted key ${oldKey.slice(0, 16)} to ${newKey.slice(0, 16)} at log size ${r.logSize}`;
      if (!verifyKeyRotation(r)) refuse(`${what} does not verify`);
      if (r.oldSignature === undefined) {
        refuse(`${what} is not signed by the old key (the key was lost): confirm the new key ${newKey} out of band and configure it in trust.publicKeys`);
      }
      if (r.logSize < floors[at]!) refuse(`${what} is below the trusted log size ${floors[at]}: the old key signed that head after it was replaced`);
      if (keys.includes(newKey)) refuse(`${what} names a key that is already trusted`);
      keys[at] = newKey;
      floors[at] = r.logSize;
      followed.push({ logSize: r.logSize, oldPublicKey: oldKey, newPublicKey: newKey });
    }
    if (followed.length === 0) verificationFailure(failure.reason, `${why}; no key rotation starts at a trusted key`);
    const last = Math.max(...followed.map((r) => r.logSize));
    if (head.size <= last) refuse(`head ${head.size} is signed by a new key but the old key signed heads up to the rotation at log size ${last}`);
    const next: TrustedState = s ? { ...s } : { publicKeys: keys, quorum };
    next.publicKeys = keys;
    // The rotated keys replace the adopted signer set: trust is the configured keys, rotated.
    delete next.signers;
    next.rotations = [...(s?.rotations ?? []), ...followed];
    next.updatedAt = new Date().toISOString();
    await this.store.save(this.id, next);
    this.state = next;
    for (const r of followed) {
      this.warn(
        `proofkv: node key ${r.oldPublicKey} was rotated to ${r.newPublicKey} at log size ${r.logSize} (signed by both keys); ` +
          'now trusting the new key. Update trust.publicKeys when you next configure this client.',
      );
    }
  }

  /**
   * Persists `head` (and the checkpoint that ends it, when known) as trusted, with the signer set
   * `adopt` its v2 checkpoint commits to (verified by the caller); pins the TOFU key on first contact.
   */
  private async commit(head: LogHead, policy: TrustPolicy, checkpoint: Checkpoint | undefined, adopt?: SignerSet): Promise<void> {
    const s = await this.current();
    const isNew = !s;
    const next: TrustedState = {
      publicKeys: s ? s.publicKeys : policy.publicKeys.map(toHex),
      quorum: s ? s.quorum : policy.quorum,
      head: { size: head.size, root: toHex(head.root) },
      updatedAt: new Date().toISOString(),
    };
    if (s?.rotations) next.rotations = s.rotations;
    if (adopt) next.signers = { quorum: adopt.quorum, members: adopt.members.map((m) => ({ id: m.id, publicKey: toHex(m.publicKey) })) };
    else if (s?.signers) next.signers = s.signers;
    if (checkpoint) {
      next.checkpoint = { index: checkpoint.index, seq: checkpoint.seq, masterRoot: toHex(checkpoint.masterRoot) };
      if (checkpoint.prevCheckpointHash) next.checkpoint.prevCheckpointHash = toHex(checkpoint.prevCheckpointHash);
      if (checkpoint.time !== undefined && checkpoint.signerSetHash !== undefined) {
        next.checkpoint.time = checkpoint.time;
        next.checkpoint.signerSetHash = toHex(checkpoint.signerSetHash);
      }
    }
    if ('tofu' in this.config) next.tofu = true;
    if (isNew && 'tofu' in this.config) {
      this.warn(
        `proofkv: trusting node key ${next.publicKeys[0]} on first use (TOFU). ` +
          'Compare it with the server\'s `GET /v1/status` publicKey out of band, or configure trust.publicKeys.',
      );
    }
    await this.store.save(this.id, next);
    this.state = next;
  }
}

/** Runs `parse`, naming `trust.publicKeys[i]` in its `TypeError`. */
function withIndex<T>(i: number, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new TypeError(`trust.publicKeys[${i}]: ${(err as Error).message}`);
  }
}

/** Key rotation statements a {@link TrustKeeper} reads per follow (a node rotates rarely). */
export const MAX_KEY_ROTATIONS = 1024;

/** `keys` (hex) with each followed rotation's old key replaced by its new one; `undefined` when one does not apply. */
function applyRotations(keys: string[], rotations: NonNullable<TrustedState['rotations']>): string[] | undefined {
  const out = [...keys];
  for (const r of rotations) {
    const at = out.indexOf(r.oldPublicKey);
    if (at < 0 || out.includes(r.newPublicKey)) return undefined;
    out[at] = r.newPublicKey;
  }
  return out;
}

/** Heads whose witness cosigners a {@link TrustKeeper} remembers. */
export const WITNESS_MEMO_SIZE = 64;

/** Parses a {@link WitnessPolicy}; throws `TypeError`/`RangeError` naming the problem. */
function parseWitnessPolicy(w: WitnessPolicy): { origin: string; keys: VerifierKey[]; quorum: number } {
  if (typeof w !== 'object' || w === null || typeof w.origin !== 'string' || w.origin === '' || !Array.isArray(w.keys) || w.keys.length === 0) {
    throw new TypeError('trust.witnesses must be { origin, keys: [cosignature verifier keys], quorum }');
  }
  const keys = w.keys.map((k, i) => {
    let v: VerifierKey;
    try {
      v = parseVerifierKey(String(k).trim());
    } catch (err) {
      throw new TypeError(`trust.witnesses.keys[${i}]: ${(err as Error).message}`);
    }
    if (v.type !== KEY_TYPE_COSIGNATURE) throw new TypeError(`trust.witnesses.keys[${i}] (${v.name}) is not a cosignature/v1 key`);
    return v;
  });
  if (new Set(keys.map((k) => `${k.name}+${k.keyHash}`)).size !== keys.length) throw new TypeError('trust.witnesses.keys lists a witness twice');
  if (!Number.isInteger(w.quorum) || w.quorum < 1 || w.quorum > keys.length) throw new RangeError(`trust.witnesses.quorum ${String(w.quorum)} out of range [1, ${keys.length}]`);
  return { origin: w.origin, keys, quorum: w.quorum };
}

/** Checkpoints a {@link TrustKeeper} walks back at most to find the signer-set changes between its trusted set and a head's. */
export const MAX_SIGNER_SET_WALK = 1024;

/**
 * A head at most this many checkpoints after the trusted head has its signer-set changes found by
 * walking back (one request per checkpoint, and every checkpoint seen); farther, by the server's
 * list of changes (one request per page of up to 64 changes).
 */
export const BACK_WALK_CHECKPOINTS = 4;

/** A stored (hex) signer set as bytes, or `undefined` when it is not a valid set. */
function storedSignerSet(v: unknown): SignerSet | undefined {
  const o = v as NonNullable<TrustedState['signers']>;
  if (typeof o !== 'object' || o === null || !Array.isArray(o.members)) return undefined;
  if (!o.members.every((m) => typeof m === 'object' && m !== null && /^[0-9a-f]{64}$/.test(String(m.publicKey)))) return undefined;
  const set: SignerSet = { quorum: o.quorum, members: o.members.map((m) => ({ id: m.id, publicKey: fromHex(m.publicKey) })) };
  return checkSignerSet(set) ? undefined : set;
}

/** True when two checkpoints are well formed and have the same message (so the same version and fields). */
export function sameCheckpoint(a: Checkpoint, b: Checkpoint): boolean {
  if (checkCheckpoint(a) || checkCheckpoint(b)) return false;
  return equalBytes(checkpointBytes(a), checkpointBytes(b));
}

/** Links of the checkpoint chain checked per accepted head, walking back to the trusted checkpoint. */
export const MAX_CHAIN_LINKS = 64;

/**
 * Checks the links from the trusted checkpoint `tcp` (leaf `tcp.index`) up to `c` (the last leaf
 * of `head`): each predecessor is fetched with `ctx.checkpointAt`, proven a leaf of `head`, and
 * `verifyCheckpointLink(prev, next)` must hold, down to `tcp` or for {@link MAX_CHAIN_LINKS}
 * links; with no `tcp`, only the newest link. Without `ctx.checkpointAt` only a direct link from
 * `tcp` is checked.
 */
async function checkChain(c: Checkpoint, tcp: Checkpoint | undefined, head: LogHead, policy: TrustPolicy, ctx: AcceptContext): Promise<void> {
  let next = c;
  const limit = tcp ? MAX_CHAIN_LINKS : 1;
  for (let links = 0; links < limit && next.index > 0; links++) {
    if (tcp && next.index <= tcp.index) return;
    if (tcp && next.index === tcp.index + 1) {
      check(verifyCheckpointLink(tcp, next));
      return;
    }
    if (!ctx.checkpointAt) return;
    const prev = await ctx.checkpointAt(next.index - 1);
    await proveLeaf(prev, head, policy, ctx);
    check(verifyCheckpointLink(prev.checkpoint, next));
    next = prev.checkpoint;
  }
}

/**
 * Proves that `c.checkpoint` is leaf `c.checkpoint.index` of the log whose head is `anchor`:
 * `c.head` is signed under `policy` and is `anchor`, extends it, or is its prefix (RFC 9162
 * consistency), and `c.inclusion` puts the checkpoint in `c.head`.
 */
export async function proveLeaf(c: IncludedCheckpoint, anchor: LogHead, policy: TrustPolicy, ctx: AcceptContext): Promise<void> {
  // The head may carry signatures of members outside `policy` (a set change): skipped, never counted.
  check(verifyCheckpoint(c.head, c.signatures, { ...policy, allowUntrusted: true }));
  const index = c.checkpoint.index;
  if (index >= anchor.size || index >= c.head.size) {
    verificationFailure(Reason.INDEX_OUT_OF_RANGE, `checkpoint ${index} is not in logs of sizes ${anchor.size} and ${c.head.size}`);
  }
  if (c.head.size === anchor.size) {
    if (!equalBytes(c.head.root, anchor.root)) verificationFailure(Reason.FORK, `two roots at log size ${anchor.size}`);
  } else if (c.head.size > anchor.size) {
    check(verifyHeadExtends(anchor, c.head, await ctx.consistency(anchor.size, c.head.size)));
  } else {
    const r = verifyHeadExtends(c.head, anchor, await ctx.consistency(c.head.size, anchor.size));
    if (!r.ok) verificationFailure(Reason.FORK, `head ${c.head.size} is not a prefix of head ${anchor.size}: ${r.message}`);
  }
  check(verifyCheckpointInclusion(c.checkpoint, c.inclusion, c.head));
}

/** Throws the failure of a verifier result. */
export function check<T extends object>(r: Verified<T>): void {
  if (!r.ok) throw VerificationError.from(r);
}

/** The consistency proof from `trusted` to `head`, fetched only when `head` is larger. */
async function consistencyFor(trusted: LogHead | undefined, head: LogHead, ctx: AcceptContext): Promise<Uint8Array[]> {
  if (!trusted || !head || typeof head.size !== 'number') return [];
  if (head.size < trusted.size) verificationFailure(Reason.ROLLBACK, `head size ${head.size} is below trusted size ${trusted.size}`);
  if (head.size === trusted.size) {
    if (!(head.root instanceof Uint8Array) || !equalBytes(head.root, trusted.root)) {
      verificationFailure(Reason.FORK, `head root differs from the trusted root at size ${head.size}`);
    }
    return [];
  }
  if (trusted.size === 0) return [];
  return ctx.consistency(trusted.size, head.size);
}
