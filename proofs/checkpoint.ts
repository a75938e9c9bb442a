/**
 * Checkpoints, the checkpoint log's signed head, and quorum verification of Ed25519 signatures.
 * Isomorphic: no `node:` imports.
 *
 * ```
 * checkpoint message v2 (90 or 122 bytes), the data of log leaf `index`:
 *   0      1           9          17              49         57                 89        90           122
 *   +------+-----------+----------+---------------+----------+------------------+---------+------------+
 *   | 0x18 | u64 index | u64 seq  | masterRoot[32]| u64 time | signerSetHash[32]| hasPrev | prev[32]   |
 *   +------+-----------+----------+---------------+----------+------------------+---------+------------+
 * checkpoint message v1 (50 or 82 bytes; logs written before v2, still read and verified):
 *   | 0x18 | u64 index | u64 seq  | masterRoot[32]| hasPrev | prev[32] |
 *   hasPrev = 0 exactly when index = 0 (prev only if hasPrev = 1). The four lengths are distinct,
 *   so the length alone tells the version; the leaf hash commits to the bytes, so a checkpoint
 *   cannot be presented as the other version.
 * checkpointHash(c) = H(message)                 what the next checkpoint's prevCheckpointHash holds
 * log leaf of c     = H(0x00 || message)         RFC 9162 §2.1.1 leaf hash of the message
 *
 * signed log-head message (60 bytes), signed with Ed25519 (RFC 8032, pure, strict verification):
 *   0                        20          28
 *   +------------------------+-----------+-----------+
 *   | "proofkv-log-head-v1\n" | u64 size  | root[32]  |
 *   +------------------------+-----------+-----------+
 * ```
 * Integers are big-endian.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { equalBytes, readU64BE, toBytes, toHex, writeU64BE } from './bytes.js';
import { Domain, HASH_LEN, Hasher, defaultHasher } from './hash.js';
import { DecodeError, OK, Reason, fail, type Verified, type VerifyFailure } from './errors.js';
import { emptyLogRoot, logLeafHash, verifyConsistency, verifyInclusion } from './log.js';
import { _checkHash, _checkUint, _describe, _isUint } from './tree.js';

/** A checkpoint: the engine's state at a sequence number, committed by its MasterRoot. */
export interface Checkpoint {
  /** Position in the checkpoint log (leaf index), from 0. */
  index: number;
  /** The last write sequence number the checkpoint covers. */
  seq: number;
  /** The MasterRoot over the table set (32 bytes). */
  masterRoot: Uint8Array;
  /** `checkpointHash` of checkpoint `index - 1`; present exactly when `index > 0`. */
  prevCheckpointHash?: Uint8Array;
  /**
   * v2 only (with `signerSetHash`): the checkpoint's time, ms since the Unix epoch, taken from the
   * log entry that asked for it (never decreases along the log).
   */
  time?: number;
  /**
   * v2 only (with `time`): `signerSetHash` of the signer set that certifies the head ending with
   * this checkpoint (`proofs/signer_set.ts`). A v1 checkpoint has neither field.
   */
  signerSetHash?: Uint8Array;
}

/** The head of the checkpoint log: its size and RFC 9162 root. This is what replicas sign. */
export interface LogHead {
  /** Number of checkpoints in the log. */
  size: number;
  /** The log root (32 bytes); for size 0, SHA-256 of the empty string. */
  root: Uint8Array;
}

/** One replica's signature on a {@link LogHead}. */
export interface HeadSignature {
  /** Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) over {@link logHeadMessage}. */
  signature: Uint8Array;
}

/** A log head with its signatures: a checkpoint certificate. */
export interface SignedHead {
  head: LogHead;
  signatures: HeadSignature[];
}

/** An Ed25519 key pair. */
export interface KeyPair {
  /** The 32-byte secret seed (RFC 8032 §5.1.5). */
  privateKey: Uint8Array;
  /** The 32-byte public key. */
  publicKey: Uint8Array;
}

