/**
 * ReplicationGroup, the Raft driver, over a recording state machine: log order, one synced write
 * per Ready for every proposal in it, answers after apply, per-command failures, a fatal failure
 * stopping the group, re-application after the state machine's recorded index at open, and the
 * refusals of unusable state.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfChangeType, EntryType, MessageType, WalStorage, newMessage, type Message, type PersistRequest } from '../../src/raft/index.js';
import { LaterAnswer, MAX_REMOVED_IDS, ReplicationGroup, decodeEntryPayload, encodeEntryPayload, type PeerAddress, type StateMachine, type Transport } from '../../src/replication/index.js';

const te = new TextEncoder();
const td = new TextDecoder();

/** Applies "x" commands by recording them; "fail" rejects; "fatal" is a machine failure. */
class Recorder implements StateMachine<string> {
  applied: Array<[number, string]> = [];
  /** Answer in the same turn (as the engine does) instead of a turn later. */
  immediate = false;
  apply(index: number, command: Uint8Array): Promise<string> {
    const c = td.decode(command);
    if (c === 'fail') return Promise.reject(Object.assign(new Error('refused'), { code: 'REFUSED' }));
    if (c === 'fatal') return Promise.reject(Object.assign(new Error('disk gone'), { code: 'IO_ERROR' }));
    this.applied.push([index, c]);
    if (this.immediate) return Promise.resolve(`${c}@${index}`);
    return new Promise((res) => setImmediate(() => res(`${c}@${index}`)));
  }
  isFatal(err: unknown): boolean {
    return (err as { code?: string }).code === 'IO_ERROR';
  }
}

const dirs: string[] = [];
const groups: Array<ReplicationGroup<string>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const g of groups.splice(0)) await g.close().catch(() => undefined);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-repl-'));
  dirs.push(d);
  return d;
}
async function open(dir: string, sm: StateMachine<string>, appliedIndex = 0) {
  const g = await ReplicationGroup.open(dir, { stateMachine: sm, appliedIndex, tickMs: 5 });
  groups.push(g);
  return g;
}

