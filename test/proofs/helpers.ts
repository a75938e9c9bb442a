/** Shared test helpers for the proofs suites. */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { NODE_CRYPTO_MIN_LEN, nodeSha256, nodeSha256Buffer, nodeSha256Plain } from '../../node-entry/sha256.js';
import { fromHex } from '../../proofs/bytes.js';
import { Hasher, jsHasher } from '../../proofs/hash.js';

/** The published RFC 6962 vectors, kept in the repository (source and licence: test/vectors/README.md). */
export interface Vectors {
  source: { repo: string; commit: string; note: string };
  leaves_hex: string[];
  roots: { size: number; root_hex: string }[];
  node_hashes_hex: string[][];
  hasher: { desc: string; op: string; input_hex?: string; left_hex?: string; right_hex?: string; want_hex: string }[];
  inclusion: InclusionCase[];
  consistency: ConsistencyCase[];
  inclusion_invalid: (InclusionCase & { desc: string })[];
  consistency_invalid: (ConsistencyCase & { desc: string })[];
  consistency_either: ConsistencyCase[];
}
export interface InclusionCase {
  leaf_index: number;
  tree_size: number;
  proof_hex: string[];
  root_hex: string;
  leaf_hash_hex: string;
}
export interface ConsistencyCase {
  size1: number;
  size2: number;
  proof_hex: string[];
  root1_hex: string;
  root2_hex: string;
}

export function loadVectors(): Vectors {
  const url = new URL('../vectors/rfc6962.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Vectors;
}

export const hex = fromHex;

/** `v` as a big-endian u32 / u64, built with DataView (independently of proofs/bytes.ts). */
export const u32 = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
};
export const u64 = (v: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v));
  return b;
};

/** SHA-256 through node:crypto (the server's implementation). */
export const nodeHasher = new Hasher((d) => new Uint8Array(createHash('sha256').update(d).digest()));

/**
 * The SHA-256 primitives the Node entry points install (JS below 128 bytes, `crypto.hash` from
 * there) and the tables use (`crypto.hash`, a Buffer or a plain view), each behind its own Hasher with its own reused message buffers, and the
 * built-in JS one (proofs/sha256.ts), the default elsewhere.
 */
export const entryPointHashers = [
  new Hasher(nodeSha256),
  new Hasher(nodeSha256, { jsBelow: NODE_CRYPTO_MIN_LEN }),
  new Hasher(nodeSha256Plain),
  new Hasher(nodeSha256Buffer),
  jsHasher,
];

/** Deterministic pseudo-random bytes (xorshift32), so a failing case replays. */
export function prng(seed: number): (n: number) => Uint8Array {
  let s = seed >>> 0 || 1;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      out[i] = s & 0xff;
    }
    return out;
  };
}

/** Leaf hashes 0..n-1 derived from their index. */
export function leafHashesFor(n: number, hasher: Hasher, tag = 0): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const d = new Uint8Array(9);
    new DataView(d.buffer).setUint32(0, i);
    d[8] = tag;
    out.push(hasher.sha256(new Uint8Array([0, ...d])));
  }
  return out;
}

/** A copy of `b` with bit `bit` flipped. */
export function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const c = b.slice();
  c[bit >> 3] ^= 1 << (bit & 7);
  return c;
}
