/**
 * A 3-node ProofKV cluster against a 3-member etcd 3.4 cluster (or, with `--members 1`, one
 * `proofkv serve` against a one-member etcd: issue 13's HTTP row), both on loopback on this machine,
 * in the same run, driven by the same load generator (`bench/loadgen/main.go`: etcd through
 * clientv3 over gRPC, ProofKV through its HTTP API with keep-alive and through its stream protocol
 * `proofkv-stream/1`, requests multiplexed on one connection per member as clientv3 multiplexes
 * gRPC; see bench/README.md for why; for information also etcd through its JSON gateway with
 * ProofKV's HTTP client, and clientv3 given only etcd's leader). ProofKV's requests go to its
 * leader once an answer names it (`ProofKV-Leader`), as the SDK sends them (`--proofkv-routing
 * leader`, the default), or to the members in turn (`--proofkv-routing spread`).
 *
 *   npm run bench:cluster                    # warm-up 20000 PUTs at 100 in flight, then 3000 single-client PUTs, 200000 PUTs and 100000 GETs at 100 in flight, 3 reps
 *   npm run bench:cluster -- --quick         # 5000 / 1000 / 5000 / 5000, 1 rep
 *   npm run bench:cluster -- --warmup 0      # no warm-up under load: the phases start right after start-up (every figure before the twentieth session)
 *   npm run bench:cluster -- --systems etcd  # one system only (proofkv, etcd, etcd-gateway, etcd-leader)
 *   npm run bench:cluster -- --systems proofkv,etcd,etcd-leader   # (info) etcd's clientv3 also given only the leader's endpoint
 *   npm run bench:cluster -- --proofkv-routing spread     # ProofKV's requests to the members in turn (default: leader, as the SDK)
 *   npm run bench:cluster -- --proofkv-protocol stream   # ProofKV over the stream only (http, stream, both: the default)
 *   npm run bench:cluster -- --stream-conns 2             # stream connections per member (default 1)
 *   npm run bench:cluster -- --systems proofkv --nodes 1   # a one-member ProofKV cluster: what replication costs
 *   npm run bench:cluster -- --systems proofkv --trace --conc-n 1 --get-n 1   # where a single client's write spends its time, per hop
 *   npm run bench:cluster -- --systems proofkv --proofkv-protocol stream --seq 2000 --conc-n 1 --get-n 1 --proof-n 1 --reps 1 --trace   # the same over the stream (its front's events too)
 *   npm run bench:cluster -- --systems proofkv --cpu-prof DIR   # a V8 CPU profile of each member (bench/profile-summary.ts; by area: bench/cluster_profile.ts)
 *   npm run bench:cluster -- --systems proofkv --node-args='--trace-opt --trace-deopt' --member-log DIR   # node/V8 flags for the members, their output kept
 *   npm run bench:http                       # = bench:cluster -- --members 1: one `proofkv serve` vs one etcd member
 *
 * Rows: PUT with one client (latency p50/p99, throughput), PUT with 100 in flight (throughput,
 * p50/p99), linearizable GET with 100 in flight (throughput, p50/p99), GET with a proof with 100
 * in flight (ProofKV's `/v1/kv/{key}/proof`; etcd has no proofs, so its column is its plain
 * linearizable GET again). Printed: both systems (ProofKV over HTTP and over the stream, each on
 * a fresh cluster, each with its ratio to etcd),
 * the ratio (ProofKV's advantage: > 1.00x means ProofKV is better; the issue's goal is ≥ 2x) and
 * the load average. Both sync every acknowledged write (etcd's default; ProofKV's Raft log is
 * synced). Not a test: nothing here asserts on timing.
 * @module
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initCluster } from '../server/cli/cluster.js';
import { freePortRange, PROOFKV_BIN, startMembers } from '../scripts/local_cluster.js';
import { loadParamsOf, measureEtcd, phaseLine } from './etcd.js';
import { buildLoadgen, runLoadgen, spawnChild, type LoadParams, type LoadSystem, type PhaseResult, type ProofKVRouting } from './loadgen.js';
import { printTraceSummary, printTrafficSummary } from './cluster_trace.js';
import { TRACE_ENV } from '../src/replication/trace.js';
import { fmtNum, fmtSpread, loadAvg, machineInfo, numArg, parseArgs, printTable, spread, tempDir, type Spread } from './lib.js';

const args = parseArgs(process.argv.slice(2));
if (args.has('help')) {
  console.log('usage: tsx bench/cluster.ts [--quick] [--reps 3] [--warmup 20000] [--settle-ms 5000] [--systems proofkv,etcd,etcd-gateway,etcd-leader] [--proofkv-protocol http|stream|both] [--proofkv-routing leader|spread] [--stream-conns 1] [--nodes 3] [--members 1|3] [--seq N] [--conc-n N] [--get-n N] [--proof-n N] [--concurrency 100] [--value-bytes 100] [--phase-seconds 120] [--keep] [--trace] [--cpu-prof DIR] [--serve-args="--checkpoint-interval 5000"] [--node-args="--perf-basic-prof"] [--member-log DIR] [--source]');
  process.exit(0);
}
/**
 * Where ProofKV's requests go (`--proofkv-routing`): `leader` (the default, as the SDK: in turn
 * until an answer's `ProofKV-Leader` names the leader, then to it) or `spread` (every request to the
 * next member, as clientv3 spreads over etcd's members).
 */
