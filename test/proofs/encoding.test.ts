/**
 * CBOR encodings: round trips, the exact canonical bytes, strict rejection, and fuzzing (every
 * truncation, bit flips, insertions and deletions): decode throws DecodeError or returns a value
 * that then fails verification — never any other exception.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { equalBytes, fromHex, toHex } from '../../proofs/bytes.js';
import {
  type Checkpoint,
  type LogHead,
  checkpointHash,
  checkpointLeafHash,
  generateKeyPair,
  signHead,
  verifyCheckpoint,
  verifyCheckpointInclusion,
} from '../../proofs/checkpoint.js';
import {
  type Codec,
  checkpointCodec,
  consistencyProofCodec,
  inclusionProofCodec,
  logHeadCodec,
  rangeProofCodec,
  signedHeadCodec,
} from '../../proofs/encoding.js';
import { DecodeError } from '../../proofs/errors.js';
import { LogTree, verifyConsistency, verifyInclusion } from '../../proofs/log.js';
import { prng } from './helpers.js';

const rnd = prng(42);
const keys = [1, 2, 3].map((i) => generateKeyPair(new Uint8Array(32).fill(i)));
const policy = { publicKeys: keys.map((k) => k.publicKey), quorum: 2 };

// a log of checkpoints
const cps: Checkpoint[] = [];
const log = new LogTree();
for (let i = 0; i < 11; i++) {
  const c: Checkpoint = { index: i, seq: 1000 * i, masterRoot: rnd(32) };
  if (i > 0) c.prevCheckpointHash = checkpointHash(cps[i - 1]);
  cps.push(c);
  log.append(checkpointLeafHash(c));
}
const head: LogHead = { size: 11, root: log.root() };
const signed = { head, signatures: keys.slice(0, 2).map((k) => signHead(k.privateKey, head)) };

const h32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

/** Decodes, requiring that only DecodeError is ever thrown. */
function tryDecode<T>(c: Codec<T>, b: Uint8Array): T | undefined {
  try {
    return c.decode(b);
  } catch (e) {
    if (!(e instanceof DecodeError)) throw new Error(`non-DecodeError ${String(e)} for ${toHex(b)}`);
    expect(e.reason).toBe('MALFORMED_ENCODING');
    return undefined;
  }
}

describe('round trips', () => {
  it('every type, with values at the integer boundaries', () => {
    fc.assert(fc.property(u53, h32, fc.constantFrom(0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1), (n, h, edge) => {
      for (const size of [n, edge]) {
        const lh = { size, root: h };
        expect(logHeadCodec.decode(logHeadCodec.encode(lh))).toEqual(lh);
        const c: Checkpoint = size === 0 ? { index: 0, seq: n, masterRoot: h } : { index: size, seq: n, masterRoot: h, prevCheckpointHash: h };
        expect(checkpointCodec.decode(checkpointCodec.encode(c))).toEqual(c);
        if (size > 0) {
          const ip = { index: size - 1, treeSize: size, path: [h, h] };
          expect(inclusionProofCodec.decode(inclusionProofCodec.encode(ip))).toEqual(ip);
          const cp = { size1: size, size2: size, path: [] };
          expect(consistencyProofCodec.decode(consistencyProofCodec.encode(cp))).toEqual(cp);
          const rp = { start: size - 1, treeSize: size, path: [h] };
          expect(rangeProofCodec.decode(rangeProofCodec.encode(rp))).toEqual(rp);
        }
      }
    }));
    expect(signedHeadCodec.decode(signedHeadCodec.encode(signed))).toEqual(signed);
  });

  it('decoded values are plain Uint8Arrays, not views of the input', () => {
    const b = logHeadCodec.encode(head);
    const d = logHeadCodec.decode(b);
    expect(Object.getPrototypeOf(d.root)).toBe(Uint8Array.prototype);
    b.fill(0);
    expect(equalBytes(d.root, head.root)).toBe(true);
  });

  it('the exact canonical bytes of a LogHead (keys in RFC 8949 §4.2.1 order)', () => {
    const b = logHeadCodec.encode({ size: 2 ** 32, root: new Uint8Array(32).fill(0xab) });
    expect(toHex(b)).toBe('a2' + '64726f6f74' + '5820' + 'ab'.repeat(32) + '6473697a65' + '1b0000000100000000');
    expect(toHex(logHeadCodec.encode({ size: 24, root: new Uint8Array(32) })).endsWith('6473697a651818')).toBe(true);
  });

  it('encode refuses values that do not fit the schema', () => {
    expect(() => logHeadCodec.encode({ size: -1, root: rnd(32) })).toThrow(RangeError);
    expect(() => logHeadCodec.encode({ size: 1, root: rnd(31) })).toThrow(RangeError);
    expect(() => checkpointCodec.encode({ index: 0, seq: 0, masterRoot: rnd(32), prevCheckpointHash: rnd(32) })).toThrow(RangeError);
    expect(() => inclusionProofCodec.encode({ index: 5, treeSize: 5, path: [] })).toThrow(RangeError);
  });
});