/** Which signers the client trusts and how many of them must sign. */
export interface TrustPolicy {
  /** Trusted Ed25519 public keys, 32 bytes each, distinct. */
  publicKeys: readonly Uint8Array[];
  /** Distinct trusted valid signatures required: 1 <= quorum <= publicKeys.length. */
  quorum: number;
  /**
   * Skip signatures by keys outside `publicKeys` instead of failing with `UNTRUSTED_KEY` (useful
   * while membership changes reach clients). Skipped keys are reported. Default false.
   */
  allowUntrusted?: boolean;
}

/** The facts a successful {@link verifyCheckpoint} proves. */
export interface VerifiedHead {
  /** The head that at least `quorum` trusted keys signed. */
  head: LogHead;
  /** The trusted keys whose signatures verified, in the order given. */
  signers: Uint8Array[];
  /** Untrusted keys skipped under `allowUntrusted`. */
  skipped: Uint8Array[];
}

/** Length of an Ed25519 public key. */
export const PUBLIC_KEY_LEN = 32;
/** Length of an Ed25519 signature. */
export const SIGNATURE_LEN = 64;
/** The context that starts every signed log-head message. */
export const LOG_HEAD_CONTEXT = 'proofkv-log-head-v1\n';
const LOG_HEAD_CONTEXT_BYTES = toBytes(LOG_HEAD_CONTEXT);
/** Length of {@link logHeadMessage}: 20 + 8 + 32. */
export const LOG_HEAD_MESSAGE_LEN = LOG_HEAD_CONTEXT_BYTES.length + 8 + HASH_LEN;
/** Length of a v1 checkpoint message without / with a previous-checkpoint hash. */
export const CHECKPOINT_MESSAGE_LEN = { first: 1 + 8 + 8 + HASH_LEN + 1, chained: 1 + 8 + 8 + HASH_LEN + 1 + HASH_LEN } as const;
/** Length of a v2 checkpoint message (with time and signer-set hash) without / with a previous-checkpoint hash. */
export const CHECKPOINT_V2_MESSAGE_LEN = { first: 1 + 8 + 8 + HASH_LEN + 8 + HASH_LEN + 1, chained: 1 + 8 + 8 + HASH_LEN + 8 + HASH_LEN + 1 + HASH_LEN } as const;

/** The layout version of a well-formed checkpoint: 2 when it has `time` and `signerSetHash`, else 1. */
export function checkpointVersion(c: Checkpoint): 1 | 2 {
  return c.signerSetHash !== undefined ? 2 : 1;
}

// ---------------------------------------------------------------------------------------------
// checkpoints

/** A failure unless `c` is a well-formed checkpoint (types, lengths, prev present iff index > 0). */
export function checkCheckpoint(c: unknown): VerifyFailure | undefined {
  if (typeof c !== 'object' || c === null) return fail(Reason.MALFORMED_INPUT, 'checkpoint must be an object');
  const cp = c as Checkpoint;
  const bad = _checkUint('checkpoint index', cp.index) ?? _checkUint('checkpoint seq', cp.seq) ?? _checkHash('masterRoot', cp.masterRoot);
  if (bad) return bad;
  if ((cp.time === undefined) !== (cp.signerSetHash === undefined)) {
    return fail(Reason.MALFORMED_INPUT, 'checkpoint has one of time and signerSetHash, want both (v2) or neither (v1)');
  }
  if (cp.time !== undefined) {
    const badV2 = _checkUint('checkpoint time', cp.time) ?? _checkHash('signerSetHash', cp.signerSetHash);
    if (badV2) return badV2;
  }
  if (cp.index === 0) {
    if (cp.prevCheckpointHash !== undefined) return fail(Reason.MALFORMED_INPUT, 'checkpoint 0 has a prevCheckpointHash, want none');
    return undefined;
  }
  if (cp.prevCheckpointHash === undefined) return fail(Reason.MALFORMED_INPUT, `checkpoint ${cp.index} has no prevCheckpointHash`);
  return _checkHash('prevCheckpointHash', cp.prevCheckpointHash);
}

/**
 * The checkpoint message: v2 `0x18 || u64 index || u64 seq || masterRoot || u64 time ||
 * signerSetHash || u8 hasPrev || prev?` when the checkpoint has `time` and `signerSetHash`, else
 * v1 `0x18 || u64 index || u64 seq || masterRoot || u8 hasPrev || prev?`. It is both what
 * {@link checkpointHash} hashes and the data of the checkpoint's log leaf. Throws `RangeError` for
 * a malformed checkpoint.
 */