const ROUTING = String(args.get('proofkv-routing') ?? 'leader') as ProofKVRouting;
if (ROUTING !== 'leader' && ROUTING !== 'spread') throw new Error('--proofkv-routing must be leader or spread');
const P: LoadParams = { ...loadParamsOf(args), streamConns: numArg(args, 'stream-conns', 1), routing: ROUTING };
// GETs with a proof: as many as plain GETs unless asked otherwise.
if (!args.has('proof-n')) P.proofN = P.getN;
const REPS = numArg(args, 'reps', args.has('quick') ? 1 : 3);
/** `etcd-leader` (clientv3 given only etcd's leader; information only) runs when asked for: one more etcd cluster per rep. */
const ALL = ['proofkv', 'etcd', 'etcd-gateway', 'etcd-leader'] as const;
const DEFAULT_SYSTEMS = ['proofkv', 'etcd', 'etcd-gateway'];
const CHOSEN = String(args.get('systems') ?? DEFAULT_SYSTEMS.join(',')).split(',');
for (const s of CHOSEN) if (!(ALL as readonly string[]).includes(s)) throw new Error(`--systems: unknown system ${s} (${ALL.join(', ')})`);
/**
 * How the load generator speaks to ProofKV: `http` (its HTTP API, keep-alive), `stream` (its
 * stream protocol, `proofkv-stream/1`) or `both` (the default: two runs per rep, each on a fresh
 * cluster, printed as two columns).
 */
const PROTOCOL = String(args.get('proofkv-protocol') ?? 'both');
if (!['http', 'stream', 'both'].includes(PROTOCOL)) throw new Error('--proofkv-protocol must be http, stream or both');
/** ProofKV's protocols in this run, as load-generator systems. */
const PROOFKV_SYSTEMS: LoadSystem[] = PROTOCOL === 'both' ? ['proofkv', 'proofkv-stream'] : PROTOCOL === 'stream' ? ['proofkv-stream'] : ['proofkv'];
/** Every system measured: ProofKV's protocols in the place of `proofkv`. */
const SYSTEMS: LoadSystem[] = CHOSEN.flatMap((s) => (s === 'proofkv' ? PROOFKV_SYSTEMS : [s as LoadSystem]));
// Stream connections per member (`proofkv-stream`, P.streamConns); clientv3 keeps one gRPC connection per endpoint.
if (!Number.isInteger(P.streamConns) || P.streamConns! < 1 || P.streamConns! > 16) throw new Error('--stream-conns must be 1 .. 16');
const KEEP = args.has('keep');
/**
 * `--members 1`: one `proofkv serve` (its one-member Raft group, every acknowledged write synced)
 * against a one-member etcd (fsync on): issue 13's single-node HTTP row. `--members 3` (the
 * default): ProofKV's `--nodes` against a 3-member etcd.
 */
