/**
 * The cost of a checkpoint's level-0 rule under the cluster's write pattern (issue 10): an engine in
 * external-log mode (the Raft path) gets `--puts` puts of `--value`-byte values on random
 * `--key`-byte keys, then a pipelined checkpoint, `--checkpoints` times (default 9,000 puts and 60
 * checkpoints: what `bench/cluster.ts` applies in 60 s at about 9k PUT/s with one checkpoint a
 * second). The puts arrive in writes of `--batch` puts, each one log entry. `--keys N` cycles
 * the puts over N keys, as `bench/cluster.ts` does over its 5,000 (every checkpoint then writes
 * a new version of most keys, and every table overlaps every other); by default each put has a
 * key of its own.
 *
 * Run once per level-0 rule, in the same process, one after the other (`--rules`, default
 * `0,16Mi`): `checkpointLevel0Bytes=0` is the rule before issue 10's merge (every checkpoint that finds
 * more than `checkpointLevel0Tables` level-0 tables compacts level 0 into level 1), any other value
 * merges level 0 into one level-0 table below that many bytes (and below level 1's) and compacts
 * it into level 1 otherwise. Rows per rule: the bytes the checkpoints' rule and the policy's compactions wrote, per
 * checkpoint (median, p90, max over checkpoints, and in total); the level-0 tables of the
 * checkpoints' table sets (mean: a get proof crosses one window per table); the tail of each checkpoint (from
 * its freeze to its record: the wait for its flush, the settle, the index edit and the record,
 * what runs beside the writes); the process's CPU per put (every thread: the flush and compaction
 * workers included); wall time per put. `--paced` spaces the checkpoints one second apart, as the
 * cluster does (the writes of a second go in first), so the tails run beside idle time instead of
 * beside the next writes. Then, at the last checkpoint, `--proofs` (default 2,000) get proofs of
 * written keys: their level-0 tables, encoded bytes (median), `getWithProof` and `verifyGetProof`
 * time per proof (every proof is checked to verify). Asserts nothing.
 *
 * Run: `npx tsx bench/checkpoint_level0.ts [--puts 9000] [--checkpoints 60] [--batch 100]
 * [--value 100] [--key 16] [--keys N] [--rules 0,16Mi] [--paced] [--proofs 2000] [--inline] [--engine NAME=VALUE,...]`.
 * @module
 */
import fs from 'node:fs';
import { ProofDB } from '../src/index.js';
import { getProofCodec, verifyGetProof, type CheckpointExpectation } from '../proofs/index.js';
import { engineOptionsArg, fmtBytes, KeySet, loadAvg, machineInfo, numArg, parseArgs, printTable, tempDir, ValuePool } from './lib.js';

const args = parseArgs(process.argv.slice(2));
const putsPerCheckpoint = numArg(args, 'puts', 9000);
const checkpoints = numArg(args, 'checkpoints', 60);
const batchSize = Math.max(1, numArg(args, 'batch', 100));
const valueSize = numArg(args, 'value', 100);
const keySize = numArg(args, 'key', 16);
const keyCount = numArg(args, 'keys', 0);
const paced = args.get('paced') === true;
const proofCount = numArg(args, 'proofs', 2000);
/** `--inline`: flushes and compactions on the main thread (for `node --cpu-prof`: one profile holds them all). */
const inline = args.get('inline') === true;
const engine = engineOptionsArg(args);
const rules = String(args.get('rules') ?? '0,16Mi')
  .split(',')
  .map((s) => {
    const m = /^([0-9.]+)(Ki|Mi)?$/.exec(s.trim());
    if (!m) throw new Error(`--rules: expected bytes like 0 or 16Mi, got ${s}`);
    return Math.round(Number(m[1]) * ({ Ki: 1024, Mi: 1024 ** 2 }[m[2] ?? ''] ?? 1));
  });

const pct = (xs: number[], p: number): number => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

interface RuleRun {
  rule: number;
  /** Bytes compactions wrote between two checkpoints' records, per checkpoint. */
  rewritten: number[];
  /** Each checkpoint's tail: freeze to record, ms. */
  tails: number[];
  cpuUsPerPut: number;
  wallUsPerPut: number;
  stats: ReturnType<ProofDB['stats']>;
  level0AtEnd: number;
  level1AtEnd: number;
  /** Level-0 tables of the checkpoints' table sets, mean (a get proof crosses one window per table). */
  level0Mean: number;
  /** Level-0 tables of the last checkpoint's table set. */
  proofLevel0: number;
  proofBytesMedian: number;
  proveUs: number;
  verifyUs: number;
}

/** `count` get proofs of written keys at the latest checkpoint: median encoded bytes, µs per prove and per verify. */
async function measureProofs(db: ProofDB, keys: KeySet, distinct: number, count: number): Promise<{ bytes: number; proveUs: number; verifyUs: number }> {
  if (count === 0) return { bytes: 0, proveUs: 0, verifyUs: 0 };
  const exp: CheckpointExpectation = { trust: { publicKeys: [db.publicKey()], quorum: 1 } };
  const picks = Array.from({ length: count }, (_, i) => keys.key((i * 7919) % distinct));
  const t0 = performance.now();
  const proofs = [];
  for (const k of picks) proofs.push((await db.getWithProof(k)).proof);
  const proveUs = ((performance.now() - t0) * 1000) / count;
  const t1 = performance.now();
  for (let i = 0; i < count; i++) {
    const r = verifyGetProof(proofs[i], { key: picks[i] }, exp);
    if (!r.ok || !r.entry) throw new Error(`proof ${i} did not verify: ${JSON.stringify(r)}`);
  }
  const verifyUs = ((performance.now() - t1) * 1000) / count;
  const lens = proofs.map((p) => getProofCodec.encode(p).length).sort((a, b) => a - b);
  return { bytes: lens[Math.floor(lens.length / 2)], proveUs, verifyUs };
}