export function checkpointBytes(c: Checkpoint): Uint8Array {
  const bad = checkCheckpoint(c);
  if (bad) throw new RangeError(bad.message);
  const hasPrev = c.prevCheckpointHash !== undefined;
  const v2 = checkpointVersion(c) === 2;
  const lens = v2 ? CHECKPOINT_V2_MESSAGE_LEN : CHECKPOINT_MESSAGE_LEN;
  const buf = new Uint8Array(hasPrev ? lens.chained : lens.first);
  buf[0] = Domain.CHECKPOINT;
  writeU64BE(buf, 1, c.index);
  writeU64BE(buf, 9, c.seq);
  buf.set(c.masterRoot, 17);
  let o = 49;
  if (v2) {
    writeU64BE(buf, 49, c.time!);
    buf.set(c.signerSetHash!, 57);
    o = 89;
  }
  buf[o] = hasPrev ? 1 : 0;
  if (hasPrev) buf.set(c.prevCheckpointHash!, o + 1);
  return buf;
}

/**
 * Parses a checkpoint message of either version (told apart by its length: 50 or 82 bytes is v1,
 * 90 or 122 is v2); throws {@link DecodeError} unless it is exactly a valid one.
 */
export function parseCheckpointBytes(bytes: Uint8Array): Checkpoint {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('', 'checkpoint message must be a Uint8Array');
  const v1 = bytes.length === CHECKPOINT_MESSAGE_LEN.first || bytes.length === CHECKPOINT_MESSAGE_LEN.chained;
  const v2 = bytes.length === CHECKPOINT_V2_MESSAGE_LEN.first || bytes.length === CHECKPOINT_V2_MESSAGE_LEN.chained;
  if (!v1 && !v2) {
    const want = [CHECKPOINT_MESSAGE_LEN.first, CHECKPOINT_MESSAGE_LEN.chained, CHECKPOINT_V2_MESSAGE_LEN.first, CHECKPOINT_V2_MESSAGE_LEN.chained];
    throw new DecodeError('', `checkpoint message has length ${bytes.length}, want one of ${want.join(', ')}`);
  }
  if (bytes[0] !== Domain.CHECKPOINT) throw new DecodeError('', `checkpoint domain byte 0x${bytes[0].toString(16)}, want 0x18`);
  const index = readU64BE(bytes, 1);
  const seq = readU64BE(bytes, 9);
  if (index === undefined || seq === undefined) throw new DecodeError('', 'checkpoint index or seq above 2^53 - 1');
  const lens = v2 ? CHECKPOINT_V2_MESSAGE_LEN : CHECKPOINT_MESSAGE_LEN;
  const o = v2 ? 89 : 49;
  const hasPrev = bytes[o];
  const want = hasPrev === 1 ? lens.chained : lens.first;
  if (hasPrev > 1 || bytes.length !== want) throw new DecodeError('', `checkpoint hasPrev ${hasPrev} with length ${bytes.length}`);
  const c: Checkpoint = { index, seq, masterRoot: bytes.slice(17, 49) };
  if (hasPrev === 1) c.prevCheckpointHash = bytes.slice(o + 1, o + 1 + HASH_LEN);
  if (v2) {
    const time = readU64BE(bytes, 49);
    if (time === undefined) throw new DecodeError('', 'checkpoint time above 2^53 - 1');
    c.time = time;
    c.signerSetHash = bytes.slice(57, 89);
  }
  const bad = checkCheckpoint(c);
  if (bad) throw new DecodeError('', bad.message);
  return c;
}

/** `H(checkpoint message)`: the hash the next checkpoint links to. */
export function checkpointHash(c: Checkpoint, hasher: Hasher = defaultHasher()): Uint8Array {
  return hasher.sha256(checkpointBytes(c));
}

/** `H(0x00 || checkpoint message)`: the checkpoint's leaf in the checkpoint log (RFC 9162 §2.1.1). */
export function checkpointLeafHash(c: Checkpoint, hasher: Hasher = defaultHasher()): Uint8Array {
  return logLeafHash(checkpointBytes(c), hasher);
}

