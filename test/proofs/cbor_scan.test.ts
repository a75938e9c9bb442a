/**
 * The linear CBOR pre-pass (`proofs/cbor_scan.ts`): inputs built to make a decoder do unbounded
 * work — the value-sharing bomb of issue 8, nested indefinite arrays, deep nesting, huge declared
 * lengths with a short body — are rejected with DecodeError only, and the work done is bounded by
 * the input (heads read, never wall time). In canonical mode the scan plus the schema accept
 * exactly what the former decode → re-encode → compare rule accepted (differential fuzz).
 */
import { Decoder, Encoder } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../proofs/bytes.js';
import { scanCbor, type CborLimits, type CborScanStats } from '../../proofs/cbor_scan.js';
import { proofCbor } from '../../proofs/cbor_instance.js';
import { type Codec } from '../../proofs/encoding.js';
import { DecodeError } from '../../proofs/errors.js';
import { Kind } from '../../proofs/hash.js';
import { getProofCodec, getProofCodecV1, getProofSchema, historyProofCodec, MAX_PROOF_BYTES } from '../../proofs/lsm_encoding.js';
import { compactGetProofSchema } from '../../proofs/compact_encoding.js';
import { codec, type Schema } from '../../proofs/encoding.js';
import type { GetProof } from '../../proofs/lsm_proof.js';
import { parseStructuredBody } from '../../server/codec.js';
import { HttpError } from '../../server/errors.js';
import { CborWriter, sharingBomb } from './cbor_writer.js';
import { prng } from './helpers.js';

const rnd = prng(8);
const GET_LIMITS: CborLimits = { canonical: true, maxDepth: getProofSchema.shape!.depth, maxArray: getProofSchema.shape!.maxArray, maxMap: getProofSchema.shape!.maxMap };

/** Scans and returns the DecodeError with the heads read, failing on any other outcome. */
function scanRejects(b: Uint8Array, limits: CborLimits = GET_LIMITS): { err: DecodeError; heads: number } {
  const stats: CborScanStats = { heads: 0 };
  try {
    scanCbor(b, limits, stats);
  } catch (e) {
    expect(e).toBeInstanceOf(DecodeError);
    expect((e as DecodeError).reason).toBe('MALFORMED_ENCODING');
    return { err: e as DecodeError, heads: stats.heads };
  }
  return expect.fail(`accepted ${toHex(b.subarray(0, 64))}`);
}

/** Decodes with `codec`, requiring a DecodeError. */
function decodeRejects<T>(codec: Codec<T>, b: Uint8Array): DecodeError {
  try {
    codec.decode(b);
  } catch (e) {
    if (!(e instanceof DecodeError)) throw new Error(`non-DecodeError ${String(e)}`);
    return e;
  }
  return expect.fail('accepted');
}

/** Nodes of the tree a decoder that honours value sharing would build (counted on the DAG). */
function treeSize(x: unknown, memo = new Map<object, number>()): number {
  if (x === null || typeof x !== 'object' || x instanceof Uint8Array) return 1;
  const m = memo.get(x);
  if (m !== undefined) return m;
  let c = 1;
  if (x instanceof Map) for (const y of x.values()) c += 1 + treeSize(y, memo);
  else if (Array.isArray(x)) for (const y of x) c += treeSize(y, memo);
  memo.set(x, c);
  return c;
}

function sampleProof(): GetProof {
  const h = () => rnd(32);
  const entry = (k: number) => ({ key: new Uint8Array([k, k + 1]), version: 5 + k, seq: 2 ** 40 + k, time: 2 ** 42 + k, kind: Kind.PUT, valueHash: h() });
  return {
    certificate: {
      checkpoint: { index: 3, seq: 99, masterRoot: h(), prevCheckpointHash: h() },
      head: { size: 4, root: h() },
      signatures: [{ publicKey: h(), signature: rnd(64) }],
      inclusion: [h(), h()],
    },
    body: {
      levelCounts: [2, 1, 0, 0, 0, 0, 0],
      descriptors: [0, 1].map((p) => ({ level: 0, position: p, smallest: rnd(20), largest: rnd(24), entryCount: 300 + p, tableRoot: h() })),
      masterProof: [h()],
      windows: [{ table: 0, blockCount: 9, blockProof: [h(), h(), h()], blocks: [{ index: 2, entryCount: 17, offset: 15, entries: [entry(1), entry(2)], proof: [h(), h()] }] }],
    },
    value: rnd(40),
  };
}

