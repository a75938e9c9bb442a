/**
 * etcd 3.4 as the anchor of `bench/cluster.ts`: Debian's `etcd-server` (installed with apt-get
 * when `etcd` is missing), three members on 127.0.0.1 in a temporary directory, with etcd's
 * defaults otherwise — fsync on (etcd has no way to turn it off short of
 * `--unsafe-no-fsync`, which is not given), heartbeat 100 ms and election timeout 1000 ms (the
 * same timing as ProofKV's group). Run alone it measures etcd only:
 *
 *   npx tsx bench/etcd.ts [--quick] [--warmup N] [--settle-ms N] [--seq N] [--conc-n N] [--get-n N] [--concurrency 100]
 *
 * See bench/README.md. Not a test.
 * @module
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptInstall, buildLoadgen, freePorts, onPath, runLoadgen, spawnChild, type Child, type LoadParams, type LoadSystem, type PhaseResult } from './loadgen.js';
import { loadAvg, machineInfo, numArg, parseArgs, tempDir } from './lib.js';

/** A running etcd cluster. */
export interface EtcdCluster {
  /** Client URLs, member 1 first. */
  endpoints: string[];
  /** `etcd --version`'s first line. */
  version: string;
  /** The members' process ids. */
  pids: number[];
  /** Stops every member (SIGTERM, then SIGKILL) and removes its data. */
  stop(): Promise<void>;
}

/** The `etcd` binary, installing Debian's `etcd-server` when it is missing. */
export function ensureEtcd(): string {
  if (!onPath('etcd')) aptInstall(['etcd-server']);
  return 'etcd';
}

