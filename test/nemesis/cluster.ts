/**
 * {@link NemesisCluster}: a {@link ProcessCluster} of real `proofkv serve --cluster` processes
 * whose every peer link i→j runs through its own {@link FaultProxy} (member i dials j with
 * `--peer-via j=<proxy>`), plus spare ids for members added at runtime (their proxies exist and
 * every member is told about them from the start). Client traffic is not proxied: a partitioned
 * member still answers clients.
 *
 * Verbs: kill (SIGKILL) and restart, pause (SIGSTOP) and resume (SIGCONT), partitions (two sides,
 * possibly sharing a bridge member), one-way cuts, slow, flaky and blackholed links, adding,
 * removing and replacing members, and the torn tail (SIGKILL, then a partial record appended to
 * the member's newest write-ahead files, then restart). {@link heal} undoes every fault. Each
 * step of the runner records a {@link FaultEvent} through {@link begin}/{@link end}.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { addMemberRemote, adminRequest, nodeDirName, removeMemberRemote } from '../../server/cli/cluster.js';
import { CLUSTER_CONFIG_FILE, MAX_CLUSTER_MEMBERS, formatClusterConfig, readClusterConfig, type ClusterMember } from '../../server/cluster_config.js';
import { mulberry32 } from '../support/prng.js';
import { ProcessCluster } from '../cluster/harness.js';
import { FaultProxy, type LinkMode } from './proxy.js';
import type { FaultEvent } from './history.js';

/** Options of {@link NemesisCluster.start}. */
export interface NemesisClusterOptions {
  /** Members at start (3 or 5). */
  nodes: number;
  /** Ids kept for members added at runtime (`nodes + 1 ..`). */
  spares: number;
  /** Seed of the proxies' randomness and of the torn tails' bytes. */
  seed: number;
  /** Extra `serve` flags for every member. */
  serveArgs?: string[];
  /** Clock of the events (ms since the run started). */
  now?: () => number;
}

/** `serve` flags the harness gives every member unless told otherwise: checkpoints every 500 ms. */
export const DEFAULT_SERVE_ARGS = ['--checkpoint-interval', '500', '--checkpoint-writes', '0'];

/** One member's `/v1/status`, as far as the harness reads it. */
export interface MemberStatus {
  id: number;
  role: string;
  leader: number;
  term: number;
  applied: number;
  commit: number;
  voters: number[];
  learners: number[];
  checkpointSize?: number;
  checkpointRoot?: string;
  /** The member found its MasterRoot differs from a quorum's (`/v1/status` `divergence`): it stays so. */
  divergence?: { size: number; ownRoot: string; quorumRoot: string };
}

/** Block size of the journal format (docs/storage.md §4.1; LevelDB's log uses the same). */
const BLOCK = 32_768;
const HEADER = 7;

/**
 * The bytes a crash in the middle of an append leaves at the end of a journal-format file of
 * `length` bytes (docs/storage.md §4.1, LevelDB's log format): zeros to the end of the block when
 * no header fits there (the block trailer the writer would have written), then the header of a
 * `FULL` record whose payload runs past the end of the file and only a part of that payload.
 * Never a whole record: the record is cut short, as a crash cuts it.
 */