describe('unbounded-work inputs are rejected by the linear pass', () => {
  it('the ~1 KB value-sharing bomb: DecodeError at the first tag, before any decoding', () => {
    const bomb = sharingBomb(100);
    expect(bomb.length).toBeLessThan(1200);
    // What a sharing-aware decoder makes of it: millions of nodes (cbor-x alone, no schema walk).
    const expanded = treeSize(new Decoder({ mapsAsObjects: false, useRecords: false } as ConstructorParameters<typeof Decoder>[0]).decode(bomb));
    expect(expanded).toBeGreaterThan(5_000 * bomb.length);
    const { err, heads } = scanRejects(bomb);
    expect(err.message).toMatch(/value-sharing tag 28/);
    expect(heads).toBeLessThan(20);
    expect(decodeRejects(getProofCodec, bomb).message).toMatch(/value-sharing tag 28/);
    expect(decodeRejects(historyProofCodec, bomb).message).toMatch(/tag/);
    // The same bytes as a request body: 400 before cbor-x sees them.
    expect(() => parseStructuredBody('cbor', bomb)).toThrow(HttpError);
    expect(() => parseStructuredBody('cbor', bomb)).toThrow(/value-sharing tag 28/);
  });

  it('a bare tag 29 reference and every other tag are rejected', () => {
    for (const t of [0, 1, 2, 24, 28, 29, 55799, 259]) {
      const b = new CborWriter().head(5, 1).text('body').head(6, t).head(4, 0).done();
      expect(scanRejects(b).err.message).toMatch(/tag/);
      expect(scanRejects(b, { canonical: false, maxDepth: 3, maxArray: 10, maxMap: 8 }).err.message).toMatch(/tag/);
    }
  });

  it('nested indefinite arrays and maps: rejected at the first byte', () => {
    for (const opener of [0x9f, 0xbf, 0x5f, 0x7f]) {
      const b = new Uint8Array(100_000).fill(opener);
      const { err, heads } = scanRejects(b);
      expect(err.message).toMatch(/indefinite/);
      expect(heads).toBe(1);
      expect(() => parseStructuredBody('cbor', b)).toThrow(HttpError);
    }
    // Indefinite inside a valid prefix, and a stray break.
    expect(scanRejects(new CborWriter().head(5, 1).text('body').raw(0x9f, 0x9f, 0xff, 0xff).done()).err.message).toMatch(/indefinite/);
    expect(scanRejects(new Uint8Array([0xa1, 0x64, 0x62, 0x6f, 0x64, 0x79, 0xff]), { canonical: false, maxDepth: 3, maxArray: 1, maxMap: 1 }).err.message).toMatch(/break/);
  });

  it('deep nesting: rejected one level past the deepest the schema can need', () => {
    const depth = GET_LIMITS.maxDepth;
    expect(depth).toBeLessThanOrEqual(10);
    for (const opener of [0x81, 0xa1]) {
      const b = new Uint8Array(199_998);
      for (let i = 0; i < b.length; i += opener === 0x81 ? 1 : 3) {
        if (opener === 0x81) b[i] = 0x81;
        else b.set([0xa1, 0x61, 0x61], i); // { "a": { "a": ...
      }
      const { err, heads } = scanRejects(b);
      expect(err.message).toMatch(/nesting deeper|map key|want at most/);
      expect(heads).toBeLessThanOrEqual(2 * (depth + 1));
      expect(() => parseStructuredBody('cbor', b)).toThrow(HttpError);
    }
    // Exactly at the bound passes the scan (the schema decides the rest).
    const ok = new Uint8Array(depth + 1).fill(0x81);
    ok[depth] = 0x00;
    scanCbor(ok, { ...GET_LIMITS, maxArray: 1 });
    const over = new Uint8Array(depth + 2).fill(0x81);
    over[depth + 1] = 0x00;
    expect(scanRejects(over, { ...GET_LIMITS, maxArray: 1 }).err.message).toMatch(/nesting deeper/);
  });

  it('huge declared lengths with a short body: rejected at the head, nothing allocated', () => {
    const cases = [
      new CborWriter().head(5, 1).text('value').head(2, 0xffffffff).raw(1, 2, 3).done(),
      new CborWriter().head(5, 1).text('value').head(2, 2 ** 53 - 1).raw(1, 2, 3).done(),
      new CborWriter().head(5, 1).text('value').raw(0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff).done(),
      new CborWriter().head(5, 1).text('body').head(4, 1 << 20).raw(0, 0, 0).done(),
      new CborWriter().head(5, 1).text('body').head(4, 2 ** 40).raw(0).done(),
      new CborWriter().head(5, 0xffffffff).text('body').done(),
      new CborWriter().head(5, 1).head(3, 1 << 30).raw(0x61).done(),
    ];
    for (const b of cases) {
      const { err, heads } = scanRejects(b);
      expect(err.message).toMatch(/bytes left|want at most|map of/);
      expect(heads).toBeLessThanOrEqual(3);
      expect(decodeRejects(getProofCodec, b)).toBeInstanceOf(DecodeError);
    }
    // A proof larger than the codec accepts is refused before the scan reads it.
    expect(decodeRejects(getProofCodec, new Uint8Array(MAX_PROOF_BYTES + 1)).message).toMatch(/at most/);
  });

  it('work is linear: never more heads than bytes, on random inputs', () => {
    for (let i = 0; i < 3000; i++) {
      const b = rnd(1 + (i % 300));
      const stats: CborScanStats = { heads: 0 };
      try {
        scanCbor(b, { canonical: i % 2 === 0, maxDepth: 64, maxArray: 1 << 20, maxMap: 1 << 20 }, stats);
      } catch (e) {
        expect(e).toBeInstanceOf(DecodeError);
      }
      expect(stats.heads).toBeLessThanOrEqual(b.length);
    }
  });
});

