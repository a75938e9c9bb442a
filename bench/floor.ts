/**
 * The floor under a replicated write's latency on this machine, beside etcd's single-client PUT in
 * the same run: how close issue 10's goal for that row (≥ 2x etcd, i.e. half etcd's p50) is to
 * what the hardware allows at all.
 *
 *   npx tsx bench/floor.ts [--syncs 2000] [--round-trips 5000] [--seq 2000]
 *
 * A write acknowledged by a 3-member group after a follower's sync needs, at the least, four
 * one-way loopback hops (client → leader → follower → leader → client) and one `fdatasync` on the
 * follower (the leader's own sync runs beside it). The bench measures those two on this machine
 * with no CPU work around them:
 * - **sync**: a write of `--record-bytes` (default 200, a small Raft Ready) in place in a
 *   preallocated, synced file, then `fdatasync` (what `src/raft/wal_storage.ts` does per Ready),
 *   `--syncs` times, in the temporary directory the cluster benches use;
 * - **round trip**: a 150-byte message to a second Node process over a TCP connection on
 *   127.0.0.1 and its echo back, `--round-trips` times, one at a time (two one-way hops);
 * - **syncs at once**: the same sync loop in 2 and then 3 processes at the same time, as a
 *   cluster's members on one machine sync to one disk (`--concurrent-syncs 3`; 1 skips it): each
 *   process's p50, to show how much a sync costs while others sync.
 *
 * floor = 2 × round trip p50 + sync p50. It then starts a 3-member etcd (bench/etcd.ts) and drives
 * `--seq` single-client PUTs through clientv3 (bench/loadgen), and prints etcd's p50, half of it
 * (the goal), and the floor beside it, with the load average. Not a test.
 * @module
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { measureEtcd, phaseLine } from './etcd.js';
import { buildLoadgen } from './loadgen.js';
import { loadAvg, machineInfo, numArg, parseArgs, tempDir } from './lib.js';

/** The p-th quantile (0..1) of `xs` (sorted in place). */
function quantile(xs: number[], p: number): number {
  xs.sort((a, b) => a - b);
  return xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
}

/** µs per in-place write + `fdatasync` of `bytes`, `n` times, in a preallocated 1 MiB file. */
async function measureSyncs(dir: string, n: number, bytes: number): Promise<number[]> {
  const file = path.join(dir, 'floor.seg');
  const size = 1 << 20;
  const fh = await fs.promises.open(file, 'w+');
  try {
    await fh.write(Buffer.alloc(size), 0, size, 0);
    await fh.sync();
    const rec = Buffer.alloc(bytes, 0x5a);
    const out: number[] = [];
    let pos = 0;
    for (let i = 0; i < n; i++) {
      if (pos + bytes > size) pos = 0;
      const t0 = performance.now();
      await fh.write(rec, 0, bytes, pos);
      await fh.datasync();
      out.push((performance.now() - t0) * 1000);
      pos += bytes;
    }
    return out;
  } finally {
    await fh.close();
    fs.rmSync(file, { force: true });
  }
}

/**
 * Each of `k` processes' [p50, p90] µs of {@link measureSyncs}, all `k` running at the same time:
 * this script again (`--syncer DIR`, under the same loader), each in a directory of its own.
 */
async function measureSyncsAtOnce(dir: string, k: number, n: number, bytes: number): Promise<number[][]> {
  const self = fileURLToPath(import.meta.url);
  const runs = Array.from({ length: k }, (_, i) => new Promise<number[]>((resolve, reject) => {
    const sub = path.join(dir, `syncer-${i}`);
    fs.mkdirSync(sub, { recursive: true });
    const args = [...process.execArgv, self, '--syncer', sub, '--syncs', String(n), '--record-bytes', String(bytes)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(text) as number[]) : reject(new Error(`syncer exited with ${code}`))));
  }));
  return Promise.all(runs);
}

/** The echo server run in the second process: every byte back as it comes. */
const ECHO = `
const net = require('node:net');
const s = net.createServer((c) => { c.setNoDelay(true); c.on('data', (d) => c.write(d)); });
s.listen(0, '127.0.0.1', () => console.log(String(s.address().port)));
`;