const MEMBERS = numArg(args, 'members', 3);
if (MEMBERS !== 1 && MEMBERS !== 3) throw new Error('--members must be 1 or 3');
/** ProofKV members against a 3-member etcd: `--nodes 1` shows what replication itself costs. */
const NODES = MEMBERS === 1 ? 1 : numArg(args, 'nodes', 3);
if (NODES < 1 || NODES > 7) throw new Error('--nodes must be 1 .. 7');
if (MEMBERS === 1 && args.has('nodes') && numArg(args, 'nodes', 1) !== 1) throw new Error('--members 1 runs one ProofKV node: leave out --nodes');
if (MEMBERS === 1 && args.has('trace')) throw new Error('--trace follows the replication path of a cluster: use it without --members 1');
/**
 * ProofKV's members record a trace of the replication path (src/replication/trace.ts), printed
 * per stage after the run (bench/cluster_trace.ts): use it with one client's writes only.
 */
const TRACE = args.has('trace');
/** `--serve-args='--checkpoint-interval 5000'` (with `=`): extra `serve` flags for every ProofKV member (what a setting costs or saves). */
const SERVE_ARGS = typeof args.get('serve-args') === 'string' ? String(args.get('serve-args')).split(/\s+/).filter((a) => a !== '') : [];
/**
 * `--node-args='--trace-opt --trace-deopt'` (with `=`): extra `node` flags for every ProofKV
 * member, before its script (V8's tracing, `--perf-basic-prof` for `perf`). What V8 prints goes to
 * the member's output: keep it with `--member-log`.
 */
const NODE_ARGS = typeof args.get('node-args') === 'string' ? String(args.get('node-args')).split(/\s+/).filter((a) => a !== '') : [];
/** `--member-log DIR`: each cluster member's whole output (stdout and stderr) appended to `DIR/member.<id>.<system>.txt`. */
const MEMBER_LOG = args.has('member-log') ? path.resolve(String(args.get('member-log'))) : undefined;
if (args.get('member-log') === true) throw new Error('--member-log needs a directory');
if (MEMBER_LOG && MEMBERS === 1) throw new Error('--member-log keeps the output of cluster members: use it without --members 1');
/**
 * What the ProofKV members run: by default the built `dist/` (built here first with `npm run build`,
 * through `bench/dist_cli.mjs`), as an installed package runs it; `--source`: `bin/proofkv.js` on the
 * TypeScript sources through tsx, which transpiles at start-up and in every worker thread.
 */
const FROM_SOURCE = args.has('source');
const MEMBER_BIN = FROM_SOURCE ? PROOFKV_BIN : fileURLToPath(new URL('./dist_cli.mjs', import.meta.url));
/** A directory for a `--cpu-prof` profile of each ProofKV member (written when it stops). */
const CPU_PROF = args.has('cpu-prof') ? path.resolve(String(args.get('cpu-prof'))) : undefined;
if (args.get('cpu-prof') === true) throw new Error('--cpu-prof needs a directory');
/** The `node` flags of every ProofKV member: `--cpu-prof`'s, then `--node-args`. */
const MEMBER_NODE_ARGS = [...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : []), ...NODE_ARGS];

type System = LoadSystem;
/** ProofKV's systems: over HTTP, over the stream. */
const isProofKV = (s: System): s is 'proofkv' | 'proofkv-stream' => s === 'proofkv' || s === 'proofkv-stream';

/**
 * One `proofkv serve` (no cluster configuration: the one-member Raft group of a plain node, as a
 * user starts it) on a free loopback port, with `--log-level warn`; runs the load, stops it.
 */
