/**
 * Real processes: a cluster laid out by `proofkv cluster init` in a temporary directory, its
 * members started as `proofkv serve --cluster …` child processes that a test can SIGKILL and
 * restart one at a time, and small verbs to read each member's status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addClusterMember, initCluster } from '../../server/cli/cluster.js';
import type { ClusterConfig, ClusterMember } from '../../server/cluster_config.js';
import { freePortRange, serveArgs } from '../../scripts/local_cluster.js';
import { cliArgv } from '../support/cli_build.js';

/** One member process (replaced on restart). */
export interface Member {
  id: number;
  url: string;
  proc: ChildProcess | undefined;
  output: string;
}

/** A cluster of real processes on loopback. */
export class ProcessCluster {
  readonly members: Member[];
  /** Extra `serve` arguments of single members (e.g. `--join` for a member added at runtime). */
  private readonly memberArgs = new Map<number, string[]>();

  private constructor(
    readonly dir: string,
    readonly config: ClusterConfig,
    private readonly extraArgs: string[],
  ) {
    this.members = config.members.map((m) => ({ id: m.id, url: m.clientUrl, proc: undefined, output: '' }));
  }

  /**
   * Initialises an `n`-member cluster on free loopback ports and starts every member.
   * `beforeStart` runs after the layout exists and before any member starts (e.g. to set
   * {@link setMemberArgs}); `reservePorts` more free ports are probed after the cluster's, for
   * the caller (`base + 2n ..`, returned as {@link extraPortBase}).
   */
  static async start(n: number, extraArgs: string[] = [], o: { beforeStart?: (c: ProcessCluster) => Promise<void> | void; reservePorts?: number } = {}): Promise<ProcessCluster> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-cluster-'));
    const base = await freePortRange(2 * n + (o.reservePorts ?? 0));
    const { config } = initCluster({ nodes: n, dir, clientPort: base, peerPort: base + n });
    const c = new ProcessCluster(dir, config, extraArgs);
    c.extraPortBase = base + 2 * n;
    await o.beforeStart?.(c);
    await Promise.all(c.members.map((m) => c.startMember(m.id)));
    return c;
  }

  /** First of the `reservePorts` ports {@link start} probed for the caller. */
  extraPortBase = 0;

  /** Sets the extra `serve` arguments of member `id` (used from its next start). */
  setMemberArgs(id: number, args: string[]): void {
    this.memberArgs.set(id, args);
  }

  /** The public keys of the members, in id order. */
  get publicKeys(): Uint8Array[] {
    return this.config.members.map((m) => m.publicKey);
  }

  member(id: number): Member {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  /** Starts member `id` and waits until it listens. */
  async startMember(id: number): Promise<void> {
    const m = this.member(id);
    if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) throw new Error(`member ${id} is running`);
    const env = { ...process.env };
    delete env.PROOFKV_TOKENS;
    delete env.PROOFKV_LOG_LEVEL;
    const proc = spawn(process.execPath, [...cliArgv(), ...serveArgs(this.dir, id), '--log-level', 'warn', ...this.extraArgs, ...(this.memberArgs.get(id) ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    m.proc = proc;
    m.output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`member ${id} did not listen in 60 s:\n${m.output}`)), 60_000);
      const take = (d: Buffer) => {
        m.output = (m.output + d.toString()).slice(-32_768);
        if (/listening on https?:\/\//.test(m.output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', take);
      proc.stderr!.on('data', take);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`member ${id} exited (${code ?? signal}) before it listened:\n${m.output}`));
      });
    });
  }

  /**
   * Lays out member `id` with `proofkv cluster add` (its data directory and key, and the member
   * in cluster.json, on the given ports) and starts it with `serve --join`; the running members
   * are not told (that is the membership route's job).
   */
  async joinMember(id: number, clientPort: number, peerPort: number): Promise<ClusterMember> {
    const { config } = addClusterMember({ dir: this.dir, id, clientPort, peerPort });
    const m = config.members.find((x) => x.id === id)!;
    this.members.push({ id, url: m.clientUrl, proc: undefined, output: '' });
    this.memberArgs.set(id, ['--join', ...(this.memberArgs.get(id) ?? []).filter((a) => a !== '--join')]);
    await this.startMember(id);
    return m;
  }

  /** Sends `signal` to member `id` and waits until it exited. */
  async stopMember(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.member(id);
    const proc = m.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }

  /** `GET /v1/status` of member `id` (undefined when it does not answer). */
  async status(id: number): Promise<any> {
    try {
      const r = await fetch(`${this.member(id).url}/v1/status`, { signal: AbortSignal.timeout(2000) });
      return r.ok ? await r.json() : undefined;
    } catch {
      return undefined;
    }
  }

  /** The leader's id as a majority of running members report it (polls up to `ms`). */
  async leader(ms = 20_000): Promise<number> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const seen = (await Promise.all(this.members.map((m) => this.status(m.id)))).filter(Boolean);
      const leaders = seen.filter((s) => s.role === 'leader').map((s) => s.cluster.id as number);
      if (leaders.length === 1 && seen.filter((s) => s.cluster.leader === leaders[0]).length * 2 > this.members.length) return leaders[0];
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no leader in ${ms} ms`);
  }

  /** Stops every member (SIGTERM, then SIGKILL) and removes the directory. */
  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => this.stopMember(m.id, 'SIGTERM')));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Asks `client` for a checkpoint until one is made (a cluster just started answers
 * `CHECKPOINT_UNAVAILABLE` until it has a leader and its first certified head), for up to 30 s.
 */
export async function firstCheckpoint(client: { checkpoint(): Promise<unknown> }): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await client.checkpoint();
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'CHECKPOINT_UNAVAILABLE' || Date.now() > until) throw err;
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}
