/**
 * Ed25519 on a head, through Node's native `node:crypto` (OpenSSL) instead of the pure-JavaScript
 * implementation the isomorphic verifier uses (`proofs/checkpoint.ts`), for the server's own
 * signing and for judging co-signatures. Same results as `signHead` and `verifyHeadSignature`:
 *
 * - **Signing** is deterministic (RFC 8032 §5.1.6), so OpenSSL's signature is byte for byte the one
 *   `signHead` makes with the same private key (tested).
 * - **Verifying**: `verifyHeadSignature` is strict RFC 8032 (canonical encodings, S < L, a public
 *   key of small order refused) with the cofactored equation; OpenSSL is cofactorless and compares
 *   the encoding of R. A signature OpenSSL accepts is therefore accepted by the strict check too,
 *   once the public key itself passes the strict key checks (canonical, not of small order: done
 *   once per key, with the JavaScript code). A signature OpenSSL refuses is judged again by
 *   `verifyHeadSignature`, so the few that only the cofactored equation accepts (an R with a
 *   small-order component, which no honest signer makes) get the same verdict as before. Every
 *   replica, of this version or the previous one, judges every co-signature alike.
 *
 * Costs (bench/README.md § The cluster's CPU per write): a JavaScript verify is milliseconds of
 * CPU on the test machine, a native one tens of microseconds. Key objects are cached, at most
 * {@link MAX_CACHED_KEYS} of each kind (about 1 KiB each).
 * @module
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { logHeadMessage, PUBLIC_KEY_LEN, SIGNATURE_LEN, verifyHeadSignature, type HeadSignature, type LogHead } from '../../proofs/checkpoint.js';
import { toHex } from '../../proofs/bytes.js';

/** Bound of each key cache (private keys: this node's, a rotated one; public keys: the members'). */
export const MAX_CACHED_KEYS = 256;

const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

const privateKeys = new Map<string, { key: KeyObject; publicKey: Uint8Array }>();
/** Public key hex → its key object, or null when the strict checks refuse the key itself. */
const publicKeys = new Map<string, KeyObject | null>();

function remember<V>(cache: Map<string, V>, k: string, v: V): V {
  if (cache.size >= MAX_CACHED_KEYS) cache.delete(cache.keys().next().value as string);
  cache.set(k, v);
  return v;
}

function privateKeyObject(privateKey: Uint8Array): { key: KeyObject; publicKey: Uint8Array } {
  const hex = toHex(privateKey);
  const hit = privateKeys.get(hex);
  if (hit) return hit;
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(privateKey), x: '' }, format: 'jwk' });
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return remember(privateKeys, hex, { key, publicKey: new Uint8Array(Buffer.from(String(jwk.x), 'base64url')) });
}

/** The key object of `publicKey`, or null when it is not a canonical encoding of a point outside the small-order subgroup. */
function publicKeyObject(publicKey: Uint8Array): KeyObject | null {
  const hex = toHex(publicKey);
  const hit = publicKeys.get(hex);
  if (hit !== undefined) return hit;
  let key: KeyObject | null = null;
  try {
    if (!ed25519.Point.fromBytes(publicKey, false).isSmallOrder()) key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey) }, format: 'jwk' });
  } catch {
    key = null;
  }
  return remember(publicKeys, hex, key);
}

/** `signHead(privateKey, head)` (proofs/checkpoint.ts), natively: the same signature and public key. */
export function signHeadNative(privateKey: Uint8Array, head: LogHead): HeadSignature {
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32) throw new RangeError('private key must be 32 bytes');
  const { key, publicKey } = privateKeyObject(privateKey);
  return { publicKey, signature: new Uint8Array(nodeSign(null, logHeadMessage(head), key)) };
}

/** `verifyHeadSignature(head, sig)` (proofs/checkpoint.ts), natively when the signature is valid; the same verdict always. Never throws. */
export function verifyHeadSignatureNative(head: LogHead, sig: HeadSignature): boolean {
  try {
    if (!(sig.publicKey instanceof Uint8Array) || sig.publicKey.length !== PUBLIC_KEY_LEN) return false;
    if (!(sig.signature instanceof Uint8Array) || sig.signature.length !== SIGNATURE_LEN) return false;
    const key = publicKeyObject(sig.publicKey);
    if (key === null) return false;
    // logHeadMessage throws on a malformed head (the strict check then refuses it too).
    if (nodeVerify(null, logHeadMessage(head), key, sig.signature)) return true;
  } catch {
    // judged by the strict check below
  }
  return verifyHeadSignature(head, sig);
}
