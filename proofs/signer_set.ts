/**
 * Signer sets: the membership a v2 checkpoint commits to (node ids, Ed25519 public keys, quorum),
 * and verification of a head against both the set the client trusts and the checkpoint's own set.
 * Isomorphic: no `node:` imports.
 *
 * ```
 * signer set message (9 + 36 n bytes), hashed into the checkpoint's signerSetHash:
 *   0      1            5        9
 *   +------+------------+--------+----------------------------------------+
 *   | 0x1A | u32 quorum | u32 n  | n × (u32 id || publicKey[32])           |  members by increasing id
 *   +------+------------+--------+----------------------------------------+
 * signerSetHash = H(message)
 * ```
 * Integers are big-endian. A set is valid when it has 1 to {@link MAX_SIGNERS} members, ids are
 * u32 above 0 and strictly increasing, keys are 32 bytes and distinct, and `1 <= quorum <= n`.
 * @module
 */
import { equalBytes, readU32BE, toHex, writeU32BE } from './bytes.js';
import { checkTrustPolicy, PUBLIC_KEY_LEN, verifyCheckpoint, type HeadSignature, type LogHead, type TrustPolicy, type VerifiedHead } from './checkpoint.js';
import { DecodeError, fail, Reason, type Verified, type VerifyFailure } from './errors.js';
import { defaultHasher, Domain, HASH_LEN, type Hasher } from './hash.js';
import { _describe, _isUint } from './tree.js';

/** One member of a signer set. */
export interface SignerSetMember {
  /** The member's node id: a u32 above 0. */
  id: number;
  /** Its Ed25519 public key (32 bytes). */
  publicKey: Uint8Array;
}

/** The membership that certifies a checkpoint: members sorted by id, and how many must sign. */
export interface SignerSet {
  /** Distinct valid member signatures a head needs: 1 <= quorum <= members.length. */
  quorum: number;
  /** Members by strictly increasing id, keys distinct. */
  members: SignerSetMember[];
}

/** Most members a signer set may have (the most signatures a head carries). */
export const MAX_SIGNERS = 1024;
/** Length of the signer set message before the members. */
const SET_HEADER_LEN = 1 + 4 + 4;
/** Length of one member in the signer set message. */
const MEMBER_LEN = 4 + PUBLIC_KEY_LEN;

const isU32 = (v: unknown): v is number => _isUint(v) && v <= 0xffffffff;

/** A failure (`INVALID_SIGNER_SET`) unless `set` is a valid {@link SignerSet}. */
export function checkSignerSet(set: unknown): VerifyFailure | undefined {
  const bad = (m: string) => fail(Reason.INVALID_SIGNER_SET, m);
  if (typeof set !== 'object' || set === null) return bad(`signer set must be an object, got ${_describe(set)}`);
  const s = set as SignerSet;
  if (!Array.isArray(s.members) || s.members.length === 0) return bad('signer set has no members');
  if (s.members.length > MAX_SIGNERS) return bad(`signer set has ${s.members.length} members, at most ${MAX_SIGNERS}`);
  const keys = new Set<string>();
  let last = 0;
  for (let i = 0; i < s.members.length; i++) {
    const m = s.members[i];
    if (typeof m !== 'object' || m === null) return bad(`member ${i} must be an object`);
    if (!isU32(m.id) || m.id === 0) return bad(`member ${i} id ${_describe(m.id)} is not a u32 above 0`);
    if (m.id <= last) return bad(`member ${i} id ${m.id} is not above the previous id ${last}`);
    last = m.id;
    if (!(m.publicKey instanceof Uint8Array) || m.publicKey.length !== PUBLIC_KEY_LEN) return bad(`member ${m.id} has no ${PUBLIC_KEY_LEN}-byte public key`);
    const hex = toHex(m.publicKey);
    if (keys.has(hex)) return bad(`member ${m.id} has the key of an earlier member`);
    keys.add(hex);
  }
  if (!_isUint(s.quorum) || s.quorum < 1 || s.quorum > s.members.length) {
    return bad(`quorum ${_describe(s.quorum)} out of range [1, ${s.members.length}]`);
  }
  return undefined;
}

