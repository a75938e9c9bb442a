/**
 * One seeded run of the full-stack simulation (see fullstack.test.ts): a {@link FullCluster} of 3
 * or 5 members, clients with `(clientId, seq)` sessions that retry, linearizable reads,
 * checkpoints proposed by the leader, seeded faults; then healing and the checks. Throws on any
 * violation.
 */
import { SeededRand } from '../../src/raft/index.js';
import { SESSION_INPUT_BYTES } from '../../src/replication/sessions.js';
import type { SyncCounts } from '../../src/replication/sim/index.js';
import { MembersError, MembersErrorCode } from '../../src/replication/members.js';
import { writesSinceCheckpoint, type WriteCommand, type WriteOutcome } from '../../server/write_path.js';
import { checkHistory, formatOps, type KvOp } from '../raft/linearizability.js';
import { EPOCH, FullCluster, certText } from './fullstack_cluster.js';
import type { ProofDB } from '../../src/index.js';
import { startNemesis } from './sim_nemesis.js';

const te = new TextEncoder();
const td = new TextDecoder();
const KEYS = ['a', 'b', 'c', 'd'];

/** What one run did. */
export interface FullReport {
  seed: number;
  n: number;
  faults: Record<string, number>;
  stats: Clients['stats'];
  ops: number;
  certified: number;
  compared: number;
  applied: number;
  events: number;
  /** {@link FullCluster.diag} after the run (not part of the fingerprint). */
  diag: FullCluster['diag'];
  /** The simulated syncs: how many took virtual time, messages delivered and writes applied during one. */
  syncs: SyncCounts;
  /** Snapshots installed and refused ({@link FullCluster.snapshots}). */
  snapshots: FullCluster['snapshots'];
  /** The run's trace, history and final state: equal for two runs of one seed. */
  fingerprint: string;
}

/** An acknowledged write of one key: its value and the version the engine answered. */
interface Acked {
  key: string;
  value: string;
  version: number;
}

/** Failures that are an answer (the command was applied, or definitely not). */
const DEFINITE = new Set(['CONDITION_FAILED']);

/**
 * Clients: each issues one operation at a time on a random running member. A write carries the
 * client's `(clientId, seq)`; when it fails without an answer (member down, no leader, timeout)
 * it is sent again with the same pair — to any member — up to 4 more times, and recorded as
 * indeterminate (`ret = ∞`) if none answers. Reads go through the member's linearizable barrier
 * (ReadIndex), then read its engine.
 */
export class Clients {
  readonly history: KvOp[] = [];
  readonly acked: Acked[] = [];
  readonly stats = { reads: 0, writes: 0, retries: 0, replayed: 0, conditionFailed: 0, indeterminate: 0, refusedReads: 0 };
  private running = true;
  private outstanding = 0;

  constructor(private readonly c: FullCluster, private readonly clients: number, private readonly thinkMs: number) {
    for (let cl = 1; cl <= clients; cl++) c.sim.schedule(c.sim.rand.int(thinkMs + 1), () => this.next(cl, 1));
  }

  stop(): void {
    this.running = false;
  }

  idle(): boolean {
    return this.outstanding === 0;
  }

