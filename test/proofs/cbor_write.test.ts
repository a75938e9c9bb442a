/**
 * The proof codecs' CBOR writer (`proofs/cbor_write.ts`) writes exactly the bytes the codecs'
 * cbor-x instance writes: on seeded random values of the proof data model (every head width's
 * boundaries, byte and text strings of every length class, nested arrays and maps with integer and
 * text keys, 8-byte integers), and on every proof type of a real engine in both formats (the
 * codecs' output re-encoded by cbor-x from its decoded value is the same bytes). Anything outside
 * the data model is a `TypeError`, never bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proofCbor } from '../../proofs/cbor_instance.js';
import { writeCbor } from '../../proofs/cbor_write.js';
import type { Codec } from '../../proofs/encoding.js';
import { getProofCodec, getProofCodecV1, historyProofCodec, historyProofCodecV1, scanProofCodec, scanProofCodecV1 } from '../../proofs/lsm_encoding.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { mulberry32 as rng } from '../support/prng.js';
import { buildScenario, enc, SCENARIO_OPTIONS, skey, type Scenario } from './lsm_helpers.js';

const cborX = (v: unknown): string => Buffer.from(proofCbor.encode(v)).toString('hex');
const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const write = (v: unknown): string => hexOf(writeCbor(v));

const BOUNDARY_UINTS = [0, 1, 23, 24, 25, 255, 256, 257, 65535, 65536, 65537, 0xffffffff];
const BOUNDARY_LENGTHS = [0, 1, 23, 24, 31, 32, 255, 256, 1000, 65535, 65536];
const BIGINTS = [2n ** 32n, 2n ** 32n + 1n, BigInt(Number.MAX_SAFE_INTEGER), 2n ** 64n - 1n];

function randomValue(r: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const kind = Math.floor(r() * (depth > 3 ? 6 : 8));
  switch (kind) {
    case 0:
      return r() < 0.5 ? pick(BOUNDARY_UINTS) : Math.floor(r() * 2 ** 32);
    case 1: {
      const len = r() < 0.7 ? Math.floor(r() * 40) : pick(BOUNDARY_LENGTHS);
      const b = new Uint8Array(len);
      // (random bytes for the short ones; a long one's head is what matters)
      for (let i = 0; i < Math.min(len, 64); i++) b[i] = Math.floor(r() * 256);
      return b;
    }
    case 2: {
      const len = r() < 0.8 ? Math.floor(r() * 40) : pick(BOUNDARY_LENGTHS);
      let s = '';
      for (let i = 0; i < Math.min(len, 64); i++) s += r() < 0.9 ? String.fromCharCode(97 + Math.floor(r() * 26)) : pick(['é', 'ß', '€', '😀', '中']);
      return s + 'z'.repeat(Math.max(0, len - 64));
    }
    case 3:
      return pick(BIGINTS);
    case 4:
      return pick([true, false, null]);
    case 5:
      return pick(BOUNDARY_UINTS);
    case 6: {
      const n = r() < 0.9 ? Math.floor(r() * 6) : pick([23, 24, 30]);
      return Array.from({ length: n }, () => randomValue(r, depth + 1));
    }
    default: {
      const m = new Map<unknown, unknown>();
      const n = r() < 0.9 ? Math.floor(r() * 6) : pick([23, 24, 30]);
      const textKeys = r() < 0.5;
      for (let i = 0; i < n; i++) m.set(textKeys ? `k${i}${'x'.repeat(Math.floor(r() * 30))}` : i, randomValue(r, depth + 1));
      return m;
    }
  }
}

describe('writeCbor', () => {
  it('writes what cbor-x writes for the boundary values of every head width', () => {
    for (const n of BOUNDARY_UINTS) expect(write(n), `uint ${n}`).toEqual(cborX(n));
    for (const n of BIGINTS) expect(write(n), `bigint ${n}`).toEqual(cborX(n));
    for (const len of BOUNDARY_LENGTHS) {
      const b = new Uint8Array(len).fill(0xab);
      expect(write(b), `bytes(${len})`).toEqual(cborX(b));
      expect(write('a'.repeat(len)), `text(${len})`).toEqual(cborX('a'.repeat(len)));
      expect(write('é'.repeat(len)), `text of ${len} two-byte chars`).toEqual(cborX('é'.repeat(len)));
      expect(write(Array.from({ length: Math.min(len, 300) }, () => 1)), `array(${len})`).toEqual(cborX(Array.from({ length: Math.min(len, 300) }, () => 1)));
    }
  });

  it('writes what cbor-x writes for 3,000 seeded random values of the proof data model', () => {
    const r = rng(20261129);
    for (let i = 0; i < 3000; i++) {
      const v = randomValue(r, 0);
      expect(write(v), `value ${i} (seed 20261129)`).toEqual(cborX(v));
    }
  });

  it('refuses what is outside the proof data model', () => {
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN, -1n, 2n ** 64n, undefined, {}, new Uint16Array(2), Symbol('x'), () => 0]) {
      expect(() => writeCbor(bad), String(typeof bad === 'symbol' ? 'symbol' : bad)).toThrow(TypeError);
      expect(() => writeCbor([1, new Map([[0, bad]])])).toThrow(TypeError);
    }
  });
});

describe('the proof codecs write what cbor-x writes', () => {
  let S: Scenario;
  beforeAll(async () => {
    const { dir, cleanup } = tempDir('proofkv-cborwrite-');
    S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
  });
  afterAll(async () => {
    await S?.cleanup();
  });

  const same = <P>(name: string, codec: Codec<P>, proof: P) => {
    for (const bytes of [codec.encode(proof), codec.encodeTrusted(proof)]) {
      const hex = hexOf(bytes);
      expect(cborX(proofCbor.decode(bytes.slice())), name).toBe(hex);
      expect(codec.decode(bytes), name).toBeDefined();
    }
  };

  it('for get, history and scan proofs in formats 1 and 2', async () => {
    for (const key of [enc(skey(13)), enc(`${skey(33)}5`)]) {
      const p = (await S.db.getWithProof(key)).proof;
      same('get (format 2)', getProofCodec, p);
      same('get (format 1)', getProofCodecV1, p);
    }
    const h = (await S.db.getVersionHistoryWithProof(enc(skey(13)))).proof;
    same('history (format 2)', historyProofCodec, h);
    same('history (format 1)', historyProofCodecV1, h);
    const s = (await S.db.scanWithProof({ start: enc(skey(25)), end: enc(skey(75)), limit: 10 })).proof;
    same('scan (format 2)', scanProofCodec, s);
    same('scan (format 1)', scanProofCodecV1, s);
  });
});
