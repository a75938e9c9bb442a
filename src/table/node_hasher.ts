/**
 * The server-side {@link Hasher}: the layouts of proofs/hash.ts over `node:crypto`'s one-shot
 * SHA-256, about 2x faster than noble on the 64-byte messages Merkle trees hash. Tables default to
 * it; verifiers use `defaultHasher()` (noble, or node:crypto once a Node entry point installed
 * it), and both give identical digests.
 *
 * The table builder's hot path hashes through {@link sha256IntoOf} instead: a digest written
 * straight into the caller's buffer. For node:crypto that is the digest asked for as a `latin1`
 * string and copied out byte by byte, because a digest asked for as a Buffer gets a fresh
 * off-heap backing store per call: measured on Node 20 (x64, SHA-NI), 0.7–0.8 µs per 65–101-byte
 * message as a Buffer against 0.2–0.25 µs as a string (bench/README.md § "Table builds").
 * @module
 */
import * as crypto from 'node:crypto';
import { HASH_LEN, Hasher } from '../../proofs/hash.js';
import { nodeSha256Buffer } from '../../node-entry/sha256.js';

/**
 * A Hasher bound to `crypto.hash('sha256', data, 'buffer')`. Digests are Buffers (a `Uint8Array`
 * subclass); wrapping each in a plain view would cost an allocation per hash on the hot path.
 */
export const nodeHasher: Hasher = new Hasher(nodeSha256Buffer);

/** SHA-256 of `data` written to `out[off, off + 32)`; `data` and that range must not overlap. */
export type Sha256Into = (data: Uint8Array, out: Uint8Array, off: number) => void;

/**
 * node:crypto's SHA-256 into a buffer: the digest as a one-byte (`latin1`) string, whose char
 * codes are the digest's bytes, copied out. `createHash` on Node without `crypto.hash`.
 */
export const nodeSha256Into: Sha256Into =
  typeof crypto.hash === 'function'
    ? (data, out, off) => {
        const s = crypto.hash('sha256', data, 'binary');
        for (let i = 0; i < HASH_LEN; i++) out[off + i] = s.charCodeAt(i);
      }
    : (data, out, off) => {
        const s = crypto.createHash('sha256').update(data).digest('binary');
        for (let i = 0; i < HASH_LEN; i++) out[off + i] = s.charCodeAt(i);
      };

/**
 * The {@link Sha256Into} of `hasher`'s SHA-256: {@link nodeSha256Into} for {@link nodeHasher},
 * otherwise `hasher.sha256` with its digest copied (same digests, any implementation).
 */
export function sha256IntoOf(hasher: Hasher): Sha256Into {
  if (hasher === nodeHasher) return nodeSha256Into;
  const sha = hasher.sha256;
  return (data, out, off) => out.set(sha(data), off);
}
