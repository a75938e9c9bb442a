/**
 * Engine benchmark: ProofKV (embedded) and classic-level (real LevelDB) side by side, same
 * process, same machine, same data. See bench/README.md for what each row measures.
 *
 *   npm run bench:engine                 # N = 2M
 *   npm run bench:engine -- --quick      # N = 200k, smaller read phases (smoke run, ~1 min)
 *   npm run bench:engine -- --n 500k --reps 5
 *
 * Not a test: nothing here asserts on timing.
 * @module
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { ClassicLevel } from 'classic-level';
import { ProofDB } from '../src/index.js';
import { WORKER_IDLE_MS, workerMemoryStats } from '../src/compaction/runner.js';
import {
  dirBytes,
  fmtBytes,
  describeEngineOptions,
  engineOptionsArg,
  fmtNum,
  fmtSpread,
  KeySet,
  loadAvg,
  machineInfo,
  noisePct,
  numArg,
  parseArgs,
  printTable,
  randomIndexes,
  since,
  spread,
  type Spread,
  tempDir,
  tick,
  ValuePool,
} from './lib.js';

// ---- configuration --------------------------------------------------------------------------

const args = parseArgs(process.argv.slice(2));
if (args.has('help')) {
  console.log(`usage: tsx bench/engine.ts [--quick] [--n 2m] [--batch 1000] [--puts 20k] [--gets 200k]
       [--cgets 200k] [--concurrency 100] [--reps 3] [--write-timeout SECONDS]
       [--systems proofkv,leveldb] [--profile PHASE[,PHASE...] --profile-out PREFIX] [--keep]
       [--engine NAME=VALUE[,NAME=VALUE...]] [--checkpoint-every BATCHES] [--rss] [--compaction-thread inline]
--rss: only the RSS row. Each system loads N entries in a child process of its own (ProofKV then
checkpoints and waits for its compactions, LevelDB for its background work); each child reports
its RSS after a full GC, and this prints both, the ratio and the configured caches.
--engine sets numeric ProofKV options (e.g. writeBufferSize=16Mi,checkpointLevel0Tables=0);
--checkpoint-every B makes ProofKV's load checkpoint after every B batches (inside the timed load).
PHASE is one of write, checkpoint, put, get, cget, scan: profiles ProofKV's main thread during the
first run of that phase into PREFIX-PHASE.cpuprofile (default PREFIX: proofkv).`);
  process.exit(0);
}
const quick = args.has('quick');
const N = numArg(args, 'n', quick ? 200_000 : 2_000_000);
const BATCH = numArg(args, 'batch', 1000);
const PUTS = numArg(args, 'puts', quick ? 5_000 : 20_000);
const GETS = numArg(args, 'gets', quick ? 50_000 : 200_000);
const CGETS = numArg(args, 'cgets', quick ? 50_000 : 200_000);
const CONC = numArg(args, 'concurrency', 100);
const REPS = Math.max(1, numArg(args, 'reps', 3));
const WRITE_TIMEOUT_S = numArg(args, 'write-timeout', 0);
const KEY_SIZE = 16;
const VALUE_SIZE = 100;
const SEED = 0x5eed1234;
const systems = String(args.get('systems') ?? 'proofkv,leveldb').split(',');
const RUN_P = systems.includes('proofkv');
const RUN_L = systems.includes('leveldb');
const PROFILE_PHASES = typeof args.get('profile') === 'string' ? (args.get('profile') as string).split(',') : [];
const PROFILE_PREFIX = typeof args.get('profile-out') === 'string' ? (args.get('profile-out') as string) : 'proofkv';
const KEEP = args.has('keep');
const ENGINE = engineOptionsArg(args);
const CHECKPOINT_EVERY = numArg(args, 'checkpoint-every', 0);
const COMPACTION_THREAD = args.get('compaction-thread') === 'inline' ? ('inline' as const) : ('worker' as const);

const require = createRequire(import.meta.url);
const classicLevelVersion = (require('classic-level/package.json') as { version: string }).version;

// ---- the two systems behind one small interface ----------------------------------------------

interface System {
  readonly name: string;
  readonly dir: string;
  /** Writes keys [from, to) as batches of `batch` entries, one batch in flight. */
  writeBatch(keys: KeySet, vals: ValuePool, from: number, to: number): Promise<void>;
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  /** Full forward scan in chunks of 1000; returns the entry count. */
  scan(): Promise<number>;
  /** Waits until background flush/compaction work is done; returns a description. */
  settle(): Promise<string>;
  close(): Promise<void>;
}