/** Starts `members` etcd members on loopback under `dir` (fresh data directories). */
export async function startEtcdCluster(dir: string, members = 3): Promise<EtcdCluster> {
  const bin = ensureEtcd();
  const version = execFileSync(bin, ['--version']).toString().split('\n')[0].trim();
  const ports = await freePorts(2 * members);
  const names = Array.from({ length: members }, (_, i) => `m${i + 1}`);
  const clientUrl = (i: number) => `http://127.0.0.1:${ports[i]}`;
  const peerUrl = (i: number) => `http://127.0.0.1:${ports[members + i]}`;
  const initial = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const children: Child[] = names.map((name, i) => {
    const data = path.join(dir, name);
    fs.mkdirSync(data, { recursive: true, mode: 0o700 });
    return spawnChild(bin, [
      '--name', name,
      '--data-dir', data,
      '--listen-client-urls', clientUrl(i),
      '--advertise-client-urls', clientUrl(i),
      '--listen-peer-urls', peerUrl(i),
      '--initial-advertise-peer-urls', peerUrl(i),
      '--initial-cluster', initial,
      '--initial-cluster-token', path.basename(dir),
      '--initial-cluster-state', 'new',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      '--log-level', 'warn',
    ]);
  });
  // An early exit (a port taken since the probe, a bad flag) is reported with its output.
  await new Promise((r) => setTimeout(r, 500));
  const dead = children.findIndex((c) => c.proc.exitCode !== null);
  if (dead >= 0) {
    const out = children[dead].output();
    await Promise.all(children.map((c) => c.stop()));
    throw new Error(`etcd member ${names[dead]} exited at start:\n${out}`);
  }
  return {
    endpoints: names.map((_, i) => clientUrl(i)),
    version,
    pids: children.map((c) => c.proc.pid!),
    async stop() {
      await Promise.all(children.map((c) => c.stop()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts an etcd cluster of `members` (3 by default) in a fresh temporary directory, runs the load
 * through `client` (clientv3 over every member by default, clientv3 given only the leader's
 * endpoint, or the JSON gateway), stops it.
 */
export async function measureEtcd(
  loadgen: string,
  p: LoadParams,
  client: Extract<LoadSystem, 'etcd' | 'etcd-leader' | 'etcd-gateway'> = 'etcd',
  members = 3,
): Promise<{ version: string; phases: PhaseResult[] }> {
  const cluster = await startEtcdCluster(tempDir('proofkv-bench-etcd-'), members);
  try {
    return { version: cluster.version, phases: await runLoadgen(loadgen, client, cluster.endpoints, p, cluster.pids) };
  } finally {
    await cluster.stop();
  }
}

/** Load parameters from the command line (shared with bench/cluster.ts). */
export function loadParamsOf(args: Map<string, string | true>): LoadParams {
  const quick = args.has('quick');
  // A warm-up under load for every system alike (bench/README.md § A new machine, and a warm-up by
  // default): without it the first phases after start measure V8 compiling ProofKV's code. None by
  // default with `--trace` (bench/cluster.ts): the trace's stage table is of one client's writes,
  // and the warm-up's writes at 100 in flight would fill it.
  const warmN = numArg(args, 'warmup', args.has('trace') ? 0 : quick ? 5000 : 20000);
  return {
    seq: numArg(args, 'seq', quick ? 1000 : 3000),
    warmN,
    // Then a pause, so that the measured phases do not pay for the work the warm-up left (a flush,
    // its merges): what a lone client meets after a burst is not the lone PUT row's question.
    settleMs: numArg(args, 'settle-ms', warmN > 0 ? 5000 : 0),
    // Long enough for ProofKV's engine to reach its compactions (bench/README.md § Sustained
    // writes): a shorter phase measures it before the work its LSM tree defers.
    concN: numArg(args, 'conc-n', quick ? 5000 : 200_000),
    getN: numArg(args, 'get-n', quick ? 5000 : 100_000),
    proofN: numArg(args, 'proof-n', 0),
    concurrency: numArg(args, 'concurrency', 100),
    valueBytes: numArg(args, 'value-bytes', 100),
    phaseSeconds: numArg(args, 'phase-seconds', 120),
  };
}

/** One phase as a line of text. */
export function phaseLine(r: PhaseResult): string {
  const errs = r.errors > 0 ? `, ${r.errors} errors (first: ${r.firstError})` : '';
  const cpu = r.serverCpuUs !== undefined && r.ops > 0 ? `; server CPU ${(r.serverCpuUs / r.ops).toFixed(0)} µs/op` : '';
  const client = r.clientCpuUs !== undefined && r.ops > 0 ? `; client CPU ${(r.clientCpuUs / r.ops).toFixed(0)} µs/op` : '';
  const routed = r.toLeader !== undefined && r.ops + r.errors > 0 ? `; ${((100 * r.toLeader) / (r.ops + r.errors)).toFixed(1)} % to the leader` : '';
  return `${r.phase}: ${r.ops} ops in ${r.seconds.toFixed(2)} s = ${r.opsPerSec.toFixed(0)} ops/s; latency mean ${r.meanUs.toFixed(0)} µs, p50 ${r.p50Us.toFixed(0)} µs, p99 ${r.p99Us.toFixed(0)} µs${cpu}${client}${routed}${errs}`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has('help')) {
    console.log('usage: tsx bench/etcd.ts [--quick] [--warmup 20000] [--settle-ms 5000] [--seq N] [--conc-n N] [--get-n N] [--concurrency 100] [--value-bytes 100] [--phase-seconds 120]');
    return;
  }
  const p = loadParamsOf(args);
  console.log('bench/etcd.ts: a 3-member etcd cluster on loopback, driven by bench/loadgen (clientv3, then the JSON gateway)');
  for (const l of machineInfo()) console.log(`  ${l}`);
  console.log(`  load average before: ${loadAvg()}`);
  const work = tempDir('proofkv-bench-loadgen-');
  try {
    const loadgen = buildLoadgen(work);
    for (const client of ['etcd', 'etcd-gateway'] as const) {
      const r = await measureEtcd(loadgen, p, client);
      console.log(`  ${r.version}, ${client === 'etcd' ? 'clientv3 (gRPC)' : 'v3 JSON gateway (HTTP/1.1 keep-alive)'} (load ${loadAvg()}):`);
      for (const ph of r.phases) console.log(`    ${phaseLine(ph)}`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(`  load average after: ${loadAvg()}`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
