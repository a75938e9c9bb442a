/**
 * LevelDB's bloom filter, bit for bit: the same hash (`Hash(key, 0xbc9f1d34)`), the same number of
 * probes (`k = round-down(bitsPerKey * ln 2)`, clamped to 1..30), the same double hashing and the
 * same layout.
 *
 * ```
 * filter = bits[ceil(max(64, n * bitsPerKey) / 8)] || k u8
 * ```
 * A table has one filter over its distinct user keys.
 * @module
 */

const SEED = 0xbc9f1d34;
const M = 0xc6a4a793;

/** LevelDB's murmur-like 32-bit hash of `data[start, end)` with `seed`. */
export function levelHash(data: Uint8Array, seed: number, start = 0, end = data.length): number {
  const n = end - start;
  let h = (seed ^ Math.imul(n, M)) >>> 0;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const w = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    h = (h + w) >>> 0;
    h = Math.imul(h, M) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  const rest = end - i;
  if (rest > 0) {
    if (rest === 3) h = (h + (data[i + 2] << 16)) >>> 0;
    if (rest >= 2) h = (h + (data[i + 1] << 8)) >>> 0;
    h = (h + data[i]) >>> 0;
    h = Math.imul(h, M) >>> 0;
    h = (h ^ (h >>> 24)) >>> 0;
  }
  return h;
}

/** The hash a bloom filter uses for a key. */
export function bloomHash(key: Uint8Array, start = 0, end = key.length): number {
  return levelHash(key, SEED, start, end);
}

/** Number of probes for `bitsPerKey`, as LevelDB computes it. */
export function bloomProbes(bitsPerKey: number): number {
  let k = Math.floor(bitsPerKey * 0.69); // 0.69 =~ ln(2)
  if (k < 1) k = 1;
  if (k > 30) k = 30;
  return k;
}

/** Builds a filter from key hashes (one per distinct key, from {@link bloomHash}). */
export function buildBloom(hashes: ArrayLike<number>, count: number, bitsPerKey: number): Uint8Array {
  const k = bloomProbes(bitsPerKey);
  let bits = count * bitsPerKey;
  if (bits < 64) bits = 64;
  const bytes = Math.ceil(bits / 8);
  bits = bytes * 8;
  const out = new Uint8Array(bytes + 1);
  for (let i = 0; i < count; i++) {
    let h = hashes[i] >>> 0;
    const delta = ((h >>> 17) | (h << 15)) >>> 0;
    for (let j = 0; j < k; j++) {
      const pos = h % bits;
      out[pos >>> 3] |= 1 << (pos & 7);
      h = (h + delta) >>> 0;
    }
  }
  out[bytes] = k;
  return out;
}

/**
 * True when `key` may be in the set `filter` was built from; false means certainly not.
 * As in LevelDB, a filter shorter than 2 bytes matches nothing and one with a reserved probe
 * count (> 30) matches everything.
 */
export function bloomMayContain(filter: Uint8Array, key: Uint8Array): boolean {
  return bloomMayContainHash(filter, bloomHash(key));
}

/** {@link bloomMayContain} for a precomputed {@link bloomHash}. */
export function bloomMayContainHash(filter: Uint8Array, hash: number): boolean {
  const len = filter.length;
  if (len < 2) return false;
  const bits = (len - 1) * 8;
  const k = filter[len - 1];
  if (k > 30) return true;
  let h = hash >>> 0;
  const delta = ((h >>> 17) | (h << 15)) >>> 0;
  for (let j = 0; j < k; j++) {
    const pos = h % bits;
    if ((filter[pos >>> 3] & (1 << (pos & 7))) === 0) return false;
    h = (h + delta) >>> 0;
  }
  return true;
}