  private next(client: number, seq: number): void {
    if (!this.running) return;
    const sim = this.c.sim;
    const r = sim.rand;
    const again = (): void => sim.schedule(1 + r.int(this.thinkMs + 1), () => this.next(client, seq + 1));
    const key = KEYS[r.int(KEYS.length)];
    const p = r.float();
    this.outstanding++;
    const done = (): void => { this.outstanding--; again(); };
    if (p < 0.4) { this.read(client, key).finally(done); return; }
    const clientId = `c${client}`;
    const value = `${clientId}.${seq}`;
    const session = { clientId, seq };
    let cmd: WriteCommand;
    /** What the command does to each key for the checker: a value ('' = deleted). */
    let effects: Array<{ key: string; value: string }>;
    if (p < 0.65) {
      cmd = { type: 'put', key: te.encode(key), value: te.encode(value), session };
      effects = [{ key, value }];
    } else if (p < 0.73) {
      cmd = { type: 'delete', key: te.encode(key), session };
      effects = [{ key, value: '' }];
    } else if (p < 0.87) {
      const other = KEYS[(KEYS.indexOf(key) + 1 + r.int(KEYS.length - 1)) % KEYS.length];
      effects = [{ key, value: `${value}.0` }, { key: other, value: `${value}.1` }];
      cmd = { type: 'batch', ops: effects.map((e) => ({ op: 'put' as const, key: te.encode(e.key), value: te.encode(e.value) })), session };
    } else {
      const cond = r.chance(0.5) ? { ifAbsent: true } : { ifVersion: 1 + r.int(6) };
      cmd = { type: 'put', key: te.encode(key), value: te.encode(value), ...cond, session };
      effects = [{ key, value }];
    }
    this.write(client, cmd, effects).finally(done);
  }

  private async read(client: number, key: string): Promise<void> {
    const sim = this.c.sim;
    const up = this.c.up();
    if (up.length === 0) return;
    const m = this.c.members.get(up[sim.rand.int(up.length)])!;
    const { wp, db } = m;
    const call = sim.now;
    try {
      await wp!.readBarrier('linearizable');
      if (m.db !== db) throw new Error('member restarted during the read');
      const v = await db!.get(key);
      this.history.push({ client, kind: 'get', key, call, ret: sim.now, output: v === undefined ? '' : td.decode(v) });
      this.stats.reads++;
    } catch {
      this.stats.refusedReads++; // observed nothing
    }
  }

  private async write(client: number, cmd: WriteCommand, effects: Array<{ key: string; value: string }>): Promise<void> {
    const sim = this.c.sim;
    const call = sim.now;
    let outcome: WriteOutcome | undefined;
    let definite: string | undefined;
    for (let attempt = 0; attempt < 5 && outcome === undefined && definite === undefined; attempt++) {
      if (attempt > 0) {
        this.stats.retries++;
        await new Promise<void>((res) => sim.schedule(20 + sim.rand.int(60), res));
      }
      const up = this.c.up();
      if (up.length === 0) continue;
      const wp = this.c.members.get(up[sim.rand.int(up.length)])!.wp!;
      try {
        outcome = await wp.propose(cmd);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== undefined && DEFINITE.has(code)) definite = code;
        else if (code !== 'UNAVAILABLE') this.c.violation ??= `t=${sim.now}: client ${client} seq ${cmd.session!.seq} failed with ${code ?? ''}: ${(err as Error).message}`;
      }
    }
    if (definite) { this.stats.conditionFailed++; return; }
    if (outcome === undefined) {
      this.stats.indeterminate++;
      for (const e of effects) this.history.push({ client, kind: 'put', key: e.key, value: e.value, call, ret: Infinity });
      return;
    }
    this.stats.writes++;
    if (outcome.replayed) this.stats.replayed++;
    const results = outcome.type === 'batch' ? outcome.results : outcome.type === 'put' || outcome.type === 'delete' ? [outcome.result] : [];
    effects.forEach((e, i) => {
      this.history.push({ client, kind: 'put', key: e.key, value: e.value, call, ret: sim.now });
      if (e.value !== '') this.acked.push({ key: e.key, value: e.value, version: results[i].version });
    });
  }
}

/**
 * In two seeds of five, the membership changes during the faults through the write path's runtime
 * membership (`RaftWritePath.membership()`, what `POST`/`DELETE /v1/cluster/members` call): member
 * `n + 1` is registered (`member add`) and joins as a learner, opened with `join: true` (it learns
 * the log, registry and signer sets from the leader), and is promoted once it caught up; then a
 * random original member — the leader in half the seeds — is removed (asked of another member)
 * and retired. Each step is asked again after a refusal or timeout. Draws come from `mb`, a
 * generator of their own. Returns whether both changes are done, and their state for a failure.
 */
