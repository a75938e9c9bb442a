/**
 * Proof benchmark: get, history and scan proofs of one embedded ProofKV engine, against the anchors of
 * these rows: proof size vs the RFC 6962 inclusion path at the same number of leaves,
 * `getWithProof` latency vs plain `get` on the same engine, and client verifications per second
 * with the isomorphic verifier on one core: with its default hasher in Node (the built-in
 * SHA-256 below 128 bytes, node:crypto above; importing src/index.ts installs it), with the
 * built-in proofs/sha256.ts alone (the default in browsers) and with noble SHA-256; Ed25519 is
 * noble's in all three. `bench/verify_browser.ts` times the same verifier in headless Chromium.
 *
 *   npx tsx bench/proofs.ts                  # 1k, 100k and 1M keys
 *   npx tsx bench/proofs.ts --quick          # 1k and 100k
 *   npx tsx bench/proofs.ts --sizes 100k --profile /tmp/proofs   # + CPU profiles of the timed phases
 *   npx tsx bench/proofs.ts --help
 *
 * Shares its PRNG and key helpers with bench/lib.ts. Not a test: nothing here asserts
 * on timing; it does check that every proof it times verifies, so a broken prover cannot look fast.
 * @module
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Session } from 'node:inspector/promises';
import { describeEngineOptions, engineOptionsArg, fmix32, prng, rate } from './lib.js';
import { scaleChartSvg, type ScalePoint } from './scale_chart.js';
import { ProofDB } from '../src/index.js';
import { proofCbor } from '../proofs/cbor_instance.js';
import {
  getProofCodec,
  getProofCodecV1,
  historyProofCodec,
  historyProofCodecV1,
  PROOF_KEYS,
  jsHasher,
  nobleHasher,
  scanProofCodec,
  verifyScanProof,
  verifyGetProof,
  verifyHeadSignature,
  verifyHistoryProof,
  type CheckpointExpectation,
  type GetProof,
  type HistoryProof,
  type ScanProof,
} from '../proofs/index.js';

// ---- command line ---------------------------------------------------------------------------

function parseArgs(argv: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out.set(a.slice(2), argv[++i]);
    else out.set(a.slice(2), true);
  }
  return out;
}

function parseNum(v: string): number {
  const m = /^([0-9.e+]+)([km]?)$/i.exec(v.trim());
  if (!m) throw new Error(`not a number: ${v}`);
  const mult = m[2].toLowerCase() === 'k' ? 1e3 : m[2].toLowerCase() === 'm' ? 1e6 : 1;
  return Math.round(Number(m[1]) * mult);
}

function numArg(args: Map<string, string | true>, name: string, dflt: number): number {
  const v = args.get(name);
  if (v === undefined) return dflt;
  if (v === true) throw new Error(`--${name} needs a value`);
  return parseNum(v);
}

const args = parseArgs(process.argv.slice(2));
if (args.has('help')) {
  console.log(`usage: npx tsx bench/proofs.ts [--quick] [--sizes 1k,100k,1m] [--samples 1000]
       [--lat 2000] [--verify 1000] [--versions 100] [--scan-page 100] [--scan-starts 50]
       [--reps 3] [--load-timeout 600] [--engine NAME=VALUE[,NAME=VALUE...]]
       [--profile PREFIX] [--keep] [--chart FILE.svg] [--json FILE.json]
--engine sets numeric engine options, e.g. --engine writeBufferSize=16Mi,checkpointLevel0Tables=0.
--profile PREFIX writes PREFIX-<n>-getWithProof.cpuprofile and PREFIX-<n>-verify.cpuprofile (first
rep of each phase, every size); summarise with bench/profile-summary.ts or Chrome DevTools.
--chart FILE.svg writes load writes/s, proof size, getWithProof latency and verify/s against N (issue 13's
scale chart); --json FILE.json writes the per-size figures.`);
  process.exit(0);
}
const QUICK = args.has('quick');
const SIZES = (typeof args.get('sizes') === 'string' ? (args.get('sizes') as string).split(',').map(parseNum) : QUICK ? [1e3, 1e5] : [1e3, 1e5, 1e6]);
const SAMPLES = numArg(args, 'samples', 1000); // keys whose proof size is measured (present and absent)
const LAT = numArg(args, 'lat', 2000); // awaited operations per latency run
const VERIFY = numArg(args, 'verify', 1000); // pre-generated proofs verified per verify run
const VERSIONS = numArg(args, 'versions', 100); // versions of the history key
const SCAN_PAGE = numArg(args, 'scan-page', 100); // keys per proven scan page
const SCAN_STARTS = numArg(args, 'scan-starts', 50); // random start keys of the scan pages
const REPS = Math.max(1, numArg(args, 'reps', 3));
const LOAD_TIMEOUT_S = numArg(args, 'load-timeout', 600);
const PROFILE = typeof args.get('profile') === 'string' ? (args.get('profile') as string) : undefined;
const KEEP = args.has('keep');
const CHART = typeof args.get('chart') === 'string' ? (args.get('chart') as string) : undefined;
const JSON_OUT = typeof args.get('json') === 'string' ? (args.get('json') as string) : undefined;
/** `--engine NAME=VALUE,...`: engine options of every size's database (default: none, the defaults). */
const ENGINE = engineOptionsArg(args);
const KEY_SIZE = 16;
const VALUE_SIZE = 100;
const BATCH = 1000;
const SEED = 0x9e3779b9;