describe('ReplicationGroup', () => {
  it('frames a proposal id with its command and refuses anything else', () => {
    const p = encodeEntryPayload('abc/7', te.encode('cmd'));
    const d = decodeEntryPayload(p);
    expect(d.id).toBe('abc/7');
    expect(td.decode(d.command)).toBe('cmd');
    expect(() => decodeEntryPayload(Uint8Array.of(9, 0))).toThrow(/not format 1/);
    expect(() => decodeEntryPayload(Uint8Array.of(1, 5, 1))).toThrow(/not format 1/);
    expect(() => encodeEntryPayload('x'.repeat(256), new Uint8Array(0))).toThrow(RangeError);
  });

  it('applies proposals in log order and answers each with its own outcome, after its entry is synced', async () => {
    const syncs: boolean[] = [];
    const save = WalStorage.prototype.save;
    vi.spyOn(WalStorage.prototype, 'save').mockImplementation(function (this: WalStorage, rd: PersistRequest) {
      if (rd.entries.length > 0 || rd.hardState) syncs.push(rd.mustSync !== false);
      return save.call(this, rd);
    });
    const sm = new Recorder();
    const g = await open(tmp(), sm);
    const before = syncs.filter(Boolean).length;
    const outs = await Promise.all(Array.from({ length: 60 }, (_, i) => g.propose(te.encode(`c${i}`))));
    const indexes = sm.applied.map(([i]) => i);
    expect(sm.applied.map(([, c]) => c)).toEqual(Array.from({ length: 60 }, (_, i) => `c${i}`));
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(outs).toEqual(sm.applied.map(([i, c]) => `${c}@${i}`));
    // 60 proposals made in one turn share one Ready, hence one synced write; commit-only Readies are unsynced.
    const synced = syncs.filter(Boolean).length - before;
    expect(synced).toBeGreaterThanOrEqual(1);
    expect(synced).toBeLessThan(5);
    expect(syncs.some((s) => !s)).toBe(true);
    expect(g.status()).toMatchObject({ applied: g.status().lastIndex, commit: g.status().lastIndex, leader: 1 });
  });

  it('a proposal made as the loop ends is not left for the next tick', async () => {
    const sm = new Recorder();
    sm.immediate = true;
    // No tick ever fires: a stranded proposal would hang this test.
    const g = await ReplicationGroup.open(tmp(), { stateMachine: sm, appliedIndex: 0, tickMs: 2 ** 31 - 1 });
    groups.push(g);
    // Each next proposal is made 0..7 microtask hops after the previous answer, so some land
    // between the loop's last look at the queue and the end of its run.
    for (let i = 0; i < 200; i++) {
      expect(await g.propose(te.encode(`s${i}`))).toMatch(new RegExp(`^s${i}@`));
      for (let hop = 0; hop < i % 8; hop++) await null;
    }
    expect(sm.applied).toHaveLength(200);
  });

  it('an entry applied with a LaterAnswer lets the loop go on; its proposer is answered when the answer settles', async () => {
    const sm = new Recorder();
    let finish!: (outcome: string) => void;
    const apply = sm.apply.bind(sm);
    // "later" took effect at once (as a pipelined checkpoint at its freeze); its outcome comes later.
    sm.apply = (index, command) => {
      if (td.decode(command) !== 'later') return apply(index, command);
      sm.applied.push([index, 'later']);
      return Promise.resolve(new LaterAnswer(new Promise<string>((res) => (finish = res)))) as unknown as Promise<string>;
    };
    const g = await open(tmp(), sm);
    let answered: string | undefined;
    const later = g.propose(te.encode('later')).then((o) => (answered = o));
    // Proposals after it are applied and answered (in later Readies) while its answer is pending.
    for (let i = 0; i < 5; i++) expect(await g.propose(te.encode(`n${i}`))).toMatch(new RegExp(`^n${i}@`));
    expect(sm.applied.map(([, c]) => c)).toEqual(['later', 'n0', 'n1', 'n2', 'n3', 'n4']);
    expect(answered).toBeUndefined();
    finish('recorded');
    await later;
    expect(answered).toBe('recorded');
  });

  it('a failing command rejects only its own proposal; a fatal one stops the group', async () => {
    const sm = new Recorder();
    const g = await open(tmp(), sm);
    const [a, b, c] = await Promise.allSettled([g.propose(te.encode('a')), g.propose(te.encode('fail')), g.propose(te.encode('c'))]);
    expect(a).toMatchObject({ status: 'fulfilled' });
    expect(b).toMatchObject({ status: 'rejected', reason: { code: 'REFUSED' } });
    expect(c).toMatchObject({ status: 'fulfilled' });
    await expect(g.propose(te.encode('fatal'))).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE' });
    await expect(g.propose(te.encode('d'))).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE', message: /failed: disk gone/ });
    expect(sm.applied.map(([, x]) => x)).toEqual(['a', 'c']);
  });

  it('at open re-applies exactly the entries after the recorded index, in order', async () => {
    const dir = tmp();
    let sm = new Recorder();
    let g = await open(dir, sm);
    for (let i = 0; i < 10; i++) await g.propose(te.encode(`w${i}`));
    const all = sm.applied.slice();
    await g.close();

    // The state machine says everything up to the 4th command is durable.
    sm = new Recorder();
    g = await open(dir, sm, all[3][0]);
    expect(sm.applied).toEqual(all.slice(4));
    expect(await g.propose(te.encode('next'))).toMatch(/^next@/);
    await g.close();

    // A state machine that lost nothing re-applies nothing.
    sm = new Recorder();
    const last = all[all.length - 1][0] + 2;
    g = await open(dir, sm, last);
    expect(sm.applied).toEqual([]);
    expect(g.status().applied).toBeGreaterThanOrEqual(last);
  });

  it('status() shows a conf change as soon as it counts in the applied index, before the node takes it in', async () => {
    // The state machine sees the group's status while the change is applied (the Raft node takes
    // conf changes in only at `advance`, after the Ready's apply).
    const seen: Array<[string, number, number[]]> = [];
    let g: ReplicationGroup<string> | undefined;
    const sm = new Recorder();
    sm.immediate = true;
    const apply = sm.apply.bind(sm);
    sm.apply = (index, command) => {
      if (g === undefined) return apply(index, command); // replayed while the group opens
      const st = g.status();
      seen.push([td.decode(command), st.applied, st.learners]);
      return apply(index, command);
    };
    (sm as StateMachine<string>).applyConfChange = (index) => {
      if (g === undefined) return; // the bootstrap membership, while the group opens
      const st = g.status();
      seen.push(['conf', st.applied, st.learners]);
      expect(st.applied).toBe(index);
    };
    g = await open(tmp(), sm);
    await g.propose(te.encode('before'));
    await g.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 2 });
    await g.propose(te.encode('after'));
    expect(seen.map(([what]) => what)).toEqual(['before', 'conf', 'after']);
    expect(seen.map(([, , learners]) => learners)).toEqual([[], [2], [2]]);
    expect(g.status()).toMatchObject({ voters: [1], learners: [2] });
  });

  it('refuses a state machine ahead of the log, and a directory of the earlier raft write path', async () => {
    const dir = tmp();
    const g = await open(dir, new Recorder());
    await g.propose(te.encode('x'));
    const last = g.status().lastIndex;
    await g.close();
    await expect(ReplicationGroup.open(dir, { stateMachine: new Recorder(), appliedIndex: last + 1 })).rejects.toMatchObject({ code: 'REPLICATION_BAD_STATE' });
    const old = tmp();
    fs.writeFileSync(path.join(old, 'applied'), new Uint8Array(64));
    await expect(ReplicationGroup.open(old, { stateMachine: new Recorder(), appliedIndex: 0 })).rejects.toMatchObject({ code: 'REPLICATION_BAD_STATE' });
  });

  it('fails queued proposals when closed', async () => {
    const g = await open(tmp(), new Recorder());
    const p = g.propose(te.encode('late'));
    // Observed at once: it may be refused while close runs.
    const settled = p.then(() => 'done', () => 'done');
    const closing = g.close();
    await closing;
    await expect(g.propose(te.encode('after'))).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE' });
    // The proposal made before close was either applied or refused, never left hanging.
    await expect(settled).resolves.toBe('done');
  });
});

