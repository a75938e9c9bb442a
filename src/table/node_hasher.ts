/**
 * The server-side {@link Hasher}: the layouts of proofs/hash.ts over `node:crypto`'s one-shot
 * SHA-256, about 2x faster than noble on the 64-byte messages Merkle trees hash. Tables default to
 * it; verifiers use `nobleHasher`, and both give identical digests.
 * @module
 */
import { hash } from 'node:crypto';
import { Hasher } from '../../proofs/hash.js';

/**
 * A Hasher bound to `crypto.hash('sha256', data, 'buffer')`. Digests are Buffers (a `Uint8Array`
 * subclass); wrapping each in a plain view would cost an allocation per hash on the hot path.
 */
export const nodeHasher: Hasher = new Hasher((data) => hash('sha256', data, 'buffer'));
