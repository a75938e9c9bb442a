/**
 * The cost of building a table, per entry, in isolation (issue 10): what a flush and a compaction
 * spend on the flush and compaction workers, without the engine around them.
 *
 * Entries have the cluster bench's shape by default: 16-byte user keys (random, sorted), 100-byte
 * random values, one version each, so an internal key is 32 bytes and a stored value 108.
 *
 * Rows:
 * - `flush N`: `runFlush` of N packed entries (what the flush worker does, its fsync included) —
 *   CPU time and wall time per entry.
 * - `build N`: `TableBuilder` add + finish alone (no file), and its parts measured apart: the
 *   entry leaves (`BlockHasher.leaf`: value hash + leaf hash), the block trees
 *   (`BlockHasher.blockRoot`), the block encoding (`BlockBuilder`), the bloom hash.
 * - `rewrite L1 M + L0 N`: `runCompaction` of one N-entry level-0 table over an M-entry level 1
 *   (its tables cut at the default 16 MiB), the level-0 rule's rewrite of level 1.
 *
 * Run: `npx tsx bench/table_build.ts [--sizes 1k,10k,100k] [--rewrite 20k,100k] [--reps 5]
 * [--value 100] [--key 16]`. For a CPU profile run it under `node --cpu-prof --import tsx`
 * (everything here runs on the main thread). Reports median [min–max] of the reps; asserts nothing.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { runCompaction, runFlush, type TableShape } from '../src/compaction/compact.js';
import { encodeInternalKey, encodeStoredValue } from '../src/keys.js';
import { BlockBuilder } from '../src/table/block_builder.js';
import { BlockHasher } from '../src/table/block_hasher.js';
import { bloomHash } from '../src/table/bloom.js';
import { nodeHasher } from '../src/table/node_hasher.js';
import { TableBuilder } from '../src/table/table_builder.js';
import { files } from '../src/version/version_set.js';
import { ByteWriter } from '../src/util/coding.js';
import { fmix32, loadAvg, machineInfo, numArg, parseArgs, printTable, prng, spread, tempDir } from './lib.js';

const args = parseArgs(process.argv.slice(2));
const listArg = (name: string, dflt: string): number[] =>
  String(args.get(name) ?? dflt)
    .split(',')
    .map((s) => numArg(new Map([['x', s]]), 'x', 0));
const sizes = listArg('sizes', '1k,10k,100k');
const rewrites = listArg('rewrite', '20k,100k');
const reps = numArg(args, 'reps', 5);
const valueSize = numArg(args, 'value', 100);
const keySize = numArg(args, 'key', 16);

const shape: TableShape = {
  blockSize: 4096,
  blockRestartInterval: 16,
  bloomBitsPerKey: 10,
  targetFileSize: 16 * 1024 * 1024,
  merkleGroup: 8,
};

/** `n` entries in internal-key order: sorted random user keys, seqs from `seq0`. */
function makeEntries(n: number, seed: number, seq0: number): { keys: Uint8Array[]; values: Uint8Array[] } {
  const rnd = prng(seed);
  const uks: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const k = new Uint8Array(keySize);
    const h = fmix32((i ^ seed) >>> 0);
    k[0] = h >>> 24;
    k[1] = (h >>> 16) & 0xff;
    k[2] = (h >>> 8) & 0xff;
    k[3] = h & 0xff;
    for (let j = 4; j < keySize; j++) k[j] = rnd() & 0xff;
    uks.push(k);
  }
  uks.sort((a, b) => Buffer.compare(a, b));
  const keys: Uint8Array[] = [];
  const values: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    keys.push(encodeInternalKey(uks[i], 1, seq0 + i, 1));
    const v = new Uint8Array(valueSize);
    for (let j = 0; j < valueSize; j++) v[j] = rnd() & 0xff;
    values.push(encodeStoredValue(1_700_000_000_000 + i, v));
  }
  return { keys, values };
}

function pack(keys: Uint8Array[], values: Uint8Array[]): Uint8Array {
  const w = new ByteWriter(1 << 20);
  for (let i = 0; i < keys.length; i++) {
    w.lengthPrefixed(keys[i]);
    w.lengthPrefixed(values[i]);
  }
  return w.finish();
}

/** CPU µs and wall µs of `f`. */
function measure(f: () => void): { cpu: number; wall: number } {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  f();
  const wall = Number(process.hrtime.bigint() - t0) / 1e3;
  const c = process.cpuUsage(c0);
  return { cpu: c.user + c.system, wall };
}

const fmt = (xs: number[]): string => {
  const s = spread(xs);
  return `${s.median.toFixed(2)} [${s.min.toFixed(2)}–${s.max.toFixed(2)}]`;
};

console.log(`# bench/table_build.ts — table build cost per entry (${keySize} B keys, ${valueSize} B values)`);
for (const l of machineInfo()) console.log(`# ${l}`);
console.log(`# reps ${reps}; load average at start: ${loadAvg()}`);