describe('strict decoding', () => {
  const root = 'ab'.repeat(32);
  const cases: [string, string][] = [
    ['not CBOR', 'ff'],
    ['empty', ''],
    ['array, not map', '80'],
    ['missing field', `a1 64726f6f74 5820${root}`],
    ['extra field', `a3 64726f6f74 5820${root} 6473697a65 01 6178 01`],
    ['duplicate key', `a3 64726f6f74 5820${root} 6473697a65 01 6473697a65 02`],
    ['keys out of order', `a2 6473697a65 01 64726f6f74 5820${root}`],
    ['non-shortest integer', `a2 64726f6f74 5820${root} 6473697a65 1b0000000000000001`],
    ['negative integer', `a2 64726f6f74 5820${root} 6473697a65 20`],
    ['float', `a2 64726f6f74 5820${root} 6473697a65 f93c00`],
    ['integer above 2^53 - 1', `a2 64726f6f74 5820${root} 6473697a65 1b0020000000000000`],
    ['short hash', `a2 64726f6f74 581f${'ab'.repeat(31)} 6473697a65 01`],
    ['long hash', `a2 64726f6f74 5821${root}ab 6473697a65 01`],
    ['text instead of bytes', `a2 64726f6f74 7820${root} 6473697a65 01`],
    ['tagged bytes', `a2 64726f6f74 d840 5820${root} 6473697a65 01`],
    ['indefinite map', `bf 64726f6f74 5820${root} 6473697a65 01 ff`],
    ['trailing byte', `a2 64726f6f74 5820${root} 6473697a65 01 00`],
    ['integer key', `a2 00 5820${root} 6473697a65 01`],
    ['null size', `a2 64726f6f74 5820${root} 6473697a65 f6`],
  ];
  for (const [what, hex] of cases) {
    it(`LogHead: ${what}`, () => {
      expect(() => logHeadCodec.decode(fromHex(hex.replace(/ /g, '')))).toThrow(DecodeError);
    });
  }
  it('the valid neighbour of those cases decodes', () => {
    expect(logHeadCodec.decode(fromHex(`a2 64726f6f74 5820${root} 6473697a65 01`.replace(/ /g, '')))).toEqual({ size: 1, root: fromHex(root) });
  });
  it('semantic checks: prev hash rule, index < treeSize, 0 < size1 <= size2, path length cap', () => {
    const ip = (index: number, size: number) => fromHex(`a3 6470617468 80 65696e646578 ${index.toString(16).padStart(2, '0')} 687472656553697a65 ${size.toString(16).padStart(2, '0')}`.replace(/ /g, ''));
    expect(inclusionProofCodec.decode(ip(1, 2))).toEqual({ index: 1, treeSize: 2, path: [] });
    expect(() => inclusionProofCodec.decode(ip(2, 2))).toThrow(DecodeError);
    // checkpoint 1 without its prevCheckpointHash field: drop the last field and fix the map size
    const noPrev = checkpointCodec.encode({ index: 0, seq: 5, masterRoot: cps[1].masterRoot });
    const asIndex1 = noPrev.slice();
    const at = toHex(asIndex1).indexOf('65696e64657800') / 2 + 6;
    asIndex1[at] = 1;
    expect(() => checkpointCodec.decode(asIndex1)).toThrow(/prevCheckpointHash/);
    expect(() => inclusionProofCodec.encode({ index: 2, treeSize: 2, path: [] })).toThrow(RangeError);
    expect(() => consistencyProofCodec.encode({ size1: 0, size2: 2, path: [] })).toThrow(RangeError);
    expect(() => consistencyProofCodec.encode({ size1: 3, size2: 2, path: [] })).toThrow(RangeError);
    expect(() => inclusionProofCodec.encode({ index: 0, treeSize: 2, path: Array.from({ length: 129 }, () => rnd(32)) })).toThrow(RangeError);
  });
  it('non-Uint8Array input and oversize input are DecodeErrors', () => {
    for (const j of [undefined, null, 'a2', [0xa0], new ArrayBuffer(2)]) {
      expect(() => logHeadCodec.decode(j as unknown as Uint8Array)).toThrow(DecodeError);
    }
    expect(() => logHeadCodec.decode(new Uint8Array((1 << 20) + 1))).toThrow(DecodeError);
  });
});