/** A transport that records what a member sends and lets the test deliver messages to it. */
class HandTransport implements Transport {
  sent: Message[] = [];
  /** Every send (its message types) and flush, in order. */
  calls: string[] = [];
  deliver: (msgs: Message[]) => void = () => undefined;
  send(messages: readonly Message[]): void {
    this.sent.push(...messages);
    this.calls.push(messages.map((m) => m.type).join(','));
  }
  flush(): void { this.calls.push('flush'); }
  onMessages(handler: (messages: Message[]) => void): void { this.deliver = handler; }
  onUnreachable(): void {}
  /** The group's answer to a sender outside its peer set that named its URL. */
  unknown: ((peer: PeerAddress) => boolean) | undefined;
  onUnknownSender(handler: (peer: PeerAddress) => boolean): void { this.unknown = handler; }
  setPeers(): void {}
  fetchSnapshotChunk(): Promise<Uint8Array> { return Promise.reject(new Error('no snapshots here')); }
  onSnapshotRead(): void {}
  async close(): Promise<void> {}
}

/** Holds every log save that writes entry `index` until `release` (`held` once one waits). */
function holdSaveOf(index: number): { held: boolean; release: () => void } {
  const gates: Array<() => void> = [];
  const h = { held: false, release: () => { for (const g of gates.splice(0)) g(); } };
  const save = WalStorage.prototype.save;
  vi.spyOn(WalStorage.prototype, 'save').mockImplementation(async function (this: WalStorage, rd: PersistRequest, options) {
    if (rd.entries.some((e) => e.index === index)) {
      h.held = true;
      await new Promise<void>((resolve) => gates.push(resolve));
    }
    return save.call(this, rd, options);
  });
  return h;
}