function membershipChanges(c: FullCluster, mb: SeededRand, n: number, count: (k: string) => void): { done: () => boolean; status: () => string } {
  const last: Record<string, string> = {};
  // Answers are acted on in events of their own, never inline (as the clients do): where an
  // answer falls among the settling round's callbacks must not order anything.
  const refused = (step: string, again: () => void) => (err: unknown): void => {
    last[step] = `t=${c.sim.now}: ${(err as Error).message}`;
    c.sim.schedule(50, again);
  };
  /** A running member other than `not` to ask: the leader when it is one, else a random one. */
  const via = (not?: number) => {
    const l = c.leader();
    const up = c.up().filter((id) => id !== not);
    const id = l !== undefined && l !== not ? l : up.length > 0 ? up[mb.int(up.length)] : undefined;
    return id === undefined ? undefined : c.members.get(id)!.wp!.membership()!;
  };
  let joined = false;
  let removed = false;
  const joiner = n + 1;
  c.sim.schedule(200 + mb.int(600), async () => {
    const info = c.addJoiner(joiner);
    await c.start(joiner);
    count('join');
    const promote = (): void => {
      const m = via();
      if (!m) { c.sim.schedule(50, promote); return; }
      m.promote(joiner).then(() => c.sim.schedule(0, () => { joined = true; count('promote'); }), refused('promote', promote));
    };
    const add = (): void => {
      const m = via();
      if (!m) { c.sim.schedule(50, add); return; }
      m.add(info).then(() => c.sim.schedule(0, promote), refused('add', add));
    };
    add();
  });
  /**
   * True when the leader's log holds no set-change checkpoint whose certificate lacks a quorum of
   * its set or of the previous one (`ProofDB.incompleteSetChanges`), and `also` holds there.
   */
  const changesCertified = (also: (db: ProofDB) => boolean = () => true): boolean => {
    const l = c.leader();
    const db = l === undefined ? undefined : c.members.get(l)!.db;
    if (db === undefined) return false;
    try {
      return db.incompleteSetChanges().length === 0 && also(db);
    } catch {
      return false; // nothing certified yet, or closing
    }
  };
  // The removal is asked for as soon as the join is done: while the join's signer-set change is
  // not certified by a quorum of its set and of the set before it, the member refuses it
  // (`MEMBERS_PENDING`, asked again later), so a member that lags behind both changes (or a
  // verifier trusting the first set) can follow each one. The victim is demoted first, and
  // removed by a later request once that change is certified; then it is stopped at once, as an
  // operator would.
  c.sim.schedule(900 + mb.int(500), () => {
    const l = c.leader();
    const victim = l !== undefined && l <= n && mb.chance(0.5) ? l : 1 + mb.int(n);
    const kind = victim === l ? 'remove-leader' : 'remove';
    const retire = async (): Promise<void> => {
      await c.retire(victim);
      removed = true;
      count(kind);
    };
    const remove = (): void => {
      const m = via(victim);
      if (!m || !joined) { c.sim.schedule(50, remove); return; }
      const done = (): void => c.sim.schedule(0, retire);
      // Asked again after a timeout, a removal that did apply is `MEMBERS_NOT_FOUND` (DELETE of a
      // member no longer there): the asked member applied it.
      // A voter is demoted first ('demoted'): it signs the checkpoint that takes it out of the
      // signer set, and is removed when asked again once that change is certified.
      m.remove(victim).then((r) => {
        if (r === 'removed') return done();
        count('demote');
        c.sim.schedule(50, remove);
      }, (err: unknown) => {
        if (err instanceof MembersError && err.code === MembersErrorCode.NotFound) return done();
        if (err instanceof MembersError && err.code === MembersErrorCode.Pending) count('remove-pending');
        refused('remove', remove)(err);
      });
    };
    remove();
  });
  return {
    // Done once every signer-set change is certified by a quorum of its set and of the one before.
    done: () => joined && removed && changesCertified(),
    status: () => JSON.stringify({ joined, removed, last, events: c.trace.filter((t) => !/ certified /.test(t)).slice(-60), snapshots: { ...c.snapshots, refusals: c.snapshots.refusals.slice(0, 3) }, members: c.up().map((id) => ({ member: id, ...c.members.get(id)!.wp!.cluster(), certified: c.members.get(id)!.db!.certification().certifiedSize, incomplete: c.members.get(id)!.db!.incompleteSetChanges(), incompleteAt: c.members.get(id)!.db!.incompleteSetChangeLogIndex(), signers: (() => { try { return c.members.get(id)!.db!.latestCheckpoint().signers?.members.map((m) => m.id); } catch { return undefined; } })(), snapshots: c.members.get(id)!.wp!.snapshotStats() })) }),
  };
}