class ProofKVSystem implements System {
  readonly name = 'ProofKV';
  private constructor(
    readonly db: ProofDB,
    readonly dir: string,
  ) {}
  /** Checkpoints taken by the load (`--checkpoint-every`) and their total time, ms. */
  loadCheckpoints = { count: 0, ms: 0 };
  static async open(dir: string): Promise<ProofKVSystem> {
    return new ProofKVSystem(await ProofDB.open(dir, { sync: false, compactionThread: COMPACTION_THREAD, ...ENGINE }), dir);
  }
  async checkpoint(): Promise<void> {
    const t0 = performance.now();
    await this.db.checkpoint();
    this.loadCheckpoints.count++;
    this.loadCheckpoints.ms += performance.now() - t0;
  }
  async writeBatch(keys: KeySet, vals: ValuePool, from: number, to: number): Promise<void> {
    const b = this.db.batch();
    for (let i = from; i < to; i++) b.put(keys.key(i), vals.value(i));
    await this.db.write(b);
  }
  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.db.put(key, value);
  }
  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.db.get(key);
  }
  async scan(): Promise<number> {
    const it = this.db.iterator({});
    let n = 0;
    for (;;) {
      const chunk = await it.nextv(1000);
      if (chunk.length === 0) break;
      n += chunk.length;
    }
    return n;
  }
  /** Checkpoints until a checkpoint installs no compaction (nothing pending). */
  async settle(): Promise<string> {
    const t0 = performance.now();
    let rounds = 0;
    for (; rounds < 1000; rounds++) {
      const s0 = this.db.stats();
      await this.db.checkpoint();
      const s1 = this.db.stats();
      if (s1.compactions === s0.compactions && s1.trivialMoves === s0.trivialMoves && s1.flushes === s0.flushes) break;
    }
    return `${rounds + 1} checkpoint(s), ${since(t0).toFixed(2)} s`;
  }
  close(): Promise<void> {
    return this.db.close();
  }
}

class LevelDBSystem implements System {
  readonly name = 'LevelDB';
  private constructor(
    readonly db: ClassicLevel<Uint8Array, Uint8Array>,
    readonly dir: string,
  ) {}
  static async open(dir: string): Promise<LevelDBSystem> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view', compression: false });
    await db.open();
    return new LevelDBSystem(db, dir);
  }
  async writeBatch(keys: KeySet, vals: ValuePool, from: number, to: number): Promise<void> {
    const ops: Array<{ type: 'put'; key: Uint8Array; value: Uint8Array }> = new Array(to - from);
    for (let i = from; i < to; i++) ops[i - from] = { type: 'put', key: keys.key(i), value: vals.value(i) };
    await this.db.batch(ops);
  }
  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.db.put(key, value);
  }
  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.db.get(key);
  }
  getSync(key: Uint8Array): Uint8Array | undefined {
    return this.db.getSync(key);
  }
  async scan(): Promise<number> {
    const it = this.db.iterator();
    let n = 0;
    try {
      for (;;) {
        const chunk = await it.nextv(1000);
        if (chunk.length === 0) break;
        n += chunk.length;
      }
    } finally {
      await it.close();
    }
    return n;
  }
  /**
   * LevelDB has no "wait for compactions" call. Poll its stats property and the directory
   * listing (names and sizes; compaction outputs grow while written) until neither changed for
   * one second. Reports the time of the last observed change (±100 ms), i.e. how long
   * background work continued after the call.
   */
  async settle(): Promise<string> {
    const t0 = performance.now();
    const snap = () => {
      const files = fs
        .readdirSync(this.dir)
        .map((f) => {
          try {
            return `${f}:${fs.statSync(`${this.dir}/${f}`).size}`;
          } catch {
            return f;
          }
        })
        .join(',');
      return `${this.db.getProperty('leveldb.stats')}|${files}`;
    };
    let last = snap();
    let lastChange = t0;
    while (performance.now() - lastChange < 1000 && performance.now() - t0 < 600_000) {
      await tick(100);
      const s = snap();
      if (s !== last) {
        last = s;
        lastChange = performance.now();
      }
    }
    return `background work for ~${((lastChange - t0) / 1000).toFixed(2)} s`;
  }
  /** Files per level, from leveldb.num-files-at-levelN. */
  levels(): string {
    const out: string[] = [];
    for (let l = 0; l < 7; l++) out.push(this.db.getProperty(`leveldb.num-files-at-level${l}`));
    return out.join('/');
  }
  close(): Promise<void> {
    return this.db.close();
  }
}

