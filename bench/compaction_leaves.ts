/**
 * What leaf reuse saves one compaction (src/compaction/leaf_cache.ts, docs/engine.md § Leaf reuse):
 * `--tables` level-0 tables of `--entries` entries each (`--key`-byte keys, `--value`-byte values,
 * every key in every table, as `bench/cluster.ts` writes over its 5,000 keys) are merged into one
 * table, `--runs` times alternately without and with the inputs' kept leaves, on this thread;
 * prints the median CPU time of `runCompaction` each way and their ratio, and checks that both
 * wrote the same table. An engine-internal A/B: there is no anchor to run beside it (classic-level
 * hashes nothing); the cluster's figures are `bench/cluster.ts`'s (bench/README.md § Leaf reuse).
 * The first third of the runs warm the isolate and are not counted. Asserts nothing else.
 *
 * Run: `npx tsx bench/compaction_leaves.ts [--tables 4] [--entries 5000] [--key 12] [--value 100] [--runs 40]`.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packEntries, runCompaction, runFlush, type TableShape } from '../src/compaction/compact.js';
import { encodeInternalKey, encodeStoredValue } from '../src/keys.js';
import { files } from '../src/version/version_set.js';
import { DEFAULT_SHAPE } from '../src/options.js';
import { loadAvg, machineInfo, numArg, parseArgs, tempDir } from './lib.js';

const args = parseArgs(process.argv.slice(2));
const tables = numArg(args, 'tables', 4);
const entries = numArg(args, 'entries', 5000);
const keyBytes = numArg(args, 'key', 12);
const valueBytes = numArg(args, 'value', 100);
const runs = Math.max(6, numArg(args, 'runs', 40));

const shape: TableShape = {
  blockSize: DEFAULT_SHAPE.blockSize,
  blockRestartInterval: DEFAULT_SHAPE.blockRestartInterval,
  bloomBitsPerKey: DEFAULT_SHAPE.bloomBitsPerKey,
  targetFileSize: DEFAULT_SHAPE.targetFileSize,
  merkleGroup: DEFAULT_SHAPE.merkleGroup,
};

for (const line of machineInfo()) console.log(line);
console.log(`${tables} tables x ${entries} entries (${keyBytes}-byte keys, ${valueBytes}-byte values) merged into one, ${runs} runs alternating; load average before: ${loadAvg()}`);

const dir = tempDir('proofkv-compaction-leaves-');
try {
  const te = new TextEncoder();
  const leaves: Uint8Array[] = [];
  let seq = 1;
  for (let t = 1; t <= tables; t++) {
    const ents: Array<[Uint8Array, Uint8Array]> = [];
    for (let k = 0; k < entries; k++) {
      const key = te.encode(`k${String(k).padStart(keyBytes - 1, '0')}`);
      ents.push([encodeInternalKey(key, t, seq++, 1), encodeStoredValue(1_700_000_000_000 + seq, new Uint8Array(valueBytes).fill(t))]);
    }
    let i = 0;
    const it = { seekToFirst: () => (i = 0), valid: () => i < ents.length, next: () => i++, key: () => ents[i][0], value: () => ents[i][1] };
    const out = runFlush({ dir, tmpName: `flush-${t}.tmp`, shape, packed: packEntries(it, entries * (keyBytes + valueBytes + 32)), keepLeaves: true });
    fs.renameSync(path.join(dir, out.tmpName), path.join(dir, files.table(t)));
    leaves.push(out.leaves!);
  }
  const inputs = leaves.map((_, i) => i + 1);
  const cpu: Record<'without' | 'with', number[]> = { without: [], with: [] };
  const roots = new Set<string>();
  for (let r = 0; r < runs; r++) {
    const way = r % 2 === 0 ? 'without' : 'with';
    const t0 = process.cpuUsage();
    const out = runCompaction({ dir, inputs, tmpPrefix: `run-${r}`, shape, singleOutput: true, keepLeaves: true, leaves: way === 'with' ? leaves.map((l) => l.slice()) : undefined });
    const used = process.cpuUsage(t0);
    if (r >= runs / 3) cpu[way].push((used.user + used.system) / 1000);
    roots.add(Buffer.from(out[0].meta.root).toString('hex'));
    fs.rmSync(path.join(dir, out[0].tmpName));
  }
  if (roots.size !== 1) throw new Error(`the runs wrote ${roots.size} different tables`);
  const med = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
  const n = tables * entries;
  console.log(`without the leaves: ${med(cpu.without).toFixed(1)} ms CPU per compaction (${((med(cpu.without) * 1000) / n).toFixed(2)} µs per entry), median of ${cpu.without.length}`);
  console.log(`with the leaves:    ${med(cpu.with).toFixed(1)} ms CPU per compaction (${((med(cpu.with) * 1000) / n).toFixed(2)} µs per entry), median of ${cpu.with.length}`);
  console.log(`ratio: ${(med(cpu.without) / med(cpu.with)).toFixed(2)}x less CPU with the leaves; same table both ways; load average after: ${loadAvg()}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
