/**
 * The server-side {@link Hasher}: the layouts of proofs/hash.ts over `node:crypto`'s one-shot
 * SHA-256, about 2x faster than noble on the 64-byte messages Merkle trees hash. Tables default to
 * it; verifiers use `defaultHasher()` (noble, or node:crypto once a Node entry point installed
 * it), and both give identical digests.
 * @module
 */
import { Hasher } from '../../proofs/hash.js';
import { nodeSha256Buffer } from '../../node-entry/sha256.js';

/**
 * A Hasher bound to `crypto.hash('sha256', data, 'buffer')`. Digests are Buffers (a `Uint8Array`
 * subclass); wrapping each in a plain view would cost an allocation per hash on the hot path.
 */
export const nodeHasher: Hasher = new Hasher(nodeSha256Buffer);
