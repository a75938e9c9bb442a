/**
 * The nemesis runner: starts a {@link NemesisCluster}, starts the {@link Workload}'s clients,
 * plays the seed's {@link schedule} (each step injects its fault, holds it, undoes it, and waits
 * a quiet gap), stops the clients, heals everything, waits until every member applied the same
 * index and certified the same checkpoint, checks the history ({@link checkRun}) and writes the
 * report ({@link writeReport}). A run that fails says its seed and the one command that replays
 * its schedule.
 * @module
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProofKVClient } from '../../client-sdk/index.js';
import { majority } from '../../server/cli/cluster.js';
import { checkRun, finalTrust, type CheckReport, type FinalTrust } from './check.js';
import { NemesisCluster, type MemberStatus } from './cluster.js';
import type { FaultEvent, OpRecord } from './history.js';
import { writeReport } from './report.js';
import { addsOf, schedule, type NemesisStep } from './schedule.js';
import { Workload, type NemesisProtocol } from './workload.js';

/** What to run. */
export interface NemesisOptions {
  seed: number;
  nodes: 3 | 5;
  /** Number of schedule steps (wins over `minutes`). */
  events?: number;
  /** Length of the schedule, minutes; the run also stops playing when this much time passed. */
  minutes?: number;
  /** Short steps (the CI run; `--quick`). */
  quick?: boolean;
  /** Report directory (default: a new directory under the OS temp directory). */
  out?: string;
  /** Client loops (default 4). */
  clients?: number;
  /** Keys (default 8). */
  keys?: number;
  /** How the clients reach the members (default `http`; `stream`: the SDK's `streamFetch()` for the hot key routes). */
  protocol?: NemesisProtocol;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** What a run returns. */
export interface NemesisResult {
  check: CheckReport;
  events: FaultEvent[];
  history: OpRecord[];
  reportDir: string;
  /** The command that replays this run's schedule. */
  replay: string;
  /** What the clients' `streamFetch`es did (all zero over `http`). */
  streamStats: { streamed: number; http: number; opened: number };
}

/** How long a write probe on a cut-off member waits for its answer, ms (more than the proposal timeout). */
const PROBE_TIMEOUT_MS = 8000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The command that replays `steps` steps of `seed` over `nodes` members (with the clients' `protocol`, when not the default `http`). */
export function replayCommand(seed: number, nodes: number, steps: number, quick = false, protocol: NemesisProtocol = 'http'): string {
  return `npm run nemesis -- --seed ${seed} --nodes ${nodes} --events ${steps}${quick ? ' --quick' : ''}${protocol === 'http' ? '' : ` --protocol ${protocol}`}`;
}

/** Plays a whole run. Rejects only when the harness itself cannot run (a cluster that never starts). */
export async function runNemesis(o: NemesisOptions): Promise<NemesisResult> {
  const log = o.log ?? (() => undefined);
  const steps = schedule({ seed: o.seed, nodes: o.nodes, events: o.events, minutes: o.minutes, quick: o.quick });
  const spares = steps.reduce((n, s) => n + addsOf(s), 0);
  const reportDir = o.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-nemesis-'));
  fs.mkdirSync(reportDir, { recursive: true });
  let t0 = performance.now();
  const cluster = await NemesisCluster.start({ nodes: o.nodes, spares, seed: o.seed, now: () => performance.now() - t0 });
  try {
    log(`cluster of ${o.nodes} in ${cluster.pc.dir}; ${steps.length} steps planned, ${spares} spare ids`);
    const first = await cluster.leader(60_000);
    if (first === undefined) throw new Error('the cluster elected no leader in 60 s');
    const quorum = majority(o.nodes);
    t0 = performance.now();
    const workload = new Workload({ endpoints: () => cluster.endpoints(), publicKeys: cluster.publicKeys, quorum, clients: o.clients ?? 4, keys: o.keys ?? 8, seed: o.seed, opTimeoutMs: 10_000, origin: t0, protocol: o.protocol ?? 'http' });
    workload.start();
    await sleep(2000);
    const deadline = o.events === undefined && o.minutes !== undefined ? t0 + o.minutes * 60_000 : Infinity;
    let played = 0;
    const probes: Probe[] = [];
    for (const step of steps) {
      if (performance.now() > deadline) break;
      await play(cluster, step, o.nodes, log, probes);
      played++;
      cluster.healLinks();
      await sleep(step.gapMs);
    }
    await workload.stop();
    const healed = await cluster.heal();
    log(`played ${played} steps; healed${healed.length ? `: ${healed.join('; ')}` : ''}`);
    // A last checkpoint after the last write, then every member must agree on it.
    const trusted = await finalCheckpoint(cluster, quorum);
    if (trusted.note) log(trusted.note);
    const settled = await cluster.settle();
    log(settled.ok ? `settled at applied ${settled.status.applied}, checkpoint ${settled.status.checkpointSize}` : settled.detail);
    const history = workload.history();
    const events = cluster.events;
    const members = cluster.members.map((id) => ({ id, url: cluster.pc.member(id).url }));
    const check = await checkRun(history, workload.trustedHeads(), { members, publicKeys: cluster.publicKeys, quorum }, events);
    // The harness's own findings are checks too: a member that did not restart after a torn
    // tail, members that never agreed, a membership change that never finished.
    check.checks.push({ name: 'every member restarted after its fault', ok: cluster.problems.length === 0, detail: cluster.problems.length === 0 ? `${events.filter((e) => /kill|torn/.test(e.kind)).length} kill/torn-tail events, all restarted` : cluster.problems.join('\n') });
    // A fresh client given only the keys of the members at start follows every signer-set change
    // of the run to the final head (docs/proofs.md §5.6); falling back to the current voters' keys
    // means it could not.
    check.checks.push({ name: 'a client given the initial keys follows to the final head', ok: trusted.note === undefined, detail: trusted.note ?? `a fresh client trusting the ${o.nodes} initial keys (quorum ${quorum}) verified the final head` });
    check.checks.push({ name: 'members converged after heal', ok: settled.ok, detail: settled.ok ? `every member applied ${settled.status.applied} and certified checkpoint ${settled.status.checkpointSize}` : settled.detail });
    const pending = healed.filter((h) => /pending/.test(h));
    check.checks.push({ name: 'membership changes finished after heal', ok: pending.length === 0, detail: pending.length === 0 ? `${events.filter((e) => /member/.test(e.kind)).length} membership events` : pending.join('\n') });
    const acked = probes.filter((p) => /^2\d\d$/.test(p.answer));
    check.checks.push({
      name: 'a cut-off minority acknowledged no write',
      ok: acked.length === 0,
      detail: acked.length === 0 ? `${probes.length} write probes on a minority: ${summarize(probes.map((p) => p.answer))}` : acked.map((p) => `event ${p.event}: member ${p.member} answered ${p.answer}`).join('\n'),
    });
    check.ok = check.checks.every((c) => c.ok);
    const replay = replayCommand(o.seed, o.nodes, played, o.quick, o.protocol);
    const via = workload.streamStats();
    if (o.protocol === 'stream') log(`clients: ${via.streamed} requests over the stream (${via.opened} connections opened), ${via.http} over HTTP`);
    writeReport(reportDir, { seed: o.seed, nodes: o.nodes, protocol: o.protocol ?? 'http', ...(o.protocol === 'stream' ? { streamStats: via } : {}), minutes: Math.round(((performance.now() - t0) / 60_000) * 10) / 10, events, history, check, replay });
    return { check, events, history, reportDir, replay, streamStats: via };
  } finally {
    // Each member's last output (warnings and errors: `--log-level warn`), for a failing run's post-mortem.
    for (const m of cluster.pc.members) fs.writeFileSync(path.join(reportDir, `member-${m.id}.log`), m.output);
    await cluster.close();
  }
}

/**
 * Asks for a checkpoint until one is certified (at most 60 s): the final state covers every write.
 * Its client trusts what the checker's final reads trust ({@link finalTrust}): the configured keys
 * while they reach a quorum, else the current voters'; the trust is returned for the log.
 */
async function finalCheckpoint(cluster: NemesisCluster, quorum: number): Promise<FinalTrust> {
  const members = cluster.members.map((id) => ({ id, url: cluster.pc.member(id).url }));
  const trust = await finalTrust({ members, publicKeys: cluster.publicKeys, quorum });
  const client = new ProofKVClient({ endpoints: cluster.endpoints(), trust: { publicKeys: trust.publicKeys, quorum: trust.quorum }, retries: 20, retryDelayMs: 200, timeoutMs: 10_000, onWarning: () => undefined });
  const until = performance.now() + 60_000;
  for (;;) {
    try {
      await client.createCheckpoint();
      return trust;
    } catch (err) {
      if (performance.now() > until) throw err;
      await sleep(500);
    }
  }
}

/** `list` shuffled by the numbers of `pick` (deterministic). */
function order<T>(list: readonly T[], pick: number): T[] {
  const out = [...list];
  let x = Math.floor(pick * 2 ** 32) >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const choose = <T>(list: readonly T[], pick: number): T => list[Math.min(list.length - 1, Math.floor(pick * list.length))];

/**
 * A write sent straight to member `id` (not through the SDK), to see whether a cut-off member
 * refuses it: the answer's status or `network`/`timeout`. Its key (`nemesis/probe-<n>`) is not
 * one of the workload's.
 */
async function probeWrite(cluster: NemesisCluster, id: number, n: number, timeoutMs: number): Promise<string> {
  try {
    const r = await fetch(`${cluster.pc.member(id).url}/v1/kv/${encodeURIComponent(`nemesis/probe-${n}`)}`, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: `probe-${n}`, signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return String(r.status);
  } catch (err) {
    return (err as Error).name === 'TimeoutError' ? 'timeout' : 'network';
  }
}

/** A write sent straight to a member on the minority side of a partition, and its answer. */
export interface Probe {
  event: number;
  member: number;
  /** HTTP status, `timeout` or `network`. */
  answer: string;
}

/** `503 ×4, timeout ×1` */
function summarize(answers: string[]): string {
  const n = new Map<string, number>();
  for (const a of answers) n.set(a, (n.get(a) ?? 0) + 1);
  return [...n].map(([a, k]) => `${a} ×${k}`).join(', ') || 'none';
}

/** The leader, or when none is agreed on, a live member chosen by `pick`. */
async function leaderOr(cluster: NemesisCluster, pick: number): Promise<{ id: number; known: boolean }> {
  const l = await cluster.leader(3000);
  if (l !== undefined) return { id: l, known: true };
  return { id: choose(cluster.live(), pick), known: false };
}

/** Plays one step: inject, hold, undo; records its events. */
async function play(c: NemesisCluster, s: NemesisStep, nodes: number, log: (line: string) => void, probes: Probe[]): Promise<void> {
  const [p0, p1, p2] = s.pick;
  const hold = () => sleep(s.durationMs);
  const live = c.live();
  if (live.length === 0) return;
  log(`step ${s.n}: ${s.kind} for ${s.durationMs} ms`);
  switch (s.kind) {
    case 'kill':
    case 'kill-leader': {
      const t = s.kind === 'kill' ? { id: choose(live, p0), known: false } : await leaderOr(c, p0);
      const ev = c.begin(s.kind, [t.id], s.kind === 'kill-leader' ? (t.known ? 'the leader' : 'no agreed leader: a live member') : undefined);
      await c.kill(t.id);
      // Who leads while it is down: polled during the hold and its restart (until it listens again;
      // a restart takes seconds on a loaded machine, when an election can take most of the hold).
      let back = false;
      let last: MemberStatus[] = [];
      const watch = c.leader(60_000, { stop: () => back, seen: (seen) => { last = seen; } });
      await hold();
      const ok = await c.restart(t.id);
      back = true;
      const next = await watch;
      const none = `no agreed leader while down (last seen of ${c.members.length} members: ${last.map((m) => `${m.id} ${m.role} term ${m.term} leader ${m.leader}`).join(', ') || 'none answered'}); `;
      c.end(ev, `${next !== undefined ? `leader while down: ${next}; ` : none}${ok ? 'restarted' : 'did not restart'}`);
      return;
    }
    case 'kill-majority': {
      const victims = order(live, p0).slice(0, majority(c.members.length));
      const ev = c.begin(s.kind, victims);
      for (const id of victims) await c.kill(id);
      await hold();
      const ok = await Promise.all(victims.map((id) => c.restart(id)));
      c.end(ev, ok.every(Boolean) ? 'restarted' : 'a member did not restart');
      return;
    }
    case 'pause':
    case 'pause-leader': {
      const t = s.kind === 'pause' ? { id: choose(live, p0), known: false } : await leaderOr(c, p0);
      const ev = c.begin(s.kind, [t.id]);
      c.pause(t.id);
      await hold();
      await c.resume(t.id);
      c.end(ev);
      return;
    }
    case 'partition-majority':
    case 'partition-leader': {
      let minority: number[];
      if (s.kind === 'partition-leader') minority = [(await leaderOr(c, p0)).id];
      else {
        const most = Math.floor((c.members.length - 1) / 2);
        minority = order(c.members, p0).slice(0, Math.max(1, Math.round(1 + p1 * (most - 1))));
      }
      const majoritySide = c.members.filter((id) => !minority.includes(id));
      const ev = c.begin(s.kind, minority, `minority ${minority.join(',')} | majority ${majoritySide.join(',')}`);
      c.partition(minority, majoritySide);
      // A write sent to the cut-off side must not be acknowledged (it cannot commit there).
      // It may wait for the proposal timeout (3 election timeouts, at most 6 s) before it is refused.
      const probeOn = minority.find((id) => live.includes(id)) ?? minority[0];
      const probe = probeWrite(c, probeOn, s.n, PROBE_TIMEOUT_MS);
      const [answer] = await Promise.all([probe, hold()]);
      probes.push({ event: ev.id, member: probeOn, answer });
      c.end(ev, `minority write probe on ${probeOn}: ${answer}`);
      c.healLinks();
      return;
    }
    case 'partition-bridge': {
      const ordered = order(c.members, p0);
      const bridge = ordered[0];
      const rest = ordered.slice(1);
      const half = Math.floor(rest.length / 2);
      const a = [bridge, ...rest.slice(0, half)];
      const b = [bridge, ...rest.slice(half)];
      const ev = c.begin(s.kind, [bridge], `bridge ${bridge}: ${a.join(',')} | ${b.join(',')}`);
      c.partition(a, b);
      await hold();
      c.end(ev);
      c.healLinks();
      return;
    }
    case 'partition-one-way': {
      const t = p1 < 0.5 ? await leaderOr(c, p0) : { id: choose(live, p0), known: false };
      const others = c.members.filter((id) => id !== t.id);
      const outbound = p2 < 0.5;
      const ev = c.begin(s.kind, [t.id], outbound ? `${t.id} cannot send to ${others.join(',')} (hears them)` : `${others.join(',')} cannot send to ${t.id} (it hears nothing)`);
      if (outbound) c.setLinks([t.id], others, { kind: 'cut' });
      else c.setLinks(others, [t.id], { kind: 'cut' });
      await hold();
      c.end(ev);
      c.healLinks();
      return;
    }
    case 'slow':
    case 'flaky':
    case 'blackhole': {
      const whole = s.kind !== 'blackhole' && p1 < 0.5;
      const t = whole ? c.members : [choose(c.members, p0)];
      const mode = s.kind === 'slow' ? { kind: 'delay' as const, ms: s.delayMs, jitterMs: s.jitterMs } : s.kind === 'flaky' ? { kind: 'drop' as const, p: s.dropP } : { kind: 'blackhole' as const };
      const ev = c.begin(s.kind, t, s.kind === 'slow' ? `${s.delayMs} ms + ${s.jitterMs} jitter on ${whole ? 'every link' : `links of ${t[0]}`}` : s.kind === 'flaky' ? `drop p=${s.dropP} on ${whole ? 'every link' : `links of ${t[0]}`}` : `links of ${t[0]} accept and never answer`);
      c.setLinks(t, c.members, mode);
      c.setLinks(c.members, t, mode);
      await hold();
      c.end(ev);
      c.healLinks();
      return;
    }
    case 'torn-tail': {
      const id = choose(live, p0);
      const ev = c.begin(s.kind, [id]);
      const files = await c.tearTail(id);
      await hold();
      const ok = await c.restart(id);
      c.end(ev, `torn: ${files.join(', ') || 'no file'}; ${ok ? 'restarted' : 'did not restart'}`);
      return;
    }
    case 'add-member':
    case 'remove-member':
    case 'replace-leader':
      await withBackground(c, s, async () => {
        if (s.kind === 'add-member') {
          const ev = c.begin(s.kind, []);
          const r = await c.addMember();
          if (r.id !== undefined) ev.targets = [r.id];
          c.end(ev, r.detail);
        } else if (s.kind === 'remove-member') {
          const leader = await c.leader(3000);
          const candidates = c.members.filter((id) => id !== leader && !c.isPendingAdd(id));
          if (c.members.length <= nodes || candidates.length === 0) {
            const ev = c.begin(s.kind, [], `skipped: ${c.members.length} members`);
            c.end(ev);
            return;
          }
          const id = choose(candidates, p1);
          const ev = c.begin(s.kind, [id]);
          c.end(ev, await c.removeMember(id));
        } else {
          const ev = c.begin(s.kind, []);
          const r = await c.addMember();
          const leader = await leaderOr(c, p1);
          ev.targets = r.id !== undefined ? [r.id, leader.id] : [leader.id];
          const removed = r.done ? await c.removeMember(leader.id) : 'not removed: the add did not finish';
          c.end(ev, `${r.detail}; old leader ${leader.id}: ${removed}`);
        }
        await hold();
      });
      return;
  }
}

/** Runs a membership change while its background fault holds (recorded as its own event). */
async function withBackground(c: NemesisCluster, s: NemesisStep, change: () => Promise<void>): Promise<void> {
  if (s.background === 'none') return change();
  const members = [...c.members];
  let ev: FaultEvent;
  let undo: () => Promise<void>;
  if (s.background === 'kill-follower') {
    const leader = await c.leader(3000);
    const followers = c.live().filter((id) => id !== leader);
    if (followers.length === 0) return change();
    const id = choose(followers, s.pick[2]);
    ev = c.begin('kill', [id], `background of step ${s.n} (${s.kind})`);
    await c.kill(id);
    undo = async () => {
      await c.restart(id);
    };
  } else {
    const mode = s.background === 'slow' ? { kind: 'delay' as const, ms: s.delayMs, jitterMs: s.jitterMs } : { kind: 'drop' as const, p: s.dropP };
    ev = c.begin(s.background, members, `background of step ${s.n} (${s.kind}): ${s.background === 'slow' ? `${s.delayMs} ms + ${s.jitterMs} jitter` : `drop p=${s.dropP}`} on every link`);
    c.setLinks(members, members, mode);
    undo = async () => c.healLinks();
  }
  // The background holds while the change runs, at most BACKGROUND_MAX_MS; the change may go on without it.
  const running = change();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([running.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, BACKGROUND_MAX_MS)))]);
  clearTimeout(timer);
  await undo();
  c.end(ev);
  await running;
}

/** Longest a membership change's background fault holds, ms. */
const BACKGROUND_MAX_MS = 8000;