// ---- profiling (in-process inspector; ProofKV's main thread only) ---------------------------

let session: Session | null = null;
const profiled = new Set<string>();
async function profileStart(phase: string, sys: System): Promise<void> {
  if (!PROFILE_PHASES.includes(phase) || profiled.has(phase) || sys.name !== 'ProofKV' || session) return;
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
}
async function profileStop(phase: string, sys: System): Promise<void> {
  if (!PROFILE_PHASES.includes(phase) || profiled.has(phase) || sys.name !== 'ProofKV' || !session) return;
  const { profile } = await session.post('Profiler.stop');
  const out = `${PROFILE_PREFIX}-${phase}.cpuprofile`;
  fs.writeFileSync(out, JSON.stringify(profile));
  session.disconnect();
  session = null;
  profiled.add(phase);
  console.error(`[profile] ${phase}: wrote ${out}`);
}

// ---- phases ---------------------------------------------------------------------------------

const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Batched load of [0, n); stops early (returning the count written) after `timeoutS`. */
async function load(sys: System, keys: KeySet, vals: ValuePool, n: number, timeoutS: number): Promise<{ n: number; s: number }> {
  const t0 = performance.now();
  let nextReport = n / 10;
  let i = 0;
  let batches = 0;
  while (i < n) {
    const to = Math.min(n, i + BATCH);
    await sys.writeBatch(keys, vals, i, to);
    i = to;
    if (CHECKPOINT_EVERY > 0 && sys instanceof ProofKVSystem && ++batches % CHECKPOINT_EVERY === 0 && i < n) await sys.checkpoint();
    if (i >= nextReport && i < n) {
      const s = since(t0);
      log(`${sys.name} load: ${fmtNum(i)} / ${fmtNum(n)} in ${s.toFixed(1)} s (${fmtNum(i / s)}/s)`);
      nextReport += n / 10;
    }
    if (timeoutS > 0 && since(t0) > timeoutS) {
      log(`${sys.name} load: --write-timeout ${timeoutS}s reached after ${i} entries; stopping`);
      break;
    }
  }
  return { n: i, s: since(t0) };
}

async function singlePuts(sys: System, keys: KeySet, vals: ValuePool, from: number, count: number): Promise<number> {
  const t0 = performance.now();
  for (let i = from; i < from + count; i++) await sys.put(keys.key(i), vals.value(i));
  return count / since(t0);
}

async function serialGets(sys: System, keys: KeySet, idx: Uint32Array): Promise<{ rate: number; misses: number }> {
  let misses = 0;
  const t0 = performance.now();
  for (let i = 0; i < idx.length; i++) {
    const v = await sys.get(keys.key(idx[i]));
    if (v === undefined) misses++;
  }
  return { rate: idx.length / since(t0), misses };
}

function syncGets(sys: LevelDBSystem, keys: KeySet, idx: Uint32Array): { rate: number; misses: number } {
  let misses = 0;
  const t0 = performance.now();
  for (let i = 0; i < idx.length; i++) {
    if (sys.getSync(keys.key(idx[i])) === undefined) misses++;
  }
  return { rate: idx.length / since(t0), misses };
}