/**
 * The signer set message `0x1A || u32 quorum || u32 n || n × (u32 id || publicKey)`: what
 * {@link signerSetHash} hashes. Throws `RangeError` for an invalid set.
 */
export function signerSetBytes(set: SignerSet): Uint8Array {
  const bad = checkSignerSet(set);
  if (bad) throw new RangeError(bad.message);
  const n = set.members.length;
  const buf = new Uint8Array(SET_HEADER_LEN + n * MEMBER_LEN);
  buf[0] = Domain.SIGNER_SET;
  writeU32BE(buf, 1, set.quorum);
  writeU32BE(buf, 5, n);
  set.members.forEach((m, i) => {
    writeU32BE(buf, SET_HEADER_LEN + i * MEMBER_LEN, m.id);
    buf.set(m.publicKey, SET_HEADER_LEN + i * MEMBER_LEN + 4);
  });
  return buf;
}

/** Parses a signer set message; throws {@link DecodeError} unless it is exactly a valid one. */
export function parseSignerSetBytes(bytes: Uint8Array): SignerSet {
  if (!(bytes instanceof Uint8Array) || bytes.length < SET_HEADER_LEN) throw new DecodeError('', 'signer set message is too short');
  if (bytes[0] !== Domain.SIGNER_SET) throw new DecodeError('', `signer set domain byte 0x${bytes[0].toString(16)}, want 0x1a`);
  const quorum = readU32BE(bytes, 1);
  const n = readU32BE(bytes, 5);
  if (n > MAX_SIGNERS || bytes.length !== SET_HEADER_LEN + n * MEMBER_LEN) {
    throw new DecodeError('', `signer set of ${n} members has length ${bytes.length}, want ${SET_HEADER_LEN + Math.min(n, MAX_SIGNERS) * MEMBER_LEN}`);
  }
  const members: SignerSetMember[] = [];
  for (let i = 0; i < n; i++) {
    const o = SET_HEADER_LEN + i * MEMBER_LEN;
    members.push({ id: readU32BE(bytes, o), publicKey: bytes.slice(o + 4, o + MEMBER_LEN) });
  }
  const set = { quorum, members };
  const bad = checkSignerSet(set);
  if (bad) throw new DecodeError('', bad.message);
  return set;
}

/** `H(signer set message)`: what a v2 checkpoint's `signerSetHash` holds. Throws `RangeError` for an invalid set. */
export function signerSetHash(set: SignerSet, hasher: Hasher = defaultHasher()): Uint8Array {
  return hasher.sha256(signerSetBytes(set));
}

/** The set of one signer (a one-member group): `{ quorum: 1, members: [{ id, publicKey }] }`. */
export function singleSignerSet(publicKey: Uint8Array, id = 1): SignerSet {
  return { quorum: 1, members: [{ id, publicKey: publicKey.slice() }] };
}

/** The trust policy of a set: its members' keys and its quorum. */
export function signerSetPolicy(set: SignerSet): TrustPolicy {
  return { publicKeys: set.members.map((m) => m.publicKey), quorum: set.quorum };
}

/**
 * Verifies that `set` is valid and hashes to `hash` (a v2 checkpoint's `signerSetHash`):
 * `INVALID_SIGNER_SET` or `SIGNER_SET_MISMATCH`. Never throws.
 */
export function verifySignerSet(set: SignerSet, hash: Uint8Array, hasher: Hasher = defaultHasher()): Verified {
  try {
    const bad = checkSignerSet(set);
    if (bad) return bad;
    if (!(hash instanceof Uint8Array) || hash.length !== HASH_LEN) return fail(Reason.MALFORMED_INPUT, `signer set hash must be ${HASH_LEN} bytes`);
    const got = signerSetHash(set, hasher);
    if (!equalBytes(got, hash)) return fail(Reason.SIGNER_SET_MISMATCH, `signer set hashes to ${toHex(got)}, the checkpoint commits to ${toHex(hash)}`);
    return { ok: true };
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `signer set: ${(err as Error).message}`);
  }
}

