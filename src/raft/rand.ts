/**
 * Seeded pseudo-random numbers (xoshiro128**, seeded through splitmix32). The Raft core takes
 * all of its randomness from a {@link Rand}, so one seed reproduces a whole run.
 * @module
 */

/** A source of random numbers. */
export interface Rand {
  /** Uniform integer in [0, n); requires n >= 1. */
  int(n: number): number;
  /** Uniform float in [0, 1). */
  float(): number;
}

/** Deterministic {@link Rand} from a 32-bit seed: xoshiro128** (Blackman & Vigna, 2018). */
export class SeededRand implements Rand {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds the generator; any safe integer is accepted (folded to 32 bits + high bits). */
  constructor(seed: number) {
    let x = (seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
    const next = (): number => {
      // splitmix32
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32 random bits as an unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0; this.s1 >>>= 0; this.s2 >>>= 0; this.s3 >>>= 0;
    return result;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1)) throw new RangeError(`rand.int: n must be >= 1, got ${n}`);
    return Math.floor(this.float() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** A new independent generator derived from this one (for sub-streams). */
  fork(): SeededRand {
    return new SeededRand(this.u32() * 0x1_0000 + (this.u32() & 0xffff));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