describe('fuzz: decode throws DecodeError or the result fails verification', () => {
  const leafIndex = 6;
  const incl = { index: leafIndex, treeSize: 11, path: log.inclusionProof(leafIndex) };
  const cons = { size1: 5, size2: 11, path: log.consistencyProof(5, 11) };
  const oldHead = { size: 5, root: log.root(5) };

  /** Checks a decoded value against what the client trusts; true when it (wrongly) verifies. */
  const accepts: Record<string, (v: never) => boolean> = {
    signedHead: (v: typeof signed) => verifyCheckpoint(v.head, v.signatures, policy).ok && (v.head.size !== head.size || !equalBytes(v.head.root, head.root)),
    inclusion: (v: typeof incl) =>
      // the size comes from the signed head; a proof for another size or leaf is not this proof
      v.treeSize === head.size && v.index === leafIndex && verifyInclusion(checkpointLeafHash(cps[leafIndex]), v.index, head.size, v.path, head.root).ok &&
      !v.path.every((p, i) => equalBytes(p, incl.path[i])),
    consistency: (v: typeof cons) =>
      v.size1 === oldHead.size && v.size2 === head.size && verifyConsistency(v.size1, v.size2, v.path, oldHead.root, head.root).ok &&
      !v.path.every((p, i) => equalBytes(p, cons.path[i])),
    checkpoint: (v: Checkpoint) =>
      verifyCheckpointInclusion(v, log.inclusionProof(Math.min(v.index, 10)), head).ok && !equalBytes(checkpointHash(v), checkpointHash(cps[v.index])),
  };
  const targets: [string, Codec<never>, Uint8Array][] = [
    ['signedHead', signedHeadCodec as Codec<never>, signedHeadCodec.encode(signed)],
    ['inclusion', inclusionProofCodec as Codec<never>, inclusionProofCodec.encode(incl)],
    ['consistency', consistencyProofCodec as Codec<never>, consistencyProofCodec.encode(cons)],
    ['checkpoint', checkpointCodec as Codec<never>, checkpointCodec.encode(cps[7])],
  ];

  for (const [name, codec, good] of targets) {
    it(`${name}: every truncation, every bit flip (sampled for signatures), insertions and deletions`, () => {
      let tried = 0;
      let decoded = 0;
      const check = (b: Uint8Array, what: string) => {
        tried++;
        const v = tryDecode(codec, b);
        if (v === undefined) return;
        decoded++;
        if (accepts[name](v)) throw new Error(`${name}: ${what} decoded and verified: ${toHex(b)}`);
      };
      for (let n = 0; n < good.length; n++) check(good.subarray(0, n), `truncate ${n}`);
      const bits = good.length * 8;
      const step = name === 'signedHead' ? 5 : 1; // Ed25519 verification is the slow part
      for (let bit = 0; bit < bits; bit += step) {
        const b = good.slice();
        b[bit >> 3] ^= 1 << (bit & 7);
        check(b, `flip ${bit}`);
      }
      const r = prng(good.length);
      for (let i = 0; i < 600; i++) {
        const pos = r(2)[0] % (good.length + 1);
        const ins = new Uint8Array([...good.subarray(0, pos), ...r(1 + (i % 3)), ...good.subarray(pos)]);
        check(ins, `insert at ${pos}`);
        const del = new Uint8Array([...good.subarray(0, pos), ...good.subarray(pos + 1 + (i % 3))]);
        check(del, `delete at ${pos}`);
      }
      expect(tried).toBeGreaterThan(1000);
      // bit flips inside hashes and signatures decode fine; verification must catch those
      expect(decoded).toBeGreaterThan(0);
    });
  }

  it('random byte strings never throw anything but DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        for (const [, codec] of targets) tryDecode(codec, b);
      }),
      { numRuns: 3000 },
    );
  });
});