async function measureSingleServe(loadgen: string, sys: System, p: LoadParams, dir: string): Promise<PhaseResult[]> {
  const env = { ...process.env };
  delete env.PROOFKV_TOKENS;
  const child = spawnChild(process.execPath, [...MEMBER_NODE_ARGS, MEMBER_BIN, 'serve', '--data', path.join(dir, 'data'), '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', ...SERVE_ARGS], { env });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`proofkv serve did not start in 60 s:\n${child.output()}`)), 60_000);
      const onData = () => {
        const m = /listening on (https?:\/\/\S+)/.exec(child.output());
        if (m) {
          clearTimeout(timer);
          child.proc.stdout!.off('data', onData);
          resolve(m[1]);
        }
      };
      child.proc.stdout!.on('data', onData);
      void child.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`proofkv serve exited before listening:\n${child.output()}`));
      });
    });
    try {
      return await runLoadgen(loadgen, sys, [url], p, [child.proc.pid!]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- proofkv serve:\n${child.output().slice(-2000)}`);
    }
  } finally {
    await child.stop();
  }
}

/**
 * Lays out a `--nodes` cluster on free loopback ports (or one plain `serve` with `--members 1`),
 * starts it, runs the load over HTTP (`proofkv`) or the stream (`proofkv-stream`), stops it.
 */
async function measureProofKV(loadgen: string, sys: System, p: LoadParams): Promise<PhaseResult[]> {
  const dir = tempDir('proofkv-bench-cluster-');
  try {
    if (MEMBERS === 1) return await measureSingleServe(loadgen, sys, p, dir);
    const base = await freePortRange(2 * NODES);
    const { config } = initCluster({ nodes: NODES, dir, clientPort: base, peerPort: base + NODES });
    if (TRACE) process.env[TRACE_ENV] = path.join(dir, 'trace');
    if (MEMBER_LOG) fs.mkdirSync(MEMBER_LOG, { recursive: true });
    const onOutput = MEMBER_LOG ? (id: number, chunk: string) => fs.appendFileSync(path.join(MEMBER_LOG, `member.${id}.${sys}.txt`), chunk) : undefined;
    const cluster = await startMembers(dir, config, { serveArgs: ['--log-level', 'warn', ...SERVE_ARGS], nodeArgs: MEMBER_NODE_ARGS, bin: MEMBER_BIN, onOutput });
    delete process.env[TRACE_ENV];
    try {
      return await runLoadgen(loadgen, sys, cluster.members.map((m) => m.url), p, cluster.members.map((m) => m.proc.pid!));
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${cluster.members.map((m) => `--- node ${m.id}:\n${m.output().slice(-2000)}`).join('\n')}`);
    } finally {
      await cluster.stop();
      if (TRACE) {
        const files = fs.readdirSync(dir).filter((f) => /^trace\.\d+\.jsonl$/.test(f)).map((f) => path.join(dir, f));
        printTraceSummary(files);
        printTrafficSummary(files);
      }
    }
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(
    MEMBERS === 1
      ? 'bench/cluster.ts --members 1: one `proofkv serve` (one-member Raft group, synced) vs a one-member etcd (fsync on) on loopback, same load generator'
      : `bench/cluster.ts: ${NODES}-node ProofKV vs 3-member etcd on loopback, same load generator`,
  );
  for (const l of machineInfo()) console.log(`  ${l}`);
  console.log(
    `  ${P.warmN ? `warm-up: 200 single-client PUTs, then ${P.warmN} at ${P.concurrency} in flight (not measured), then a pause of ${(P.settleMs ?? 0) / 1000} s; ` : ''}single client: ${P.seq} PUTs; ${P.concurrency} in flight: ${P.concN} PUTs, ${P.getN} linearizable GETs, ${P.proofN} GETs with a proof (etcd: plain GETs); value ${P.valueBytes} bytes; ${REPS} rep(s); systems ${SYSTEMS.join(', ')}`,
  );
  console.log(
    `  client: bench/loadgen (Go) — ProofKV: ${PROOFKV_SYSTEMS.map((s) => (s === 'proofkv' ? 'net/http keep-alive' : `the stream protocol (${P.streamConns} connection(s) per member, requests multiplexed)`)).join(' and ')}, ${
      ROUTING === 'leader'
        ? 'requests to the leader (--proofkv-routing leader: in turn until an answer names the leader with ProofKV-Leader, then to it, as the SDK)'
        : 'requests spread over the members (--proofkv-routing spread: each to the next member)'
    }; ` +
      `etcd: clientv3 (gRPC, round-robin over the ${MEMBERS} member(s)); (info) etcd JSON gateway: the same net/http client as ProofKV, round-robin` +
      (SYSTEMS.includes('etcd-leader') ? '; (info) etcd to its leader: clientv3 given only the endpoint whose Status says it leads' : ''),
  );
  console.log(`  ProofKV members run: ${FROM_SOURCE ? 'the TypeScript sources through tsx (--source)' : 'the built dist/ (npm run build first), as an installed package'}`);
  if (!FROM_SOURCE && SYSTEMS.some((s) => isProofKV(s))) execFileSync('npm', ['run', 'build'], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'ignore', 'inherit'] });
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
          if (isProofKV(sys)) {
            phases = await measureProofKV(loadgen, sys, P);
          } else {
            const r = await measureEtcd(loadgen, P, sys, MEMBERS);
            etcdVersion = r.version;
            phases = r.phases;
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
    const v = runs.map((ph) => ph.find((r) => r.phase === phase)).filter((r): r is PhaseResult => r !== undefined && r.ops > 0).map(f).filter((x) => Number.isFinite(x));
    return v.length > 0 ? spread(v) : undefined;
  };
  const cell = (s: Spread | undefined, unit: string, sys: System) => (s ? `${fmtSpread(s)} ${unit}` : failures.has(sys) ? 'could not run' : 'not run');
  const rows: string[][] = [];
  // One column per ProofKV protocol, then etcd, then ProofKV's advantage per protocol, then (info)
  // the gateway and the advantage of ProofKV's first protocol over it, then (info, when run) etcd
  // to its leader only and that advantage.
  const withLeader = SYSTEMS.includes('etcd-leader');
  const row = (name: string, phase: PhaseResult['phase'], f: (r: PhaseResult) => number, unit: string, lowerIsBetter: boolean) => {
    const ps = PROOFKV_SYSTEMS.map((sys) => col(sys, phase, f));
    const adv = (p: Spread | undefined, e: Spread | undefined) => (e && p ? `${(lowerIsBetter ? e.median / p.median : p.median / e.median).toFixed(2)}x` : '–');
    const e = col('etcd', phase, f);
    const g = col('etcd-gateway', phase, f);
    const l = col('etcd-leader', phase, f);
    rows.push([
      name,
      ...ps.map((p, i) => cell(p, unit, PROOFKV_SYSTEMS[i])),
      cell(e, unit, 'etcd'),
      ...ps.map((p) => adv(p, e)),
      cell(g, unit, 'etcd-gateway'),
      adv(ps[0], g),
      ...(withLeader ? [cell(l, unit, 'etcd-leader'), adv(ps[0], l)] : []),
    ]);
  };
  // Server CPU per request: what a request costs the servers (every member's CPU, summed), a
  // figure the machine's load moves far less than throughput or latency.
  const cpuPerOp = (r: PhaseResult) => (r.serverCpuUs !== undefined ? r.serverCpuUs / r.ops : NaN);
  // The load generator's own CPU per request: it shares the machine with the servers, so a costlier
  // client leaves them less.
  const clientCpuPerOp = (r: PhaseResult) => (r.clientCpuUs !== undefined && r.ops > 0 ? r.clientCpuUs / r.ops : NaN);
  // Read/write system calls and wake-ups (voluntary context switches) per request, every member's
  // threads summed: what a request costs in kernel crossings and sleeps, also robust to load.
  const syscallsPerOp = (r: PhaseResult) => (r.serverSyscalls !== undefined ? r.serverSyscalls / r.ops : NaN);
  const wakeupsPerOp = (r: PhaseResult) => (r.serverWakeups !== undefined ? r.serverWakeups / r.ops : NaN);
  row('PUT, 1 client: latency p50', 'put1', (r) => r.p50Us, 'µs', true);
  row('PUT, 1 client: latency p99', 'put1', (r) => r.p99Us, 'µs', true);
  row('PUT, 1 client: throughput', 'put1', (r) => r.opsPerSec, 'PUT/s', false);
  row('PUT, 1 client: server CPU per PUT', 'put1', cpuPerOp, 'µs', true);
  row('PUT, 1 client: client CPU per PUT', 'put1', clientCpuPerOp, 'µs', true);
  row('PUT, 1 client: server read/write syscalls per PUT', 'put1', syscallsPerOp, '', true);
  row('PUT, 1 client: server wake-ups per PUT', 'put1', wakeupsPerOp, '', true);
  row(`PUT, ${P.concurrency} in flight: throughput`, 'put100', (r) => r.opsPerSec, 'PUT/s', false);
  row(`PUT, ${P.concurrency} in flight: latency p50`, 'put100', (r) => r.p50Us, 'µs', true);
  row(`PUT, ${P.concurrency} in flight: latency p99`, 'put100', (r) => r.p99Us, 'µs', true);
  row(`PUT, ${P.concurrency} in flight: server CPU per PUT`, 'put100', cpuPerOp, 'µs', true);
  row(`PUT, ${P.concurrency} in flight: client CPU per PUT`, 'put100', clientCpuPerOp, 'µs', true);
  row(`PUT, ${P.concurrency} in flight: server read/write syscalls per PUT`, 'put100', syscallsPerOp, '', true);
  row(`PUT, ${P.concurrency} in flight: server wake-ups per PUT`, 'put100', wakeupsPerOp, '', true);
  row(`linearizable GET, ${P.concurrency} in flight: throughput`, 'get100', (r) => r.opsPerSec, 'GET/s', false);
  row(`linearizable GET, ${P.concurrency} in flight: latency p50`, 'get100', (r) => r.p50Us, 'µs', true);
  row(`linearizable GET, ${P.concurrency} in flight: latency p99`, 'get100', (r) => r.p99Us, 'µs', true);
  row(`linearizable GET, ${P.concurrency} in flight: server CPU per GET`, 'get100', cpuPerOp, 'µs', true);
  row(`linearizable GET, ${P.concurrency} in flight: client CPU per GET`, 'get100', clientCpuPerOp, 'µs', true);
  if (P.proofN > 0) {
    row(`GET with proof (etcd: plain GET), ${P.concurrency} in flight: throughput`, 'proof100', (r) => r.opsPerSec, 'GET/s', false);
    row(`GET with proof (etcd: plain GET), ${P.concurrency} in flight: latency p50`, 'proof100', (r) => r.p50Us, 'µs', true);
    row(`GET with proof (etcd: plain GET), ${P.concurrency} in flight: latency p99`, 'proof100', (r) => r.p99Us, 'µs', true);
    row(`GET with proof (etcd: plain GET), ${P.concurrency} in flight: server CPU per GET`, 'proof100', cpuPerOp, 'µs', true);
  }
  console.log('');
  const v = etcdVersion ? ` ${etcdVersion.replace(/^etcd Version: /, '')}` : '';
  const etcdMembers = `${MEMBERS} member${MEMBERS === 1 ? '' : 's'}`;
  const nodes = `${NODES} node${NODES === 1 ? '' : 's'}`;
  const protocolName = (sys: System) => (sys === 'proofkv' ? 'HTTP' : 'stream');
  printTable(
    [
      'row',
      ...PROOFKV_SYSTEMS.map((sys) => `ProofKV, ${nodes} (${protocolName(sys)})`),
      `etcd${v}, ${etcdMembers} (clientv3)`,
      ...PROOFKV_SYSTEMS.map((sys) => (PROOFKV_SYSTEMS.length === 1 ? 'ProofKV advantage (goal ≥ 2x)' : `ProofKV ${protocolName(sys)} advantage (goal ≥ 2x)`)),
      `(info) etcd${v} via JSON gateway`,
      `(info) advantage${PROOFKV_SYSTEMS.length === 1 ? '' : ` (${protocolName(PROOFKV_SYSTEMS[0])})`}`,
      ...(withLeader ? [`(info) etcd${v} to its leader only (clientv3)`, `(info) advantage over it${PROOFKV_SYSTEMS.length === 1 ? '' : ` (${protocolName(PROOFKV_SYSTEMS[0])})`}`] : []),
    ],
    rows,
  );
  console.log(
    `\n(medians of ${REPS} rep(s), [min–max]; advantage = ProofKV/etcd for throughput, etcd/ProofKV for latency: > 1.00x means ProofKV is better; ` +
      'the goal is against etcd with its own client; the gateway columns show etcd behind an HTTP/1.1 JSON client like ProofKV\'s' +
      (withLeader ? '; the leader-only columns show etcd with every request sent to its leader' : '') +
      `; ProofKV's requests: --proofkv-routing ${ROUTING})`,
  );
  const errors = [...results].flatMap(([sys, runs]) => runs.flat().filter((r) => r.errors > 0).map((r) => `${sys} ${r.phase}: ${r.errors} errors (first: ${r.firstError})`));
  for (const e of errors) console.log(`errors: ${e}`);
  for (const [sys, msg] of failures) console.log(`${sys} could not run: ${msg.split('\n')[0]}`);
  console.log(`load average after each run: ${loads.join(' | ')}`);
  console.log(`load average after: ${loadAvg()}`);
}

await main();