describe('ReplicationGroup, removed members', () => {
  it('refuses the ids its state machine says were removed (read at open), at admission and in inbound messages; the newest MAX_REMOVED_IDS of them', async () => {
    const t = new HandTransport();
    const removed = Array.from({ length: MAX_REMOVED_IDS + 10 }, (_, i) => 100 + i);
    const g = await ReplicationGroup.open(tmp(), {
      stateMachine: new Recorder(), appliedIndex: 0, id: 2, peers: [1, 2, 3].map((id) => ({ id, peerUrl: `http://127.0.0.1:${7100 + id}` })), transport: t, tickMs: 2 ** 31 - 1,
      removedMembers: () => removed,
    });
    const admit = (id: number) => t.unknown!({ id, peerUrl: `http://127.0.0.1:${20000 + id}` });
    expect(admit(removed.at(-1)!)).toBe(false);
    expect(admit(600)).toBe(false);
    // The oldest ten are forgotten past the bound; an id never removed is admitted.
    expect(admit(100)).toBe(true);
    expect(admit(50)).toBe(true);
    // A removed sender's messages are ignored: its vote request moves no term.
    const term = g.status().term;
    t.deliver([newMessage({ type: MessageType.Vote, from: 600, to: 2, term: term + 5, logTerm: 9, index: 99 })]);
    await new Promise((r) => setTimeout(r, 50));
    expect(g.status().term).toBe(term);
    // From a sender that is not removed, the same request moves it.
    t.deliver([newMessage({ type: MessageType.Vote, from: 50, to: 2, term: term + 5, logTerm: 9, index: 99 })]);
    await vi.waitFor(() => expect(g.status().term).toBe(term + 5));
    await g.close();
  });
});

describe('ReplicationGroup, what it has the transport write at once', () => {
  it('a follower\'s acknowledgement of synced entries is flushed at once; a heartbeat\'s answer waits for the end of the turn', async () => {
    const t = new HandTransport();
    const g = await ReplicationGroup.open(tmp(), { stateMachine: new Recorder(), appliedIndex: 0, id: 2, peers: [1, 2, 3].map((id) => ({ id, peerUrl: `http://127.0.0.1:${7100 + id}` })), transport: t, tickMs: 2 ** 31 - 1 });
    groups.push(g);
    const until = async (cond: () => boolean) => {
      const end = Date.now() + 20_000;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 1));
      expect(cond()).toBe(true);
    };
    const entry = { term: 2, index: 4, type: EntryType.Normal, data: encodeEntryPayload('lead/4', te.encode('a')) };
    t.deliver([newMessage({ type: MessageType.App, from: 1, to: 2, term: 2, index: 3, logTerm: 1, entries: [entry], commit: 3 })]);
    await until(() => t.sent.some((m) => m.type === MessageType.AppResp && m.index === 4));
    const ack = t.calls.findIndex((c) => c.includes(MessageType.AppResp));
    expect(t.calls[ack + 1]).toBe('flush');
    t.deliver([newMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 2, commit: 4, context: te.encode('r') })]);
    await until(() => t.sent.some((m) => m.type === MessageType.HeartbeatResp));
    await g.settled();
    const beat = t.calls.findIndex((c) => c.includes(MessageType.HeartbeatResp));
    expect(t.calls.slice(beat + 1)).not.toContain('flush');
  });
});