// ---- data -----------------------------------------------------------------------------------



/** Key i: bytes 0..3 a bijection of i (unique, random order), bytes 4..15 from a seeded PRNG. */
function makeKeys(n: number, seed: number): Uint8Array {
  const buf = new Uint8Array(n * KEY_SIZE);
  const dv = new DataView(buf.buffer);
  const rnd = prng(seed);
  for (let i = 0; i < n; i++) {
    dv.setUint32(i * KEY_SIZE, fmix32((i ^ seed) >>> 0));
    for (let j = 4; j < KEY_SIZE; j++) buf[i * KEY_SIZE + j] = rnd() & 0xff;
  }
  return buf;
}
const keyAt = (buf: Uint8Array, i: number) => buf.subarray(i * KEY_SIZE, (i + 1) * KEY_SIZE);

const VALUE_POOL = (() => {
  const rnd = prng(SEED ^ 0x55);
  const b = new Uint8Array((1 << 20) + VALUE_SIZE);
  for (let i = 0; i < b.length; i++) b[i] = rnd() & 0xff;
  return b;
})();
const valueAt = (i: number) => {
  const off = fmix32(i) % (1 << 20);
  return VALUE_POOL.subarray(off, off + VALUE_SIZE);
};

function randomIndexes(count: number, range: number, seed: number): number[] {
  const rnd = prng(seed);
  return Array.from({ length: count }, () => rnd() % range);
}

/** The key whose history the benchmark proves: 16 bytes, outside the loaded key set. */
const HISTORY_KEY = new TextEncoder().encode('history-key-0001');

// ---- statistics and formatting --------------------------------------------------------------

