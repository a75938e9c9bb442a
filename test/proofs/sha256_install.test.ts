/**
 * The pluggable SHA-256 of proofs/: node:crypto (what the Node entry points install) gives noble's
 * digests on random messages of every size around the block boundaries, the Hasher's reused
 * message buffers never leak one call's bytes into another's digest, and `installSha256` refuses
 * an implementation that is wrong on any self-test size, leaving the default untouched.
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE_CRYPTO_MIN_LEN, nodeSha256, nodeSha256Buffer, nodeSha256Plain } from '../../node-entry/sha256.js';
import { concatBytes, toHex } from '../../proofs/bytes.js';
import { defaultHasher, Domain, Hasher, installSha256, jsHasher, Kind, LEAF_SCRATCH_KEY_LEN, MESSAGE_SCRATCH_LEN, nobleHasher, type Sha256 } from '../../proofs/hash.js';
import { sha256 as jsSha256, sha256Node } from '../../proofs/sha256.js';
import { inclusionProof, logLeafHash, logRoot, verifyInclusion } from '../../proofs/log.js';
import { u32, u64 } from './helpers.js';

const leafBytes = (key: Uint8Array, version: number, seq: number, time: number, kind: number, vh: Uint8Array) =>
  concatBytes(new Uint8Array([Domain.ENTRY_LEAF]), u32(key.length), key, u64(version), u64(seq), u64(time), new Uint8Array([kind]), vh);

afterEach(() => installSha256(undefined));

describe('proofs/sha256.ts and node:crypto SHA-256 vs noble', () => {
  it('identical digests on random messages of 0..300 bytes (JS, node Buffer and plain view)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (m) => {
        const want = toHex(nobleSha256(m));
        expect(toHex(jsSha256(m))).toBe(want);
        expect(toHex(nodeSha256(m))).toBe(want);
        expect(toHex(nodeSha256Plain(m))).toBe(want);
        expect(toHex(nodeSha256Buffer(m))).toBe(want);
      }),
      { numRuns: 1000 },
    );
  });

  it('identical digests at every length 0..300 and on subarray views with an offset', () => {
    const big = new Uint8Array(400).map((_, i) => (i * 7 + 3) & 0xff);
    for (let n = 0; n <= 300; n++) {
      const m = big.subarray(5, 5 + n);
      const want = toHex(nobleSha256(m));
      expect(toHex(jsSha256(m)), `length ${n}`).toBe(want);
      expect(toHex(nodeSha256(m)), `length ${n}`).toBe(want);
      expect(toHex(nodeSha256Plain(m)), `length ${n}`).toBe(want);
    }
  });

  it('the JS one on FIPS 180-2 vectors, long random messages, and all-0xff bytes', () => {
    const enc = (t: string) => new TextEncoder().encode(t);
    expect(toHex(jsSha256(enc('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(jsSha256(enc('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
    expect(toHex(jsSha256(new Uint8Array(1_000_000).fill(0x61)))).toBe('cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 300, maxLength: 5000 }), (m) => {
        expect(toHex(jsSha256(m))).toBe(toHex(nobleSha256(m)));
      }),
      { numRuns: 100 },
    );
    for (const n of [55, 56, 64, 119, 120, 128]) {
      const m = new Uint8Array(n).fill(0xff);
      expect(toHex(jsSha256(m))).toBe(toHex(nobleSha256(m)));
    }
  });

  it('the JS one returns a fresh digest each call and leaves its input unchanged', () => {
    const m = new Uint8Array(70).fill(7);
    const a = jsSha256(m);
    const b = jsSha256(new Uint8Array(3));
    expect(a).not.toBe(b);
    expect(toHex(a)).toBe(toHex(nobleSha256(m)));
    expect([...m].every((x) => x === 7)).toBe(true);
  });

  it('the installed digests are Uint8Arrays, not Buffers, on both sides of the switch, so slice() copies', () => {
    for (const n of [3, NODE_CRYPTO_MIN_LEN - 1, NODE_CRYPTO_MIN_LEN, 1000]) {
      for (const d of [nodeSha256(new Uint8Array(n)), nodeSha256Plain(new Uint8Array(n))]) {
        expect(d.constructor).toBe(Uint8Array);
        expect(d.length).toBe(32);
      }
    }
  });
});

describe('Hasher message buffers are reused without leaking', () => {
  const hashers: Array<[string, Hasher]> = [
    ['noble', nobleHasher],
    ['js', jsHasher],
    ['node', new Hasher(nodeSha256)],
    ['node (installed: JS below 128 B)', new Hasher(nodeSha256, { jsBelow: NODE_CRYPTO_MIN_LEN })],
    ['node plain', new Hasher(nodeSha256Plain)],
    ['node Buffer', new Hasher(nodeSha256Buffer)],
  ];
  for (const [name, h] of hashers) {
    it(`${name}: successive node() digests are independent and correct`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
          const ab = h.node(Domain.ENTRY_NODE, a, b);
          const abHex = toHex(ab);
          const ba = h.node(Domain.BLOCK_NODE, b, a);
          expect(toHex(ab)).toBe(abHex); // the first digest is not overwritten by the second call
          expect(abHex).toBe(toHex(nobleSha256(concatBytes(new Uint8Array([Domain.ENTRY_NODE]), a, b))));
          expect(toHex(ba)).toBe(toHex(nobleSha256(concatBytes(new Uint8Array([Domain.BLOCK_NODE]), b, a))));
          // A child may be the previous digest itself (as in a tree walk).
          expect(toHex(h.node(Domain.ENTRY_NODE, ab, ab))).toBe(toHex(nobleSha256(concatBytes(new Uint8Array([Domain.ENTRY_NODE]), ab, ab))));
        }),
        { numRuns: 200 },
      );
    });

    it(`${name}: entryLeaf for keys around the scratch bound, interleaved long and short`, () => {
      const vh = nobleSha256(new Uint8Array([9]));
      const lens = [0, 1, 16, 100, LEAF_SCRATCH_KEY_LEN - 1, LEAF_SCRATCH_KEY_LEN, LEAF_SCRATCH_KEY_LEN + 1, 5000, 3, LEAF_SCRATCH_KEY_LEN, 0];
      for (const n of lens) {
        const key = new Uint8Array(n).map((_, i) => (i * 31 + n) & 0xff);
        const got = h.entryLeaf(key, 2 ** 40 + n, n, 2 ** 41 + 3 * n, n % 2 === 0 ? Kind.PUT : Kind.DELETE, vh);
        expect(toHex(got), `key length ${n}`).toBe(toHex(nobleSha256(leafBytes(key, 2 ** 40 + n, n, 2 ** 41 + 3 * n, n % 2 === 0 ? 1 : 0, vh))));
      }
    });
  }
});

describe('the inner-node entry and the reused message buffer', () => {
  const h32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
  it('sha256Node(d, l, r) = SHA-256(d || l || r), also on subarray views with an offset', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), h32, h32, fc.integer({ min: 0, max: 7 }), (d, l, r, off) => {
        const want = toHex(nobleSha256(concatBytes(new Uint8Array([d]), l, r)));
        expect(toHex(sha256Node(d, l, r))).toBe(want);
        const buf = new Uint8Array(off + 64);
        buf.set(l, off);
        buf.set(r, off + 32);
        expect(toHex(sha256Node(d, buf.subarray(off, off + 32), buf.subarray(off + 32)))).toBe(want);
      }),
      { numRuns: 300 },
    );
  });

  it('a hasher with jsBelow treats a child that is not 32 bytes exactly as one without', () => {
    const fast = new Hasher(nodeSha256, { jsBelow: NODE_CRYPTO_MIN_LEN });
    const plain = new Hasher(nodeSha256);
    const outcome = (h: Hasher, l: number, r: number) => {
      try {
        return toHex(h.node(Domain.ENTRY_NODE, new Uint8Array(l).fill(7), new Uint8Array(r).fill(9)));
      } catch (e) {
        return `throws ${(e as Error).name}`;
      }
    };
    for (const [l, r] of [[33, 32], [32, 33], [31, 32], [32, 31], [0, 0]]) {
      expect(outcome(fast, l, r), `${l} + ${r} bytes`).toBe(outcome(plain, l, r));
    }
    expect(outcome(fast, 32, 33)).toBe('throws RangeError');
  });

  it('valueHash, blockRoot and tableRoot share one buffer: values around its bound, interleaved', () => {
    const fast = new Hasher(nodeSha256, { jsBelow: NODE_CRYPTO_MIN_LEN });
    for (const h of [fast, jsHasher, new Hasher(nodeSha256Buffer)]) {
      const root = nobleSha256(new Uint8Array([1]));
      const lens = [0, 100, MESSAGE_SCRATCH_LEN - 2, MESSAGE_SCRATCH_LEN - 1, MESSAGE_SCRATCH_LEN, 5000, 3, MESSAGE_SCRATCH_LEN - 1, 0];
      for (const n of lens) {
        const v = new Uint8Array(n).map((_, i) => (i * 17 + n) & 0xff);
        const vh = h.valueHash(v);
        const br = h.blockRoot(n + 1, root);
        const tr = h.tableRoot(3, n, br);
        expect(toHex(vh), `value of ${n} bytes`).toBe(toHex(nobleSha256(concatBytes(new Uint8Array([Domain.VALUE]), v))));
        expect(toHex(br)).toBe(toHex(nobleSha256(concatBytes(new Uint8Array([Domain.BLOCK_ROOT]), u32(n + 1), root))));
        expect(toHex(tr)).toBe(toHex(nobleSha256(concatBytes(new Uint8Array([Domain.TABLE_ROOT]), u32(3), u64(n), br))));
      }
    }
  });
});

describe('installSha256', () => {
  const leaves = Array.from({ length: 13 }, (_, i) => logLeafHash(new Uint8Array([i])));

  it('installs node:crypto: the default hasher changes, every digest and verdict stays the same', () => {
    const root = logRoot(leaves, nobleHasher);
    expect(defaultHasher()).toBe(jsHasher);
    installSha256(nodeSha256Plain);
    expect(defaultHasher()).not.toBe(nobleHasher);
    expect(toHex(logRoot(leaves))).toBe(toHex(root));
    for (let i = 0; i < leaves.length; i++) {
      expect(verifyInclusion(leaves[i], i, leaves.length, inclusionProof(i, leaves), root)).toEqual({ ok: true });
    }
    installSha256(undefined);
    expect(defaultHasher()).toBe(jsHasher);
    expect(toHex(logRoot(leaves))).toBe(toHex(root));
  });

  const wrong: Array<[string, Sha256]> = [
    ['not a function', 42 as unknown as Sha256],
    ['wrong only on 65-byte messages (inner nodes)', (d) => (d.length === 65 ? nobleSha256(d.subarray(1)) : nobleSha256(d))],
    ['wrong only on 70-byte messages (entry leaves)', (d) => (d.length === 70 ? nobleSha256(d).map((b, i) => (i === 31 ? b ^ 1 : b)) : nobleSha256(d))],
    ['wrong only on the empty message', (d) => (d.length === 0 ? new Uint8Array(32) : nobleSha256(d))],
    ['a 31-byte digest', (d) => nobleSha256(d).subarray(0, 31)],
    ['not bytes', () => 'digest' as unknown as Uint8Array],
  ];
  for (const [name, sha] of wrong) {
    it(`refuses an implementation that is ${name}, and keeps the installed one`, () => {
      const plain = new Hasher(nodeSha256Plain);
      installSha256(nodeSha256Plain);
      const before = defaultHasher();
      expect(() => installSha256(sha)).toThrow(TypeError);
      expect(defaultHasher()).toBe(before);
      expect(toHex(logRoot(leaves))).toBe(toHex(logRoot(leaves, plain)));
    });
  }
});

describe('the Node entry points install node:crypto on import', () => {
  it('node-entry/proofs.js', async () => {
    expect(defaultHasher()).toBe(jsHasher);
    const mod = await import('../../node-entry/proofs.js');
    expect(mod.defaultHasher()).not.toBe(jsHasher);
    expect(mod.defaultHasher().sha256).toBe(nodeSha256);
    expect(toHex(mod.logRoot(leavesFor(5)))).toBe(toHex(logRoot(leavesFor(5), nobleHasher)));
    expect(typeof mod.verifyGetProof).toBe('function');
  });
});

function leavesFor(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => logLeafHash(new Uint8Array([i, n])));
}
