/**
 * A one-shot SHA-256 (FIPS 180-4) in plain JavaScript, written for the short messages a verifier
 * hashes: 65-byte inner nodes and 54 + keyLen-byte entry leaves, two compression blocks each.
 * Isomorphic: no `node:` imports. Unlike a streaming hasher it builds no object, view or buffer per
 * call: the message schedule, state and final padded block(s) live in module-level typed arrays
 * (JavaScript runs one call at a time, and the function neither yields nor re-enters), so the only
 * allocation is the 32-byte digest it returns. Measured 3–5x faster than noble's `sha256` on 65-byte
 * messages in Node (bench/README.md). `hash.ts` cross-checks it against noble before using it.
 * @module
 */

/** Round constants: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
/** Message schedule, reused (256 bytes). */
const W = new Int32Array(64);
/** Chaining state, reused (32 bytes). */
const S = new Int32Array(8);
/** The last one or two blocks, padded, reused (128 bytes). */
const TAIL = new Uint8Array(128);

/** One compression of the 64-byte block at `b[off]` into {@link S}. */
function compress(b: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++, off += 4) W[i] = (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
  compressW();
}

/** One compression of the block already in `W[0..15]` (big-endian words) into {@link S}. */
function compressW(): void {
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15];
    const w2 = W[i - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = S[0];
  let b1 = S[1];
  let c = S[2];
  let d = S[3];
  let e = S[4];
  let f = S[5];
  let g = S[6];
  let h = S[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b1) ^ (a & c) ^ (b1 & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b1;
    b1 = a;
    a = (t1 + t2) | 0;
  }
  S[0] = (S[0] + a) | 0;
  S[1] = (S[1] + b1) | 0;
  S[2] = (S[2] + c) | 0;
  S[3] = (S[3] + d) | 0;
  S[4] = (S[4] + e) | 0;
  S[5] = (S[5] + f) | 0;
  S[6] = (S[6] + g) | 0;
  S[7] = (S[7] + h) | 0;
}

/** Sets {@link S} to the initial hash value H(0). */
function init(): void {
  S[0] = 0x6a09e667;
  S[1] = 0xbb67ae85;
  S[2] = 0x3c6ef372;
  S[3] = 0xa54ff53a;
  S[4] = 0x510e527f;
  S[5] = 0x9b05688c;
  S[6] = 0x1f83d9ab;
  S[7] = 0x5be0cd19;
}

/** {@link S} as a fresh 32-byte digest. */
function digest(): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const v = S[i];
    out[4 * i] = v >>> 24;
    out[4 * i + 1] = v >>> 16;
    out[4 * i + 2] = v >>> 8;
    out[4 * i + 3] = v;
  }
  return out;
}

/** SHA-256 of `data` (any length), as a fresh 32-byte array. Does not keep `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  init();
  const n = data.length;
  const rest = n % 64;
  const full = n - rest;
  for (let off = 0; off < full; off += 64) compress(data, off);
  // Padding: 0x80, zeros, then the bit length as u64 BE; one block if it fits after 55 bytes.
  const tailLen = rest < 56 ? 64 : 128;
  TAIL.fill(0, 0, tailLen);
  for (let i = 0; i < rest; i++) TAIL[i] = data[full + i];
  TAIL[rest] = 0x80;
  const hi = Math.floor(n / 0x20000000); // (n * 8) >>> 32, exact for n < 2^53
  const lo = (n * 8) >>> 0;
  TAIL[tailLen - 8] = hi >>> 24;
  TAIL[tailLen - 7] = hi >>> 16;
  TAIL[tailLen - 6] = hi >>> 8;
  TAIL[tailLen - 5] = hi;
  TAIL[tailLen - 4] = lo >>> 24;
  TAIL[tailLen - 3] = lo >>> 16;
  TAIL[tailLen - 2] = lo >>> 8;
  TAIL[tailLen - 1] = lo;
  compress(TAIL, 0);
  if (tailLen === 128) compress(TAIL, 64);
  return digest();
}

/**
 * SHA-256 of the 65-byte message `prefix || left || right` (an inner tree node, `left` and
 * `right` 32 bytes each), equal to `sha256` of that message but without building it: the message
 * schedule is read straight from the two digests, and the second block is the known padding of a
 * 65-byte message (its last byte, 0x80, zeros, the bit length 520). The caller checks the lengths.
 */
export function sha256Node(prefix: number, left: Uint8Array, right: Uint8Array): Uint8Array {
  init();
  // Block 1: prefix, left[0..31], right[0..30] — every word straddles the one-byte shift.
  W[0] = (prefix << 24) | (left[0] << 16) | (left[1] << 8) | left[2];
  for (let i = 1, j = 3; i < 8; i++, j += 4) W[i] = (left[j] << 24) | (left[j + 1] << 16) | (left[j + 2] << 8) | left[j + 3];
  W[8] = (left[31] << 24) | (right[0] << 16) | (right[1] << 8) | right[2];
  for (let i = 9, j = 3; i < 16; i++, j += 4) W[i] = (right[j] << 24) | (right[j + 1] << 16) | (right[j + 2] << 8) | right[j + 3];
  compressW();
  // Block 2: right[31], the 0x80 terminator, zeros, u64 bit length 65 * 8.
  W[0] = (right[31] << 24) | 0x800000;
  for (let i = 1; i < 15; i++) W[i] = 0;
  W[15] = 65 * 8;
  compressW();
  return digest();
}