interface Spread {
  runs: number[];
  min: number;
  median: number;
  max: number;
}
function spread(runs: number[]): Spread {
  const s = [...runs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { runs, min: s[0], median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, max: s[s.length - 1] };
}
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
const noise = (s: Spread) => (s.median === 0 ? 0 : ((s.max - s.min) / s.median) * 100);
function fmt(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (a >= 100) return n.toFixed(0);
  return n.toFixed(a >= 10 ? 1 : 2);
}
const fmtS = (s: Spread) => (s.runs.length === 1 ? fmt(s.median) : `${fmt(s.median)} [${fmt(s.min)}–${fmt(s.max)}]`);
const fmtBytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1 << 10 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const loadAvg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

function printTable(header: string[], rows: string[][]): void {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(w[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

// ---- profiling ------------------------------------------------------------------------------

let session: Session | null = null;
async function profileStart(): Promise<void> {
  if (!PROFILE) return;
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
async function profileStop(name: string): Promise<void> {
  if (!PROFILE || !session) return;
  const { profile } = await session.post('Profiler.stop');
  const out = `${PROFILE}-${name}.cpuprofile`;
  fs.writeFileSync(out, JSON.stringify(profile));
  session.disconnect();
  session = null;
  console.log(`  profile written: ${out}`);
}

// ---- one size -------------------------------------------------------------------------------

interface SizeResult {
  n: number;
  loaded: number;
  loadS: number;
  cutShort: boolean;
  tables: string;
  present: Sizes;
  absent: Sizes;
  /** The same keys with edge proofs (docs/proofs.md §8.12). */
  presentEdges: Sizes;
  absentEdges: Sizes;
  rfc: number;
  getLat: Spread[]; // [median µs, p99 µs] spreads
  proofLat: Spread[];
  /** getWithProof medians over keys never proven before in the run (cold proof-block cache), and the plain get on them. */
  coldLat: Spread[];
  verifyRate: Spread;
  nobleVerifyRate: Spread;
  jsVerifyRate: Spread;
  decodeVerifyRate: Spread;
  /** CBOR decoding alone (linear pre-pass + cbor-x + schema), format 2 and the same proofs in format 1. */
  decodeRate: Spread;
  decodeV1Rate: Spread;
  /** decode + verify from format-1 bytes. */
  decodeVerifyV1Rate: Spread;
  sigRate: Spread;
  history: { bytes: number; bytesV1: number; bytesEdges: number; entries: number; windows: number; descriptors: number; rate: Spread; proofUs: Spread };
  /** Proven scan pages of SCAN_PAGE keys from random start keys (docs/proofs.md §8.9.1). */
  scan: { median: number; max: number; medianEdges: number; windows: number; descriptors: number; revealed: number; rate: Spread; proofUs: Spread };
}

interface Sizes {
  /** Format 2 (compact), the encoding served by default. */
  median: number;
  max: number;
  /** The same proofs in the text-keyed format 1. */
  medianV1: number;
  maxV1: number;
  mean: number;
  descriptors: number;
  windows: number;
  revealed: number;
  certBytes: number;
  /** Mean CBOR bytes per proof, by part (docs/proofs.md §8.10). */
  bytes: ByteParts;
  /** Mean windows per proof, by the level of their table. */
  windowsPerLevel: number[];
}

/** Where a proof's bytes go: each part as compact CBOR (format 2), and its map keys. */
interface ByteParts {
  certificate: number;
  value: number;
  descriptors: number;
  /** masterProof and levelCounts. */
  master: number;
  windows: number;
  /** Of `windows`: the entry leaves, the entry range proofs and the block range proofs. */
  entries: number;
  entryProofs: number;
  blockProofs: number;
  /** Map keys anywhere in the proof (one byte each in format 2). */
  mapKeys: number;
  /** The whole proof in the text-keyed format 1, for comparison. */
  textKeyed: number;
}

/** Counts the map keys of a decoded CBOR value. */
function mapKeyCount(x: unknown): number {
  if (Array.isArray(x)) return x.reduce((a: number, e) => a + mapKeyCount(e), 0);
  if (x instanceof Map) return [...x.values()].reduce((a: number, v) => a + 1 + mapKeyCount(v), 0);
  return 0;
}

function byteParts(p: GetProof): ByteParts {
  const len = (x: unknown) => (x === undefined ? 0 : proofCbor.encode(x).length);
  // The compact encoding as a CBOR tree, so each part is measured as it travels.
  const K = PROOF_KEYS;
  const top = proofCbor.decode(getProofCodec.encode(p)) as Map<number, unknown>;
  const b = top.get(K.getProof.body) as Map<number, unknown>;
  const field = (m: unknown, k: number) => (m as Map<number, unknown>).get(k);
  const list = (x: unknown) => (x ?? []) as unknown[];
  let entries = 0;
  let entryProofs = 0;
  let blockProofs = 0;
  for (const w of list(b.get(K.body.windows))) {
    blockProofs += len(field(w, K.window.blockProof));
    for (const bl of list(field(w, K.window.blocks))) {
      entries += len(field(bl, K.windowBlock.entries));
      entryProofs += len(field(bl, K.windowBlock.proof));
    }
  }
  return {
    certificate: len(top.get(K.getProof.certificate)),
    value: len(top.get(K.getProof.value)),
    descriptors: len(b.get(K.body.descriptors)),
    master: len(b.get(K.body.masterProof)) + len(b.get(K.body.levelCounts)),
    windows: len(b.get(K.body.windows)),
    entries,
    entryProofs,
    blockProofs,
    mapKeys: mapKeyCount(top),
    textKeyed: getProofCodecV1.encode(p).length,
  };
}

function sizeStats(proofs: GetProof[]): Sizes {
  const lens = proofs.map((p) => getProofCodec.encode(p).length).sort((a, b) => a - b);
  const lensV1 = proofs.map((p) => getProofCodecV1.encode(p).length).sort((a, b) => a - b);
  const avg = (f: (p: GetProof) => number) => proofs.reduce((a, p) => a + f(p), 0) / proofs.length;
  // The certificate alone: the same proof with an empty body, minus that empty body.
  const p0 = proofs[0];
  const empty = { levelCounts: [0, 0, 0, 0, 0, 0, 0], descriptors: [], masterProof: [], windows: [] };
  const certBytes = getProofCodec.encode({ certificate: p0.certificate, body: empty }).length;
  return {
    median: quantile(lens, 0.5),
    max: lens[lens.length - 1],
    mean: lens.reduce((a, b) => a + b, 0) / lens.length,
    medianV1: quantile(lensV1, 0.5),
    maxV1: lensV1[lensV1.length - 1],
    descriptors: avg((p) => p.body.descriptors.length),
    windows: avg((p) => p.body.windows.length),
    revealed: avg((p) => p.body.windows.reduce((a, w) => a + w.blocks.reduce((b, bl) => b + bl.entries.length, 0), 0)),
    certBytes,
    bytes: meanParts(proofs.map(byteParts)),
    windowsPerLevel: Array.from({ length: 7 }, (_, level) => avg((p) => p.body.windows.filter((w) => levelOfLeaf(p.body.levelCounts, w.table) === level).length)),
  };
}

/** The level of master-tree leaf `index` (leaves are in read order: level 0 first; docs/proofs.md §8.3). */
function levelOfLeaf(levelCounts: number[], index: number): number {
  let end = 0;
  for (let level = 0; level < levelCounts.length; level++) {
    end += levelCounts[level];
    if (index < end) return level;
  }
  return -1;
}

function meanParts(parts: ByteParts[]): ByteParts {
  const out = { ...parts[0] };
  for (const k of Object.keys(out) as Array<keyof ByteParts>) out[k] = parts.reduce((a, x) => a + x[k], 0) / parts.length;
  return out;
}

/** One line: mean bytes per part (format 2), windows per level, and the same proofs in format 1. */
function describeParts(s: Sizes): string {
  const b = s.bytes;
  const r = (x: number) => x.toFixed(0);
  const perLevel = s.windowsPerLevel.map((w, l) => (w > 0 ? `L${l} ${w.toFixed(2)}` : '')).filter(Boolean).join(', ');
  return (
    `certificate ${r(b.certificate)}, value ${r(b.value)}, descriptors ${r(b.descriptors)}, master proof + counts ${r(b.master)}, ` +
    `windows ${r(b.windows)} (entry leaves ${r(b.entries)}, entry proofs ${r(b.entryProofs)}, block proofs ${r(b.blockProofs)}); ` +
    `windows per level: ${perLevel || 'none'}; ${r(b.mapKeys)} map keys (1 B each); mean ${r(s.mean)} B, ` +
    `text-keyed format 1 ${r(b.textKeyed)} B (${(((b.textKeyed - s.mean) / b.textKeyed) * 100).toFixed(0)}% saved)`
  );
}

/** Awaited one at a time; returns per-op latencies in µs, sorted. */
async function timeOps(keys: Uint8Array[], op: (k: Uint8Array) => Promise<unknown>): Promise<number[]> {
  const lat = new Array<number>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const t0 = performance.now();
    await op(keys[i]);
    lat[i] = (performance.now() - t0) * 1000;
  }
  return lat.sort((a, b) => a - b);
}


async function runSize(n: number): Promise<SizeResult> {
  console.log(`\n=== ${fmt(n)} keys (load avg ${loadAvg()}) ===`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `proofkv-proofs-${n}-`));
  const db = await ProofDB.open(dir, ENGINE);
  try {
    // -- load: batches of 1000 puts, the history key's versions spread evenly over the batches.
    const keys = makeKeys(n, SEED ^ n);
    const batches = Math.ceil(n / BATCH);
    const histEvery = Math.max(1, Math.floor(batches / VERSIONS));
    let histWritten = 0;
    let loaded = 0;
    let cutShort = false;
    const t0 = performance.now();
    let lastReport = t0;
    for (let b = 0; b < batches; b++) {
      const wb = db.batch();
      const end = Math.min(n, (b + 1) * BATCH);
      for (let i = b * BATCH; i < end; i++) wb.put(keyAt(keys, i), valueAt(i));
      // One version per `histEvery` batches; the rest, if any, go into the last batch.
      const want = b === batches - 1 ? VERSIONS - histWritten : b % histEvery === 0 && histWritten < VERSIONS ? 1 : 0;
      for (let v = 0; v < want; v++, histWritten++) wb.put(HISTORY_KEY, valueAt(1_000_000_000 + histWritten));
      await db.write(wb);
      loaded = end;
      const now = performance.now();
      if (now - lastReport > 30_000) {
        console.log(`  load: ${fmt(loaded)} of ${fmt(n)} after ${((now - t0) / 1000).toFixed(0)} s (load avg ${loadAvg()})`);
        lastReport = now;
      }
      if ((now - t0) / 1000 > LOAD_TIMEOUT_S && b < batches - 1) {
        cutShort = true;
        // Still write the remaining history versions so the history row means the same thing.
        const wh = db.batch();
        for (; histWritten < VERSIONS; histWritten++) wh.put(HISTORY_KEY, valueAt(1_000_000_000 + histWritten));
        await db.write(wh);
        console.log(`  load stopped by --load-timeout ${LOAD_TIMEOUT_S}s at ${loaded} keys`);
        break;
      }
    }
    const tc = performance.now();
    const cp = await db.checkpoint();
    const cpS = (performance.now() - tc) / 1000;
    const loadS = (performance.now() - t0) / 1000;
    const perLevel = new Array<number>(7).fill(0);
    for (const t of cp.tables) perLevel[t.level]++;
    const tables = perLevel.map((c, l) => `L${l}:${c}`).filter((s) => !s.endsWith(':0')).join(' ');
    console.log(
      `  loaded ${fmt(loaded)} keys + ${VERSIONS} versions of the history key in ${loadS.toFixed(1)} s ` +
        `(final checkpoint ${cpS.toFixed(2)} s); tables ${tables}; ${fmtBytes(dirBytes(dir))} on disk`,
    );

    const exp: CheckpointExpectation = { trust: { publicKeys: [db.publicKey()], quorum: 1 } };
    const nKeys = loaded;

    // -- proof sizes over random present keys and absent keys (and a correctness check of each).
    const presentIdx = randomIndexes(SAMPLES, nKeys, SEED ^ 1);
    const present: GetProof[] = [];
    for (const i of presentIdx) {
      const k = keyAt(keys, i);
      const { proof, entry } = await db.getWithProof(k);
      const r = verifyGetProof(proof, { key: k }, exp);
      if (!r.ok || !r.entry || r.entry.value.length !== VALUE_SIZE || !entry) throw new Error(`present key ${i}: proof did not verify: ${JSON.stringify(r)}`);
      present.push(proof);
    }
    const absentKeys = Array.from({ length: SAMPLES }, (_, i) => {
      const k = new Uint8Array(KEY_SIZE);
      const rnd = prng(SEED ^ 0xabcd ^ i);
      for (let j = 0; j < KEY_SIZE; j++) k[j] = rnd() & 0xff;
      return k;
    });
    const absent: GetProof[] = [];
    for (const k of absentKeys) {
      const { proof, entry } = await db.getWithProof(k);
      const r = verifyGetProof(proof, { key: k }, exp);
      if (!r.ok || r.entry || entry) throw new Error(`absent key: proof did not verify as absent: ${JSON.stringify(r)}`);
      absent.push(proof);
    }
    // -- the same keys with edge proofs: every consulted table outside the key's range proves its edge.
    const withEdges = async (k: Uint8Array): Promise<GetProof> => {
      const { proof } = await db.getWithProof(k, { edges: true });
      const r = verifyGetProof(proof, { key: k, edges: true }, exp);
      if (!r.ok) throw new Error(`edge proof did not verify: ${r.reason}: ${r.message}`);
      return proof;
    };
    const presentEdges: GetProof[] = [];
    for (const i of presentIdx) presentEdges.push(await withEdges(keyAt(keys, i)));
    const absentEdges: GetProof[] = [];
    for (const k of absentKeys) absentEdges.push(await withEdges(k));
    const rfc = 32 * Math.ceil(Math.log2(nKeys));

    // -- latency: plain get vs getWithProof, same keys, awaited one at a time; sides alternate.
    const latKeys = randomIndexes(LAT, nKeys, SEED ^ 2).map((i) => keyAt(keys, i));
    const warm = latKeys.slice(0, Math.min(300, latKeys.length));
    await timeOps(warm, (k) => db.get(k));
    await timeOps(warm, (k) => db.getWithProof(k));
    const getMed: number[] = [];
    const getP99: number[] = [];
    const proofMed: number[] = [];
    const proofP99: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const runGet = async () => {
        const l = await timeOps(latKeys, (k) => db.get(k));
        getMed.push(quantile(l, 0.5));
        getP99.push(quantile(l, 0.99));
      };
      const runProof = async () => {
        if (rep === 0) await profileStart();
        const l = await timeOps(latKeys, (k) => db.getWithProof(k));
        if (rep === 0) await profileStop(`${n}-getWithProof`);
        proofMed.push(quantile(l, 0.5));
        proofP99.push(quantile(l, 0.99));
      };
      if (rep % 2 === 0) {
        await runGet();
        await runProof();
      } else {
        await runProof();
        await runGet();
      }
      await tick();
    }

    // -- cold: each rep proves keys not proven before, so the prover's block cache cannot help.
    const coldProof: number[] = [];
    const coldGet: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const cold = randomIndexes(Math.max(50, Math.floor(LAT / 4)), nKeys, SEED ^ (0x100 + rep)).map((i) => keyAt(keys, i));
      coldGet.push(quantile(await timeOps(cold, (k) => db.get(k)), 0.5));
      coldProof.push(quantile(await timeOps(cold, (k) => db.getWithProof(k)), 0.5));
      await tick();
    }

    // -- client verification rate over pre-generated proofs, this thread: with the default hasher
    //    (JS below 128 bytes, node:crypto above: importing src/index.ts installs it), the built-in JS
    //    one (what a browser runs) and noble.
    const vProofs = present.slice(0, Math.min(VERIFY, present.length));
    const vKeys = presentIdx.slice(0, vProofs.length).map((i) => keyAt(keys, i));
    const vItems = vProofs.map((p, i) => ({ p, k: vKeys[i] }));
    const encoded = vItems.map(({ p, k }) => ({ b: getProofCodec.encode(p), k }));
    const encodedV1 = vItems.map(({ p, k }) => ({ b: getProofCodecV1.encode(p), k }));
    const check = (ok: boolean) => {
      if (!ok) throw new Error('verification failed during the timed loop');
    };
    rate(vItems, ({ p, k }) => check(verifyGetProof(p, { key: k }, exp).ok), 300); // warm-up
    const vRuns: number[] = [];
    const nvRuns: number[] = [];
    const jvRuns: number[] = [];
    const nobleExp: CheckpointExpectation = { ...exp, hasher: nobleHasher };
    const jsExp: CheckpointExpectation = { ...exp, hasher: jsHasher };
    const dvRuns: number[] = [];
    const dRuns: number[] = [];
    const dV1Runs: number[] = [];
    const dvV1Runs: number[] = [];
    const sRuns: number[] = [];
    const cert = vProofs[0].certificate;
    for (let rep = 0; rep < REPS; rep++) {
      if (rep === 0) await profileStart();
      vRuns.push(rate(vItems, ({ p, k }) => check(verifyGetProof(p, { key: k }, exp).ok)));
      if (rep === 0) await profileStop(`${n}-verify`);
      nvRuns.push(rate(vItems, ({ p, k }) => check(verifyGetProof(p, { key: k }, nobleExp).ok)));
      jvRuns.push(rate(vItems, ({ p, k }) => check(verifyGetProof(p, { key: k }, jsExp).ok)));
      dvRuns.push(rate(encoded, ({ b, k }) => check(verifyGetProof(getProofCodec.decode(b), { key: k }, exp).ok)));
      dRuns.push(rate(encoded, ({ b }) => check(getProofCodec.decode(b) !== undefined)));
      dV1Runs.push(rate(encodedV1, ({ b }) => check(getProofCodecV1.decode(b) !== undefined)));
      dvV1Runs.push(rate(encodedV1, ({ b, k }) => check(verifyGetProof(getProofCodec.decode(b), { key: k }, exp).ok)));
      // The verifier memoizes verified signatures; time the raw Ed25519 check a new head costs.
      sRuns.push(rate([cert], (c) => check(verifyHeadSignature(c.head, c.signatures[0]))));
      await tick();
    }

    // -- history proof of the key with VERSIONS versions.
    const h = await db.getVersionHistoryWithProof(HISTORY_KEY);
    const hv = verifyHistoryProof(h.proof, { key: HISTORY_KEY }, exp);
    if (!hv.ok || hv.entries.length !== VERSIONS) throw new Error(`history proof: ${JSON.stringify(hv).slice(0, 300)}`);
    const he = await db.getVersionHistoryWithProof(HISTORY_KEY, { edges: true });
    if (!verifyHistoryProof(he.proof, { key: HISTORY_KEY, edges: true }, exp).ok) throw new Error('history proof with edges did not verify');
    const hRuns: number[] = [];
    const hpRuns: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      hRuns.push(rate([h.proof as HistoryProof], (p) => check(verifyHistoryProof(p, { key: HISTORY_KEY }, exp).ok), 500));
      const hl = await timeOps(Array.from({ length: 50 }, () => HISTORY_KEY), (k) => db.getVersionHistoryWithProof(k));
      hpRuns.push(quantile(hl, 0.5));
    }

    // -- proven scan pages of SCAN_PAGE keys from random loaded keys.
    const starts = randomIndexes(SCAN_STARTS, nKeys, SEED ^ 0x5ca9).map((i) => keyAt(keys, i).slice());
    const scans: Array<{ p: ScanProof; q: { start: Uint8Array; limit: number } }> = [];
    const scanEdgeBytes: number[] = [];
    for (const start of starts) {
      const q = { start, limit: SCAN_PAGE };
      const sp = await db.scanWithProof(q);
      const sv = verifyScanProof(sp.proof, q, exp);
      if (!sv.ok || (sp.proof.bound && sv.keysCovered !== SCAN_PAGE)) throw new Error(`scan proof: ${JSON.stringify(sv).slice(0, 300)}`);
      scans.push({ p: sp.proof, q });
      const se = await db.scanWithProof({ ...q, edges: true });
      if (!verifyScanProof(se.proof, { ...q, edges: true }, exp).ok) throw new Error('scan proof with edges did not verify');
      scanEdgeBytes.push(scanProofCodec.encode(se.proof).length);
    }
    const scanBytes = scans.map((x) => scanProofCodec.encode(x.p).length).sort((a, b) => a - b);
    const scanAvg = (f: (p: ScanProof) => number) => scans.reduce((a, x) => a + f(x.p), 0) / scans.length;
    const sRate: number[] = [];
    const sLat: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      sRate.push(rate(scans, ({ p, q }) => check(verifyScanProof(p, q, exp).ok), 500));
      const sl = await timeOps(starts, (k) => db.scanWithProof({ start: k, limit: SCAN_PAGE }));
      sLat.push(quantile(sl, 0.5));
      await tick();
    }

    const r: SizeResult = {
      n,
      loaded: nKeys,
      loadS,
      cutShort,
      tables,
      present: sizeStats(present),
      absent: sizeStats(absent),
      presentEdges: sizeStats(presentEdges),
      absentEdges: sizeStats(absentEdges),
      rfc,
      getLat: [spread(getMed), spread(getP99)],
      proofLat: [spread(proofMed), spread(proofP99)],
      coldLat: [spread(coldProof), spread(coldGet)],
      verifyRate: spread(vRuns),
      nobleVerifyRate: spread(nvRuns),
      jsVerifyRate: spread(jvRuns),
      decodeVerifyRate: spread(dvRuns),
      decodeRate: spread(dRuns),
      decodeV1Rate: spread(dV1Runs),
      decodeVerifyV1Rate: spread(dvV1Runs),
      sigRate: spread(sRuns),
      history: {
        bytes: historyProofCodec.encode(h.proof).length,
        bytesV1: historyProofCodecV1.encode(h.proof).length,
        bytesEdges: historyProofCodec.encode(he.proof).length,
        entries: h.entries.length,
        windows: h.proof.body.windows.length,
        descriptors: h.proof.body.descriptors.length,
        rate: spread(hRuns),
        proofUs: spread(hpRuns),
      },
      scan: {
        median: quantile(scanBytes, 0.5),
        max: scanBytes[scanBytes.length - 1],
        medianEdges: quantile(scanEdgeBytes.sort((a, b) => a - b), 0.5),
        windows: scanAvg((p) => p.body.windows.length),
        descriptors: scanAvg((p) => p.body.descriptors.length),
        revealed: scanAvg((p) => p.body.windows.reduce((a, w) => a + w.blocks.reduce((b, bl) => b + bl.entries.length, 0), 0)),
        rate: spread(sRate),
        proofUs: spread(sLat),
      },
    };
    report(r);
    return r;
  } finally {
    await db.close();
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`  kept ${dir}`);
  }
}

