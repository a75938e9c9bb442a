/**
 * Chooses K, the entries per stored group root of table format 3 (issue 13): one in-memory table
 * of `--n` entries shaped like `bench/proofs.ts`'s (16-byte keys, 100-byte values, default block
 * size), built once per K and once in format 2 (no stored roots), then cold get proofs of random
 * present keys over it — the prover's block cache disabled, so every window reads and hashes its
 * block as a key never proven before does. Prints, per K: bytes per entry the roots add, SHA-256
 * calls per window (counted through a wrapping hasher) and µs per proof (median of `--reps` runs).
 *
 *   npx tsx bench/proof_groups.ts [--n 200k] [--proofs 5000] [--reps 3] [--ks 0,2,4,8,16,32]
 * @module
 */
import { Hasher } from '../proofs/hash.js';
import { nodeSha256Buffer } from '../node-entry/sha256.js';
import { encodeInternalKey, encodeStoredValue } from '../src/keys.js';
import { buildProof, ProofBlockCache, ProofContext } from '../src/proof/prover.js';
import type { MerkleLevels } from '../src/proof/merkle_levels.js';
import { TableBuilder } from '../src/table/table_builder.js';
import { TableReader } from '../src/table/table_reader.js';
import { nodeHasher } from '../src/table/node_hasher.js';
import { ByteLru } from '../src/util/byte_lru.js';
import { Version } from '../src/version/version.js';
import type { TableMeta } from '../src/version/edit.js';
import { fmtNum, KeySet, loadAvg, numArg, parseArgs, printTable, randomIndexes, spread, ValuePool, fmtSpread } from './lib.js';

const args = parseArgs(process.argv.slice(2));
const n = numArg(args, 'n', 200_000);
const proofs = numArg(args, 'proofs', 5000);
const reps = numArg(args, 'reps', 3);
const ks = String(args.get('ks') ?? '0,2,4,8,16,32').split(',').map(Number);

const keys = new KeySet(n, 16, 1);
const values = new ValuePool(100, 2);
const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => Buffer.compare(keys.key(a), keys.key(b)));

function buildTable(k: number): Uint8Array {
  const b = new TableBuilder({ merkleGroup: k });
  for (let j = 0; j < n; j++) {
    const i = order[j];
    b.add(encodeInternalKey(keys.key(i), 1, 1 + i, 1), encodeStoredValue(1_700_000_000_000 + i, values.value(i)));
  }
  return b.finish().bytes;
}

let blockTrees = new ByteLru<number, MerkleLevels>(1 << 24);

/**
 * A proof context over the one table: the table's block tree cached across proofs as in the
 * engine, the decoded-block cache new (so the proof's blocks are cold, as for a key never proven).
 */
function contextOf(t: TableReader, size: number, hasher: Hasher): ProofContext {
  const meta: TableMeta = { number: 1, size, entryCount: t.entryCount, smallest: t.smallest, largest: t.largest, root: t.root };
  const levels: TableMeta[][] = Array.from({ length: 7 }, () => []);
  levels[1].push(meta);
  return new ProofContext(new Version(levels), hasher, { get: () => t }, blockTrees, new ProofBlockCache());
}

console.log(`proof_groups: n=${fmtNum(n)}, ${proofs} cold proofs per run, ${reps} reps; load average ${loadAvg()}`);
let baseBytes = 0;
const rows: string[][] = [];
for (const k of ks) {
  const bytes = buildTable(k);
  if (k === 0) baseBytes = bytes.length;
  const t = TableReader.fromBytes(bytes, { fileNumber: 1, checksumOnce: true });
  const sample = randomIndexes(proofs, n, 3 + k);
  const search = { kind: 'get' as const, version: Number.MAX_SAFE_INTEGER };
  // SHA-256 calls per window, counted once.
  let calls = 0;
  const counting = new Hasher((m) => {
    calls++;
    return nodeSha256Buffer(m);
  });
  blockTrees = new ByteLru(1 << 24);
  for (let i = 0; i < 200; i++) buildProof(contextOf(t, bytes.length, counting), keys.key(sample[i]), search);
  calls = 0;
  for (let i = 0; i < 1000; i++) buildProof(contextOf(t, bytes.length, counting), keys.key(sample[i]), search);
  const perProof = calls / 1000;
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) {
    blockTrees = new ByteLru(1 << 24);
    buildProof(contextOf(t, bytes.length, nodeHasher), keys.key(sample[0]), search);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < proofs; i++) buildProof(contextOf(t, bytes.length, nodeHasher), keys.key(sample[i]), search);
    runs.push(Number(process.hrtime.bigint() - t0) / 1000 / proofs);
  }
  rows.push([
    k === 0 ? 'format 2 (none)' : String(k),
    fmtNum(t.blockCount),
    (n / t.blockCount).toFixed(1),
    baseBytes ? ((bytes.length - baseBytes) / n).toFixed(2) : '—',
    perProof.toFixed(1),
    fmtSpread(spread(runs)),
  ]);
}
printTable(['K', 'blocks', 'entries/block', 'B/entry added', 'SHA-256 calls/proof', 'µs/proof (cold)'], rows);
console.log(`load average at end: ${loadAvg()}`);
