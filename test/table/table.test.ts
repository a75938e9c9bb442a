import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { equalBytes } from '../../proofs/bytes.js';
import { Hasher, Kind, nobleHasher } from '../../proofs/hash.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { compareInternalKeys, encodeInternalKey, encodeStoredValue, MAX_SEQ, MAX_VERSION, TIME_LEN } from '../../src/keys.js';
import { BlockCache } from '../../src/table/block_cache.js';
import { Block } from '../../src/table/block.js';
import { nodeHasher } from '../../src/table/node_hasher.js';
import { TableBuilder } from '../../src/table/table_builder.js';
import { TableReader } from '../../src/table/table_reader.js';
import { build, history, modelGet, rec, type Rec, rng, tempDir } from './harness.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const enc = new TextEncoder();
const small = { blockSize: 256, restartInterval: 4 };

function open(recs: Rec[], opts = small, fileNumber = 1, cache?: BlockCache): TableReader {
  const { bytes } = build(recs, opts);
  return TableReader.open(tmp.file(`${fileNumber}-${Math.random().toString(36).slice(2)}.sst`, bytes), { fileNumber, cache });
}

function scan(t: TableReader, backwards = false): { ik: Uint8Array; value: Uint8Array }[] {
  const it = t.iterator();
  const out: { ik: Uint8Array; value: Uint8Array }[] = [];
  if (backwards) for (it.seekToLast(); it.valid(); it.prev()) out.push({ ik: it.key().slice(), value: it.value().slice() });
  else for (it.seekToFirst(); it.valid(); it.next()) out.push({ ik: it.key().slice(), value: it.value().slice() });
  return out;
}