/** µs per round trip of a `bytes` message to a second Node process over loopback TCP, `n` times. */
async function measureRoundTrips(n: number, bytes: number): Promise<number[]> {
  const child = spawn(process.execPath, ['-e', ECHO], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    });
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    const msg = Buffer.alloc(bytes, 0x61);
    const out: number[] = [];
    let got = 0;
    let done: (() => void) | null = null;
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= bytes && done) { got -= bytes; const f = done; done = null; f(); }
    });
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => { done = resolve; sock.write(msg); });
      out.push((performance.now() - t0) * 1000);
    }
    sock.destroy();
    return out;
  } finally {
    child.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has('help')) {
    console.log('usage: tsx bench/floor.ts [--syncs 2000] [--record-bytes 200] [--round-trips 5000] [--concurrent-syncs 3] [--seq 2000]');
    return;
  }
  const syncs = numArg(args, 'syncs', 2000);
  const recordBytes = numArg(args, 'record-bytes', 200);
  const trips = numArg(args, 'round-trips', 5000);
  const seq = numArg(args, 'seq', 2000);
  const atOnce = numArg(args, 'concurrent-syncs', 3);
  const syncer = args.get('syncer');
  if (typeof syncer === 'string') {
    // One process of measureSyncsAtOnce: its p50 and p90 as JSON on stdout.
    const s = await measureSyncs(syncer, syncs, recordBytes);
    console.log(JSON.stringify([quantile(s, 0.5), quantile(s, 0.9)]));
    return;
  }
  console.log('bench/floor.ts: the floor under a replicated write (one follower sync, two loopback round trips), beside etcd');
  for (const l of machineInfo()) console.log(`  ${l}`);
  console.log(`  load average before: ${loadAvg()}`);
  const dir = tempDir('proofkv-bench-floor-');
  try {
    const s = await measureSyncs(dir, syncs, recordBytes);
    const r = await measureRoundTrips(trips, 150);
    const syncP50 = quantile(s, 0.5);
    const rtP50 = quantile(r, 0.5);
    console.log(`  write + fdatasync of ${recordBytes} B in place: p50 ${syncP50.toFixed(0)} µs, p90 ${quantile(s, 0.9).toFixed(0)} µs, p99 ${quantile(s, 0.99).toFixed(0)} µs (${syncs} syncs)`);
    console.log(`  loopback TCP round trip between two Node processes: p50 ${rtP50.toFixed(0)} µs, p90 ${quantile(r, 0.9).toFixed(0)} µs, p99 ${quantile(r, 0.99).toFixed(0)} µs (${trips} round trips)`);
    const floor = 2 * rtP50 + syncP50;
    console.log(`  floor of a replicated write (2 round trips + 1 sync, no CPU work): ${floor.toFixed(0)} µs`);
    for (let k = 2; k <= atOnce; k++) {
      const each = await measureSyncsAtOnce(dir, k, syncs, recordBytes);
      console.log(`  write + fdatasync with ${k} processes syncing at once: p50 ${each.map((x) => x[0].toFixed(0)).join(' / ')} µs, p90 ${each.map((x) => x[1].toFixed(0)).join(' / ')} µs`);
    }
    console.log(`  load average: ${loadAvg()}`);
    const loadgen = buildLoadgen(dir);
    const e = await measureEtcd(loadgen, { seq, concN: 1, getN: 1, proofN: 0, concurrency: 100, valueBytes: 100, phaseSeconds: 120 });
    const put1 = e.phases.find((p) => p.phase === 'put1');
    if (!put1) throw new Error('the load generator gave no put1 phase');
    console.log(`  ${e.version}, 3 members, clientv3 (load ${loadAvg()}): ${phaseLine(put1)}`);
    const goal = put1.p50Us / 2;
    console.log('');
    console.log(`  etcd single-client PUT p50:                 ${put1.p50Us.toFixed(0)} µs`);
    console.log(`  issue 10's goal for ProofKV (≥ 2x: half):   ${goal.toFixed(0)} µs`);
    console.log(`  floor on this machine (no CPU work at all): ${floor.toFixed(0)} µs = ${(floor / goal).toFixed(2)}x the goal`);
    console.log(`  load average after: ${loadAvg()}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
