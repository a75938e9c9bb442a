/**
 * noble and node:crypto SHA-256 give identical digests for every layout, and each layout hashes
 * exactly the bytes docs/proofs.md specifies (rebuilt here by hand).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, toHex } from '../../proofs/bytes.js';
import { Domain, Kind, nobleHasher, type Hasher } from '../../proofs/hash.js';
import { checkpointHash, checkpointLeafHash, logHeadMessage } from '../../proofs/checkpoint.js';
import { emptyLogRoot, LogTree, logLeafHash } from '../../proofs/log.js';
import { entryPointHashers, nodeHasher, u32, u64 } from './helpers.js';

const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
const byte = (v: number) => new Uint8Array([v]);
const h32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const both = (f: (h: Hasher) => Uint8Array) => {
  const a = toHex(f(nobleHasher));
  expect(toHex(f(nodeHasher))).toBe(a);
  for (const h of entryPointHashers) expect(toHex(f(h))).toBe(a);
  return a;
};

describe('noble vs node:crypto, layouts pinned byte by byte', () => {
  it('valueHash = H(0x19 || value)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (v) => {
      expect(both((h) => h.valueHash(v))).toBe(toHex(sha(concatBytes(byte(0x19), v))));
    }));
  });
  it('entryLeaf = H(0x10 || u32 keyLen || key || u64 version || u64 seq || u64 time || u8 kind || valueHash)', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), u53, u53, u53, fc.constantFrom(Kind.PUT, Kind.DELETE), h32, (k, ver, seq, time, kind, vh) => {
      const want = sha(concatBytes(byte(0x10), u32(k.length), k, u64(ver), u64(seq), u64(time), byte(kind), vh));
      expect(both((h) => h.entryLeaf(k, ver, seq, time, kind, vh))).toBe(toHex(want));
    }));
  });
  it('inner nodes = H(domain || left || right) for 0x01, 0x11, 0x13, 0x16', () => {
    fc.assert(fc.property(fc.constantFrom(0x01, 0x11, 0x13, 0x16), h32, h32, (d, l, r) => {
      expect(both((h) => h.node(d, l, r))).toBe(toHex(sha(concatBytes(byte(d), l, r))));
    }));
  });
  it('blockRoot = H(0x12 || u32 count || root), tableRoot = H(0x14 || u32 blocks || u64 entries || root)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), u53, h32, (c, e, r) => {
      expect(both((h) => h.blockRoot(c, r))).toBe(toHex(sha(concatBytes(byte(0x12), u32(c), r))));
      expect(both((h) => h.tableRoot(c, e, r))).toBe(toHex(sha(concatBytes(byte(0x14), u32(c), u64(e), r))));
    }));
  });
  it('tree roots, block and table roots over leaves', () => {
    fc.assert(fc.property(fc.array(h32, { minLength: 1, maxLength: 40 }), (leaves) => {
      for (const d of [Domain.ENTRY_NODE, Domain.BLOCK_NODE, Domain.MASTER_NODE, Domain.LOG_NODE]) both((h) => h.treeRoot(d, leaves));
      both((h) => h.blockRootOfLeaves(leaves));
      both((h) => h.tableRootOfBlocks(leaves, 12345));
      both((h) => LogTree.fromLeafHashes(leaves, h).root());
    }));
  });
  it('log leaf = H(0x00 || data), empty log = H()', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (d) => {
      expect(both((h) => logLeafHash(d, h))).toBe(toHex(sha(concatBytes(byte(0), d))));
    }));
    expect(both((h) => emptyLogRoot(h))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
  it('checkpoint = 0x18 || u64 index || u64 seq || masterRoot || u8 hasPrev || prev?', () => {
    fc.assert(fc.property(u53, u53, h32, h32, (index, seq, mr, prev) => {
      const c = index === 0 ? { index, seq, masterRoot: mr } : { index, seq, masterRoot: mr, prevCheckpointHash: prev };
      const msg = concatBytes(byte(0x18), u64(index), u64(seq), mr, index === 0 ? byte(0) : concatBytes(byte(1), prev));
      expect(both((h) => checkpointHash(c, h))).toBe(toHex(sha(msg)));
      expect(both((h) => checkpointLeafHash(c, h))).toBe(toHex(sha(concatBytes(byte(0), msg))));
    }));
  });
  it('signed head message = "proofkv-log-head-v1\\n" || u64 size || root', () => {
    fc.assert(fc.property(u53, h32, (size, root) => {
      const want = concatBytes(new TextEncoder().encode('proofkv-log-head-v1\n'), u64(size), root);
      expect(toHex(logHeadMessage({ size, root }))).toBe(toHex(want));
      expect(want.length).toBe(60);
    }));
  });
});