describe('table build/open', () => {
  const recs = history(7, 400, 5, 60);
  const t = open(recs, small, 1, new BlockCache());

  it('exposes metadata consistent with the input', () => {
    expect(t.entryCount).toBe(recs.length);
    expect(t.blockCount).toBeGreaterThan(10);
    expect(t.smallest).toEqual(recs[0].ik);
    expect(t.largest).toEqual(recs[recs.length - 1].ik);
    expect(t.indexKeys.length).toBe(t.blockCount);
    expect(t.blockRoots.length).toBe(t.blockCount);
    expect(t.indexKeys[t.blockCount - 1]).toEqual(t.largest);
  });

  it('scans forwards and backwards', () => {
    const want = recs.map((r) => ({ ik: r.ik, value: encodeStoredValue(r.time, r.value) }));
    expect(scan(t)).toEqual(want);
    expect(scan(t, true)).toEqual([...want].reverse());
  });

  it('readBlock returns the entries of each block, concatenating to the table', () => {
    const all = [];
    for (let i = 0; i < t.blockCount; i++) {
      const entries = t.readBlock(i);
      const last = entries[entries.length - 1];
      expect(encodeInternalKey(last.key, last.version, last.seq, last.kind)).toEqual(t.indexKeys[i]);
      all.push(...entries);
    }
    expect(all).toEqual(recs.map(({ key, version, seq, time, kind, value }) => ({ key, version, seq, time, kind, value })));
    expect(() => t.readBlock(t.blockCount)).toThrow(RangeError);
  });

  it('get finds the newest version at or below (version, seq), skipping later writes', () => {
    const r = rng(3);
    const maxSeq = Math.max(...recs.map((x) => x.seq));
    let found = 0;
    for (let q = 0; q < 3000; q++) {
      const x = recs[Math.floor(r() * recs.length)];
      const version = r() < 0.2 ? MAX_VERSION : Math.floor(r() * (x.version + 3));
      const seq = r() < 0.2 ? MAX_SEQ : Math.floor(r() * (maxSeq + 2));
      const want = modelGet(recs, x.key, version, seq);
      const got = t.get(x.key, version, seq);
      if (want === undefined) expect(got).toBeUndefined();
      else {
        found++;
        expect(got).toEqual({ key: want.key, version: want.version, seq: want.seq, time: want.time, kind: want.kind, value: want.value });
      }
    }
    expect(found).toBeGreaterThan(1000);
  });

  it('get skips newer seqs across a block boundary', () => {
    // One key with many versions so its history spans several blocks.
    const key = enc.encode('hot');
    const many: Rec[] = [];
    for (let v = 1; v <= 60; v++) many.push(rec(key, v, 1000 + v, Kind.PUT, enc.encode(`value-${v}-`.padEnd(40, 'x'))));
    many.push(rec(enc.encode('hou'), 1, 5, Kind.PUT, enc.encode('other')));
    const tt = open(many.sort((a, b) => compareInternalKeys(a.ik, b.ik)), { blockSize: 128, restartInterval: 2 });
    expect(tt.blockCount).toBeGreaterThan(5);
    for (const seq of [1001, 1002, 1030, 1060, MAX_SEQ]) {
      const got = tt.get(key, MAX_VERSION, seq);
      expect(got?.version).toBe(seq === MAX_SEQ ? 60 : seq - 1000);
    }
    expect(tt.get(key, MAX_VERSION, 1000)).toBeUndefined();
    expect(tt.get(key, 10, 1005)?.version).toBe(5);
    expect(tt.get(key, 0, MAX_SEQ)).toBeUndefined();
    tt.close();
  });

  it('get returns tombstones and misses absent keys', () => {
    const del = recs.find((x) => x.kind === Kind.DELETE)!;
    expect(t.get(del.key, del.version, del.seq)).toMatchObject({ kind: Kind.DELETE, value: new Uint8Array(0) });
    let negatives = 0;
    for (let i = 0; i < 500; i++) {
      const k = enc.encode(`absent-${i}`);
      expect(t.get(k, MAX_VERSION, MAX_SEQ)).toBeUndefined();
      if (!t.mayContain(k)) negatives++;
    }
    expect(negatives).toBeGreaterThan(450); // the bloom filter answers most misses
    for (const x of recs) expect(t.mayContain(x.key)).toBe(true);
  });

  it('seek lands on the first key >= target, including between and beyond keys', () => {
    const it = t.iterator();
    const r = rng(11);
    for (let q = 0; q < 500; q++) {
      const x = recs[Math.floor(r() * recs.length)];
      const target = encodeInternalKey(x.key, Math.max(0, x.version + Math.floor(r() * 3) - 1), x.seq, x.kind);
      it.seek(target);
      const i = recs.findIndex((y) => compareInternalKeys(y.ik, target) >= 0);
      if (i < 0) expect(it.valid()).toBe(false);
      else {
        expect(it.key()).toEqual(recs[i].ik);
        if (i > 0) {
          it.prev();
          expect(it.key()).toEqual(recs[i - 1].ik);
          it.next();
        }
        it.next();
        if (i + 1 < recs.length) expect(it.key()).toEqual(recs[i + 1].ik);
        else expect(it.valid()).toBe(false);
      }
    }
    it.seek(encodeInternalKey(enc.encode('\xff\xff\xff'), 0, 0, 0));
    expect(it.valid()).toBe(false);
    it.seek(new Uint8Array(16));
    expect(it.key()).toEqual(recs[0].ik);
  });

  it('serves blocks from the shared cache', () => {
    const cache = new BlockCache();
    const tt = open(recs, small, 9, cache);
    scan(tt);
    const misses = cache.misses;
    scan(tt);
    expect(cache.misses).toBe(misses);
    expect(cache.hits).toBeGreaterThan(0);
    tt.close();
    expect(() => tt.get(recs[0].key, MAX_VERSION, MAX_SEQ)).toThrow(/closed/);
  });

  it('opens from bytes as from a file', () => {
    const { bytes } = build(recs, small);
    const m = TableReader.fromBytes(bytes, { fileNumber: 3 });
    expect(scan(m)).toEqual(scan(t));
    m.verify();
  });
});

