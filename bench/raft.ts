/**
 * Write-path benchmark through the HTTP server: (a) the local path (engine journal, unsynced: the
 * default before Raft became the only write path; kept as the hidden `--local-write-path` for this
 * reference) against (b) `serve` as it is, the one-member Raft group whose log is the write-ahead
 * log, every acknowledged write synced; (c) the local path synced; (d) the Raft group with
 * `--no-sync`. Same machine, same run, each server a child process (`server/cli.ts serve`) on
 * 127.0.0.1, the client here. See bench/README.md.
 *
 *   npm run bench:raft                        # 3000 single-client PUTs, 20000 PUTs at 100 in flight, 3 reps
 *   npm run bench:raft -- --quick             # 1000 / 5000, 1 rep
 *   npm run bench:raft -- --profile DIR       # also CPU-profile each server (node --cpu-prof) into DIR
 *
 * Not a test: nothing here asserts on timing.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtNum, fmtSpread, loadAvg, machineInfo, numArg, parseArgs, printTable, spread, tempDir, type Spread } from './lib.js';

const args = parseArgs(process.argv.slice(2));
if (args.has('help')) {
  console.log('usage: tsx bench/raft.ts [--quick] [--seq N] [--conc-n N] [--concurrency 100] [--value-bytes 100] [--reps 3] [--profile DIR] [--checkpoints]');
  process.exit(0);
}
const quick = args.has('quick');
const SEQ = numArg(args, 'seq', quick ? 1000 : 3000);
const CONC_N = numArg(args, 'conc-n', quick ? 5000 : 20000);
const CONC = numArg(args, 'concurrency', 100);
const VALUE = numArg(args, 'value-bytes', 100);
const REPS = numArg(args, 'reps', quick ? 1 : 3);
const PROFILE = typeof args.get('profile') === 'string' ? path.resolve(args.get('profile') as string) : undefined;
/** Periodic checkpoints are off by default so that both rows measure the write path only. */
const CHECKPOINTS = args.has('checkpoints');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Server {
  url: URL;
  proc: ChildProcess;
  stop(): Promise<void>;
}

async function startServer(dataDir: string, extra: string[], profileName: string): Promise<Server> {
  const nodeArgs = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE, '--cpu-prof-name', `${profileName}.cpuprofile`] : [];
  const cp = CHECKPOINTS ? [] : ['--checkpoint-interval', '0', '--checkpoint-writes', '0'];
  const env = { ...process.env };
  delete env.PROOFKV_TOKENS;
  const proc = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', path.join(ROOT, 'server/cli.ts'), 'serve', '--data', dataDir, '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent', ...cp, ...extra],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${out}`)), 60_000);
    proc.stdout!.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then(() => reject(new Error(`server exited before listening:\n${out}`)));
  });
  return {
    url: new URL(url),
    proc,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CONC });

function put(url: URL, key: string, value: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: `/v1/kv/${encodeURIComponent(key)}`, method: 'PUT', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': value.length } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${key}: HTTP ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.end(value);
  });
}

const value = Buffer.alloc(VALUE, 0x61);

/** Sequential PUTs: mean latency in microseconds, and p50/p99. */
async function sequential(url: URL, tag: string, n: number): Promise<{ mean: number; p50: number; p99: number }> {
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await put(url, `${tag}-s-${i % 1000}`, value);
    lat[i] = (performance.now() - t0) * 1000;
  }
  const sorted = Array.from(lat).sort((a, b) => a - b);
  return { mean: sorted.reduce((a, b) => a + b, 0) / n, p50: sorted[Math.floor(n * 0.5)], p99: sorted[Math.floor(n * 0.99)] };
}

/** `n` PUTs with `conc` in flight: PUTs per second. */
async function concurrent(url: URL, tag: string, n: number, conc: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      await put(url, `${tag}-c-${i % 5000}`, value);
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  return n / ((performance.now() - t0) / 1000);
}

// (a) is the baseline the goal is stated against; (c) is the local path with `serve`'s default
// since sync became configurable (every acknowledged write fdatasync'd), the like-for-like anchor.
const PATHS: Array<{ name: string; label: string; flags: string[] }> = [
  { name: 'local', label: '(a) local path, journal unsynced', flags: ['--local-write-path', '--no-sync'] },
  { name: 'raft', label: '(b) one-member Raft group, synced (serve default)', flags: ['--sync'] },
  { name: 'local-sync', label: '(c) local path, journal synced', flags: ['--local-write-path', '--sync'] },
  { name: 'raft-nosync', label: '(d) one-member Raft group, --no-sync', flags: ['--no-sync'] },
];

