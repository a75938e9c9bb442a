/**
 * A 3-node ProofKV cluster against a 3-member etcd 3.4 cluster, both on loopback on this machine,
 * in the same run, driven by the same load generator (`bench/loadgen/main.go`: etcd through
 * clientv3 over gRPC, ProofKV through its HTTP API with keep-alive; see bench/README.md for why;
 * for information also etcd through its JSON gateway with ProofKV's HTTP client).
 *
 *   npm run bench:cluster                    # 3000 single-client PUTs, 20000 PUTs and 20000 GETs at 100 in flight, 3 reps
 *   npm run bench:cluster -- --quick         # 1000 / 5000 / 5000, 1 rep
 *   npm run bench:cluster -- --systems etcd  # one system only (proofkv, etcd, etcd-gateway)
 *   npm run bench:cluster -- --systems proofkv --nodes 1   # a one-member ProofKV cluster: what replication costs
 *   npm run bench:cluster -- --systems proofkv --trace --conc-n 1 --get-n 1   # where a single client's write spends its time
 *   npm run bench:cluster -- --systems proofkv --cpu-prof DIR   # a V8 CPU profile of each member (bench/profile-summary.ts)
 *
 * Rows: PUT with one client (latency p50/p99, throughput), PUT with 100 in flight (throughput,
 * p50/p99), linearizable GET with 100 in flight (throughput, p50/p99). Printed: both systems,
 * the ratio (ProofKV's advantage: > 1.00x means ProofKV is better; the issue's goal is ≥ 2x) and
 * the load average. Both sync every acknowledged write (etcd's default; ProofKV's Raft log is
 * synced). Not a test: nothing here asserts on timing.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { initCluster } from '../server/cli/cluster.js';
import { freePortRange, startMembers } from '../scripts/local_cluster.js';
import { loadParamsOf, measureEtcd, phaseLine } from './etcd.js';
import { buildLoadgen, runLoadgen, type LoadParams, type LoadSystem, type PhaseResult } from './loadgen.js';
import { printTraceSummary } from './cluster_trace.js';
import { TRACE_ENV } from '../src/replication/trace.js';
import { fmtNum, fmtSpread, loadAvg, machineInfo, numArg, parseArgs, printTable, spread, tempDir, type Spread } from './lib.js';

const args = parseArgs(process.argv.slice(2));
if (args.has('help')) {
  console.log('usage: tsx bench/cluster.ts [--quick] [--reps 3] [--systems proofkv,etcd,etcd-gateway] [--nodes 3] [--seq N] [--conc-n N] [--get-n N] [--concurrency 100] [--value-bytes 100] [--phase-seconds 120] [--keep] [--trace] [--cpu-prof DIR]');
  process.exit(0);
}
const P: LoadParams = loadParamsOf(args);
const REPS = numArg(args, 'reps', args.has('quick') ? 1 : 3);
const ALL: readonly LoadSystem[] = ['proofkv', 'etcd', 'etcd-gateway'];
const SYSTEMS = String(args.get('systems') ?? ALL.join(',')).split(',') as LoadSystem[];
for (const s of SYSTEMS) if (!ALL.includes(s)) throw new Error(`--systems: unknown system ${s} (${ALL.join(', ')})`);
const KEEP = args.has('keep');
/** ProofKV members (etcd always has 3): `--nodes 1` shows what replication itself costs. */
const NODES = numArg(args, 'nodes', 3);
if (NODES < 1 || NODES > 7) throw new Error('--nodes must be 1 .. 7');
/**
 * ProofKV's members record a trace of the replication path (src/replication/trace.ts), printed
 * per stage after the run (bench/cluster_trace.ts): use it with one client's writes only.
 */
const TRACE = args.has('trace');
/** A directory for a `--cpu-prof` profile of each ProofKV member (written when it stops). */
const CPU_PROF = args.has('cpu-prof') ? path.resolve(String(args.get('cpu-prof'))) : undefined;
if (args.get('cpu-prof') === true) throw new Error('--cpu-prof needs a directory');

type System = LoadSystem;