async function runRule(rule: number): Promise<RuleRun> {
  const dir = tempDir('proofkv-bench-cpl0-');
  const db = await ProofDB.open(dir, { ...engine, checkpointLevel0Bytes: rule, writeAheadLog: 'external', ...(inline ? { compactionThread: 'inline' as const } : {}) });
  const total = putsPerCheckpoint * checkpoints;
  const distinct = keyCount > 0 ? Math.min(keyCount, total) : total;
  const keys = new KeySet(distinct, keySize, 20261129);
  const values = new ValuePool(valueSize, 7);
  const rewritten: number[] = [];
  const tails: number[] = [];
  const level0s: number[] = [];
  let logIndex = 0;
  let written = db.stats().compactionBytesWritten;
  let inFlight: Promise<void> = Promise.resolve();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    let k = 0;
    for (let c = 0; c < checkpoints; c++) {
      const second = performance.now();
      for (let i = 0; i < putsPerCheckpoint; i += batchSize) {
        const b = db.batch();
        for (let j = i; j < Math.min(putsPerCheckpoint, i + batchSize); j++, k++) b.put(keys.key(k % distinct), values.value(k));
        await db.write(b, { logIndex: ++logIndex, time: 1_700_000_000_000 + logIndex });
      }
      const started = await db.startCheckpoint({ logIndex: ++logIndex, time: 1_700_000_000_000 + logIndex });
      const frozen = performance.now();
      const prev = inFlight;
      inFlight = prev.then(() =>
        started.result.then((rec) => {
          level0s.push(rec.tables.filter((t) => t.level === 0).length);
          tails.push(performance.now() - frozen);
          const now = db.stats().compactionBytesWritten;
          rewritten.push(now - written);
          written = now;
        }),
      );
      if (paced) {
        const left = 1000 - (performance.now() - second);
        if (left > 0) await new Promise((res) => setTimeout(res, left));
      }
    }
    await inFlight;
    const cpu = process.cpuUsage(cpu0);
    const wall = performance.now() - t0;
    const tables = db.tables();
    const latest = await db.startCheckpoint({ logIndex: ++logIndex, time: 1_700_000_000_000 + logIndex });
    const recorded = await latest.result;
    const proofs = await measureProofs(db, keys, distinct, proofCount);
    return {
      level0Mean: level0s.reduce((a, b) => a + b, 0) / Math.max(1, level0s.length),
      proofLevel0: recorded.tables.filter((t) => t.level === 0).length,
      proofBytesMedian: proofs.bytes,
      proveUs: proofs.proveUs,
      verifyUs: proofs.verifyUs,
      rule,
      rewritten,
      tails,
      cpuUsPerPut: (cpu.user + cpu.system) / total,
      wallUsPerPut: (wall * 1000) / total,
      stats: db.stats(),
      level0AtEnd: tables.filter((t) => t.level === 0).length,
      level1AtEnd: tables.filter((t) => t.level === 1).reduce((n, t) => n + t.size, 0),
    };
  } finally {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

console.log(machineInfo().join('\n'));
console.log(
  `${checkpoints} checkpoints, each after ${putsPerCheckpoint} puts (${batchSize} a write) of ${valueSize}-byte values on ${keyCount > 0 ? `${keyCount} ` : ''}${keySize}-byte random keys; external-log mode, pipelined checkpoints${paced ? ', one a second' : ''}` +
    (Object.keys(engine).length > 0 ? `; engine ${JSON.stringify(engine)}` : ''),
);
const results: RuleRun[] = [];
for (const rule of rules) {
  const la = loadAvg();
  const r = await runRule(rule);
  results.push(r);
  console.log(`checkpointLevel0Bytes=${rule}: done (load before ${la}, after ${loadAvg()})`);
}
printTable(
  ['checkpointLevel0Bytes', 'rewritten/checkpoint med', 'p90', 'max', 'total', 'tail ms med', 'p90', 'max', 'CPU µs/put', 'wall µs/put', 'cp compactions (merges)', 'policy compactions', 'L0 tables / L1 bytes at end', 'L0 tables per checkpoint, mean', 'proof: L0 tables, bytes med', 'µs/getWithProof', 'µs/verify'],
  results.map((r) => [
    r.rule === 0 ? '0 (into L1)' : fmtBytes(r.rule),
    fmtBytes(pct(r.rewritten, 50)),
    fmtBytes(pct(r.rewritten, 90)),
    fmtBytes(Math.max(...r.rewritten)),
    fmtBytes(r.rewritten.reduce((a, b) => a + b, 0)),
    pct(r.tails, 50).toFixed(0),
    pct(r.tails, 90).toFixed(0),
    Math.max(...r.tails).toFixed(0),
    r.cpuUsPerPut.toFixed(1),
    r.wallUsPerPut.toFixed(1),
    `${r.stats.checkpointCompactions} (${r.stats.checkpointLevel0Merges})`,
    String(r.stats.compactions - r.stats.checkpointCompactions),
    `${r.level0AtEnd} / ${fmtBytes(r.level1AtEnd)}`,
    r.level0Mean.toFixed(2),
    `${r.proofLevel0}, ${r.proofBytesMedian} B`,
    r.proveUs.toFixed(1),
    r.verifyUs.toFixed(1),
  ]),
);
console.log(`load average at the end: ${loadAvg()}`);
