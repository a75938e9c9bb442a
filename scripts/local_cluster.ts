/**
 * Starting the members of a cluster laid out by `proofkv cluster init` as local processes: used
 * by the three-node quick start (`scripts/cluster-local.ts`, `npm run cluster:local`) and by
 * `bench/cluster.ts`. Each member is `proofkv serve --cluster <dir>/cluster.json --node-id <i>
 * --data <dir>/node<i> --cluster-secret-file <dir>/cluster.secret`, a child process of this one;
 * a member that exits before it listens stops the others and is reported with its output.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_CONFIG_FILE, CLUSTER_SECRET_FILE, type ClusterConfig } from '../server/cluster_config.js';
import { nodeDirName } from '../server/cli/cluster.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The `proofkv` command of this checkout. */
export const PROOFKV_BIN = path.join(ROOT, 'bin/proofkv.js');

/** One running member. */
export interface RunningMember {
  id: number;
  /** The URL its banner says it listens on. */
  url: string;
  proc: ChildProcess;
  /** Its recent output (stdout and stderr, the last 16 KiB). */
  output(): string;
}

/** Members started by {@link startMembers}. */
export interface RunningCluster {
  members: RunningMember[];
  /** SIGTERM to every member (SIGKILL after `graceMs`); resolves when all exited. */
  stop(graceMs?: number): Promise<void>;
}

/** How to start the members. */
export interface StartOptions {
  /** Extra `serve` flags for every member (e.g. `--log-level warn`). */
  serveArgs?: string[];
  /** Extra `node` flags for every member (e.g. `--cpu-prof`, as `bench/cluster.ts --cpu-prof` passes). */
  nodeArgs?: string[];
  /** The script `node` runs for each member (default {@link PROOFKV_BIN}; `bench/cluster.ts` passes the built dist's). */
  bin?: string;
  /** Time for every member to print its banner, ms (default 60 000). */
  startTimeoutMs?: number;
  /** Called with each chunk of a member's output as it comes (the quick start prints it). */
  onOutput?: (id: number, chunk: string) => void;
}

/** The `serve` arguments of member `id` of the cluster in `dir`. */
export function serveArgs(dir: string, id: number): string[] {
  return ['serve', '--cluster', path.join(dir, CLUSTER_CONFIG_FILE), '--node-id', String(id), '--data', path.join(dir, nodeDirName(id)), '--cluster-secret-file', path.join(dir, CLUSTER_SECRET_FILE)];
}

function startMember(dir: string, id: number, o: StartOptions): { member: Promise<RunningMember>; proc: ChildProcess; exited: Promise<void> } {
  const env = { ...process.env };
  delete env.PROOFKV_TOKENS;
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), o.bin ?? PROOFKV_BIN, ...serveArgs(dir, id), ...(o.serveArgs ?? [])], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const member = new Promise<RunningMember>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${id} did not start in ${o.startTimeoutMs ?? 60_000} ms:\n${out}`)), o.startTimeoutMs ?? 60_000);
    const take = (d: Buffer) => {
      out = (out + d.toString()).slice(-16_384);
      o.onOutput?.(id, d.toString());
      const m = /listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ id, url: m[1], proc, output: () => out });
      }
    };
    proc.stdout!.on('data', take);
    proc.stderr!.on('data', take);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`node ${id} exited (code ${proc.exitCode}) before it listened:\n${out.trim()}`));
    });
  });
  return { member, proc, exited };
}

/**
 * Starts the members of the cluster in `dir` (all of `config`'s members). Rejects, after stopping
 * every member it started, when one exits early or does not listen in time.
 */
export async function startMembers(dir: string, config: ClusterConfig, o: StartOptions = {}): Promise<RunningCluster> {
  const started = config.members.map((m) => startMember(dir, m.id, o));
  const stop = async (graceMs = 10_000) => {
    await Promise.all(
      started.map(async (s) => {
        if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
        s.proc.kill('SIGTERM');
        const t = setTimeout(() => s.proc.kill('SIGKILL'), graceMs);
        await s.exited;
        clearTimeout(t);
      }),
    );
  };
  try {
    const members = await Promise.all(started.map((s) => s.member));
    return { members, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The lowest port the kernel hands out as a connection's local (ephemeral) port (Linux:
 * `ip_local_port_range`; 32768 elsewhere or when unreadable).
 */
/** The first port of the kernel's ephemeral (outgoing connection) range; 32768 when unknown. */
export function ephemeralLow(): number {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 1024 ? low : 32768;
  } catch {
    return 32768;
  }
}

/**
 * A base port `p` such that `p .. p + count - 1` are all free on `host` right now (probed by
 * listening; a probe, not a reservation). Tries up to 50 random bases from 10000 up to below the
 * ephemeral range: a member restarted after a kill binds its ports again, and a port in the
 * ephemeral range may meanwhile be the local port of some outgoing connection.
 */
export async function freePortRange(count: number, host = '127.0.0.1'): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10000 + Math.floor(Math.random() * Math.max(1, ephemeralLow() - 10000 - count));
    let ok = true;
    for (let p = base; ok && p < base + count; p++) ok = await free(p);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found on ${host}`);
}
