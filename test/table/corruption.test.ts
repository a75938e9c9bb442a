import { truncateSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptionError } from '../../src/errors.js';
import { MAX_SEQ, MAX_VERSION } from '../../src/keys.js';
import { Block, readNamedBlock } from '../../src/table/block.js';
import { decodeFooter, decodeHandle, FOOTER_LEN } from '../../src/table/format.js';
import { TableReader } from '../../src/table/table_reader.js';
import { build, history, type Rec, rng, tempDir } from './harness.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Everything a reader can say about a table, read through every API. */
function readAll(t: TableReader, recs: Rec[]): unknown {
  const it = t.iterator();
  const fwd: [number[], number[]][] = [];
  for (it.seekToFirst(); it.valid(); it.next()) fwd.push([[...it.key()], [...it.value()]]);
  const back: number[][] = [];
  for (it.seekToLast(); it.valid(); it.prev()) back.push([...it.key()]);
  const gets = recs.map((x) => t.get(x.key, x.version, x.seq));
  const latest = recs.map((x) => t.get(x.key, MAX_VERSION, MAX_SEQ));
  const blocks = Array.from({ length: t.blockCount }, (_, i) => t.readBlock(i));
  return { fwd, back, gets, latest, blocks, root: [...t.root], n: t.entryCount, s: [...t.smallest], l: [...t.largest] };
}

type Outcome = { kind: 'ok'; data: unknown } | { kind: 'corrupt'; stage: string };

/** Opens, reads everything, verifies; a CorruptionError at any stage is the outcome. */
function attempt(bytes: Uint8Array, recs: Rec[], viaFile = false): Outcome {
  let stage = 'open';
  try {
    const t = viaFile
      ? TableReader.open(tmp.file(`flip-${Math.random().toString(36).slice(2)}.sst`, bytes), { fileNumber: 7 })
      : TableReader.fromBytes(bytes, { fileNumber: 7 });
    try {
      stage = 'read';
      const data = readAll(t, recs);
      stage = 'verify';
      t.verify();
      return { kind: 'ok', data };
    } finally {
      t.close();
    }
  } catch (e) {
    if (e instanceof CorruptionError) return { kind: 'corrupt', stage };
    throw new Error(`flip produced a non-corruption error at ${stage}: ${(e as Error).stack}`);
  }
}

/** Names each byte range of a table file by the structure it belongs to. */
function regions(bytes: Uint8Array): (p: number) => string {
  const footerAt = bytes.length - FOOTER_LEN;
  const footer = decodeFooter(bytes.subarray(footerAt), 't', footerAt);
  const mi = footer.metaindex;
  const meta = readNamedBlock(new Block(bytes.subarray(mi.offset, mi.offset + mi.size), 't', mi.offset));
  const spans: [string, number, number][] = [
    ['metaindex', mi.offset, mi.offset + mi.size + 5],
    ['index', footer.index.offset, footer.index.offset + footer.index.size + 5],
    ['footer', footerAt, bytes.length],
  ];
  for (const [name, raw] of meta) {
    const h = decodeHandle(raw, 't', 0);
    spans.push([name, h.offset, h.offset + h.size + 5]);
  }
  const dataEnd = Math.min(...spans.map((s) => s[1]));
  return (p) => (p < dataEnd ? 'data' : spans.find(([, a, b]) => p >= a && p < b)?.[0] ?? 'gap');
}

describe('table corruption', () => {
  const recs = history(31, 60, 3, 24);
  const { bytes } = build(recs, { blockSize: 300, restartInterval: 4 });
  const original = attempt(bytes, recs);

  it('the pristine table reads and verifies', () => {
    expect(original.kind).toBe('ok');
  });

  it('every single-byte flip anywhere in the file is reported as corruption, never as different data', () => {
    const region = regions(bytes);
    const detected = new Map<string, number>();
    const stages = new Map<string, number>();
    for (let p = 0; p < bytes.length; p++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = bytes.slice();
        bad[p] ^= mask;
        const out = attempt(bad, recs);
        if (out.kind === 'ok') {
          // Acceptable only if the reader returned exactly the original data.
          expect(out.data, `flip ${mask} at ${p} (${region(p)}) changed data`).toEqual((original as { data: unknown }).data);
          throw new Error(`flip ${mask} at ${p} (${region(p)}) went unnoticed`);
        }
        detected.set(region(p), (detected.get(region(p)) ?? 0) + 1);
        stages.set(out.stage, (stages.get(out.stage) ?? 0) + 1);
      }
    }
    expect([...detected.keys()].sort()).toEqual(['data', 'filter', 'footer', 'index', 'merkle', 'metaindex', 'properties']);
    expect(stages.get('open')).toBeGreaterThan(0);
    expect(stages.get('read')).toBeGreaterThan(0); // data block flips are caught by the CRC on read
  });

  it('flips in real files are caught the same way (positional reads)', () => {
    const r = rng(5);
    for (let i = 0; i < 60; i++) {
      const p = Math.floor(r() * bytes.length);
      const bad = bytes.slice();
      bad[p] ^= 1 + Math.floor(r() * 255);
      expect(attempt(bad, recs, true).kind).toBe('corrupt');
    }
  });

  it('the CRC catches a flipped value byte on get, before verify', () => {
    const t0 = TableReader.fromBytes(bytes, { fileNumber: 1 });
    const x = recs.find((y) => y.value.length > 4)!;
    const h = t0.blockHandle(t0.findBlock(x.ik));
    // Find the value's bytes inside its block and flip one.
    const blockBytes = bytes.subarray(h.offset, h.offset + h.size);
    const at = Buffer.from(blockBytes).indexOf(Buffer.from(x.value));
    expect(at).toBeGreaterThanOrEqual(0);
    const bad = bytes.slice();
    bad[h.offset + at + 2] ^= 0x10;
    const t = TableReader.fromBytes(bad, { fileNumber: 1 }); // data blocks are not read at open
    expect(() => t.get(x.key, x.version, x.seq)).toThrow(CorruptionError);
    expect(() => t.readBlock(t.findBlock(x.ik))).toThrow(/checksum/);
    expect(() => t.verify()).toThrow(CorruptionError);
  });

  it('truncated files and trailing garbage are corruption', () => {
    for (const n of [0, 1, 47, 48, 100, bytes.length - 1]) {
      expect(attempt(bytes.subarray(0, n), recs).kind).toBe('corrupt');
    }
    const longer = new Uint8Array(bytes.length + 3);
    longer.set(bytes);
    expect(attempt(longer, recs).kind).toBe('corrupt');
    expect(attempt(bytes.subarray(3), recs).kind).toBe('corrupt');
  });

  it('a file truncated after open reports corruption on read', () => {
    const path = tmp.file('trunc.sst', bytes);
    const t = TableReader.open(path, { fileNumber: 2 });
    truncateSync(path, 10);
    expect(() => t.readBlock(t.blockCount - 1)).toThrow(CorruptionError);
    t.close();
  });
});