describe('table builder', () => {
  it('rejects out-of-order, duplicate and malformed keys without adding them', () => {
    const sv = encodeStoredValue(1_700_000_000_000, enc.encode('v'));
    const b = new TableBuilder();
    b.add(encodeInternalKey(enc.encode('b'), 5, 10, Kind.PUT), sv);
    expect(() => b.add(encodeInternalKey(enc.encode('a'), 5, 10, Kind.PUT), sv)).toThrow(InvalidArgumentError);
    expect(() => b.add(encodeInternalKey(enc.encode('b'), 5, 10, Kind.PUT), sv)).toThrow(InvalidArgumentError);
    // Same user key, higher version sorts first: out of order.
    expect(() => b.add(encodeInternalKey(enc.encode('b'), 6, 11, Kind.PUT), sv)).toThrow(InvalidArgumentError);
    expect(() => b.add(encodeInternalKey(enc.encode('c'), 1, 1, 0xff as Kind), sv)).toThrow(InvalidArgumentError);
    expect(() => b.add(new Uint8Array(16), sv)).toThrow(InvalidArgumentError);
    // A stored value without its 8-byte commit time, or with one beyond 2^53 - 1.
    expect(() => b.add(encodeInternalKey(enc.encode('c'), 1, 1, Kind.PUT), enc.encode('v'))).toThrow(InvalidArgumentError);
    expect(() => b.add(encodeInternalKey(enc.encode('c'), 1, 1, Kind.PUT), new Uint8Array(8).fill(0xff))).toThrow(InvalidArgumentError);
    b.add(encodeInternalKey(enc.encode('b'), 4, 9, Kind.DELETE), encodeStoredValue(1, new Uint8Array(0)));
    const { meta } = b.finish();
    expect(meta.entryCount).toBe(2);
    expect(() => new TableBuilder().finish()).toThrow(InvalidArgumentError);
  });

  it('is deterministic: same entries and options give identical bytes and roots', () => {
    const recs = history(99, 300);
    const a = build(recs, small);
    const b = build(recs, small);
    expect(Buffer.compare(a.bytes, b.bytes)).toBe(0);
    expect(a.meta.root).toEqual(b.meta.root);
    const c = build(recs, { ...small, hasher: nobleHasher });
    expect(Buffer.compare(a.bytes, c.bytes)).toBe(0);
    const d = build(recs, { blockSize: 512, restartInterval: 4 });
    expect(d.meta.root).not.toEqual(a.meta.root); // different block cut, different tree
  });

  it('handles values larger than a block, empty values and single-entry tables', () => {
    const big = new Uint8Array(20_000).map((_, i) => i & 0xff);
    const recs = [
      rec(enc.encode('a'), 1, 1, Kind.PUT, big),
      rec(enc.encode('b'), 1, 2, Kind.PUT, new Uint8Array(0)),
      rec(enc.encode('c'), 1, 3, Kind.PUT, big.subarray(7)),
    ];
    const t = open(recs, { blockSize: 4096, restartInterval: 16 });
    expect(t.blockCount).toBe(2); // [a] [b, c]: a block is cut once it reaches the target
    expect(t.get(enc.encode('a'), 1, 1)?.value).toEqual(big);
    expect(t.get(enc.encode('c'), 1, 3)?.value).toEqual(big.subarray(7));
    t.verify();
    const one = open([recs[1]]);
    expect(one.blockCount).toBe(1);
    expect(scan(one).length).toBe(1);
    one.verify();
  });

  it('writes no filter when bloomBitsPerKey is 0', () => {
    const recs = history(5, 50);
    const t = open(recs, { ...small, bloomBitsPerKey: 0 } as typeof small);
    expect(t.mayContain(enc.encode('nope'))).toBe(true);
    expect(t.get(recs[0].key, MAX_VERSION, MAX_SEQ)?.key).toEqual(recs[0].key);
  });
});