async function main(): Promise<void> {
  console.log('bench/raft.ts: PUT through the HTTP server, local path vs one-member Raft group');
  for (const l of machineInfo()) console.log(`  ${l}`);
  console.log(`  single client: ${SEQ} PUTs; throughput: ${CONC_N} PUTs with ${CONC} in flight; value ${VALUE} bytes; ${REPS} rep(s); checkpoints ${CHECKPOINTS ? 'default' : 'off'}`);
  console.log(`  load average before: ${loadAvg()}`);
  if (PROFILE) fs.mkdirSync(PROFILE, { recursive: true });
  const results = new Map<string, { lat: number[]; p50: number[]; p99: number[]; tput: number[] }>();
  const root = tempDir('proofkv-bench-raft-');
  try {
    for (let rep = 0; rep < REPS; rep++) {
      // Alternate the order so neither path always runs on a warmer (or busier) machine.
      const order = rep % 2 === 0 ? PATHS : [...PATHS].reverse();
      for (const p of order) {
        const dataDir = path.join(root, `${p.name}-${rep}`);
        const s = await startServer(dataDir, p.flags, `${p.name}-${rep}`);
        try {
          await sequential(s.url, 'warm', 200);
          const seq = await sequential(s.url, `r${rep}`, SEQ);
          const tput = await concurrent(s.url, `r${rep}`, CONC_N, CONC);
          const r = results.get(p.name) ?? { lat: [], p50: [], p99: [], tput: [] };
          r.lat.push(seq.mean);
          r.p50.push(seq.p50);
          r.p99.push(seq.p99);
          r.tput.push(tput);
          results.set(p.name, r);
          console.log(`  rep ${rep + 1} ${p.name}: ${seq.mean.toFixed(0)} µs mean latency, ${tput.toFixed(0)} PUT/s (load ${loadAvg()})`);
        } finally {
          agent.destroy();
          await s.stop();
        }
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  const a = results.get('local')!;
  const b = results.get('raft')!;
  const c = results.get('local-sync')!;
  const d = results.get('raft-nosync')!;
  const med = (s: Spread) => s.median;
  const cost = (base: Spread, sb: Spread, lowerIsBetter: boolean) => `${(lowerIsBetter ? med(sb) / med(base) : med(base) / med(sb)).toFixed(2)}x`;
  const row = (name: string, sa: Spread, sb: Spread, sc: Spread, sd: Spread, unit: string, lowerIsBetter: boolean): string[] => [
    name,
    `${fmtSpread(sa)} ${unit}`,
    `${fmtSpread(sb)} ${unit}`,
    `${fmtSpread(sc)} ${unit}`,
    `${fmtSpread(sd)} ${unit}`,
    cost(sa, sb, lowerIsBetter),
    cost(sc, sb, lowerIsBetter),
    cost(sa, sd, lowerIsBetter),
  ];
  console.log('');
  printTable(
    ['row', PATHS[0].label, PATHS[1].label, PATHS[2].label, PATHS[3].label, 'cost of (b) vs (a) (goal ≤ 1.30x)', 'cost of (b) vs (c)', 'cost of (d) vs (a)'],
    [
      row('single-client PUT latency, mean', spread(a.lat), spread(b.lat), spread(c.lat), spread(d.lat), 'µs', true),
      row('single-client PUT latency, p50', spread(a.p50), spread(b.p50), spread(c.p50), spread(d.p50), 'µs', true),
      row('single-client PUT latency, p99', spread(a.p99), spread(b.p99), spread(c.p99), spread(d.p99), 'µs', true),
      row(`PUT throughput, ${CONC} in flight`, spread(a.tput), spread(b.tput), spread(c.tput), spread(d.tput), 'PUT/s', false),
    ],
  );
  console.log(`\n(cost = (b)/(base) for latency, (base)/(b) for throughput; medians of ${REPS} rep(s); ${fmtNum(SEQ)} + ${fmtNum(CONC_N)} PUTs per rep)`);
  console.log(`load average after: ${loadAvg()}`);
  if (PROFILE) console.log(`profiles in ${PROFILE}: npx tsx bench/profile-summary.ts ${PROFILE}/raft-0.cpuprofile`);
}

await main();