describe('ReplicationGroup, a proposal made on a follower while it syncs', () => {
  it('is relayed to the leader (and flushed) at once when none of its proposals is in flight, not after the sync; in order; the sync\'s acknowledgement still waits for it', async () => {
    // Member 2 of [1, 2, 3]; the test plays leader 1 (term 2). The bootstrap wrote 1-3 (term 1).
    const sync = holdSaveOf(5);
    const t = new HandTransport();
    const g = await ReplicationGroup.open(tmp(), { stateMachine: new Recorder(), appliedIndex: 0, id: 2, peers: [1, 2, 3].map((id) => ({ id, peerUrl: `http://127.0.0.1:${7100 + id}` })), transport: t, tickMs: 2 ** 31 - 1 });
    groups.push(g);
    const entry = (index: number, c: string) => ({ term: 2, index, type: EntryType.Normal, data: encodeEntryPayload(`lead/${index}`, te.encode(c)) });
    const until = async (cond: () => boolean) => {
      const end = Date.now() + 20_000;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 1));
      expect(cond()).toBe(true);
    };
    t.deliver([newMessage({ type: MessageType.App, from: 1, to: 2, term: 2, index: 3, logTerm: 1, entries: [entry(4, 'a')], commit: 3 })]);
    await until(() => t.sent.some((m) => m.type === MessageType.AppResp && m.index === 4));
    expect(g.status().leader).toBe(1);
    t.deliver([newMessage({ type: MessageType.App, from: 1, to: 2, term: 2, index: 4, logTerm: 2, entries: [entry(5, 'b')], commit: 3 })]);
    await until(() => sync.held);
    // Two proposals while 5 syncs: one relayed message, in order, flushed, before the sync ends.
    void g.propose(te.encode('p1')).catch(() => undefined);
    void g.propose(te.encode('p2')).catch(() => undefined);
    await until(() => t.sent.some((m) => m.type === MessageType.Prop));
    const props = t.sent.filter((m) => m.type === MessageType.Prop);
    expect(props).toHaveLength(1);
    expect(props[0].to).toBe(1);
    expect(props[0].entries.map((e) => td.decode(decodeEntryPayload(e.data).command))).toEqual(['p1', 'p2']);
    const at = t.calls.findIndex((c) => c.includes(MessageType.Prop));
    expect(t.calls[at + 1]).toBe('flush');
    // 5 is still not acknowledged: only the relay went early.
    expect(t.sent.some((m) => m.type === MessageType.AppResp && m.index >= 5)).toBe(false);
    // A third while p1 and p2 are in flight (many clients): it waits for the sync, as before.
    void g.propose(te.encode('p3')).catch(() => undefined);
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(t.sent.filter((m) => m.type === MessageType.Prop)).toHaveLength(1);
    sync.release();
    await until(() => t.sent.some((m) => m.type === MessageType.AppResp && m.index === 5));
    await until(() => t.sent.filter((m) => m.type === MessageType.Prop).length === 2);
    await g.settled();
    // p1 and p2 relayed once (not again after the sync), p3 after it.
    const relayed = t.sent.filter((m) => m.type === MessageType.Prop).map((m) => m.entries.map((e) => td.decode(decodeEntryPayload(e.data).command)));
    expect(relayed).toEqual([['p1', 'p2'], ['p3']]);
  });
});

describe('ReplicationGroup, a commit learnt while it syncs', () => {
  it('a follower applies what it had persisted at once, and acknowledges the entry being synced only after the sync', async () => {
    // Member 2 of [1, 2, 3]; the test plays leader 1 (term 2). The bootstrap wrote 1-3 (term 1).
    const sync = holdSaveOf(6);
    const sm = new Recorder();
    sm.immediate = true;
    const t = new HandTransport();
    const g = await ReplicationGroup.open(tmp(), { stateMachine: sm, appliedIndex: 0, id: 2, peers: [1, 2, 3].map((id) => ({ id, peerUrl: `http://127.0.0.1:${7100 + id}` })), transport: t, tickMs: 2 ** 31 - 1 });
    groups.push(g);
    const entry = (index: number, c: string) => ({ term: 2, index, type: EntryType.Normal, data: encodeEntryPayload(`lead/${index}`, te.encode(c)) });
    const app = (index: number, logTerm: number, entries: ReturnType<typeof entry>[], commit: number) =>
      newMessage({ type: MessageType.App, from: 1, to: 2, term: 2, index, logTerm, entries, commit });
    const acked = (i: number) => t.sent.some((m) => m.type === MessageType.AppResp && !m.reject && m.index >= i);
    // Bounded by wall time, not by turns: the saves are real fdatasyncs, slow on a loaded disk.
    const until = async (cond: () => boolean) => {
      const end = Date.now() + 20_000;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 1));
      expect(cond()).toBe(true);
    };
    t.deliver([app(3, 1, [entry(4, 'a'), entry(5, 'b')], 3)]);
    await until(() => acked(5));
    t.deliver([app(5, 2, [entry(6, 'c')], 3)]);
    await until(() => sync.held);
    // While 6 syncs, the leader's commit of 5 arrives: 4 and 5 (persisted before) apply now.
    t.deliver([app(6, 2, [], 5)]);
    await until(() => sm.applied.length === 2);
    expect(sm.applied).toEqual([[4, 'a'], [5, 'b']]);
    expect(g.status().applied).toBe(5);
    // 6 is not acknowledged before its sync, and not applied even once it is known committed.
    t.deliver([app(6, 2, [], 6)]);
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(acked(6)).toBe(false);
    expect(sm.applied).toHaveLength(2);
    sync.release();
    await until(() => acked(6) && sm.applied.length === 3);
    expect(sm.applied[2]).toEqual([6, 'c']);
    expect(g.status()).toMatchObject({ applied: 6, commit: 6 });
  });
});
