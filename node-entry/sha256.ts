/**
 * SHA-256 for the verifiers in Node, and its installation as the default of `proofs/`
 * ({@link installSha256}): `node:crypto` for messages of {@link NODE_CRYPTO_MIN_LEN} bytes and
 * more, the built-in `proofs/sha256.ts` below that. The Node entry points of the packages import
 * this module; browsers get `proofs/` with its built-in SHA-256, untouched. All give identical
 * digests (`installSha256` checks a set of messages against noble before it switches).
 * @module
 */
import * as crypto from 'node:crypto';
import { installSha256, type Sha256 } from '../proofs/hash.js';
import { sha256 as jsSha256 } from '../proofs/sha256.js';

/**
 * One-shot `crypto.hash('sha256', data, 'buffer')` (Node ≥ 20.12 / 21.7), falling back to
 * `createHash` on older Node. The digest is a `Buffer` (a `Uint8Array` subclass); see
 * {@link nodeSha256Plain} for a plain `Uint8Array`.
 */
export const nodeSha256Buffer: Sha256 =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'buffer')
    : (data) => crypto.createHash('sha256').update(data).digest();

/**
 * {@link nodeSha256Buffer} with the digest as a plain `Uint8Array` view of the same bytes (no
 * copy), so values that reach callers behave like noble's: `slice()` copies, equality checks
 * that compare constructors pass.
 */
export const nodeSha256Plain: Sha256 = (data) => {
  const b = nodeSha256Buffer(data);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
};

/**
 * Shortest message handed to `node:crypto`. Below it the call into OpenSSL costs more than the
 * hashing: measured best-of-5 per hash, node:crypto vs proofs/sha256.ts, 0.55 vs 0.56 µs at 65 B,
 * 0.60 vs 0.82 µs at 128 B, 0.94 vs 4.2 µs at 1 KiB (Node 20, x64); and inside `verifyGetProof`,
 * whose messages are 65–70 B, the JS one verified 27k proofs/s against node:crypto's 17k (the
 * binding's argument checks and the Buffer wrapping show in the profile).
 */
export const NODE_CRYPTO_MIN_LEN = 128;

/** The verifiers' SHA-256 in Node: proofs/sha256.ts below {@link NODE_CRYPTO_MIN_LEN} bytes, node:crypto from there. */
export const nodeSha256: Sha256 = (data) => (data.length < NODE_CRYPTO_MIN_LEN ? jsSha256(data) : nodeSha256Plain(data));

/** Makes {@link nodeSha256} the default hasher of `proofs/` in this process. */
export function installNodeSha256(): void {
  installSha256(nodeSha256, { jsBelow: NODE_CRYPTO_MIN_LEN });
}