/**
 * Verifies that `next` directly follows `prev`: `next.index = prev.index + 1`,
 * `next.seq >= prev.seq`, `next.prevCheckpointHash = checkpointHash(prev)`, and no downgrade: a v2
 * checkpoint is followed only by v2 checkpoints, whose time does not decrease (a v1 log may be
 * continued in v2). Never throws.
 */
export function verifyCheckpointLink(prev: Checkpoint, next: Checkpoint, hasher: Hasher = defaultHasher()): Verified {
  const bad = checkCheckpoint(prev) ?? checkCheckpoint(next);
  if (bad) return bad;
  if (!(hasher instanceof Hasher)) return fail(Reason.MALFORMED_INPUT, 'hasher must be a Hasher');
  if (next.index !== prev.index + 1) return fail(Reason.CHAIN_MISMATCH, `checkpoint index ${next.index}, want ${prev.index + 1}`);
  if (next.seq < prev.seq) return fail(Reason.CHAIN_MISMATCH, `checkpoint seq ${next.seq} below previous seq ${prev.seq}`);
  if (checkpointVersion(prev) === 2) {
    if (checkpointVersion(next) !== 2) return fail(Reason.CHAIN_MISMATCH, `checkpoint ${next.index} is v1 after the v2 checkpoint ${prev.index}`);
    if (next.time! < prev.time!) return fail(Reason.CHAIN_MISMATCH, `checkpoint time ${next.time} below previous time ${prev.time}`);
  }
  const want = checkpointHash(prev, hasher);
  if (!equalBytes(next.prevCheckpointHash!, want)) {
    return fail(Reason.CHAIN_MISMATCH, `prevCheckpointHash ${toHex(next.prevCheckpointHash!)}, want ${toHex(want)}`);
  }
  return OK;
}

/**
 * Verifies that checkpoint `c` is leaf `c.index` of the checkpoint log with head `head`, by an
 * RFC 9162 §2.1.3.2 inclusion proof. Never throws.
 */
export function verifyCheckpointInclusion(c: Checkpoint, proof: readonly Uint8Array[], head: LogHead, hasher: Hasher = defaultHasher()): Verified {
  const bad = checkCheckpoint(c) ?? checkHead(head);
  if (bad) return bad;
  if (!(hasher instanceof Hasher)) return fail(Reason.MALFORMED_INPUT, 'hasher must be a Hasher');
  return verifyInclusion(checkpointLeafHash(c, hasher), c.index, head.size, proof, head.root, hasher);
}

// ---------------------------------------------------------------------------------------------
// heads

function checkHead(h: unknown, name = 'head'): VerifyFailure | undefined {
  if (typeof h !== 'object' || h === null) return fail(Reason.MALFORMED_INPUT, `${name} must be an object`);
  const head = h as LogHead;
  return _checkUint(`${name} size`, head.size) ?? _checkHash(`${name} root`, head.root);
}

/** The signed message of a head: `"proofkv-log-head-v1\n" || u64 size || root`. Throws `RangeError` if malformed. */
export function logHeadMessage(head: LogHead): Uint8Array {
  const bad = checkHead(head);
  if (bad) throw new RangeError(bad.message);
  const n = LOG_HEAD_CONTEXT_BYTES.length;
  const buf = new Uint8Array(LOG_HEAD_MESSAGE_LEN);
  buf.set(LOG_HEAD_CONTEXT_BYTES, 0);
  writeU64BE(buf, n, head.size);
  buf.set(head.root, n + 8);
  return buf;
}

/**
 * Verifies that `next` extends the client's trusted head (RFC 9162 §2.1.4.2 consistency), for
 * persisting trusted state: `ROLLBACK` if `next` is smaller, `FORK` if it has the same size and
 * another root or the proof does not connect the two roots; other reasons for malformed input.
 * A trusted empty log (size 0) is extended by any head. Never throws.
 */
