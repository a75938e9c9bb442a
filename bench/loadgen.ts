/**
 * The load generator of `bench/cluster.ts` and `bench/etcd.ts`: `bench/loadgen/main.go`, one Go
 * program that drives etcd through its own client (clientv3, gRPC) and ProofKV through its HTTP
 * API (net/http, keep-alive) or its stream protocol, with the same goroutines and the same latency
 * bookkeeping for both (and, for information, etcd's JSON gateway through the same HTTP client as
 * ProofKV, and clientv3 given only etcd's leader).
 * Built here in GOPATH mode against Debian's `golang-etcd-server-dev` (no module download), as
 * the signed-note interop test builds against Debian's Go packages; Debian packages are installed
 * with apt-get when missing. Also: free loopback ports, and a child process that is always
 * stopped. Not a test.
 * @module
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Where Debian's Go packages put their sources (GOPATH). */
const DEBIAN_GOCODE = '/usr/share/gocode';

/** True when `cmd` is on PATH. */
export function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Installs Debian packages with apt-get (as `.ci/run` does for its own); logs what it does. */
export function aptInstall(packages: string[]): void {
  console.log(`  installing Debian packages: ${packages.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], env });
}

/**
 * Builds the load generator into `outDir` and returns its path. Needs `go` and Debian's etcd
 * client sources (`golang-etcd-server-dev`), installed when missing.
 */
export function buildLoadgen(outDir: string): string {
  const missing: string[] = [];
  if (!onPath('go')) missing.push('golang-go');
  if (!fs.existsSync(path.join(DEBIAN_GOCODE, 'src/go.etcd.io/etcd/clientv3'))) missing.push('golang-etcd-server-dev');
  if (missing.length > 0) aptInstall(missing);
  const gopath = path.join(outDir, 'gopath');
  const src = path.join(gopath, 'src/loadgen');
  fs.mkdirSync(src, { recursive: true });
  fs.copyFileSync(path.join(HERE, 'loadgen/main.go'), path.join(src, 'main.go'));
  const bin = path.join(outDir, 'loadgen');
  execFileSync('go', ['build', '-o', bin, '.'], {
    cwd: src,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GO111MODULE: 'off', GOPATH: `${gopath}:${DEBIAN_GOCODE}`, GOFLAGS: '', GOCACHE: path.join(outDir, 'gocache') },
  });
  return bin;
}

/** One phase as the load generator reports it. */
export interface PhaseResult {
  phase: 'put1' | 'put100' | 'get100' | 'proof100';
  ops: number;
  errors: number;
  firstError?: string;
  seconds: number;
  opsPerSec: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  concurrency: number;
  /** ProofKV: of the phase's requests (errors included), those sent to a leader an answer had named; the rest went in turn. */
  toLeader?: number;
  /** The phase's wall-clock bounds, Unix ms. */
  startMs: number;
  endMs: number;
  /** CPU time (user + system) the load generator itself spent during the phase, µs (its `getrusage`). */
  clientCpuUs?: number;
  /**
   * CPU time (user + system) the watched server processes spent during the phase, µs, from
   * `/proc/<pid>/stat` sampled every {@link CPU_SAMPLE_MS} (undefined without `/proc` or pids).
   */
  serverCpuUs?: number;
  /**
   * Read- and write-class system calls of the watched servers during the phase (`syscr` + `syscw`
   * of `/proc/<pid>/io`: socket and file reads and writes, every thread), sampled like the CPU.
   */
  serverSyscalls?: number;
  /**
   * Voluntary context switches of the watched servers' threads during the phase (summed over
   * `/proc/<pid>/task/*\/status`): each is a thread that went to sleep to wait — a wake-up.
   */
  serverWakeups?: number;
}

/** How often {@link runLoadgen} samples the servers' CPU time. */
export const CPU_SAMPLE_MS = 50;
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) of process `pid` so far, µs; undefined when `/proc` does not have it. */
export function processCpuUs(pid: number): number | undefined {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Read- and write-class system calls of process `pid` so far (`/proc/<pid>/io`); undefined when `/proc` does not have it. */
export function processSyscalls(pid: number): number | undefined {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    const r = /^syscr:\s*(\d+)$/m.exec(io);
    const w = /^syscw:\s*(\d+)$/m.exec(io);
    return r && w ? Number(r[1]) + Number(w[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Voluntary context switches of the live threads of process `pid` so far; undefined when `/proc` does not have them. */
export function processWakeups(pid: number): number | undefined {
  try {
    let n = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const m = /^voluntary_ctxt_switches:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
        if (m) n += Number(m[1]);
      } catch {
        // the thread exited meanwhile
      }
    }
    return n;
  } catch {
    return undefined;
  }
}

/** One sample of the watched servers: time, and their CPU time, system calls and wake-ups summed. */
interface ServerSample { t: number; cpu: number; syscalls?: number; wakeups?: number }

/** Field `k` of `samples` (time-ordered) at time `t`, linearly interpolated. */
function valueAt(samples: readonly ServerSample[], k: 'cpu' | 'syscalls' | 'wakeups', t: number): number | undefined {
  if (samples.length === 0 || t < samples[0].t || t > samples[samples.length - 1].t) return undefined;
  let i = 1;
  while (i < samples.length - 1 && samples[i].t < t) i++;
  const a = samples[i - 1];
  const b = samples[i];
  const va = a[k];
  const vb = b[k];
  if (va === undefined || vb === undefined) return undefined;
  return b.t === a.t ? vb : va + ((vb - va) * (t - a.t)) / (b.t - a.t);
}

/** What each run of the load generator does. */
export interface LoadParams {
  seq: number;
  /** PUTs at `concurrency` in flight before the measured phases, on keys of their own, not reported (`--warmup`; the benches' default 20,000, 5,000 with `--quick`; 0 here). */
  warmN?: number;
  /** Pause after the warm-up under load, before the measured phases, ms (`--settle-ms`; the benches' default 5,000 with a warm-up, else 0; 0 here). */
  settleMs?: number;
  concN: number;
  getN: number;
  /** GETs with a proof at `concurrency` in flight (ProofKV; etcd: plain linearizable GETs); 0: no such phase. */
  proofN: number;
  concurrency: number;
  valueBytes: number;
  phaseSeconds: number;
  /** `proofkv-stream`: stream connections per member (default 1, as clientv3 has one gRPC connection per endpoint). */
  streamConns?: number;
  /**
   * Where ProofKV's requests go: `leader` (the default, as the SDK does: in turn until an answer's
   * `ProofKV-Leader` names the leader, then to it until a request to it gets no answer) or
   * `spread` (every request to the next member, as clientv3 spreads over etcd's).
   */
  routing?: ProofKVRouting;
}

/** Where the load generator sends ProofKV's requests ({@link LoadParams.routing}). */
export type ProofKVRouting = 'leader' | 'spread';

/**
 * What the load generator drives: etcd through clientv3 (gRPC) over every member, etcd through
 * clientv3 given only its leader's endpoint (`etcd-leader`, information only: what routing alone
 * is worth), etcd through its v3 JSON gateway (HTTP/1.1, the same client as ProofKV's;
 * information only), ProofKV through its HTTP API (`proofkv`) or through its stream protocol
 * (`proofkv-stream`: `proofkv-stream/1`, requests multiplexed on `streamConns` connections per
 * member).
 */
export type LoadSystem = 'etcd' | 'etcd-leader' | 'etcd-gateway' | 'proofkv' | 'proofkv-stream';

/**
 * Runs the load generator against `endpoints` of `system`; its phases (three, four with `proofN`).
 * With `serverPids`, each phase also gets the CPU time those processes spent during it.
 */
export async function runLoadgen(bin: string, system: LoadSystem, endpoints: string[], p: LoadParams, serverPids: readonly number[] = []): Promise<PhaseResult[]> {
  const args = [
    '-system', system,
    '-endpoints', endpoints.join(','),
    '-seq', String(p.seq),
    '-warm-n', String(p.warmN ?? 0),
    '-settle', `${p.settleMs ?? 0}ms`,
    '-conc-n', String(p.concN),
    '-get-n', String(p.getN),
    '-proof-n', String(p.proofN),
    '-concurrency', String(p.concurrency),
    '-value-bytes', String(p.valueBytes),
    '-phase-seconds', String(p.phaseSeconds),
    '-stream-conns', String(p.streamConns ?? 1),
    '-routing', p.routing ?? 'leader',
  ];
  const samples: ServerSample[] = [];
  const sum = (xs: (number | undefined)[]) => (xs.every((x) => x !== undefined) ? xs.reduce((a, b) => a! + b!, 0) : undefined);
  const sample = () => {
    const cpu = sum(serverPids.map(processCpuUs));
    if (serverPids.length === 0 || cpu === undefined) return;
    samples.push({ t: Date.now(), cpu, syscalls: sum(serverPids.map(processSyscalls)), wakeups: sum(serverPids.map(processWakeups)) });
  };
  sample();
  // At most one sample per CPU_SAMPLE_MS for the loadgen's lifetime (bounded by its phase limits).
  const sampler = setInterval(sample, CPU_SAMPLE_MS);
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  clearInterval(sampler);
  sample();
  if (code !== 0) throw new Error(`loadgen (${system}) exited ${code}: ${err.trim()}`);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const r = JSON.parse(l) as PhaseResult;
      const during = (k: 'cpu' | 'syscalls' | 'wakeups') => {
        const a = valueAt(samples, k, r.startMs);
        const b = valueAt(samples, k, r.endMs);
        return a !== undefined && b !== undefined ? b - a : undefined;
      };
      const cpu = during('cpu');
      if (cpu === undefined) return r;
      return { ...r, serverCpuUs: cpu, serverSyscalls: during('syscalls'), serverWakeups: during('wakeups') };
    });
}

/** `n` distinct free TCP ports on 127.0.0.1 (each probed by a listen; a probe, not a reservation). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          s.once('error', reject);
          s.listen({ host: '127.0.0.1', port: 0 }, () => resolve((s.address() as net.AddressInfo).port));
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** A child process whose output is kept (the last 8 KiB) and that stops with SIGTERM, then SIGKILL. */
export interface Child {
  proc: ChildProcess;
  /** The process's recent stdout and stderr. */
  output(): string;
  /** Resolves when the process exited. */
  exited: Promise<void>;
  /** SIGTERM; SIGKILL after `graceMs`; resolves when it exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns `cmd args` with its output kept for error messages. */
export function spawnChild(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Child {
  const proc = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-8192));
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return {
    proc,
    output: () => out,
    exited,
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}