async function concurrentGets(sys: System, keys: KeySet, idx: Uint32Array): Promise<{ rate: number; misses: number }> {
  let misses = 0;
  const window: Array<Promise<Uint8Array | undefined>> = new Array(CONC);
  const t0 = performance.now();
  for (let i = 0; i < idx.length; i += CONC) {
    const m = Math.min(CONC, idx.length - i);
    window.length = m;
    for (let j = 0; j < m; j++) window[j] = sys.get(keys.key(idx[i + j]));
    const got = await Promise.all(window);
    for (const v of got) if (v === undefined) misses++;
  }
  return { rate: idx.length / since(t0), misses };
}

async function fullScan(sys: System): Promise<{ rate: number; count: number; s: number }> {
  const t0 = performance.now();
  const count = await sys.scan();
  const s = since(t0);
  return { rate: count / s, count, s };
}

// ---- main -----------------------------------------------------------------------------------

interface Row {
  what: string;
  unit: string;
  p?: Spread;
  l?: Spread;
  target: string;
  note: string;
}

async function main(): Promise<void> {
  const load0 = loadAvg();
  const tStart = performance.now();
  console.log('# ProofKV vs classic-level (LevelDB) — engine benchmark');
  for (const l of machineInfo()) console.log(`# ${l}`);
  console.log(`# classic-level ${classicLevelVersion} (compression: false); ProofKV ${describeEngineOptions(ENGINE)} (sync: false)`);
  if (CHECKPOINT_EVERY > 0) console.log(`# ProofKV's load checkpoints after every ${CHECKPOINT_EVERY} batches (inside the timed load)`);
  console.log(
    `# N=${N} entries, key ${KEY_SIZE} B (random, unique), value ${VALUE_SIZE} B (random), batch ${BATCH}, ` +
      `puts ${PUTS}, gets ${GETS}, concurrent gets ${CGETS} in windows of ${CONC}, reps ${REPS}`,
  );
  console.log(`# load average at start: ${load0}`);

  log('generating keys');
  const keys = new KeySet(N + REPS * PUTS, KEY_SIZE, SEED);
  const vals = new ValuePool(VALUE_SIZE, SEED ^ 0xabcdef);

  const sys: System[] = [];
  let P: ProofKVSystem | null = null;
  let L: LevelDBSystem | null = null;
  if (RUN_P) sys.push((P = await ProofKVSystem.open(tempDir('proofkv-bench-'))));
  if (RUN_L) sys.push((L = await LevelDBSystem.open(tempDir('leveldb-bench-'))));
  const rows: Row[] = [];
  const info: string[] = [];
  const spreadOf = (name: string, m: Map<string, number[]>) => (m.has(name) ? spread(m.get(name)!) : undefined);

  try {
    // 1. Sustained batched writes. ProofKV first; LevelDB then writes exactly as many entries.
    let loaded = N;
    const writeS = new Map<string, number>();
    let checkpointS = 0;
    const settleNote = new Map<string, string>();
    for (const s of sys) {
      log(`${s.name}: loading ${fmtNum(loaded)} entries`);
      await profileStart('write', s);
      const r = await load(s, keys, vals, loaded, s.name === 'ProofKV' ? WRITE_TIMEOUT_S : 0);
      await profileStop('write', s);
      loaded = r.n;
      writeS.set(s.name, r.s);
      log(`${s.name}: wrote ${fmtNum(r.n)} in ${r.s.toFixed(2)} s (${fmtNum(r.n / r.s)}/s)`);
      if (s === P) {
        await profileStart('checkpoint', s);
        const t0 = performance.now();
        await P.db.checkpoint();
        checkpointS = since(t0);
        await profileStop('checkpoint', s);
        log(`ProofKV: final checkpoint ${checkpointS.toFixed(2)} s; tables ${describeTables(P)}`);
      }
      settleNote.set(s.name, await s.settle());
      log(`${s.name}: settle: ${settleNote.get(s.name)}`);
    }
    const wrate = (name: string, extra = 0) => (writeS.has(name) ? spread([loaded / (writeS.get(name)! + extra)]) : undefined);
    rows.push({
      what: `batched writes, ${fmtNum(loaded)} x ${BATCH}/batch (writes only)`,
      unit: 'entries/s',
      p: wrate('ProofKV'),
      l: wrate('LevelDB'),
      target: '',
      note:
        `time: ${[...writeS].map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}` +
        (P && P.loadCheckpoints.count > 0 ? `; ProofKV's includes ${P.loadCheckpoints.count} checkpoints (${(P.loadCheckpoints.ms / 1000).toFixed(1)} s)` : ''),
    });
    rows.push({
      what: `batched writes + ProofKV final checkpoint`,
      unit: 'entries/s',
      p: wrate('ProofKV', checkpointS),
      l: wrate('LevelDB'),
      target: '>= 1.0x',
      note: `ProofKV incl. checkpoint ${checkpointS.toFixed(2)} s; LevelDB writes only`,
    });
    const dataBytes = loaded * (KEY_SIZE + VALUE_SIZE);
    const diskAfterLoad = sys.map((s) => `${s.name} ${fmtBytes(dirBytes(s.dir))}`).join(', ');
    info.push(`on-disk after load+settle: ${diskAfterLoad} (raw key+value data ${fmtBytes(dataBytes)})`);
    if (P) info.push(`ProofKV stats after load: ${JSON.stringify(P.db.stats())}; tables ${describeTables(P)}`);
    if (L) info.push(`LevelDB files per level after load: ${L.levels()}`);
    for (const [k, v] of settleNote) info.push(`${k} settle after load: ${v}`);

    // Alternate which system goes first in each rep, to spread order effects and drift.
    const order = (rep: number) => (rep % 2 === 0 ? sys : [...sys].reverse());

    // 2. Single awaited puts of fresh keys (no overwrite), sync off.
    const puts = new Map<string, number[]>();
    for (let rep = 0; rep < REPS; rep++) {
      for (const s of order(rep)) {
        await profileStart('put', s);
        const rate = await singlePuts(s, keys, vals, N + rep * PUTS, PUTS);
        await profileStop('put', s);
        (puts.get(s.name) ?? puts.set(s.name, []).get(s.name)!).push(rate);
      }
      log(`puts rep ${rep + 1}/${REPS} done`);
    }
    rows.push({
      what: `single awaited puts (${fmtNum(PUTS)}/run, fresh keys)`,
      unit: 'ops/s',
      p: spreadOf('ProofKV', puts),
      l: spreadOf('LevelDB', puts),
      target: '',
      note: 'sync off for both',
    });
    const total = loaded + REPS * PUTS;
    // Settle again so background work from the puts does not land inside the read phases.
    for (const s of sys) info.push(`${s.name} settle after puts: ${await s.settle()}`);

    // 3. Random point gets, awaited one at a time; 3b. LevelDB getSync (informational).
    const gets = new Map<string, number[]>();
    const getsSync: number[] = [];
    let misses = 0;
    for (let rep = 0; rep < REPS; rep++) {
      const idx = randomIndexes(GETS, loaded, SEED + 100 + rep);
      for (const s of order(rep)) {
        await profileStart('get', s);
        const r = await serialGets(s, keys, idx);
        await profileStop('get', s);
        misses += r.misses;
        (gets.get(s.name) ?? gets.set(s.name, []).get(s.name)!).push(r.rate);
      }
      if (L) {
        const r = syncGets(L, keys, idx);
        misses += r.misses;
        getsSync.push(r.rate);
      }
      log(`gets rep ${rep + 1}/${REPS} done`);
    }
    rows.push({
      what: `random get, awaited one at a time (${fmtNum(GETS)}/run)`,
      unit: 'ops/s',
      p: spreadOf('ProofKV', gets),
      l: spreadOf('LevelDB', gets),
      target: '>= 5x',
      note: 'existing keys, uniform',
    });
    if (L && P) {
      rows.push({
        what: `  (info) same, vs LevelDB getSync`,
        unit: 'ops/s',
        p: spreadOf('ProofKV', gets),
        l: spread(getsSync),
        target: '',
        note: 'classic-level 3 synchronous get',
      });
    }

    // 4. 100 concurrent gets.
    const cgets = new Map<string, number[]>();
    for (let rep = 0; rep < REPS; rep++) {
      const idx = randomIndexes(CGETS, loaded, SEED + 200 + rep);
      for (const s of order(rep)) {
        await profileStart('cget', s);
        const r = await concurrentGets(s, keys, idx);
        await profileStop('cget', s);
        misses += r.misses;
        (cgets.get(s.name) ?? cgets.set(s.name, []).get(s.name)!).push(r.rate);
      }
      log(`concurrent gets rep ${rep + 1}/${REPS} done`);
    }
    rows.push({
      what: `get, ${CONC} concurrent (${fmtNum(CGETS)}/run)`,
      unit: 'ops/s',
      p: spreadOf('ProofKV', cgets),
      l: spreadOf('LevelDB', cgets),
      target: '>= 1.0x',
      note: `Promise.all over windows of ${CONC}`,
    });

    // 5. Full scan.
    const scans = new Map<string, number[]>();
    const counts = new Map<string, number>();
    for (let rep = 0; rep < REPS; rep++) {
      for (const s of order(rep)) {
        await profileStart('scan', s);
        const r = await fullScan(s);
        await profileStop('scan', s);
        counts.set(s.name, r.count);
        (scans.get(s.name) ?? scans.set(s.name, []).get(s.name)!).push(r.rate);
      }
      log(`scan rep ${rep + 1}/${REPS} done`);
    }
    rows.push({
      what: `full scan, nextv(1000)`,
      unit: 'entries/s',
      p: spreadOf('ProofKV', scans),
      l: spreadOf('LevelDB', scans),
      target: '>= 1.0x',
      note: `entries seen: ${[...counts].map(([k, v]) => `${k} ${v}`).join(', ')} (expected ${total})`,
    });
    if (misses > 0) info.push(`WARNING: ${misses} gets of existing keys returned undefined`);
    if (P) info.push(`ProofKV stats at end: ${JSON.stringify(P.db.stats())}`);
    if (P) {
      // How many times each entry was hashed into a table: once by its flush, again by each compaction.
      const st = P.db.stats();
      const wa = st.flushBytes > 0 ? (st.flushBytes + st.compactionBytesWritten) / st.flushBytes : 0;
      info.push(`ProofKV write amplification: ${wa.toFixed(2)} (flushed ${fmtBytes(st.flushBytes)}, compactions read ${fmtBytes(st.compactionBytesRead)} and wrote ${fmtBytes(st.compactionBytesWritten)}; stall ${(st.stallMs / 1000).toFixed(1)} s)`);
    }
    info.push(`on-disk at end: ${sys.map((s) => `${s.name} ${fmtBytes(dirBytes(s.dir))}`).join(', ')}`);
    const mu = process.memoryUsage();
    info.push(`process memory at end: rss ${fmtBytes(mu.rss)}, heap used ${fmtBytes(mu.heapUsed)}, external ${fmtBytes(mu.external)}`);
  } finally {
    for (const s of sys) await s.close().catch((e: unknown) => console.error(`close ${s.name}: ${String(e)}`));
    for (const s of sys) {
      if (KEEP) console.error(`kept ${s.name} at ${s.dir}`);
      else fs.rmSync(s.dir, { recursive: true, force: true });
    }
  }

  // ---- report ----
  console.log('');
  console.log('Throughput, higher is better. Cells: median [min–max] over runs (one run for writes).');
  console.log('ratio = ProofKV / LevelDB (medians): > 1.00x means ProofKV is faster. noise = (max-min)/median per side.');
  console.log('');
  const header = ['what', 'unit', 'ProofKV', 'LevelDB', 'ratio', 'target', 'noise P / L', 'notes'];
  printTable(
    header,
    rows.map((r) => [
      r.what,
      r.unit,
      r.p ? fmtSpread(r.p) : '-',
      r.l ? fmtSpread(r.l) : '-',
      r.p && r.l ? `${(r.p.median / r.l.median).toFixed(2)}x` : '-',
      r.target,
      r.p && r.l && (r.p.runs.length > 1 || r.l.runs.length > 1) ? `${noisePct(r.p).toFixed(0)}% / ${noisePct(r.l).toFixed(0)}%` : '',
      r.note,
    ]),
  );
  console.log('');
  for (const l of info) console.log(`- ${l}`);
  for (const r of rows) {
    if ((r.p?.runs.length ?? 0) > 1 || (r.l?.runs.length ?? 0) > 1) {
      console.log(`- per-run ${r.unit}, ${r.what.trim()}: ProofKV [${r.p?.runs.map(fmtNum).join(', ') ?? ''}], LevelDB [${r.l?.runs.map(fmtNum).join(', ') ?? ''}]`);
    }
  }
  console.log(`- load average at start: ${load0}; at end: ${loadAvg()}; total wall time ${since(tStart).toFixed(0)} s`);
  for (const ph of PROFILE_PHASES) if (!profiled.has(ph)) console.log(`- note: --profile ${ph} did not match a ProofKV phase`);
}