describe('table merkle', () => {
  it('stored roots equal a noble recomputation from the entries', () => {
    const recs = history(21, 500, 3, 100);
    const { bytes, meta } = build(recs, { blockSize: 1024, restartInterval: 16, hasher: nodeHasher });
    const t = TableReader.fromBytes(bytes, { fileNumber: 1 });
    const h = nobleHasher;
    const roots: Uint8Array[] = [];
    for (let i = 0; i < t.blockCount; i++) {
      const leaves = t.readBlock(i).map((e) => h.entryLeaf(e.key, e.version, e.seq, e.time, e.kind, h.valueHash(e.value)));
      roots.push(h.blockRootOfLeaves(leaves));
    }
    expect(roots).toEqual(t.blockRoots.map((r) => r.slice()));
    expect(h.tableRootOfBlocks(roots, recs.length)).toEqual(t.root.slice());
    expect(meta.root).toEqual(t.root.slice());
    expect(meta.blockRoots).toEqual(roots);
    t.verify(nobleHasher);
    t.verify(nodeHasher);
  });

  it('verify() detects a table built with a different hash (root mismatch on open)', () => {
    const recs = history(22, 50);
    const other = new Hasher((d) => nodeHasher.sha256(Uint8Array.of(...d, 1)));
    const { bytes } = build(recs, { ...small, hasher: other });
    expect(() => TableReader.fromBytes(bytes, { fileNumber: 1 })).toThrow(/table root/);
    const t = TableReader.fromBytes(bytes, { fileNumber: 1, hasher: other });
    expect(() => t.verify(nodeHasher)).toThrow(/merkle root of data block 0/);
  });

  it('Merkle storage overhead is small (32 B per block)', () => {
    const recs = history(23, 3000, 2, 100);
    const { bytes, meta } = build(recs);
    expect((32 * (meta.blockCount + 1)) / bytes.length).toBeLessThan(0.01);
  });
});

describe('block cache', () => {
  const block = (n: number) => new Block(new Uint8Array(n + 4).fill(0, 0, n).map((_, i, a) => (i === a.length - 4 ? 1 : 0)), 't', 0);

  it('evicts least recently used blocks to stay within capacity', () => {
    const b = block(1000);
    const c = new BlockCache(b.charge * 3);
    c.insert(1, 0, b);
    c.insert(1, 100, block(1000));
    c.insert(2, 0, block(1000));
    expect(c.length).toBe(3);
    expect(c.get(1, 0)).toBe(b); // 1:0 now most recent
    c.insert(3, 0, block(1000)); // evicts 1:100
    expect(c.get(1, 100)).toBeUndefined();
    expect(c.get(1, 0)).toBe(b);
    expect(c.size).toBeLessThanOrEqual(c.capacity);
    c.evictFile(1);
    expect(c.get(1, 0)).toBeUndefined();
    expect(c.length).toBe(2);
    c.insert(4, 0, block(10_000)); // larger than the whole cache: not cached
    expect(c.get(4, 0)).toBeUndefined();
    c.clear();
    expect(c.size).toBe(0);
  });

  it('keys blocks by (file number, offset)', () => {
    const c = new BlockCache();
    const a = block(10);
    const b = block(10);
    c.insert(1, 5, a);
    c.insert(5, 1, b);
    expect(c.get(1, 5)).toBe(a);
    expect(c.get(5, 1)).toBe(b);
    expect(equalBytes(a.data, b.data)).toBe(true);
  });
});

describe('table properties', () => {
  it('random histories and options: scans, gets and seeks match the model', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 2048 }),
        fc.integer({ min: 1, max: 20 }),
        (seed, nKeys, blockSize, restartInterval) => {
          const recs = history(seed, nKeys, 4, 50);
          const { bytes, meta } = build(recs, { blockSize, restartInterval });
          const t = TableReader.fromBytes(bytes, { fileNumber: 1, cache: new BlockCache(1 << 16) });
          expect(meta.entryCount).toBe(recs.length);
          expect(t.rawKeySize).toBe(recs.reduce((a, x) => a + x.ik.length, 0));
          expect(t.rawValueSize).toBe(recs.reduce((a, x) => a + TIME_LEN + x.value.length, 0));
          expect(scan(t).map((e) => e.ik)).toEqual(recs.map((x) => x.ik));
          expect(scan(t, true).length).toBe(recs.length);
          const r = rng(seed);
          for (let q = 0; q < 30; q++) {
            const x = recs[Math.floor(r() * recs.length)];
            const v = Math.floor(r() * (x.version + 2));
            const s = Math.floor(r() * (x.seq + 20));
            const want = modelGet(recs, x.key, v, s);
            expect(t.get(x.key, v, s)?.seq).toBe(want?.seq);
          }
          t.verify();
        },
      ),
      { numRuns: 40 },
    );
  });
});