describe('canonical mode (format 1, text keys)', () => {
  const good = getProofCodecV1.encode(sampleProof());

  it('rejects non-shortest heads, floats, negatives, simple values, non-text or unsorted or duplicate keys, bad UTF-8, trailing bytes', () => {
    const bad: Array<[string, Uint8Array]> = [
      ['non-shortest uint', new CborWriter().head(5, 1).text('bound').head(0, 5, 1).done()],
      ['non-shortest uint 16', new CborWriter().head(5, 1).text('bound').head(0, 200, 2).done()],
      ['non-shortest uint 64', new CborWriter().head(5, 1).text('bound').head(0, 70000, 8).done()],
      ['non-shortest length', new CborWriter().head(5, 1).head(3, 4, 1).raw(0x62, 0x6f, 0x64, 0x79).head(4, 0).done()],
      ['non-shortest map', new CborWriter().head(5, 1, 2).text('body').head(4, 0).done()],
      ['uint above 2^53 - 1', new CborWriter().head(5, 1).text('bound').head(0, 2 ** 53, 8).done()],
      ['float', new CborWriter().head(5, 1).text('bound').raw(0xf9, 0x3c, 0x00).done()],
      ['negative', new CborWriter().head(5, 1).text('bound').head(1, 0).done()],
      ['true', new CborWriter().head(5, 1).text('bound').raw(0xf5).done()],
      ['null', new CborWriter().head(5, 1).text('bound').raw(0xf6).done()],
      ['bytes key', new CborWriter().head(5, 1).bytes(new Uint8Array([1])).head(0, 0).done()],
      ['int key', new CborWriter().head(5, 1).head(0, 1).head(0, 0).done()],
      ['unsorted keys', new CborWriter().head(5, 2).text('value').head(0, 0).text('body').head(0, 0).done()],
      ['longer key first', new CborWriter().head(5, 2).text('bb').head(0, 0).text('a').head(0, 0).done()],
      ['duplicate keys', new CborWriter().head(5, 2).text('body').head(0, 0).text('body').head(0, 1).done()],
      ['bad utf-8 key', new CborWriter().head(5, 1).head(3, 2).raw(0xc3, 0x28).head(0, 0).done()],
      ['trailing byte', new Uint8Array([...good, 0])],
      ['truncated', good.subarray(0, good.length - 1)],
      ['empty', new Uint8Array(0)],
    ];
    for (const [what, b] of bad) {
      let err: unknown;
      try {
        scanCbor(b, GET_LIMITS);
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(DecodeError);
      expect(decodeRejects(getProofCodec, b), what).toBeInstanceOf(DecodeError);
    }
    scanCbor(good, GET_LIMITS);
  });

  it('scan + schema accept exactly what decode → re-encode → compare accepted (differential fuzz)', () => {
    differential(getProofSchema, getProofCodecV1, [good, getProofCodecV1.encode({ ...sampleProof(), value: undefined }), getProofCodecV1.encode(sampleProof())]);
  });
});

describe('request bodies (lenient mode)', () => {
  it('accepts what cbor-x and other encoders write: long heads, unsorted keys, floats, null', () => {
    const cbor = new Encoder({ mapsAsObjects: true, useRecords: false, tagUint8Array: false } as ConstructorParameters<typeof Encoder>[0]);
    expect(parseStructuredBody('cbor', cbor.encode({ value: new Uint8Array([1]), version: 2 ** 40 }))).toMatchObject({ version: 2 ** 40 });
    const b = new CborWriter().head(5, 2, 2).text('version').raw(0xfb, 0x40, 0x14, 0, 0, 0, 0, 0, 0).text('value').raw(0xf6).done();
    expect(parseStructuredBody('cbor', b)).toEqual({ version: 5, value: null });
  });
});

describe('canonical mode (format 2, integer keys)', () => {
  const compact = codec(compactGetProofSchema, MAX_PROOF_BYTES, 'uint');
  const LIMITS: CborLimits = { ...GET_LIMITS, mapKeys: 'uint' };

  it('rejects text, byte-string, non-shortest, unsorted and duplicate keys', () => {
    const bad: Array<[string, Uint8Array]> = [
      ['text key', new CborWriter().head(5, 1).text('body').head(0, 0).done()],
      ['bytes key', new CborWriter().head(5, 1).bytes(new Uint8Array([1])).head(0, 0).done()],
      ['non-shortest key', new CborWriter().head(5, 1).head(0, 1, 1).head(0, 0).done()],
      ['unsorted keys', new CborWriter().head(5, 2).head(0, 2).head(0, 0).head(0, 1).head(0, 0).done()],
      ['duplicate keys', new CborWriter().head(5, 2).head(0, 1).head(0, 0).head(0, 1).head(0, 1).done()],
      ['negative key', new CborWriter().head(5, 1).head(1, 0).head(0, 0).done()],
    ];
    for (const [what, b] of bad) {
      expect(scanRejects(b, LIMITS).err.message, what).toMatch(/map key|order|non-shortest/);
      expect(decodeRejects(compact, b), what).toBeInstanceOf(DecodeError);
    }
    scanCbor(getProofCodec.encode(sampleProof()), LIMITS);
  });

  it('scan + schema accept exactly what decode → re-encode → compare accepted (differential fuzz)', () => {
    const p = sampleProof();
    differential(compactGetProofSchema, compact, [compact.encode(p), compact.encode({ ...p, value: undefined }), compact.encode(sampleProof())]);
  });
});

/**
 * Random byte edits of `seeds`: the codec (linear scan + schema) accepts exactly what the former
 * rule — decode with cbor-x, parse, re-encode, require the same bytes — accepted.
 */
function differential(schema: Schema<GetProof>, c: Codec<GetProof>, seeds: Uint8Array[]): void {
  const cbor = proofCbor;
  const oldRule = (b: Uint8Array): string | undefined => {
    try {
      const v = schema.parse(cbor.decode(b), '');
      return toHex(c.encode(v)) === toHex(b) ? toHex(c.encode(v)) : undefined;
    } catch {
      return undefined;
    }
  };
  const newRule = (b: Uint8Array): string | undefined => {
    try {
      return toHex(c.encode(c.decode(b)));
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      return undefined;
    }
  };
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const base = seeds[i % seeds.length];
    const b = base.slice();
    const kind = i % 4;
    const at = rnd(4).reduce((a, x) => a * 256 + x, 0) % b.length;
    let m: Uint8Array;
    if (kind === 0) {
      b[at] ^= 1 << (i % 8);
      m = b;
    } else if (kind === 1) {
      b[at] = rnd(1)[0];
      m = b;
    } else if (kind === 2) {
      m = new Uint8Array([...b.subarray(0, at), rnd(1)[0], ...b.subarray(at)]);
    } else {
      m = new Uint8Array([...b.subarray(0, at), ...b.subarray(at + 1)]);
    }
    const want = oldRule(m);
    expect(newRule(m), `mutation ${i}: ${toHex(m)}`).toBe(want);
    if (want !== undefined) accepted++;
  }
  for (const s of seeds) expect(newRule(s)).toBe(oldRule(s));
  // Some mutations stay valid (a flipped byte inside a hash), so both sides of the rule are exercised.
  expect(accepted).toBeGreaterThan(100);
}
