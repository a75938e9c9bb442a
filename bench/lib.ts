/**
 * Shared helpers for the benchmarks in `bench/`: a seeded PRNG, deterministic unique keys,
 * repeat-and-summarise timing, directory sizes, machine info and a plain-text table printer.
 * Nothing here asserts on timing: benchmarks report, they do not pass or fail.
 * @module
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---- command line ---------------------------------------------------------------------------

/** Parses `--name value`, `--name=value` and bare `--flag` (true) arguments. */
export function parseArgs(argv: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) {
      out.set(a.slice(2, eq), a.slice(eq + 1));
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out.set(a.slice(2), argv[++i]);
    } else {
      out.set(a.slice(2), true);
    }
  }
  return out;
}

/** A numeric flag; accepts `2000000`, `2e6`, `2m`, `200k`. */
export function numArg(args: Map<string, string | true>, name: string, dflt: number): number {
  const v = args.get(name);
  if (v === undefined) return dflt;
  if (v === true) throw new Error(`--${name} needs a value`);
  const m = /^([0-9.e+]+)([km]?)$/i.exec(v.trim());
  if (!m) throw new Error(`--${name}: not a number: ${v}`);
  const mult = m[2].toLowerCase() === 'k' ? 1e3 : m[2].toLowerCase() === 'm' ? 1e6 : 1;
  const n = Number(m[1]) * mult;
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${v}`);
  return Math.round(n);
}

/**
 * `--engine NAME=VALUE[,NAME=VALUE...]`: numeric ProofKV options for a run (shape options such as
 * `writeBufferSize`, `maxBytesForLevelBase`, `checkpointLevel0Tables`). Values take `Ki`/`Mi`/`Gi`
 * (binary) or `k`/`m` (decimal) suffixes; `ProofDB.open` validates the names' values.
 */
export function engineOptionsArg(args: Map<string, string | true>): Record<string, number> {
  const v = args.get('engine');
  if (v === undefined) return {};
  if (v === true) throw new Error('--engine needs NAME=VALUE[,NAME=VALUE...]');
  const out: Record<string, number> = {};
  for (const part of v.split(',')) {
    const m = /^([A-Za-z0-9]+)=([0-9.e+]+)(Ki|Mi|Gi|k|m)?$/.exec(part.trim());
    if (!m) throw new Error(`--engine: expected NAME=VALUE, got ${part}`);
    const mult = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, m: 1e6 }[m[3] ?? ''] ?? 1;
    out[m[1]] = Math.round(Number(m[2]) * mult);
  }
  return out;
}

/** The options of {@link engineOptionsArg} for a report header (`default engine options` when none). */
export function describeEngineOptions(o: Record<string, number>): string {
  const parts = Object.entries(o).map(([k, v]) => `${k}=${v}`);
  return parts.length === 0 ? 'default engine options' : `engine options ${parts.join(', ')} (others default)`;
}

// ---- PRNG and data --------------------------------------------------------------------------

/** mulberry32: a small, fast, seeded 32-bit PRNG. Returns uint32. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** murmur3's 32-bit finaliser: a bijection on uint32, so distinct inputs give distinct outputs. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * `count` unique, random-looking keys of `keySize` (>= 4) bytes in one flat buffer. Bytes 0..3
 * are fmix32(i), a bijection of the index (so keys are unique without a dedupe pass, and their
 * order is random); the rest come from the seeded PRNG.
 */
export class KeySet {
  readonly buf: Uint8Array;
  constructor(
    readonly count: number,
    readonly keySize: number,
    seed: number,
  ) {
    if (keySize < 4) throw new Error('keySize must be >= 4');
    this.buf = new Uint8Array(count * keySize);
    const dv = new DataView(this.buf.buffer);
    const rnd = prng(seed);
    for (let i = 0; i < count; i++) {
      const o = i * keySize;
      dv.setUint32(o, fmix32((i ^ seed) >>> 0));
      for (let j = 4; j < keySize; j++) this.buf[o + j] = rnd() & 0xff;
    }
  }
  /** Key `i` as a view (no copy). */
  key(i: number): Uint8Array {
    return this.buf.subarray(i * this.keySize, (i + 1) * this.keySize);
  }
}

/** Random (incompressible) values of `valueSize` bytes, handed out as views over a pool. */
export class ValuePool {
  private readonly buf: Uint8Array;
  private readonly span: number;
  constructor(
    readonly valueSize: number,
    seed: number,
    poolBytes = 1 << 20,
  ) {
    this.buf = new Uint8Array(poolBytes + valueSize);
    const rnd = prng(seed);
    for (let i = 0; i < this.buf.length; i++) this.buf[i] = rnd() & 0xff;
    this.span = poolBytes;
  }
  /** Value for entry `i`: a view at a pseudo-random offset (no copy). */
  value(i: number): Uint8Array {
    const off = fmix32(i) % this.span;
    return this.buf.subarray(off, off + this.valueSize);
  }
}

/** `count` indexes uniform in [0, range), from a seeded PRNG. */
export function randomIndexes(count: number, range: number, seed: number): Uint32Array {
  const rnd = prng(seed);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = rnd() % range;
  return out;
}

// ---- statistics -----------------------------------------------------------------------------

/** Summary of repeated measurements (e.g. ops/s of each run). */
export interface Spread {
  runs: number[];
  min: number;
  median: number;
  max: number;
}

export function spread(runs: number[]): Spread {
  const s = [...runs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { runs, min: s[0], median, max: s[s.length - 1] };
}

/** (max - min) / median, as a percentage: the run-to-run noise of a row. */
export function noisePct(s: Spread): number {
  return s.median === 0 ? 0 : ((s.max - s.min) / s.median) * 100;
}

/** Runs `f` over `items` round after round until at least `minMs` passed; returns ops/s. */
export function rate<T>(items: readonly T[], f: (x: T) => void, minMs = 1000): number {
  let ops = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    for (const x of items) f(x);
    ops += items.length;
    t = performance.now();
  } while (t - t0 < minMs);
  return ops / ((t - t0) / 1000);
}

/** Seconds since `t0` (from performance.now()). */
export function since(t0: number): number {
  return (performance.now() - t0) / 1000;
}

// ---- formatting -----------------------------------------------------------------------------

/** 1234567 -> "1.23M", 12345 -> "12.3k". */
export function fmtNum(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e8 ? 0 : 2)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  if (a >= 100) return n.toFixed(0);
  return n.toFixed(a >= 10 ? 1 : 2);
}

export function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** "median [min–max]" of ops/s. */
export function fmtSpread(s: Spread): string {
  if (s.runs.length === 1) return fmtNum(s.median);
  return `${fmtNum(s.median)} [${fmtNum(s.min)}–${fmtNum(s.max)}]`;
}

/** Prints rows as an aligned plain-text (Markdown-compatible) table. */
export function printTable(header: string[], rows: string[][]): void {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(w[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

// ---- environment ----------------------------------------------------------------------------

/** Total bytes of regular files under `dir`. */
export function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else if (e.isFile()) {
      try {
        total += fs.statSync(p).size;
      } catch {
        // deleted under us (obsolete file removed by the engine)
      }
    }
  }
  return total;
}

/** Fresh temporary directory under os.tmpdir(). */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function loadAvg(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

export function machineInfo(): string[] {
  const cpus = os.cpus();
  return [
    `node ${process.version} on ${os.platform()} ${os.release()} (${os.arch()})`,
    `cpus: ${cpus.length} x ${cpus[0]?.model ?? '?'}; memory ${fmtBytes(os.totalmem())} (free ${fmtBytes(os.freemem())})`,
    `tmpdir: ${os.tmpdir()}`,
  ];
}

/** Lets pending I/O callbacks and timers run. */
export function tick(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