/** Runs seed `seed`; throws the first violation. */
export async function runFullSeed(seed: number): Promise<FullReport> {
  const boot = new SeededRand(seed ^ 0xf511);
  const n = boot.chance(0.7) ? 3 : 5;
  const net = { drop: [0, 0.01, 0.05][boot.int(3)], dup: [0, 0.02][boot.int(2)], minDelay: 1, maxDelay: 1 + boot.int(6), longDelay: 0.01, longDelayMax: 30 };
  // Log syncs take virtual time in three seeds of four — up to 1, 4 or 8 of the longest network
  // delays, a quarter of them zero — so that messages arrive, commits are learnt and entries are
  // applied to the engine while members sync; in the fourth they complete at once. Drawn from a
  // generator of their own, so every other draw of a seed is what it was before syncs took time.
  const syncSpan = [0, 1, 4, 8][new SeededRand(seed ^ 0x5f5c).int(4)];
  // Membership changes in two seeds of five (membershipChanges; draws of their own).
  const mb = new SeededRand(seed ^ 0x3e3b);
  const membership = mb.chance(0.4);
  // In half the seeds the log keeps only 2 entries behind each certified checkpoint, so that a
  // member far behind (restarted, partitioned) installs a snapshot: the engine's tables of a
  // certified checkpoint, fetched in chunks from another member. With membership changes too: the
  // log then keeps the entries from a set change's checkpoint while its certificate lacks
  // signatures, so that members behind apply and sign it rather than skip it (seeds 57 and 124
  // stranded a member before that hold).
  const compactMargin = new SeededRand(seed ^ 0x5a4f).chance(0.5) ? 2 : undefined;
  const c = await FullCluster.open({
    seed, n, net, compactMargin,
    syncs: { zero: 0.25, maxDelay: syncSpan * net.maxDelay },
    // In a third of the seeds the session store asks for checkpoints after 8 inputs without a flush.
    ...(boot.chance(1 / 3) ? { maxPendingSessionBytes: 8 * SESSION_INPUT_BYTES } : {}),
  });
  const faults: Record<string, number> = {};
  const count = (k: string): void => { faults[k] = (faults[k] ?? 0) + 1; c.trace.push(`${c.sim.now} ${k}`); };
  try {
    const r = c.sim.rand;
    const clients = new Clients(c, 3, 20);
    let running = true;
    // The leader's checkpoint timer, with the server's rule (server/node.ts): a checkpoint command
    // stamped with the (virtual) wall clock when there were writes since the latest certified
    // checkpoint, or when the write path says one is due without them (a signer-set change to
    // record, a certified checkpoint it could not record as its Raft snapshot).
    const checkpoints = (): void => {
      if (!running) return;
      c.sim.schedule(150 + r.int(150), () => {
        if (!running) return;
        const l = c.leader();
        const m = l === undefined ? undefined : c.members.get(l)!;
        if (m?.wp && m.db) {
          const due = writesSinceCheckpoint(m.db) <= 0 ? m.wp.checkpointDue() : undefined;
          if (due) count(`checkpoint-due-${due}`);
          if (due || writesSinceCheckpoint(m.db) > 0) void m.wp.propose({ type: 'checkpoint', time: EPOCH + c.sim.now }).catch(() => undefined);
        }
        checkpoints();
      });
    };
    checkpoints();
    // Every member proposes again its signature on a pending head (the server's cosign timer).
    c.sim.clock.setInterval(() => { for (const id of c.up()) c.members.get(id)!.wp!.resumeCosign(); }, 200);
    // In some seeds every member crashes at once and all restart: retries in flight across it
    // must be answered from the session tables the members rebuild from disk and the log.
    if (boot.chance(0.3)) {
      c.sim.schedule(400 + r.int(800), async () => {
        for (const id of c.up()) await c.crash(id);
        count('crash-all');
        c.sim.schedule(50 + r.int(150), async () => {
          for (const id of c.ids()) await c.start(id);
          count('restart-all');
        });
      });
    }
    const changes = membership ? membershipChanges(c, mb, n, count) : { done: () => true, status: () => 'none' };
    const faultUntil = 1500;
    startNemesis(c, { until: faultUntil, maxDown: (n) => Math.floor((n - 1) / 2), restartMin: 50, restartSpan: 400, periodMin: 100, periodSpan: 200, leaderCrash: 0.3, count });
    await c.sim.runFor(faultUntil);
    c.check();

    // Heal, restart everyone, let the clients and the membership changes finish. The leader's
    // checkpoint timer runs until then; with no writes left it proposes only what the write path
    // says is due (`checkpointDue`): the checkpoint that records a signer-set change, and one after
    // a leader restarted between applying its latest checkpoint and seeing it certified (it could
    // not record that one as its Raft snapshot, and would offer members far behind an older one
    // whose tables it no longer serves).
    c.sim.net.heal();
    clients.stop();
    await c.sim.runFor(500);
    for (const id of c.ids()) await c.start(id);
    if (membership) {
      // An operator's rolling restart after a membership change: each member reopens knowing every
      // member's address, as the updated cluster file gives it. A member that missed the joiner's
      // registration cannot answer the joiner while it leads (its acknowledgements have no address
      // to go to) until it restarts (seed 331 without this). The simulated transport delivers from
      // any sender; over HTTP such a member does not hear the joiner at all, and a restart does not
      // help (docs/replication.md § Weak points, (2)): this restart models less than the real case.
      for (const id of c.ids()) {
        await c.crash(id);
        await c.start(id);
        await c.sim.runFor(50);
      }
      count('rolling-restart');
    }
    if (!(await c.sim.runUntil(() => clients.idle(), 10_000))) throw new Error('clients did not finish');
    if (!(await c.sim.runUntil(() => changes.done(), 10_000))) throw new Error(`membership changes did not finish: ${changes.status()}`);
    running = false;
    c.check();

    // A last checkpoint, certified on every member.
    let final: number | undefined;
    const propose = (): void => {
      const l = c.leader() ?? c.up()[0];
      c.members.get(l)!.wp!.propose({ type: 'checkpoint', time: EPOCH + c.sim.now }).then(
        (o) => { if (o.type === 'checkpoint') final = o.checkpoint.checkpoint.index + 1; },
        () => c.sim.schedule(50, propose),
      );
    };
    propose();
    const certifiedEverywhere = (): boolean => {
      if (final === undefined) return false;
      const l = c.leader();
      if (l === undefined) return false;
      const commit = c.members.get(l)!.wp!.cluster().commit;
      return c.ids().every((id) => {
        const m = c.members.get(id)!;
        const s = m.wp!.cluster();
        // Every checkpoint certified: one the timer proposed just before it stopped may follow the final one.
        const cert = m.db!.certification();
        return s.applied === commit && cert.certifiedSize >= final! && cert.certifiedSize === cert.latestSize;
      });
    };
    if (!(await c.sim.runUntil(certifiedEverywhere, 20_000))) {
      throw new Error(`the final checkpoint (size ${final}) is not certified on every member (snapshots ${JSON.stringify({ ...c.snapshots, refusals: c.snapshots.refusals.slice(0, 3) })}): ${JSON.stringify(c.ids().map((id) => ({ ...c.members.get(id)!.wp!.cluster(), cert: c.members.get(id)!.db!.certification(), failure: String((c.members.get(id)!.wp as unknown as { group: { failure: unknown } }).group.failure ?? ''), fault: String(c.members.get(id)!.db!.writeFault()?.error ?? '') })))}`);
    }
    await c.sim.runFor(100);
    c.check();

    // Every member ends in the same state: certified head, tables, every key's history.
    const states: string[] = [];
    for (const id of c.ids()) {
      const db = c.members.get(id)!.db!;
      const hist: Record<string, unknown> = {};
      for (const k of KEYS) hist[k] = (await db.getVersionHistory(k)).map((e) => `${e.version}/${e.seq}/${e.kind}/${td.decode(e.value)}`);
      // Every checkpoint of the log with the certificate it carries, not only the last one.
      const log: string[] = [];
      for (let i = 0; i < db.certification().latestSize; i++) log.push(certText(db.checkpointAt(i)));
      const tables = db.tables().map((t) => `${t.level}/${t.number}/${t.size}/${Buffer.from(t.root).toString('hex')}`);
      states.push(JSON.stringify({ cert: certText(db.latestCheckpoint()), log, tables, hist, applied: c.members.get(id)!.wp!.cluster().applied }));
    }
    for (let i = 1; i < states.length; i++) {
      if (states[i] !== states[0]) throw new Error(`member ${c.ids()[i]} ends in another state than member ${c.ids()[0]}:\n${states[i]}\n${states[0]}`);
    }
    // The certified head every member ends with is the one recorded when it was first certified.
    const last = c.members.get(c.ids()[0])!.db!.latestCheckpoint();
    const rec = c.certified.get(last.head.size);
    if (!rec || rec.text !== certText(last)) throw new Error(`final head ${last.head.size} differs from its certification`);

    // No acknowledged write is missing; no write (first try or retry) is applied twice.
    const db = c.members.get(c.ids()[0])!.db!;
    const histories = new Map<string, Map<number, string>>();
    for (const k of KEYS) {
      const byVersion = new Map<number, string>();
      const seen = new Set<string>();
      for (const e of await db.getVersionHistory(k)) {
        const v = td.decode(e.value);
        byVersion.set(e.version, e.kind === 'delete' ? '' : v);
        if (e.kind === 'put') {
          if (seen.has(v)) throw new Error(`key ${k}: value ${v} applied twice (a retry applied again)`);
          seen.add(v);
        }
      }
      histories.set(k, byVersion);
    }
    for (const a of clients.acked) {
      const got = histories.get(a.key)!.get(a.version);
      if (got !== a.value) throw new Error(`acknowledged write ${a.key}=${a.value} (version ${a.version}) is missing: version ${a.version} holds ${got}`);
    }
    const lin = checkHistory(clients.history);
    if (lin.ok === false) throw new Error(`not linearizable on key ${lin.badKey}:\n${formatOps(lin.badOps!)}`);
    if (lin.ok !== true) throw new Error(`linearizability check gave up on key ${lin.badKey}`);

    const applied = c.members.get(c.ids()[0])!.wp!.cluster().applied;
    await c.close(); // sums the engine work of the members still running into c.diag
    return {
      diag: c.diag,
      seed, n, faults, stats: clients.stats, ops: clients.history.length, certified: c.certified.size, compared: c.certStats.compared,
      applied, events: c.sim.clock.events, syncs: { ...c.sim.syncs.counts }, snapshots: c.snapshots,
      fingerprint: JSON.stringify({ trace: c.trace, history: clients.history, state: states[0], events: c.sim.clock.events, now: c.sim.now }),
    };
  } finally {
    await c.close();
  }
}

/** {@link runFullSeed}, its error naming the seed and the replay command. */
export async function replayableFull(seed: number): Promise<FullReport> {
  try {
    return await runFullSeed(seed);
  } catch (err) {
    const e = err as Error;
    e.message = `seed ${seed} failed — replay: FULLSIM_SEED=${seed} npx vitest run test/replication/fullstack.test.ts\n${e.message}`;
    throw e;
  }
}