const dir = tempDir('pkv-tbuild-');
const rows: string[][] = [];
try {
  for (const n of sizes) {
    const { keys, values } = makeEntries(n, 7, 1);
    const packed = pack(keys, values);
    const flushCpu: number[] = [];
    const flushWall: number[] = [];
    const build: number[] = [];
    const leaves: number[] = [];
    const trees: number[] = [];
    const blocks: number[] = [];
    const bloom: number[] = [];
    // One untimed warm-up of each part, then `reps` timed runs.
    for (let r = -1; r < reps; r++) {
      const f = measure(() => runFlush({ dir, tmpName: 'flush.tmp', shape, packed: packed.slice() }));
      const b = measure(() => {
        const tb = new TableBuilder({ blockSize: shape.blockSize, restartInterval: shape.blockRestartInterval, bloomBitsPerKey: 10, merkleGroup: 8, hasher: nodeHasher });
        for (let i = 0; i < n; i++) tb.add(keys[i], values[i]);
        tb.finish();
      });
      const bh = new BlockHasher(nodeHasher);
      const ls: Uint8Array[] = new Array(n);
      const l = measure(() => {
        for (let i = 0; i < n; i++) ls[i] = bh.leaf(keys[i], values[i]);
      });
      // Block trees over runs of ~37 leaves (a 4 KiB block of 108-byte entries).
      const per = Math.max(1, Math.floor(shape.blockSize / (keys[0].length + values[0].length + 3)));
      const groups = { log: 3, out: [] as Uint8Array[] };
      const t = measure(() => {
        for (let i = 0; i < n; i += per) bh.blockRoot(ls.slice(i, i + per), groups);
      });
      const bb = new BlockBuilder(shape.blockRestartInterval);
      const k = measure(() => {
        for (let i = 0; i < n; i++) {
          bb.add(keys[i], values[i]);
          if (bb.estimatedSize() >= shape.blockSize) {
            bb.finish();
            bb.reset();
          }
        }
      });
      let sink = 0;
      const bl = measure(() => {
        for (let i = 0; i < n; i++) sink ^= bloomHash(keys[i], 0, keys[i].length - 16);
      });
      if (sink === 0.5) console.log(sink);
      if (r < 0) continue;
      flushCpu.push(f.cpu / n);
      flushWall.push(f.wall / n);
      build.push(b.cpu / n);
      leaves.push(l.cpu / n);
      trees.push(t.cpu / n);
      blocks.push(k.cpu / n);
      bloom.push(bl.cpu / n);
    }
    rows.push([`flush ${n}`, fmt(flushCpu), fmt(flushWall), '']);
    rows.push([`  build (no file) ${n}`, fmt(build), '', '']);
    rows.push([`    leaves (value + leaf hash)`, fmt(leaves), '', '']);
    rows.push([`    block trees`, fmt(trees), '', '']);
    rows.push([`    block encoding`, fmt(blocks), '', '']);
    rows.push([`    bloom hash`, fmt(bloom), '', '']);
  }

  for (const m of rewrites) {
    const l0n = Math.max(1, Math.round(m / 20));
    // Level 1: m entries cut into 16 MiB tables; level 0: one table of l0n newer entries.
    const inputs: number[] = [];
    let num = 100;
    const l1 = makeEntries(m, 11, 1);
    let tb: TableBuilder | null = null;
    const flushL1 = () => {
      if (!tb) return;
      fs.writeFileSync(path.join(dir, files.table(num)), tb.finish().bytes);
      inputs.push(num++);
      tb = null;
    };
    for (let i = 0; i < m; i++) {
      if (tb === null) tb = new TableBuilder({ merkleGroup: 8 });
      tb.add(l1.keys[i], l1.values[i]);
      if (tb.estimatedSize >= shape.targetFileSize) flushL1();
    }
    flushL1();
    const l0 = makeEntries(l0n, 13, m + 1);
    const l0b = new TableBuilder({ merkleGroup: 8 });
    for (let i = 0; i < l0n; i++) l0b.add(l0.keys[i], l0.values[i]);
    fs.writeFileSync(path.join(dir, files.table(num)), l0b.finish().bytes);
    inputs.push(num);
    const cpu: number[] = [];
    const wall: number[] = [];
    for (let r = -1; r < reps; r++) {
      const out = measure(() => runCompaction({ dir, inputs, tmpPrefix: 'cmp', shape }));
      for (const f of fs.readdirSync(dir)) if (f.startsWith('cmp')) fs.rmSync(path.join(dir, f));
      if (r < 0) continue;
      cpu.push(out.cpu / (m + l0n));
      wall.push(out.wall / (m + l0n));
    }
    rows.push([`rewrite L1 ${m} + L0 ${l0n}`, fmt(cpu), fmt(wall), `${(spread(cpu).median * (m + l0n) / 1e3).toFixed(0)} ms CPU`]);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
printTable(['row', 'CPU µs/entry', 'wall µs/entry', 'note'], rows);
console.log(`# load average at end: ${loadAvg()}`);