export function tornRecord(length: number, rand: () => number): Uint8Array {
  let left = BLOCK - (length % BLOCK);
  const parts: number[] = [];
  if (left < HEADER) {
    for (let i = 0; i < left; i++) parts.push(0);
    left = BLOCK;
  }
  // A payload that fits in this block (so the record is not a bad length) but is only partly here.
  const max = Math.min(left - HEADER, 4096);
  const payload = Math.max(2, 1 + Math.floor(rand() * max));
  const present = Math.floor(rand() * payload); // 0 .. payload-1 bytes of it
  for (let i = 0; i < 4; i++) parts.push(Math.floor(rand() * 256)); // crc of a record never finished
  parts.push(payload & 0xff, payload >> 8, 1);
  for (let i = 0; i < present; i++) parts.push(Math.floor(rand() * 256));
  return Uint8Array.from(parts);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const alive = (p: { exitCode: number | null; signalCode: string | null } | undefined) => p !== undefined && p.exitCode === null && p.signalCode === null;

/** A cluster of real processes with every peer link behind a fault proxy. */
export class NemesisCluster {
  /** Current members as the harness knows them (ids; the group's own view is {@link statuses}). */
  readonly members: number[];
  /** Members stopped with SIGSTOP. */
  readonly paused = new Set<number>();
  /** Members killed and not restarted yet. */
  readonly down = new Set<number>();
  /** Every recorded fault, in order. */
  readonly events: FaultEvent[] = [];
  /** Things that went wrong in the harness's own verbs that a run must report (a member that did not restart). */
  readonly problems: string[] = [];
  private readonly proxies = new Map<string, FaultProxy>();
  private readonly spareIds: number[];
  private readonly ports = new Map<number, { client: number; peer: number }>();
  private readonly rand: () => number;
  /** Membership changes that did not finish under the fault (finished by {@link heal}). */
  private readonly pendingAdds = new Set<number>();
  private readonly pendingRemoves = new Set<number>();
  private nextEvent = 1;
  now: () => number;

  private constructor(
    readonly pc: ProcessCluster,
    readonly o: NemesisClusterOptions,
  ) {
    this.members = pc.members.map((m) => m.id);
    this.spareIds = Array.from({ length: o.spares }, (_, k) => o.nodes + 1 + k);
    this.rand = mulberry32(o.seed ^ 0x5eed);
    this.now = o.now ?? (() => performance.now());
  }

  /** Lays out the cluster, starts a proxy per directed link of every id (spares included) and starts the members. */
  static async start(o: NemesisClusterOptions): Promise<NemesisCluster> {
    let nc: NemesisCluster | undefined;
    const pc = await ProcessCluster.start(o.nodes, o.serveArgs ?? DEFAULT_SERVE_ARGS, {
      reservePorts: 2 * o.spares,
      beforeStart: async (c) => {
        nc = new NemesisCluster(c, o);
        await nc.startProxies();
      },
    }).catch(async (err) => {
      await nc?.closeProxies();
      throw err;
    });
    return nc!;
  }

  private async startProxies(): Promise<void> {
    for (const m of this.pc.config.members) this.ports.set(m.id, { client: Number(new URL(m.clientUrl).port), peer: Number(new URL(m.peerUrl).port) });
    this.spareIds.forEach((id, k) => this.ports.set(id, { client: this.pc.extraPortBase + 2 * k, peer: this.pc.extraPortBase + 2 * k + 1 }));
    const ids = [...this.ports.keys()];
    for (const i of ids) {
      for (const j of ids) {
        if (i === j) continue;
        const p = await FaultProxy.start({ target: { host: '127.0.0.1', port: this.ports.get(j)!.peer }, seed: (this.o.seed * 131 + i * 17 + j) >>> 0 });
        this.proxies.set(`${i}>${j}`, p);
      }
    }
    for (const i of ids) {
      this.pc.setMemberArgs(i, ids.filter((j) => j !== i).flatMap((j) => ['--peer-via', `${j}=${this.proxies.get(`${i}>${j}`)!.url}`]));
    }
  }

  private async closeProxies(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }

  /** The proxy of link `from`→`to`. */
  proxy(from: number, to: number): FaultProxy {
    const p = this.proxies.get(`${from}>${to}`);
    if (!p) throw new Error(`no link ${from}>${to}`);
    return p;
  }

  /** Client URLs of the current members. */
  endpoints(): string[] {
    return this.members.map((id) => this.pc.member(id).url);
  }

  /** The initial members' public keys (what the workload's clients trust). */
  get publicKeys(): Uint8Array[] {
    return this.pc.publicKeys;
  }

  /** Whether member `id` was added and its promotion has not finished yet. */
  isPendingAdd(id: number): boolean {
    return this.pendingAdds.has(id);
  }

  /** Spare ids not used yet. */
  get sparesLeft(): number {
    return this.spareIds.length;
  }

  /** Members running and not paused. */
  live(): number[] {
    return this.members.filter((id) => !this.down.has(id) && !this.paused.has(id) && alive(this.pc.member(id).proc));
  }

  // ---- events ----

  /** Starts recording a fault. */
  begin(kind: string, targets: number[], detail?: string): FaultEvent {
    const ev: FaultEvent = { id: this.nextEvent++, kind, targets: [...targets], start: this.now(), end: Infinity, ...(detail ? { detail } : {}) };
    this.events.push(ev);
    return ev;
  }

  /** Ends a fault (adds `more` to its detail). */
  end(ev: FaultEvent, more?: string): void {
    ev.end = this.now();
    if (more) ev.detail = ev.detail ? `${ev.detail}; ${more}` : more;
  }

  // ---- status ----

  /** `/v1/status` of member `id` (undefined when it does not answer within 1.5 s). */
  async status(id: number): Promise<MemberStatus | undefined> {
    const s = await this.pc.status(id);
    if (!s?.cluster) return undefined;
    const root = s.lastCheckpoint?.head?.root as string | undefined;
    return {
      id: s.cluster.id, role: s.role, leader: s.cluster.leader, term: s.cluster.term, applied: s.cluster.applied, commit: s.cluster.commit,
      voters: s.cluster.voters ?? [], learners: s.cluster.learners ?? [], checkpointSize: s.lastCheckpoint?.head?.size, checkpointRoot: root,
      ...(s.divergence ? { divergence: s.divergence } : {}),
    };
  }

  /** Statuses of the live members that answered. */
  async statuses(): Promise<MemberStatus[]> {
    return (await Promise.all(this.live().map((id) => this.status(id)))).filter((s): s is MemberStatus => s !== undefined);
  }

  /**
   * The leader a majority of the current members agrees on, polling up to `ms` (or until
   * `o.stop()` is true); undefined when none. `o.seen` gets the statuses of every poll (a caller
   * reports the last ones when no leader was agreed on).
   */
  async leader(ms = 5000, o: { stop?: () => boolean; seen?: (s: MemberStatus[]) => void } = {}): Promise<number | undefined> {
    const until = performance.now() + ms;
    for (;;) {
      const seen = await this.statuses();
      o.seen?.(seen);
      const leaders = seen.filter((s) => s.role === 'leader').map((s) => s.id);
      for (const l of leaders) if (seen.filter((s) => s.leader === l).length * 2 > this.members.length) return l;
      if (performance.now() > until || o.stop?.()) return undefined;
      await sleep(100);
    }
  }

  // ---- processes ----

  /** SIGKILLs member `id`. */
  async kill(id: number): Promise<void> {
    if (this.paused.has(id)) await this.resume(id);
    await this.pc.stopMember(id, 'SIGKILL');
    this.down.add(id);
  }

  /** Restarts a killed member (waits until it listens); a failure is recorded in {@link problems}. */
  async restart(id: number): Promise<boolean> {
    if (!this.down.has(id)) return true;
    try {
      await this.pc.startMember(id);
      this.down.delete(id);
      return true;
    } catch (err) {
      this.problems.push(`member ${id} did not restart: ${(err as Error).message.slice(0, 2000)}`);
      return false;
    }
  }

  /** SIGSTOP. */
  pause(id: number): void {
    const p = this.pc.member(id).proc;
    if (!alive(p) || this.paused.has(id)) return;
    p!.kill('SIGSTOP');
    this.paused.add(id);
  }

  /** SIGCONT. */
  async resume(id: number): Promise<void> {
    if (!this.paused.has(id)) return;
    this.pc.member(id).proc?.kill('SIGCONT');
    this.paused.delete(id);
  }

  /**
   * SIGKILLs member `id`, then appends a torn record to its newest write-ahead files: the Raft
   * log's newest segment (`raft/wal/<seq>.wal`, src/raft/wal_storage.ts), the engine's
   * `CHECKPOINTS` and its current manifest. Only bytes after the last synced byte: nothing synced
   * is cut (that would be lost durable state, not a crash). A segment is preallocated with zeros,
   * so its torn record goes right after its last whole record, over those zeros (see
   * test/raft/wal_torn.ts). Returns what was torn; the caller restarts the member.
   */
  async tearTail(id: number): Promise<string[]> {
    await this.kill(id);
    const dir = path.join(this.pc.dir, nodeDirName(id));
    const files: string[] = [];
    const { tearWalTail } = await import('../raft/wal_torn.js');
    const segment = tearWalTail(path.join(dir, 'raft', 'wal'), this.rand);
    if (segment) files.push(path.relative(dir, segment));
    const appended: string[] = [];
    if (fs.existsSync(path.join(dir, 'CHECKPOINTS'))) appended.push(path.join(dir, 'CHECKPOINTS'));
    const current = path.join(dir, 'CURRENT');
    if (fs.existsSync(current)) {
      const m = /^(MANIFEST-\d+)\n$/.exec(fs.readFileSync(current, 'utf8'));
      if (m && fs.existsSync(path.join(dir, m[1]))) appended.push(path.join(dir, m[1]));
    }
    for (const f of appended) fs.appendFileSync(f, tornRecord(fs.statSync(f).size, this.rand));
    return [...files, ...appended.map((f) => path.relative(dir, f))];
  }

  // ---- links ----

  /** Sets the mode of every link from a member of `from` to a member of `to` (ids outside the harness ignored). */
  setLinks(from: Iterable<number>, to: Iterable<number>, mode: LinkMode): number {
    const toIds = [...to];
    let n = 0;
    for (const i of from) {
      for (const j of toIds) {
        if (i === j) continue;
        const p = this.proxies.get(`${i}>${j}`);
        if (p) {
          p.setMode(mode);
          n++;
        }
      }
    }
    return n;
  }

  /** Cuts both directions between `a` and `b` (members in both sides, a bridge, keep their links). */
  partition(a: number[], b: number[]): void {
    const onlyA = a.filter((x) => !b.includes(x));
    const onlyB = b.filter((x) => !a.includes(x));
    this.setLinks(onlyA, onlyB, { kind: 'cut' });
    this.setLinks(onlyB, onlyA, { kind: 'cut' });
  }

  /** Every link back to `pass`. */
  healLinks(): void {
    for (const p of this.proxies.values()) if (p.current.kind !== 'pass') p.setMode({ kind: 'pass' });
  }

  // ---- membership ----

  /**
   * Adds a member: the next spare id is laid out (`cluster add`, after removed members were
   * dropped from `cluster.json`), started with `--join`, added (`POST /v1/cluster/members`) and
   * promoted. Under a fault the route may not finish in `timeoutMs`: the member is then pending
   * and {@link heal} finishes it. Skipped (no `id`) when no spare id is left or `cluster.json`
   * is full.
   */
  async addMember(timeoutMs = 20_000): Promise<{ id?: number; done: boolean; detail: string }> {
    if (this.spareIds.length === 0) return { done: false, detail: 'skipped: no spare id left' };
    const listed = readClusterConfig(path.join(this.pc.dir, CLUSTER_CONFIG_FILE)).members.length;
    if (listed >= MAX_CLUSTER_MEMBERS) return { done: false, detail: `skipped: ${CLUSTER_CONFIG_FILE} lists ${listed} members, the most it may (removed initial members stay listed)` };
    const id = this.spareIds.shift()!;
    const ports = this.ports.get(id)!;
    let info: ClusterMember;
    try {
      info = await this.pc.joinMember(id, ports.client, ports.peer);
    } catch (err) {
      // A member that cannot start (its port taken meanwhile, say) fails the run with a report,
      // not the runner with an uncaught rejection.
      const detail = `member ${id} did not start: ${(err as Error).message.slice(0, 2000)}`;
      this.problems.push(detail);
      return { id, done: false, detail };
    }
    this.members.push(id);
    this.pendingAdds.add(id);
    const detail = await this.finishAdd(id, info, timeoutMs);
    return { id, done: !this.pendingAdds.has(id), detail };
  }

  private async finishAdd(id: number, info: ClusterMember | undefined, timeoutMs: number): Promise<string> {
    const member = info ?? readClusterConfig(path.join(this.pc.dir, CLUSTER_CONFIG_FILE)).members.find((m) => m.id === id);
    if (!member) {
      this.pendingAdds.delete(id);
      return `not in ${CLUSTER_CONFIG_FILE} any more`;
    }
    const errors: string[] = [];
    const until = performance.now() + timeoutMs;
    // One deadline for the whole change: each member asked in turn gets what is left of it.
    for (const via of this.live().filter((x) => x !== id)) {
      const left = until - performance.now();
      if (left < 1000) break;
      try {
        await addMemberRemote(this.pc.member(via).url, member, undefined, left);
        this.pendingAdds.delete(id);
        return `added and promoted via ${via}`;
      } catch (err) {
        errors.push(`${via}: ${(err as Error).message.slice(0, 200)}`);
      }
    }
    return `add pending (${errors.join(' | ')})`;
  }

  /**
   * Removes member `id` (`DELETE /v1/cluster/members/id`, sent to another member); once it is out
   * its process is stopped, its data directory deleted and it leaves `cluster.json`. Under a fault
   * it may stay pending; {@link heal} finishes it.
   */
  async removeMember(id: number, timeoutMs = 20_000): Promise<string> {
    this.pendingRemoves.add(id);
    return this.finishRemove(id, timeoutMs);
  }

  private async finishRemove(id: number, timeoutMs: number): Promise<string> {
    const until = performance.now() + timeoutMs;
    const errors: string[] = [];
    while (performance.now() < until) {
      for (const via of this.live().filter((x) => x !== id)) {
        try {
          // A voter is demoted first and removed once that change is certified (CLI's remove-member).
          await removeMemberRemote(this.pc.member(via).url, id, undefined, Math.max(1000, until - performance.now()));
          await this.retire(id);
          return `removed via ${via}`;
        } catch (err) {
          errors.push(`${via}: ${(err as Error).message.slice(0, 160)}`);
        }
        if (performance.now() >= until) break;
      }
      await sleep(250);
    }
    return `remove pending (${errors.slice(-3).join(' | ')})`;
  }

  private async retire(id: number): Promise<void> {
    this.pendingRemoves.delete(id);
    this.pendingAdds.delete(id);
    await this.resume(id);
    await this.pc.stopMember(id, 'SIGKILL');
    this.down.delete(id);
    this.members.splice(this.members.indexOf(id), 1);
    const i = this.pc.members.findIndex((m) => m.id === id);
    if (i >= 0) this.pc.members.splice(i, 1);
    fs.rmSync(path.join(this.pc.dir, nodeDirName(id)), { recursive: true, force: true });
    // cluster.json lists at most 7 members: a removed member added at runtime leaves it (its key
    // is in the log's `member add` entry). A removed initial member stays: a member that joins
    // later seeds its registry from the file, and without an initial member's key it computes
    // other signer sets for the early checkpoints and diverges (docs/testing.md, Findings).
    if (id <= this.o.nodes) return;
    const file = path.join(this.pc.dir, CLUSTER_CONFIG_FILE);
    const config = readClusterConfig(file);
    fs.writeFileSync(`${file}.tmp`, formatClusterConfig({ ...config, members: config.members.filter((m) => m.id !== id) }));
    fs.renameSync(`${file}.tmp`, file);
  }

  // ---- heal and settle ----

  /** Undoes every fault: links pass, paused members resume, killed members restart, pending membership changes finish. */
  async heal(): Promise<string[]> {
    const notes: string[] = [];
    this.healLinks();
    for (const id of [...this.paused]) await this.resume(id);
    for (const id of [...this.down]) await this.restart(id);
    // Pending changes are finished side by side: one 60 s deadline for all of them.
    notes.push(...(await Promise.all([...this.pendingAdds].map(async (id) => `member ${id}: ${await this.finishAdd(id, undefined, 60_000)}`))));
    notes.push(...(await Promise.all([...this.pendingRemoves].map(async (id) => `member ${id}: ${await this.finishRemove(id, 60_000)}`))));
    return notes;
  }

  /**
   * Waits until every current member answers with the same applied index and the same latest
   * certified checkpoint (size and root) as every other, twice in a row `stableMs` apart.
   * Returns the common status, or a description of the disagreement after `timeoutMs` (at once
   * when a member reports a divergence: that does not heal).
   */
  async settle(timeoutMs = 120_000, stableMs = 1500): Promise<{ ok: true; status: MemberStatus } | { ok: false; detail: string }> {
    const until = performance.now() + timeoutMs;
    let last = '';
    let agreedOn = '';
    for (;;) {
      const all = await Promise.all(this.members.map((id) => this.status(id)));
      const got = all.filter((s): s is MemberStatus => s !== undefined);
      const key = (s: MemberStatus) => `${s.applied}/${s.checkpointSize}/${s.checkpointRoot}`;
      const keys = new Set(got.map(key));
      last = all.map((s, i) => `${this.members[i]}: ${s ? key(s) : 'no answer'}`).join(', ');
      // A diverged member stays diverged (docs/cluster.md): no point in waiting for it.
      const diverged = got.filter((s) => s.divergence);
      if (diverged.length > 0) return { ok: false, detail: `${diverged.map((s) => `member ${s.id} diverged at checkpoint ${s.divergence!.size} (own root ${s.divergence!.ownRoot}, quorum root ${s.divergence!.quorumRoot})`).join('; ')}; ${last}` };
      if (got.length === this.members.length && keys.size === 1 && got[0].checkpointSize !== undefined) {
        const k = [...keys][0];
        if (k === agreedOn) return { ok: true, status: got[0] };
        agreedOn = k;
      } else agreedOn = '';
      if (performance.now() > until) return { ok: false, detail: `members disagree after ${timeoutMs} ms: ${last}` };
      await sleep(stableMs);
    }
  }

  /** Stops every process and proxy and removes the directory. */
  async close(): Promise<void> {
    for (const id of [...this.paused]) await this.resume(id);
    await this.pc.close();
    await this.closeProxies();
  }
}