function describeTables(P: ProofKVSystem): string {
  const per = new Array<number>(7).fill(0);
  for (const t of P.db.tables()) per[t.level]++;
  return `per level ${per.join('/')}`;
}

// ---- RSS: one system per child process ---------------------------------------------------------

/** What an `--rss-child` reports, as one JSON line on stdout. */
interface RssReport {
  system: string;
  rss: number;
  /** Peak RSS of the child (`VmHWM`). */
  peakRss: number;
  heapUsed: number;
  /** The main isolate's committed heap (V8 keeps it beyond what is in use). */
  heapTotal: number;
  /** RSS split from `/proc/self/status` at the idle measurement: anonymous memory, mapped files. */
  rssAnonIdle: number;
  rssFileIdle: number;
  external: number;
  arrayBuffers: number;
  loadS: number;
  /** ProofKV: its caches' use and capacity; LevelDB: its configured cache. */
  caches: Array<{ cache: string; bytes: number; capacity: number }>;
  tables: string;
  /** ProofKV: the largest heap a compaction or flush worker had in use at the end of a job. */
  workerPeakJobHeap?: number;
  /** RSS after the system then sat idle past the workers' idle timeout (ProofKV's workers ended). */
  rssIdle: number;
}

/** The child: loads N entries into one system, settles it, reports its memory after a full GC. */
async function rssChild(which: string): Promise<void> {
  const keys = new KeySet(N, KEY_SIZE, SEED);
  const vals = new ValuePool(VALUE_SIZE, SEED ^ 0xabcdef);
  const s = which === 'proofkv' ? await ProofKVSystem.open(tempDir('proofkv-rss-')) : await LevelDBSystem.open(tempDir('leveldb-rss-'));
  try {
    const r = await load(s, keys, vals, N, 0);
    let caches: RssReport['caches'];
    let tables: string;
    if (s instanceof ProofKVSystem) {
      await s.db.checkpoint();
      await s.db.waitForCompactions();
      caches = s.db.cacheStats();
      tables = describeTables(s);
    } else {
      await s.settle();
      // classic-level's defaults: an 8 MiB block cache and a 4 MiB write buffer.
      caches = [{ cache: 'block cache (default)', bytes: 0, capacity: 8 << 20 }];
      tables = s.levels();
    }
    const gc = (globalThis as { gc?: () => void }).gc;
    for (let i = 0; i < 3; i++) {
      gc?.();
      await tick(50);
    }
    const mu = process.memoryUsage();
    // Then idle past the workers' idle timeout (LevelDB idles the same time), and measure again.
    await tick(WORKER_IDLE_MS + 1000);
    for (let i = 0; i < 3; i++) {
      gc?.();
      await tick(50);
    }
    const rssIdle = process.memoryUsage().rss;
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    const report: RssReport = {
      system: s.name,
      rss: mu.rss,
      rssIdle,
      peakRss: hwm ? Number(hwm[1]) * 1024 : 0,
      heapUsed: mu.heapUsed,
      heapTotal: mu.heapTotal,
      rssAnonIdle: kb('RssAnon'),
      rssFileIdle: kb('RssFile'),
      external: mu.external,
      arrayBuffers: mu.arrayBuffers,
      loadS: r.s,
      caches,
      tables,
      workerPeakJobHeap: s instanceof ProofKVSystem ? workerMemoryStats().peakJobHeapUsed : undefined,
    };
    console.log(JSON.stringify(report));
  } finally {
    await s.close();
    fs.rmSync(s.dir, { recursive: true, force: true });
  }
}