// ---- report ---------------------------------------------------------------------------------

function report(r: SizeResult): void {
  const label = r.cutShort ? `${fmt(r.loaded)} (of ${fmt(r.n)})` : fmt(r.loaded);
  console.log(`\n--- ${label} keys; tables ${r.tables}; load avg ${loadAvg()} ---`);
  const pr = r.present;
  const ab = r.absent;
  printTable(
    ['proof size (CBOR bytes, format 2)', 'ProofKV median', 'ProofKV max', 'format 1 median / max', 'RFC 6962 path', 'ratio median', 'ratio max', 'target (median)'],
    [
      ['get, present key (latest)', `${pr.median}`, `${pr.max}`, `${pr.medianV1} / ${pr.maxV1}`, `${r.rfc}`, `${(pr.median / r.rfc).toFixed(2)}x`, `${(pr.max / r.rfc).toFixed(2)}x`, pr.median <= 2048 ? '<= 2 KiB: met' : '<= 2 KiB: MISSED'],
      ['get, absent key', `${ab.median}`, `${ab.max}`, `${ab.medianV1} / ${ab.maxV1}`, `${r.rfc}`, `${(ab.median / r.rfc).toFixed(2)}x`, `${(ab.max / r.rfc).toFixed(2)}x`, ''],
      [`history, ${r.history.entries} versions`, `${r.history.bytes}`, '', `${r.history.bytesV1}`, `${r.rfc}`, `${(r.history.bytes / r.rfc).toFixed(2)}x`, '', ''],
    ],
  );
  const pe = r.presentEdges;
  const ae = r.absentEdges;
  const plus = (a: number, b: number) => `+${a - b} B (+${(((a - b) / b) * 100).toFixed(0)}%)`;
  printTable(
    ['edge proofs, §8.12 (CBOR bytes)', 'median', 'max', 'cost, median', 'cost, max', 'windows (mean)'],
    [
      ['get, present key, edges', `${pe.median}`, `${pe.max}`, plus(pe.median, pr.median), plus(pe.max, pr.max), `${pe.windows.toFixed(2)} (was ${pr.windows.toFixed(2)})`],
      ['get, absent key, edges', `${ae.median}`, `${ae.max}`, plus(ae.median, ab.median), plus(ae.max, ab.max), `${ae.windows.toFixed(2)} (was ${ab.windows.toFixed(2)})`],
      [`history, ${r.history.entries} versions, edges`, `${r.history.bytesEdges}`, '', plus(r.history.bytesEdges, r.history.bytes), '', ''],
    ],
  );
  console.log(
    `  composition (means): present: ${pr.descriptors.toFixed(1)} descriptors, ${pr.windows.toFixed(2)} windows, ` +
      `${pr.revealed.toFixed(1)} revealed entries; absent: ${ab.descriptors.toFixed(1)} descriptors, ${ab.windows.toFixed(2)} windows, ` +
      `${ab.revealed.toFixed(1)} entries; certificate + empty body ${pr.certBytes} B (of which the value of a present key is ${VALUE_SIZE} B more)`,
  );
  console.log(`  bytes, present key (means): ${describeParts(pr)}`);
  console.log(`  bytes, absent key (means): ${describeParts(ab)}`);
  console.log(`  history proof: ${r.history.descriptors} descriptors, ${r.history.windows} windows, ${r.history.entries} entries with values`);
  const [gm, gp] = r.getLat;
  const [pm, pp] = r.proofLat;
  printTable(
    ['latency, awaited one at a time (µs)', 'getWithProof', 'plain get', 'ratio', 'noise proof / get', 'target'],
    [
      ['median', fmtS(pm), fmtS(gm), `${(pm.median / gm.median).toFixed(2)}x`, `${noise(pm).toFixed(0)}% / ${noise(gm).toFixed(0)}%`, pm.median / gm.median <= 10 ? '<= 10x: met' : '<= 10x: MISSED'],
      ['p99', fmtS(pp), fmtS(gp), `${(pp.median / gp.median).toFixed(2)}x`, `${noise(pp).toFixed(0)}% / ${noise(gp).toFixed(0)}%`, ''],
      [
        'median, keys never proven before (cold proof cache)',
        fmtS(r.coldLat[0]),
        fmtS(r.coldLat[1]),
        `${(r.coldLat[0].median / r.coldLat[1].median).toFixed(2)}x`,
        `${noise(r.coldLat[0]).toFixed(0)}% / ${noise(r.coldLat[1]).toFixed(0)}%`,
        r.coldLat[0].median / r.coldLat[1].median <= 10 ? '<= 10x: met' : '<= 10x: MISSED',
      ],
      [`history proof (${r.history.entries} versions), median`, fmtS(r.history.proofUs), '', '', `${noise(r.history.proofUs).toFixed(0)}%`, ''],
    ],
  );
  console.log(
    '  (the median and p99 rows reuse one key sample over the reps, so after the first rep the prover\'s block cache holds it;\n' +
      '   verifyGetProof reuses one certificate, whose signature the verifier memoizes after the first check — see the Ed25519 row)',
  );
  printTable(
    ['client verification, one core (ops/s)', 'rate', 'noise', 'target'],
    [
      ['verifyGetProof (objects), default hasher in Node (JS < 128 B, node:crypto above)', fmtS(r.verifyRate), `${noise(r.verifyRate).toFixed(0)}%`, r.verifyRate.median >= 20_000 ? '>= 20k/s: met' : '>= 20k/s: MISSED'],
      ['verifyGetProof (objects), proofs/sha256.ts (the browser default)', fmtS(r.jsVerifyRate), `${noise(r.jsVerifyRate).toFixed(0)}%`, ''],
      ['verifyGetProof (objects), noble SHA-256', fmtS(r.nobleVerifyRate), `${noise(r.nobleVerifyRate).toFixed(0)}%`, ''],
      ['decode CBOR (format 2) + verifyGetProof', fmtS(r.decodeVerifyRate), `${noise(r.decodeVerifyRate).toFixed(0)}%`, ''],
      ['decode CBOR (format 1, text keys) + verifyGetProof', fmtS(r.decodeVerifyV1Rate), `${noise(r.decodeVerifyV1Rate).toFixed(0)}%`, ''],
      ['(part) decode CBOR, format 2: linear pre-pass + cbor-x + schema + derived fields', fmtS(r.decodeRate), `${noise(r.decodeRate).toFixed(0)}%`, ''],
      ['(part) decode CBOR, format 1: linear pre-pass + cbor-x + schema', fmtS(r.decodeV1Rate), `${noise(r.decodeV1Rate).toFixed(0)}%`, ''],
      ['(part) one Ed25519 head signature, uncached (paid once per new head)', fmtS(r.sigRate), `${noise(r.sigRate).toFixed(0)}%`, ''],
      [
        '(derived) verifyGetProof when its head is new to the verifier',
        fmt(1 / (1 / r.verifyRate.median + 1 / r.sigRate.median)),
        '',
        '1/(1/memoized + 1/signature)',
      ],
      [`verifyHistoryProof (${r.history.entries} versions)`, fmtS(r.history.rate), `${noise(r.history.rate).toFixed(0)}%`, ''],
      [`verifyScanProof (page of ${SCAN_PAGE} keys)`, fmtS(r.scan.rate), `${noise(r.scan.rate).toFixed(0)}%`, ''],
    ],
  );
  const sc = r.scan;
  printTable(
    [`scan page of ${SCAN_PAGE} keys, §8.9.1 (${SCAN_STARTS} random starts)`, 'median', 'max', 'with edges (median)', 'scanWithProof µs (median)'],
    [[`proof size (CBOR bytes)`, `${sc.median}`, `${sc.max}`, `${sc.medianEdges}`, fmtS(sc.proofUs)]],
  );
  console.log(
    `  scan proof composition (means): ${sc.descriptors.toFixed(1)} descriptors, ${sc.windows.toFixed(2)} windows, ${sc.revealed.toFixed(1)} revealed entries ` +
      `(${SCAN_PAGE} values of ${VALUE_SIZE} B each are ${SCAN_PAGE * VALUE_SIZE} B of it)`,
  );
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const cpus = os.cpus();
  console.log('ProofKV proof benchmark (bench/proofs.ts)');
  console.log(`node ${process.version} on ${os.platform()} ${os.release()} (${os.arch()})`);
  console.log(`cpus: ${cpus.length} x ${cpus[0]?.model ?? '?'}; memory ${fmtBytes(os.totalmem())} (free ${fmtBytes(os.freemem())})`);
  console.log(`load average at start: ${loadAvg()}`);
  console.log(
    `sizes ${SIZES.map(fmt).join(', ')}; ${KEY_SIZE}-byte keys, ${VALUE_SIZE}-byte values, batches of ${BATCH}, one checkpoint; ` +
      `${describeEngineOptions(ENGINE)}; ${SAMPLES} present + ${SAMPLES} absent keys for sizes; ${LAT} awaited ops per latency run; ` +
      `${VERIFY} proofs per verify round; ${REPS} reps`,
  );
  const t0 = performance.now();
  const results: SizeResult[] = [];
  for (const n of SIZES) results.push(await runSize(n));

  console.log(`\n=== summary (proof rows) ===`);
  printTable(
    ['keys', 'proof median / max (B)', 'RFC 6962 (B)', 'ratio (median)', 'getWithProof µs', 'get µs', 'latency ratio', 'verify/s (default / js / noble)', 'history B / verify/s', `scan ${SCAN_PAGE} B / verify/s`],
    results.map((r) => [
      r.cutShort ? `${fmt(r.loaded)} (cut)` : fmt(r.loaded),
      `${r.present.median} / ${r.present.max}`,
      `${r.rfc}`,
      `${(r.present.median / r.rfc).toFixed(2)}x`,
      fmtS(r.proofLat[0]),
      fmtS(r.getLat[0]),
      `${(r.proofLat[0].median / r.getLat[0].median).toFixed(2)}x`,
      `${fmtS(r.verifyRate)} / ${fmt(r.jsVerifyRate.median)} / ${fmt(r.nobleVerifyRate.median)}`,
      `${r.history.bytes} / ${fmt(r.history.rate.median)}`,
      `${r.scan.median} / ${fmt(r.scan.rate.median)}`,
    ]),
  );
  const points: ScalePoint[] = results.map((r) => ({ n: r.loaded, writesPerS: r.loaded / r.loadS, proofBytes: r.present.median, getWithProofUs: r.proofLat[0].median, verifyPerS: r.verifyRate.median }));
  const end = loadAvg();
  if (JSON_OUT) {
    fs.writeFileSync(JSON_OUT, JSON.stringify({ machine: `${cpus.length} x ${cpus[0]?.model ?? '?'}, node ${process.version}`, loadAvgAtEnd: end, engine: ENGINE, points }, null, 2));
    console.log(`figures written to ${JSON_OUT}`);
  }
  if (CHART) {
    const caption = `bench/proofs.ts --sizes ${SIZES.map(fmt).join(',')}; ${cpus.length} x ${cpus[0]?.model ?? '?'}, node ${process.version}; load average at end ${end}`;
    fs.writeFileSync(CHART, scaleChartSvg(points, caption));
    console.log(`scale chart written to ${CHART}`);
  }
  console.log(`load average at end: ${end}; total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

await main();
