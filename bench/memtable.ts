/**
 * The engine's apply per write on the event loop, in isolation (issue 10): what `memAdd` does for
 * each record of a write group — encode the internal key and the stored value, insert into the
 * memtable's skip list, record the key's latest version — for N records of the cluster bench's
 * shape (16-byte random keys, 100-byte values, new keys in random order) into one memtable, and
 * the skip list's insert alone on keys encoded beforehand.
 *
 * `--keys cluster` uses the keys of the cluster bench's load generator instead (`c-%010d`, 12
 * bytes, written in ascending order, so every key shares its first 8 bytes with thousands of others).
 *
 * Run: `npx tsx bench/memtable.ts [--n 200k] [--reps 5] [--key 16] [--value 100] [--keys random|cluster]`. Reports median
 * [min–max] CPU µs per record over the reps (each into a fresh memtable); asserts nothing.
 * @module
 */
import { encodeInternalKey, encodeStoredValue } from '../src/keys.js';
import { Memtable } from '../src/memtable/skiplist.js';
import { KeySet, loadAvg, machineInfo, numArg, parseArgs, printTable, spread, ValuePool } from './lib.js';

const args = parseArgs(process.argv.slice(2));
const n = numArg(args, 'n', 200_000);
const reps = numArg(args, 'reps', 5);
const keySize = numArg(args, 'key', 16);
const valueSize = numArg(args, 'value', 100);

const shape = String(args.get('keys') ?? 'random');
if (shape !== 'random' && shape !== 'cluster') throw new Error(`--keys random|cluster, got ${shape}`);
const random = new KeySet(n, keySize, 3);
const enc = new TextEncoder();
const clusterKeys = shape === 'cluster' ? Array.from({ length: n }, (_, i) => enc.encode(`c-${String(i).padStart(10, '0')}`)) : [];
const keys = { key: (i: number): Uint8Array => (shape === 'cluster' ? clusterKeys[i] : random.key(i)) };
const values = new ValuePool(valueSize, 5);
const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
const ids = Array.from({ length: n }, (_, i) => latin1(keys.key(i)));
const iks = Array.from({ length: n }, (_, i) => encodeInternalKey(keys.key(i), 1, i + 1, 1));
const svs = Array.from({ length: n }, (_, i) => encodeStoredValue(1_700_000_000_000 + i, values.value(i)));

/** CPU µs per record of `f` (this process's user + system time: steadier than wall time on a shared machine). */
function time(f: () => void): number {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

const full: number[] = [];
const insert: number[] = [];
for (let r = -1; r < reps; r++) {
  const a = time(() => {
    const m = new Memtable();
    for (let i = 0; i < n; i++) {
      m.add(encodeInternalKey(keys.key(i), 1, i + 1, 1), encodeStoredValue(1_700_000_000_000 + i, values.value(i)), i + 1);
      m.latest.set(ids[i], 1);
    }
  });
  const b = time(() => {
    const m = new Memtable();
    for (let i = 0; i < n; i++) m.add(iks[i], svs[i], i + 1);
  });
  if (r < 0) continue;
  full.push(a);
  insert.push(b);
}
const fmt = (xs: number[]): string => {
  const s = spread(xs);
  return `${s.median.toFixed(3)} [${s.min.toFixed(3)}–${s.max.toFixed(3)}]`;
};
console.log(`# bench/memtable.ts — apply per record into one memtable (${n} records, ${shape === 'cluster' ? 'c-%010d keys ascending' : `${keySize} B random keys`}, ${valueSize} B values)`);
for (const l of machineInfo()) console.log(`# ${l}`);
printTable(['row', 'CPU µs/record'], [
  ['encode key + stored value, insert, latest version', fmt(full)],
  ['skip list insert alone', fmt(insert)],
]);
console.log(`# load average at end: ${loadAvg()}`);