/** Runs one child (`node --expose-gc --import tsx bench/engine.ts --rss-child …`) and reads its report. */
function runRssChild(which: string): Promise<RssReport> {
  const self = fileURLToPath(import.meta.url);
  const argv = ['--expose-gc', '--import', 'tsx', self, '--rss-child', which, '--n', String(N)];
  if (COMPACTION_THREAD === 'inline') argv.push('--compaction-thread', 'inline');
  if (Object.keys(ENGINE).length > 0) argv.push('--engine', Object.entries(ENGINE).map(([k, v]) => `${k}=${v}`).join(','));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`rss child ${which} exited with ${code}: ${out.slice(-500)}`));
      else resolve(JSON.parse(line) as RssReport);
    });
  });
}

/** `--rss`: the RSS row of issue 13, each system in its own process, one after the other. */
async function rssMain(): Promise<void> {
  const load0 = loadAvg();
  console.log('# ProofKV vs classic-level — process RSS after a bulk load, one child process per system');
  for (const l of machineInfo()) console.log(`# ${l}`);
  console.log(
    `# N=${N} entries, key ${KEY_SIZE} B, value ${VALUE_SIZE} B, batch ${BATCH}; ProofKV ${describeEngineOptions(ENGINE)}, ` +
      `compactions on ${COMPACTION_THREAD === 'inline' ? 'the main thread' : 'worker threads'}; load average at start: ${load0}`,
  );
  const reports: RssReport[] = [];
  for (const which of systems) {
    log(`rss: ${which}`);
    reports.push(await runRssChild(which === 'leveldb' ? 'leveldb' : 'proofkv'));
  }
  console.log('');
  printTable(
    ['system', 'rss', `rss after ${(WORKER_IDLE_MS + 1000) / 1000} s idle (anon / files)`, 'peak rss', 'heap used / committed', 'external (array buffers)', 'load s', 'writes/s', 'worker heap at job end (peak)', 'tables', 'caches: use / capacity'],
    reports.map((r) => [
      r.system,
      fmtBytes(r.rss),
      `${fmtBytes(r.rssIdle)} (${fmtBytes(r.rssAnonIdle)} / ${fmtBytes(r.rssFileIdle)})`,
      fmtBytes(r.peakRss),
      `${fmtBytes(r.heapUsed)} / ${fmtBytes(r.heapTotal)}`,
      `${fmtBytes(r.external)} (${fmtBytes(r.arrayBuffers)})`,
      r.loadS.toFixed(1),
      `${fmtNum(N / r.loadS)}/s`,
      r.workerPeakJobHeap === undefined ? '-' : fmtBytes(r.workerPeakJobHeap),
      r.tables,
      r.caches.map((c) => `${c.cache} ${fmtBytes(c.bytes)} / ${fmtBytes(c.capacity)}`).join('; '),
    ]),
  );
  const p = reports.find((r) => r.system === 'ProofKV');
  const l = reports.find((r) => r.system === 'LevelDB');
  if (p && l) {
    const configured = p.caches.reduce((n, c) => n + c.capacity, 0);
    console.log('');
    for (const [when, pr, lr] of [
      ['right after settling', p.rss, l.rss],
      ['after idling', p.rssIdle, l.rssIdle],
    ] as const) {
      const bound = 1.5 * lr + configured;
      console.log(
        `- ${when}: ratio ProofKV / LevelDB RSS ${(pr / lr).toFixed(2)}x; ` +
          `goal: ProofKV <= 1.5 x LevelDB + ProofKV's configured caches (${fmtBytes(configured)}) = ${fmtBytes(bound)}: ` +
          `${pr <= bound ? 'MET' : 'MISSED'} (${fmtBytes(pr)})`,
      );
    }
    console.log(`- peak RSS ratio ${(p.peakRss / l.peakRss).toFixed(2)}x`);
  }
  console.log(`- load average at start: ${load0}; at end: ${loadAvg()}`);
}

if (typeof args.get('rss-child') === 'string') await rssChild(args.get('rss-child') as string);
else if (args.has('rss')) await rssMain();
else await main();
