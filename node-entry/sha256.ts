/**
 * SHA-256 from `node:crypto` for the verifiers, and its installation as the default of
 * `proofs/` ({@link installSha256}). The Node entry points of the packages import this module;
 * browsers get `proofs/` with noble, untouched. Both give identical digests (`installSha256`
 * checks a set of messages against noble before it switches).
 * @module
 */
import * as crypto from 'node:crypto';
import { installSha256, type Sha256 } from '../proofs/hash.js';

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

/** Makes `node:crypto`'s SHA-256 the default hasher of `proofs/` in this process. */
export function installNodeSha256(): void {
  installSha256(nodeSha256Plain);
}