export function verifyHeadExtends(
  trusted: LogHead,
  next: LogHead,
  proof: readonly Uint8Array[],
  hasher: Hasher = defaultHasher(),
): Verified {
  const bad = checkHead(trusted, 'trusted head') ?? checkHead(next, 'new head');
  if (bad) return bad;
  if (!(hasher instanceof Hasher)) return fail(Reason.MALFORMED_INPUT, 'hasher must be a Hasher');
  if (next.size < trusted.size) return fail(Reason.ROLLBACK, `head size ${next.size} is below trusted size ${trusted.size}`);
  if (next.size === trusted.size && !equalBytes(next.root, trusted.root)) {
    return fail(Reason.FORK, `head root ${toHex(next.root)} differs from trusted root ${toHex(trusted.root)} at size ${next.size}`);
  }
  if (trusted.size === 0) {
    const empty = emptyLogRoot(hasher);
    if (!equalBytes(trusted.root, empty)) return fail(Reason.ROOT_MISMATCH, `trusted empty head root ${toHex(trusted.root)}, want ${toHex(empty)}`);
    if (!Array.isArray(proof) || proof.length !== 0) return fail(Reason.PROOF_SIZE, `wrong proof size ${Array.isArray(proof) ? proof.length : '?'}, want 0`);
    return OK;
  }
  const r = verifyConsistency(trusted.size, next.size, proof, trusted.root, next.root, hasher);
  if (!r.ok && r.reason === Reason.ROOT_MISMATCH) return fail(Reason.FORK, `head does not extend trusted head: ${r.message}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// signatures

/** A new Ed25519 key pair, from the platform's secure random source or from a 32-byte `seed`. */
export function generateKeyPair(seed?: Uint8Array): KeyPair {
  if (seed !== undefined && (!(seed instanceof Uint8Array) || seed.length !== 32)) throw new RangeError('seed must be 32 bytes');
  const { secretKey, publicKey } = ed25519.keygen(seed === undefined ? undefined : seed.slice());
  return { privateKey: secretKey, publicKey };
}

/** The Ed25519 public key of a 32-byte private key. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32) throw new RangeError('private key must be 32 bytes');
  return ed25519.getPublicKey(privateKey);
}

/** Signs {@link logHeadMessage}(head) with Ed25519 (RFC 8032 §5.1.6). */
export function signHead(privateKey: Uint8Array, head: LogHead): HeadSignature {
  const publicKey = publicKeyOf(privateKey);
  return { publicKey, signature: ed25519.sign(logHeadMessage(head), privateKey) };
}

/**
 * Verifies one signature on a head with strict RFC 8032 §5.1.7 rules (canonical encodings, no
 * ZIP-215 leniency). Never throws.
 */
export function verifyHeadSignature(head: LogHead, sig: HeadSignature): boolean {
  try {
    if (checkHead(head)) return false;
    if (!(sig.publicKey instanceof Uint8Array) || sig.publicKey.length !== PUBLIC_KEY_LEN) return false;
    if (!(sig.signature instanceof Uint8Array) || sig.signature.length !== SIGNATURE_LEN) return false;
    return ed25519.verify(sig.signature, logHeadMessage(head), sig.publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** The policy's trusted keys as a set of lower-case hex strings, or why the policy is unusable (`INVALID_TRUST_POLICY`). */
export function checkTrustPolicy(p: unknown): VerifyFailure | Set<string> {
  if (typeof p !== 'object' || p === null) return fail(Reason.INVALID_TRUST_POLICY, 'trust policy must be an object');
  const policy = p as TrustPolicy;
  if (!Array.isArray(policy.publicKeys) || policy.publicKeys.length === 0) {
    return fail(Reason.INVALID_TRUST_POLICY, 'trust policy has no public keys');
  }
  const keys = new Set<string>();
  for (let i = 0; i < policy.publicKeys.length; i++) {
    const k = policy.publicKeys[i];
    if (!(k instanceof Uint8Array) || k.length !== PUBLIC_KEY_LEN) {
      return fail(Reason.INVALID_TRUST_POLICY, `trusted key ${i} is not a ${PUBLIC_KEY_LEN}-byte key`);
    }
    const hex = toHex(k);
    if (keys.has(hex)) return fail(Reason.INVALID_TRUST_POLICY, `trusted key ${i} is listed twice`);
    keys.add(hex);
  }
  if (!_isUint(policy.quorum) || policy.quorum < 1 || policy.quorum > keys.size) {
    return fail(Reason.INVALID_TRUST_POLICY, `quorum ${_describe(policy.quorum)} out of range [1, ${keys.size}]`);
  }
  return keys;
}

/**
 * Signatures already verified, as `key|signature|size|root` in hex. Ed25519 verification is
 * deterministic, so a triple that verified once verifies again; every proof against one head
 * carries the same certificate, and re-checking it dominated verification time (measured: one
 * Ed25519 verify costs more than all the Merkle hashing of a get proof). Only successes are kept,
 * at most {@link SIGNATURE_MEMO_SIZE}, oldest evicted first.
 */
const signatureMemo = new Map<string, true>();
/** Capacity of the verified-signature memo. */
export const SIGNATURE_MEMO_SIZE = 1024;

function verifySignatureMemo(head: LogHead, s: HeadSignature, keyHex: string): boolean {
  const id = `${keyHex}|${toHex(s.signature)}|${head.size}|${toHex(head.root)}`;
  if (signatureMemo.has(id)) return true;
  if (!verifyHeadSignature(head, s)) return false;
  if (signatureMemo.size >= SIGNATURE_MEMO_SIZE) signatureMemo.delete(signatureMemo.keys().next().value as string);
  signatureMemo.set(id, true);
  return true;
}

/**
 * Verifies a checkpoint certificate: at least `policy.quorum` distinct trusted keys signed `head`.
 * Every signature must be well-formed and valid (`BAD_SIGNATURE`), by a distinct key
 * (`DUPLICATE_SIGNER`) that is trusted (`UNTRUSTED_KEY`, unless `allowUntrusted` skips it); an
 * empty list is `MISSING_SIGNATURE`, too few valid trusted signers `QUORUM_NOT_MET`, an unusable
 * policy `INVALID_TRUST_POLICY`. Never throws.
 */
export function verifyCheckpoint(head: LogHead, signatures: readonly HeadSignature[], policy: TrustPolicy): Verified<VerifiedHead> {
  const keys = checkTrustPolicy(policy);
  if (!(keys instanceof Set)) return keys;
  const bad = checkHead(head);
  if (bad) return bad;
  if (!Array.isArray(signatures)) return fail(Reason.MALFORMED_INPUT, 'signatures must be an array');
  if (signatures.length === 0) return fail(Reason.MISSING_SIGNATURE, `no signatures, want at least ${policy.quorum}`);
  const seen = new Set<string>();
  const signers: Uint8Array[] = [];
  const skipped: Uint8Array[] = [];
  for (let i = 0; i < signatures.length; i++) {
    const s = signatures[i];
    if (typeof s !== 'object' || s === null || !(s.publicKey instanceof Uint8Array) || s.publicKey.length !== PUBLIC_KEY_LEN) {
      return fail(Reason.MALFORMED_INPUT, `signature ${i} has no ${PUBLIC_KEY_LEN}-byte public key`);
    }
    const hex = toHex(s.publicKey);
    if (seen.has(hex)) return fail(Reason.DUPLICATE_SIGNER, `signature ${i}: key ${hex} signed more than once`);
    seen.add(hex);
    if (!keys.has(hex)) {
      if (policy.allowUntrusted === true) {
        skipped.push(s.publicKey.slice());
        continue;
      }
      return fail(Reason.UNTRUSTED_KEY, `signature ${i}: key ${hex} is not trusted`);
    }
    if (!(s.signature instanceof Uint8Array) || s.signature.length !== SIGNATURE_LEN) {
      const got = s.signature instanceof Uint8Array ? s.signature.length : typeof s.signature;
      return fail(Reason.BAD_SIGNATURE, `signature ${i} has length ${got}, want ${SIGNATURE_LEN}`);
    }
    if (!verifySignatureMemo(head, s, hex)) return fail(Reason.BAD_SIGNATURE, `signature ${i} by key ${hex} does not verify`);
    signers.push(s.publicKey.slice());
  }
  if (signers.length < policy.quorum) {
    return fail(Reason.QUORUM_NOT_MET, `${signers.length} valid trusted signatures, want ${policy.quorum}`);
  }
  return { ok: true, head: { size: head.size, root: head.root.slice() }, signers, skipped };
}
