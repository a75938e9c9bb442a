/**
 * The client's trust: which keys sign checkpoints, and the newest log head it has verified.
 * Isomorphic: no `node:` imports.
 *
 * Every signed head the client meets — from `GET /v1/checkpoints/…` or inside a proof's
 * certificate — goes through {@link TrustKeeper.accept}, one at a time: quorum signatures under the
 * trust policy, then, against the trusted head, `ROLLBACK` (smaller), `FORK` (same size, other
 * root, or a consistency proof that does not connect them) or an RFC 9162 consistency proof
 * fetched from the server; only then does the trusted head advance and persist. Serializing the
 * checks means each new head is proven to extend the newest trusted one, never an older one.
 *
 * Trust on first use pins the first key that signs a head the client sees (with a warning), and
 * persists it under an id derived from the endpoints, like SSH's known_hosts.
 * @module
 */
import { equalBytes, fromHex, toHex } from '../proofs/bytes.js';
import { verifyCheckpoint, verifyHeadExtends, type HeadSignature, type LogHead, type TrustPolicy } from '../proofs/checkpoint.js';
import { Reason, VerificationError, type Verified } from '../proofs/errors.js';
import { ClientReason, verificationFailure } from './errors.js';
import { parsePublicKey } from './keys.js';
import type { StateStore, TrustedState } from './state.js';

/**
 * What the client trusts: a set of Ed25519 public keys and a quorum, or — explicitly, with a
 * warning — the first key it sees (TOFU). A key is 32 bytes or a string in a form the node prints
 * (hex, base64url, or base64; see {@link parsePublicKey}).
 */
export type TrustConfig = { publicKeys: Array<Uint8Array | string>; quorum: number } | { tofu: true };

/** The id under which trusted state of `config` is stored. */
export function trustId(config: TrustConfig, endpoints: readonly string[]): string {
  if ('tofu' in config) return `tofu:${[...endpoints].sort().join(',')}`;
  return `keys:${config.publicKeys.map((k) => toHex(parsePublicKey(k))).sort().join(',')}:q${config.quorum}`;
}

/** What {@link TrustKeeper.accept} needs besides the head: how to prove extension. */
export interface AcceptContext {
  /** Fetches an RFC 9162 consistency proof between two log sizes. */
  consistency(from: number, to: number): Promise<Uint8Array[]>;
}

/** The verified trust a call ran under, returned with the head it accepted. */
export interface AcceptedHead {
  head: LogHead;
  policy: TrustPolicy;
  /** The trusted head before this acceptance (undefined on first contact). */
  previous?: LogHead;
  /** The consistency proof from `previous` to `head` (empty when they are equal). */
  consistency: Uint8Array[];
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
    (s.head === undefined ||
      (Number.isSafeInteger(s.head.size) && s.head.size >= 0 && typeof s.head.root === 'string' && /^[0-9a-f]{64}$/.test(s.head.root)));
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

  constructor(
    config: TrustConfig,
    private readonly store: StateStore,
    endpoints: readonly string[],
    private readonly warn: (message: string) => void,
  ) {
    if (typeof config !== 'object' || config === null) throw new TypeError('trust must be { publicKeys, quorum } or { tofu: true }');
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
          const want = this.config.publicKeys.map(toHex).sort().join(',');
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
   * The trust policy; under TOFU before any key is pinned, the policy that pins the first
   * signature's key (persisted once that head verifies).
   */
  async policy(signatures: readonly HeadSignature[]): Promise<TrustPolicy> {
    if (!('tofu' in this.config)) return { publicKeys: this.config.publicKeys, quorum: this.config.quorum };
    const s = await this.current();
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
   */
  async acceptWith(
    head: LogHead,
    signatures: HeadSignature[],
    ctx: AcceptContext,
    verify: (policy: TrustPolicy, trusted: LogHead | undefined, consistency: Uint8Array[]) => void,
  ): Promise<AcceptedHead> {
    const policy = await this.policy(signatures);
    check(verifyCheckpoint(head, signatures, policy));
    const trusted = await this.trustedHead();
    const consistency = await consistencyFor(trusted, head, ctx);
    verify(policy, trusted, consistency);
    await this.commit(head, policy, trusted);
    return { head, policy, previous: trusted, consistency };
  }

  /** Persists `head` as trusted when it is newer; pins the TOFU key on first contact. */
  private async commit(head: LogHead, policy: TrustPolicy, previous: LogHead | undefined): Promise<void> {
    const s = await this.current();
    const isNew = !s;
    if (s && previous && head.size === previous.size && equalBytes(head.root, previous.root)) return;
    const next: TrustedState = {
      publicKeys: s ? s.publicKeys : policy.publicKeys.map(toHex),
      quorum: s ? s.quorum : policy.quorum,
      head: { size: head.size, root: toHex(head.root) },
      updatedAt: new Date().toISOString(),
    };
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