/** The facts a successful {@link verifyCertifiedHead} proves. */
export interface CertifiedHead extends VerifiedHead {
  /** The checkpoint's own signer set (v2), checked against its hash; undefined for a v1 checkpoint. */
  signerSet?: SignerSet;
}

/**
 * Verifies the signatures on `head`, whose last checkpoint commits to `setHash` (v2) or to no set
 * (v1, `setHash` undefined):
 * - v1: exactly {@link verifyCheckpoint} under `trust`; a `signers` list is `SIGNER_SET_MISMATCH`.
 * - v2: `signers` must be given, valid (`INVALID_SIGNER_SET`) and hash to `setHash`
 *   (`SIGNER_SET_MISMATCH`). Every signature must verify and be by a distinct key of the trusted
 *   set or of `signers` (`BAD_SIGNATURE`, `DUPLICATE_SIGNER`, `UNTRUSTED_KEY` unless
 *   `trust.allowUntrusted` skips it), and the valid signers must include `trust.quorum` trusted
 *   keys **and** `signers.quorum` members of the checkpoint's own set (`QUORUM_NOT_MET`; when the
 *   trusted quorum is missing and a valid signer is outside the trusted set, `UNTRUSTED_KEY`): a
 *   new set is accepted only from a head a quorum of the trusted set certified.
 *
 * Never throws.
 */
export function verifyCertifiedHead(
  head: LogHead,
  signatures: readonly HeadSignature[],
  trust: TrustPolicy,
  signers: SignerSet | undefined,
  setHash: Uint8Array | undefined,
  hasher: Hasher = defaultHasher(),
): Verified<CertifiedHead> {
  try {
    if (setHash === undefined) {
      if (signers !== undefined) return fail(Reason.SIGNER_SET_MISMATCH, 'a v1 checkpoint commits to no signer set, but one was given');
      return verifyCheckpoint(head, signatures, trust);
    }
    const trusted = checkTrustPolicy(trust);
    if (!(trusted instanceof Set)) return trusted;
    if (signers === undefined) return fail(Reason.SIGNER_SET_MISMATCH, 'the checkpoint commits to a signer set, but none was given');
    const set = verifySignerSet(signers, setHash, hasher);
    if (!set.ok) return set;
    const own = new Set(signers.members.map((m) => toHex(m.publicKey)));
    const union = [...trust.publicKeys, ...signers.members.map((m) => m.publicKey).filter((k) => !trusted.has(toHex(k)))];
    const r = verifyCheckpoint(head, signatures, { publicKeys: union, quorum: 1, allowUntrusted: trust.allowUntrusted });
    if (!r.ok && r.reason !== Reason.QUORUM_NOT_MET) return r;
    const valid = r.ok ? r.signers.map(toHex) : [];
    const ofTrusted = valid.filter((k) => trusted.has(k)).length;
    const ofOwn = valid.filter((k) => own.has(k)).length;
    if (ofTrusted < trust.quorum) {
      // Signatures by keys only the checkpoint's own set holds cannot make up for the trusted quorum.
      const outside = valid.find((k) => !trusted.has(k));
      const msg = `${ofTrusted} valid signatures of the trusted set, want ${trust.quorum}`;
      return outside === undefined ? fail(Reason.QUORUM_NOT_MET, msg) : fail(Reason.UNTRUSTED_KEY, `${msg}; key ${outside} is not trusted`);
    }
    if (ofOwn < signers.quorum) return fail(Reason.QUORUM_NOT_MET, `${ofOwn} valid signatures of the checkpoint's signer set, want ${signers.quorum}`);
    if (!r.ok) return r;
    return { ...r, signerSet: cloneSignerSet(signers) };
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `certificate: ${(err as Error).message}`);
  }
}

/** A deep copy of a set. */
export function cloneSignerSet(set: SignerSet): SignerSet {
  return { quorum: set.quorum, members: set.members.map((m) => ({ id: m.id, publicKey: m.publicKey.slice() })) };
}