/** Lays out a `--nodes` cluster on free loopback ports, starts it, runs the load, stops it. */
async function measureProofKV(loadgen: string, p: LoadParams): Promise<PhaseResult[]> {
  const dir = tempDir('proofkv-bench-cluster-');
  try {
    const base = await freePortRange(2 * NODES);
    const { config } = initCluster({ nodes: NODES, dir, clientPort: base, peerPort: base + NODES });
    if (TRACE) process.env[TRACE_ENV] = path.join(dir, 'trace');
    const nodeArgs = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [];
    const cluster = await startMembers(dir, config, { serveArgs: ['--log-level', 'warn'], nodeArgs });
    delete process.env[TRACE_ENV];
    try {
      return await runLoadgen(loadgen, 'proofkv', cluster.members.map((m) => m.url), p);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${cluster.members.map((m) => `--- node ${m.id}:\n${m.output().slice(-2000)}`).join('\n')}`);
    } finally {
      await cluster.stop();
      if (TRACE) printTraceSummary(fs.readdirSync(dir).filter((f) => /^trace\.\d+\.jsonl$/.test(f)).map((f) => path.join(dir, f)));
    }
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`bench/cluster.ts: ${NODES}-node ProofKV vs 3-member etcd on loopback, same load generator`);
  for (const l of machineInfo()) console.log(`  ${l}`);
  console.log(
    `  single client: ${P.seq} PUTs; ${P.concurrency} in flight: ${P.concN} PUTs, ${P.getN} linearizable GETs; value ${P.valueBytes} bytes; ${REPS} rep(s); systems ${SYSTEMS.join(', ')}`,
  );
  console.log('  client: bench/loadgen (Go) — ProofKV: net/http keep-alive, requests spread over the members; etcd: clientv3 (gRPC, round-robin over the 3 members); (info) etcd JSON gateway: the same net/http client as ProofKV');
  console.log(`  load average before: ${loadAvg()}`);
  const work = tempDir('proofkv-bench-loadgen-');
  const results = new Map<System, PhaseResult[][]>();
  const failures = new Map<System, string>();
  const loads: string[] = [];
  let etcdVersion = '';
  try {
    const loadgen = buildLoadgen(work);
    for (let rep = 0; rep < REPS; rep++) {
      // Alternate the order so neither system always runs on a warmer (or busier) machine.
      const order = (rep % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse()) as System[];
      for (const sys of order) {
        if (failures.has(sys)) continue;
        try {
          let phases: PhaseResult[];
          if (sys !== 'proofkv') {
            const r = await measureEtcd(loadgen, P, sys);
            etcdVersion = r.version;
            phases = r.phases;
          } else {
            phases = await measureProofKV(loadgen, P);
          }
          results.set(sys, [...(results.get(sys) ?? []), phases]);
          loads.push(loadAvg());
          console.log(`  rep ${rep + 1} ${sys} (load ${loadAvg()}):`);
          for (const ph of phases) console.log(`    ${phaseLine(ph)}`);
        } catch (err) {
          const msg = (err as Error).message;
          failures.set(sys, msg);
          console.log(`  rep ${rep + 1} ${sys}: COULD NOT RUN: ${msg.split('\n').slice(0, 12).join('\n    ')}`);
        }
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }

  const col = (sys: System, phase: PhaseResult['phase'], f: (r: PhaseResult) => number): Spread | undefined => {
    const runs = results.get(sys);
    if (!runs) return undefined;
    const v = runs.map((ph) => ph.find((r) => r.phase === phase)).filter((r): r is PhaseResult => r !== undefined && r.ops > 0).map(f);
    return v.length > 0 ? spread(v) : undefined;
  };
  const cell = (s: Spread | undefined, unit: string, sys: System) => (s ? `${fmtSpread(s)} ${unit}` : failures.has(sys) ? 'could not run' : 'not run');
  const rows: string[][] = [];
  const row = (name: string, phase: PhaseResult['phase'], f: (r: PhaseResult) => number, unit: string, lowerIsBetter: boolean) => {
    const p = col('proofkv', phase, f);
    const adv = (e: Spread | undefined) => (e && p ? `${(lowerIsBetter ? e.median / p.median : p.median / e.median).toFixed(2)}x` : '–');
    const e = col('etcd', phase, f);
    const g = col('etcd-gateway', phase, f);
    rows.push([name, cell(p, unit, 'proofkv'), cell(e, unit, 'etcd'), adv(e), cell(g, unit, 'etcd-gateway'), adv(g)]);
  };
  row('PUT, 1 client: latency p50', 'put1', (r) => r.p50Us, 'µs', true);
  row('PUT, 1 client: latency p99', 'put1', (r) => r.p99Us, 'µs', true);
  row('PUT, 1 client: throughput', 'put1', (r) => r.opsPerSec, 'PUT/s', false);
  row(`PUT, ${P.concurrency} in flight: throughput`, 'put100', (r) => r.opsPerSec, 'PUT/s', false);
  row(`PUT, ${P.concurrency} in flight: latency p50`, 'put100', (r) => r.p50Us, 'µs', true);
  row(`PUT, ${P.concurrency} in flight: latency p99`, 'put100', (r) => r.p99Us, 'µs', true);
  row(`linearizable GET, ${P.concurrency} in flight: throughput`, 'get100', (r) => r.opsPerSec, 'GET/s', false);
  row(`linearizable GET, ${P.concurrency} in flight: latency p50`, 'get100', (r) => r.p50Us, 'µs', true);
  row(`linearizable GET, ${P.concurrency} in flight: latency p99`, 'get100', (r) => r.p99Us, 'µs', true);
  console.log('');
  const v = etcdVersion ? ` ${etcdVersion.replace(/^etcd Version: /, '')}` : '';
  printTable(['row', `ProofKV, ${NODES} node${NODES === 1 ? '' : 's'} (HTTP)`, `etcd${v}, 3 members (clientv3)`, 'ProofKV advantage (goal ≥ 2x)', `(info) etcd${v} via JSON gateway`, '(info) advantage'], rows);
  console.log(
    `\n(medians of ${REPS} rep(s), [min–max]; advantage = ProofKV/etcd for throughput, etcd/ProofKV for latency: > 1.00x means ProofKV is better; ` +
      'the goal is against etcd with its own client; the gateway columns show etcd behind an HTTP/1.1 JSON client like ProofKV\'s)',
  );
  const errors = [...results].flatMap(([sys, runs]) => runs.flat().filter((r) => r.errors > 0).map((r) => `${sys} ${r.phase}: ${r.errors} errors (first: ${r.firstError})`));
  for (const e of errors) console.log(`errors: ${e}`);
  for (const [sys, msg] of failures) console.log(`${sys} could not run: ${msg.split('\n')[0]}`);
  console.log(`load average after each run: ${loads.join(' | ')}`);
  console.log(`load average after: ${loadAvg()}`);
}

await main();
