/**
 * Focused tests of the features beyond the paper's core: PreVote and CheckQuorum, fast
 * backtracking, pipelining with an inflight window, chunked InstallSnapshot, ReadIndex,
 * leadership transfer and single-step membership changes with learners.
 */

import { describe, expect, test } from 'vitest';
import { RawNode, type Ready } from '../../src/raft/rawnode.js';
import { SeededRand } from '../../src/raft/rand.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import { ProgressState } from '../../src/raft/progress.js';
import {
  ConfChangeType, EntryType, MessageType, RaftErrorCode, StateType, encodeConfChange, isRaftError,
} from '../../src/raft/types.js';
import type { Message } from '../../src/raft/types.js';
import type { Raft } from '../../src/raft/raft.js';
import { Cluster } from './sim/cluster.js';
import { KvApp } from './sim/kv.js';
import { Network, allEntries, it, msg, newTestRaft, persist, readMessages, storageWithTerms } from './helpers.js';

const enc = new TextEncoder();

/** A two-member storage whose log held entries 1..`n` (term 1), compacted behind a snapshot at `n` holding `data`. */
function snapshotStorage(n: number, data: string): MemoryStorage {
  const s = MemoryStorage.withPeers([1, 2]);
  s.append(Array.from({ length: n }, (_, i) => ({ index: i + 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) })));
  s.createSnapshot(n, { voters: [1, 2], learners: [] }, enc.encode(data));
  s.compact(n);
  return s;
}

/** Counts the snapshot chunks follower `f` is given. */
function countChunks(f: Raft): { n: number } {
  const c = { n: 0 };
  const step = f.step.bind(f);
  f.step = (m) => { if (m.type === MessageType.Snap) c.n++; step(m); };
  return c;
}

function dropped(fn: () => void): boolean {
  try { fn(); } catch (e) { return isRaftError(e, RaftErrorCode.ProposalDropped); }
  return false;
}

describe('PreVote and CheckQuorum', () => {
  test('an isolated node does not inflate its term with pre-vote, and rejoins without disruption', () => {
    const n = new Network([undefined, undefined, undefined], { preVote: true, checkQuorum: true });
    n.campaign(1);
    const term = n.get(1).term;
    n.isolate(3);
    for (let i = 0; i < 100; i++) n.get(3).tick();
    n.send(...readMessages(n.get(3)));
    expect(n.get(3).term).toBe(term);
    expect(n.get(3).state).toBe(StateType.PreCandidate);
    n.recover();
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(n.get(1).state).toBe(StateType.Leader);
    expect(n.get(1).term).toBe(term);
    expect(n.get(3).state).toBe(StateType.Follower);
  });

  test('without pre-vote the same isolated node bumps its term and disrupts the leader on return', () => {
    const n = new Network([undefined, undefined, undefined], { preVote: false, checkQuorum: false });
    n.campaign(1);
    const term = n.get(1).term;
    n.isolate(3);
    for (let i = 0; i < 100; i++) { n.get(3).tick(); readMessages(n.get(3)); }
    expect(n.get(3).term).toBeGreaterThan(term);
    n.recover();
    // Its next vote request carries the inflated term: the leader is deposed.
    while (n.get(3).msgs.length === 0) n.get(3).tick();
    n.send(...readMessages(n.get(3)));
    expect(n.get(1).term).toBeGreaterThan(term);
    expect(n.get(1).term).toBeGreaterThanOrEqual(n.get(3).term - 1);
  });

  test('a leader without an active quorum steps down after an election timeout', () => {
    const r = newTestRaft(1, [1, 2, 3], { checkQuorum: true, election: 10 });
    r.becomeCandidate();
    r.becomeLeader();
    // One follower answers during the first election timeout: with the leader, a quorum.
    for (let i = 0; i < 10; i++) {
      r.step(msg({ type: MessageType.HeartbeatResp, from: 2, to: 1, term: r.term }));
      r.tick();
      readMessages(r);
    }
    expect(r.state).toBe(StateType.Leader);
    // Nobody answers during the next one.
    for (let i = 0; i < 10; i++) { r.tick(); readMessages(r); }
    expect(r.state).toBe(StateType.Follower);
  });

  test('a follower in its leader lease ignores vote requests', () => {
    const r = newTestRaft(1, [1, 2, 3], { checkQuorum: true });
    r.becomeFollower(1, 2);
    r.step(msg({ type: MessageType.Vote, from: 3, to: 1, term: 2, index: 10, logTerm: 5 }));
    expect(r.term).toBe(1);
    expect(readMessages(r)).toEqual([]);
    // ... unless the request is part of a leadership transfer.
    r.step(msg({ type: MessageType.Vote, from: 3, to: 1, term: 2, index: 10, logTerm: 5, force: true }));
    expect(r.term).toBe(2);
    expect(readMessages(r).map((m) => [m.type, m.reject])).toEqual([[MessageType.VoteResp, false]]);
  });

  test('a stale leader learns the new term from its followers and steps down', () => {
    const r = newTestRaft(1, [1, 2, 3], { checkQuorum: true });
    r.becomeFollower(3, 2);
    r.step(msg({ type: MessageType.Heartbeat, from: 3, to: 1, term: 2 }));
    const ms = readMessages(r);
    expect(ms.map((m) => [m.type, m.to, m.term])).toEqual([[MessageType.AppResp, 3, 3]]);
  });
});

describe('replication', () => {
  test('fast backtracking skips a whole divergent term per round trip', () => {
    // Leader: terms 1 x5 then 4 x5. Follower: terms 1 x5 then 2 x50 (a long stale suffix).
    const lead = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 1, 1, 1, 1, 4, 4, 4, 4, 4]) });
    lead.term = 5;
    const follower = newTestRaft(2, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 1, 1, 1, 1, ...Array(50).fill(2)]) });
    follower.term = 5;
    const third = newTestRaft(3, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 1, 1, 1, 1, 4, 4, 4, 4, 4]) });
    third.term = 5;
    const n = new Network([lead, follower, third]);
    let rejects = 0;
    const step = follower.step.bind(follower);
    follower.step = (m) => { step(m); for (const x of follower.msgs) if (x.type === MessageType.AppResp && x.reject) rejects++; };
    n.campaign(1);
    n.propose(1, 'z');
    expect(it(allEntries(follower))).toEqual(it(allEntries(lead)));
    expect(rejects).toBeLessThanOrEqual(2);
  });

  test('the leader pipelines appends up to the inflight window, then pauses', () => {
    const r = newTestRaft(1, [1, 2], { maxInflight: 3, maxSizePerMsg: 0 });
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    readMessages(r);
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: r.term, index: 1 }));
    expect(r.prs.progress.get(2)!.state).toBe(ProgressState.Replicate);
    readMessages(r);
    for (let i = 0; i < 5; i++) r.step(msg({ type: MessageType.Prop, from: 1, to: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: enc.encode(`p${i}`) }] }));
    const apps = readMessages(r).filter((m) => m.type === MessageType.App);
    expect(apps.length).toBe(3);
    expect(r.prs.progress.get(2)!.inflights.full()).toBe(true);
    // One ack frees room for one more message (carrying everything not yet sent).
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: r.term, index: apps[0].index + 1 }));
    const more = readMessages(r).filter((m) => m.type === MessageType.App);
    expect(more.length).toBe(1);
    expect(new TextDecoder().decode(more[0].entries[0].data)).toBe('p3');
    expect(r.prs.progress.get(2)!.inflights.full()).toBe(true);
  });

  test('a follower behind the first index receives the snapshot in chunks', () => {
    const data = enc.encode('0123456789abcdefghij'); // 20 bytes
    const lead = newTestRaft(1, [1, 2], { storage: snapshotStorage(5, '0123456789abcdefghij'), snapshotChunkSize: 6 });
    lead.term = 1;
    const f = newTestRaft(2, [1, 2]);
    const n = new Network([lead, f]);
    const chunks = countChunks(f);
    n.campaign(1);
    expect(lead.state).toBe(StateType.Leader);
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(chunks.n).toBe(4); // 6 + 6 + 6 + 2
    expect((f.raftLog.storage as MemoryStorage).snapshot().data).toEqual(data);
    expect(f.raftLog.committed).toBe(lead.raftLog.committed);
    expect(lead.prs.progress.get(2)!.state).toBe(ProgressState.Replicate);
  });

  test('a lost chunk is resent on the next heartbeat response', () => {
    const lead = newTestRaft(1, [1, 2], { storage: snapshotStorage(3, 'abcdefghijkl'), snapshotChunkSize: 4 });
    lead.term = 1;
    const f = newTestRaft(2, [1, 2]);
    const n = new Network([lead, f]);
    n.ignore(MessageType.Snap);
    n.campaign(1);
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(f.raftLog.committed).toBe(0);
    n.recover();
    for (let i = 0; i < 4; i++) n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(f.raftLog.committed).toBe(lead.raftLog.committed);
  });

  /**
   * A leader whose `snapshotToSend` gives a new version of the stored snapshot's data at every
   * call (`vN` padded to the stored length), and a follower; the calls are counted.
   */
  function refreshing(chunk: number, stored: string): { lead: Raft; f: Raft; n: Network; versions: string[] } {
    const versions: string[] = [];
    const lead = newTestRaft(1, [1, 2], {
      storage: snapshotStorage(3, stored), snapshotChunkSize: chunk,
      snapshotToSend: (snap) => {
        const v = `v${versions.length + 1}`.padEnd(snap.data.length, String(versions.length + 1));
        versions.push(v);
        return { metadata: snap.metadata, data: enc.encode(v) };
      },
    });
    lead.term = 1;
    const f = newTestRaft(2, [1, 2]);
    return { lead, f, n: new Network([lead, f]), versions };
  }

  /** The snapshot data follower `f` installed, as text. */
  const installed = (f: Raft) => new TextDecoder().decode((f.raftLog.storage as MemoryStorage).snapshot().data);

  /** {@link refreshing}'s first transfer lost, then `beats` heartbeats delivered: the versions made and the one installed. */
  function lostOnce(chunk: number, beats: number): { versions: string[]; got: string } {
    const { lead, f, n, versions } = refreshing(chunk, 'abcdefghijkl');
    n.ignore(MessageType.Snap);
    n.campaign(1);
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(f.raftLog.committed).toBe(0);
    n.recover();
    for (let i = 0; i < beats; i++) n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(f.raftLog.committed).toBe(lead.raftLog.committed);
    return { versions, got: installed(f) };
  }

  test('a transfer sends what snapshotToSend gives, one version from the first chunk to the last', () => {
    const { lead, f, n, versions } = refreshing(4, 'abcdefghijkl');
    n.campaign(1);
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(versions).toEqual(['v11111111111']);
    expect(installed(f)).toBe(versions[0]);
    expect(f.raftLog.committed).toBe(lead.raftLog.committed);
  });

  test('a chunk lost mid-transfer is sent again from the same version', () => {
    const { versions, got } = lostOnce(4, 4);
    // The follower may hold a first chunk the leader does not know it has: a second version
    // would mix with it, so a transfer of several chunks is not taken afresh on a resend.
    expect(versions).toEqual(['v11111111111']);
    expect(got).toBe(versions[0]);
  });

  test('a one-chunk snapshot sent again is taken afresh (it arrives whole or not at all)', () => {
    const { versions, got } = lostOnce(64, 1);
    expect(versions.length).toBeGreaterThan(1);
    expect(got).toBe(versions.at(-1));
  });

  test('a transfer the follower asks to start again is taken afresh', () => {
    const { lead, f, n, versions } = refreshing(4, 'abcdefghijkl');
    // The follower takes the first chunk, then loses it (a restart): the next chunk is out of order.
    const step = f.step.bind(f);
    let seen = 0;
    f.step = (m) => {
      if (m.type === MessageType.Snap && ++seen === 2) (f as unknown as { incoming: unknown }).incoming = undefined;
      step(m);
    };
    n.campaign(1);
    expect(f.raftLog.committed).toBe(lead.raftLog.committed);
    expect(versions).toEqual(['v11111111111', 'v22222222222']);
    expect(installed(f)).toBe(versions[1]);
  });

  test('a snapshot the application cannot send now is not sent, and is asked for again at the next heartbeat', () => {
    let ready = false;
    let asked = 0;
    const lead = newTestRaft(1, [1, 2], { storage: snapshotStorage(3, 'abcdefghijkl'), snapshotChunkSize: 4, snapshotToSend: (snap) => (asked++, ready ? snap : undefined) });
    lead.term = 1;
    const f = newTestRaft(2, [1, 2]);
    const n = new Network([lead, f]);
    const chunks = countChunks(f);
    n.campaign(1);
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(chunks.n).toBe(0);
    expect(asked).toBeGreaterThan(1);
    expect(f.raftLog.committed).toBe(0);
    ready = true;
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(chunks.n).toBe(3);
    expect(installed(f)).toBe('abcdefghijkl');
    expect(f.raftLog.committed).toBe(lead.raftLog.committed);
  });

  test('snapshotToSend must keep the snapshot it is given', () => {
    const lead = newTestRaft(1, [1, 2], { storage: snapshotStorage(3, 'abc'), snapshotToSend: (snap) => ({ metadata: { ...snap.metadata, index: 2 }, data: snap.data }) });
    lead.term = 1;
    const n = new Network([lead, newTestRaft(2, [1, 2])]);
    expect(() => n.campaign(1)).toThrow(/snapshotToSend must keep/);
  });
});

describe('ReadIndex', () => {
  test('a new leader serves reads only after committing an entry of its term', () => {
    const n = new Network([undefined, undefined, undefined]);
    n.ignore(MessageType.App);
    n.campaign(1);
    const r = n.get(1);
    expect(r.state).toBe(StateType.Leader);
    n.send(msg({ type: MessageType.ReadIndex, from: 1, to: 1, context: enc.encode('r1') }));
    expect(r.readStates).toEqual([]);
    n.recover();
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(r.readStates.map((s) => [s.index, new TextDecoder().decode(s.requestCtx)])).toEqual([[r.raftLog.committed, 'r1']]);
  });

  test('a read needs a heartbeat quorum; a follower gets its read index from the leader', () => {
    const n = new Network([undefined, undefined, undefined]);
    n.campaign(1);
    n.propose(1, 'a');
    n.isolate(1);
    n.send(msg({ type: MessageType.ReadIndex, from: 1, to: 1, context: enc.encode('lonely') }));
    expect(n.get(1).readStates).toEqual([]); // cut off: cannot confirm leadership
    n.recover();
    // A follower's request confirms itself in a group of three voters (the leader and the
    // follower are a quorum, both in the leader's term after the read began): answered at once,
    // without a heartbeat round, while the round of 'lonely' is still in flight (its heartbeats
    // were lost) ...
    const rounds = n.get(1).readRounds;
    n.send(msg({ type: MessageType.ReadIndex, from: 2, to: 2, context: enc.encode('f') }));
    expect(n.get(2).readStates.map((s) => s.index)).toEqual([n.get(1).raftLog.committed]);
    expect(n.get(1).readRounds).toBe(rounds);
    // ... which 'f' does not confirm: 'lonely' waits for the round the heartbeat tick resends.
    expect(n.get(1).readStates).toEqual([]);
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(n.get(1).readStates.map((s) => new TextDecoder().decode(s.requestCtx))).toEqual(['lonely']);
  });

  test('a follower states its term on its own forwarded request, and nothing (0) on one it relays for another member', () => {
    const n = new Network([undefined, undefined, undefined]);
    n.campaign(1);
    const f = n.get(2);
    f.step(msg({ type: MessageType.ReadIndex, from: 2, to: 2, context: enc.encode('own') }));
    f.step(msg({ type: MessageType.ReadIndex, from: 3, to: 2, logTerm: f.term, context: enc.encode('relayed') }));
    const out = readMessages(f).filter((m) => m.type === MessageType.ReadIndex);
    expect(out.map((m) => [m.from, m.to, new TextDecoder().decode(m.context), m.logTerm])).toEqual([[2, 1, 'own', f.term], [3, 1, 'relayed', 0]]);
  });

  test('in a group of five, a stale leader and one follower cut off from a majority that elected a new leader and committed a write answer no read', () => {
    const n = new Network([undefined, undefined, undefined, undefined, undefined]);
    n.campaign(1);
    n.propose(1, 'a');
    const oldTerm = n.get(1).term;
    for (const a of [1, 2]) for (const b of [3, 4, 5]) n.cut(a, b);
    n.campaign(3);
    expect(n.get(3).state).toBe(StateType.Leader);
    n.propose(3, 'b');
    expect(n.get(3).raftLog.committed).toBeGreaterThan(n.get(1).raftLog.committed);
    // 1 still leads the old term (no CheckQuorum here) and 2 still follows it: both in one term,
    // but two of five are no quorum, so 2's request must take a heartbeat round, which fails.
    expect([n.get(1).state, n.get(1).term, n.get(2).lead, n.get(2).term]).toEqual([StateType.Leader, oldTerm, 1, oldTerm]);
    n.send(msg({ type: MessageType.ReadIndex, from: 2, to: 2, context: enc.encode('stale') }));
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(n.get(2).readStates).toEqual([]);
    expect(n.get(1).readStates).toEqual([]);
  });

  /** A leader of [1, 2, 3] in `term` whose no-op entry is committed (it serves reads). */
  function readyLeader(term = 1): Raft {
    const r = newTestRaft(1, [1, 2, 3]);
    for (let t = 0; t < term; t++) r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    for (const id of [2, 3]) r.step(msg({ type: MessageType.AppResp, from: id, to: 1, term: r.term, index: r.raftLog.lastIndex() }));
    persist(r);
    readMessages(r);
    return r;
  }
  const beats = (ms: Message[]) => ms.filter((m) => m.type === MessageType.Heartbeat);
  const ctxOf = (m: Message) => new TextDecoder().decode(m.context);
  const ack = (r: Raft, from: number, ctx: string) =>
    r.step(msg({ type: MessageType.HeartbeatResp, from, to: 1, term: r.term, context: enc.encode(ctx) }));

  test('one round in flight at a time: requests of this member and of followers that arrive meanwhile share the next round', () => {
    const r = readyLeader();
    const commit0 = r.raftLog.committed;
    r.step(msg({ type: MessageType.ReadIndex, from: 1, to: 1, context: enc.encode('a') }));
    const first = beats(readMessages(r));
    expect(first.map((m) => [m.to, ctxOf(m)])).toEqual([[2, 'a'], [3, 'a']]);
    expect(r.readRounds).toBe(1);
    // Arriving while round 'a' is in flight: a local read and two reads forwarded by followers.
    r.step(msg({ type: MessageType.ReadIndex, from: 1, to: 1, context: enc.encode('b') }));
    r.step(msg({ type: MessageType.ReadIndex, from: 2, to: 1, context: enc.encode('f2') }));
    r.step(msg({ type: MessageType.ReadIndex, from: 3, to: 1, context: enc.encode('f3') }));
    expect(beats(readMessages(r))).toEqual([]); // no round per request
    // Round 'a' confirmed by a quorum (1 and 2): 'a' is answered, and one round starts for all the rest.
    ack(r, 2, 'a');
    expect(r.readStates.map((s) => [ctxOf({ context: s.requestCtx } as Message), s.index])).toEqual([['a', commit0]]);
    r.readStates = [];
    const second = readMessages(r);
    expect(beats(second).map((m) => [m.to, ctxOf(m)])).toEqual([[2, 'f3'], [3, 'f3']]);
    expect(second.filter((m) => m.type === MessageType.ReadIndexResp)).toEqual([]);
    expect(r.readRounds).toBe(2);
    // A late ack of round 'a' confirms nothing queued after it.
    ack(r, 3, 'a');
    expect(r.readStates).toEqual([]);
    expect(readMessages(r).filter((m) => m.type === MessageType.ReadIndexResp || m.type === MessageType.Heartbeat)).toEqual([]);
    // One ack of the newest confirms the whole second round: the local read and both followers'.
    ack(r, 3, 'f3');
    expect(r.readStates.map((s) => ctxOf({ context: s.requestCtx } as Message))).toEqual(['b']);
    const answers = readMessages(r).filter((m) => m.type === MessageType.ReadIndexResp);
    expect(answers.map((m) => [m.to, ctxOf(m), m.index])).toEqual([[2, 'f2', commit0], [3, 'f3', commit0]]);
    expect(r.readRounds).toBe(2);
  });

  test('a read that arrived after a round started is never confirmed by that round, even if its heartbeats are lost and retried by a tick', () => {
    const r = readyLeader();
    r.step(msg({ type: MessageType.ReadIndex, from: 1, to: 1, context: enc.encode('a') }));
    readMessages(r); // round 'a' lost
    r.step(msg({ type: MessageType.ReadIndex, from: 2, to: 1, context: enc.encode('f') }));
    expect(beats(readMessages(r))).toEqual([]);
    ack(r, 2, 'a');
    ack(r, 3, 'a'); // both ack 'a' (sent before 'f' arrived): only 'a' is answered
    expect(r.readStates.map((s) => ctxOf({ context: s.requestCtx } as Message))).toEqual(['a']);
    const out = readMessages(r);
    expect(out.filter((m) => m.type === MessageType.ReadIndexResp)).toEqual([]);
    expect(beats(out).map((m) => ctxOf(m))).toEqual(['f', 'f']);
    // The round for 'f' is lost too: the heartbeat tick resends it with the newest read.
    r.step(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    expect(beats(readMessages(r)).map((m) => ctxOf(m))).toEqual(['f', 'f']);
    ack(r, 2, 'f');
    expect(readMessages(r).filter((m) => m.type === MessageType.ReadIndexResp).map((m) => [m.to, ctxOf(m)])).toEqual([[2, 'f']]);
  });

  test('a forwarded request confirms itself only with the leader\'s own term stated, and confirms nothing queued before it', () => {
    const r = readyLeader(2);
    const commit0 = r.raftLog.committed;
    r.step(msg({ type: MessageType.ReadIndex, from: 1, to: 1, context: enc.encode('a') }));
    expect(beats(readMessages(r)).map((m) => ctxOf(m))).toEqual(['a', 'a']);
    // No term stated (a relayed request, or an older member's), a later term, an earlier one: queued for a round.
    r.step(msg({ type: MessageType.ReadIndex, from: 2, to: 1, logTerm: 0, context: enc.encode('none') }));
    r.step(msg({ type: MessageType.ReadIndex, from: 3, to: 1, logTerm: r.term + 1, context: enc.encode('later') }));
    r.step(msg({ type: MessageType.ReadIndex, from: 2, to: 1, logTerm: r.term - 1, context: enc.encode('earlier') }));
    expect(readMessages(r)).toEqual([]);
    // The leader's own term stated: answered at once, with no round of its own.
    r.step(msg({ type: MessageType.ReadIndex, from: 3, to: 1, logTerm: r.term, context: enc.encode('now') }));
    expect(readMessages(r).map((m) => [m.type, m.to, ctxOf(m), m.index])).toEqual([[MessageType.ReadIndexResp, 3, 'now', commit0]]);
    expect(r.readRounds).toBe(1);
    // It confirmed none of those queued before it: 'a' needs its round's ack, the rest the next round.
    expect(r.readStates).toEqual([]);
    ack(r, 2, 'a');
    expect(r.readStates.map((s) => ctxOf({ context: s.requestCtx } as Message))).toEqual(['a']);
    const next = readMessages(r);
    expect(next.filter((m) => m.type === MessageType.ReadIndexResp)).toEqual([]);
    expect(beats(next).map((m) => ctxOf(m))).toEqual(['earlier', 'earlier']);
    ack(r, 3, 'earlier');
    expect(readMessages(r).filter((m) => m.type === MessageType.ReadIndexResp).map((m) => ctxOf(m))).toEqual(['none', 'later', 'earlier']);
  });

  test('a follower without a leader refuses reads', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    expect(dropped(() => r.step(msg({ type: MessageType.ReadIndex, from: 1, to: 1, context: enc.encode('x') })))).toBe(true);
  });
});

describe('leadership transfer', () => {
  test('the transferee is brought up to date and then elected at once', () => {
    const n = new Network([undefined, undefined, undefined], { preVote: true, checkQuorum: true });
    n.campaign(1);
    n.isolate(3);
    n.propose(1, 'a');
    n.recover();
    const term = n.get(1).term;
    n.send(msg({ type: MessageType.TransferLeader, from: 3, to: 1 }));
    expect(n.get(3).state).toBe(StateType.Leader);
    expect(n.get(3).term).toBe(term + 1);
    expect(n.get(1).state).toBe(StateType.Follower);
    expect(it(allEntries(n.get(3))).slice(0, -1)).toEqual(it(allEntries(n.get(1))).slice(0, -1));
  });

  test('proposals are dropped while a transfer is in progress, and the transfer times out', () => {
    const r = newTestRaft(1, [1, 2, 3], { election: 10 });
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    r.step(msg({ type: MessageType.TransferLeader, from: 2, to: 1 }));
    expect(r.leadTransferee).toBe(2);
    expect(dropped(() => r.step(msg({ type: MessageType.Prop, from: 1, to: 1, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: enc.encode('x') }] })))).toBe(true);
    for (let i = 0; i < 10; i++) r.tick();
    expect(r.leadTransferee).toBe(0);
  });
});

describe('membership', () => {
  function ccMsg(type: (typeof ConfChangeType)[keyof typeof ConfChangeType], nodeId: number) {
    return msg({ type: MessageType.Prop, from: 1, to: 1, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange({ type, nodeId }) }] });
  }

  test('only one conf change may be pending', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    // The new leader may not propose until everything up to its election is applied.
    r.raftLog.commitTo(r.raftLog.lastIndex());
    r.raftLog.appliedTo(r.raftLog.lastIndex());
    r.step(ccMsg(ConfChangeType.AddLearner, 4));
    expect(dropped(() => r.step(ccMsg(ConfChangeType.AddLearner, 5)))).toBe(true);
  });

  test('a learner that has not caught up cannot be promoted', () => {
    const r = newTestRaft(1, [1, 2, 3], { learners: [4] });
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    r.raftLog.commitTo(r.raftLog.lastIndex());
    r.raftLog.appliedTo(r.raftLog.lastIndex());
    expect(dropped(() => r.step(ccMsg(ConfChangeType.AddNode, 4)))).toBe(true);
    r.step(msg({ type: MessageType.AppResp, from: 4, to: 1, term: r.term, index: r.raftLog.lastIndex() }));
    r.step(ccMsg(ConfChangeType.AddNode, 4));
    expect(r.pendingConfIndex).toBe(r.raftLog.lastIndex());
  });

  test('learners replicate but neither vote nor count for commit', () => {
    const r = newTestRaft(1, [1], { learners: [2] });
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    expect(r.raftLog.committed).toBe(1); // quorum of the one voter
    const l = newTestRaft(2, [1], { learners: [2] });
    for (let i = 0; i < 100; i++) l.tick();
    expect(l.state).toBe(StateType.Follower); // a learner never campaigns
  });

  test('add a learner, let it catch up, promote it, then remove the leader (simulated cluster)', () => {
    const c = new Cluster({ seed: 11, n: 3, spare: 1, newApp: () => new KvApp(), compactEvery: 20, snapshotChunkSize: 32 });
    const leader = (): number => c.leaders().sort((a, b) => b.term - a.term)[0]?.id ?? 0;
    expect(c.runUntilCond(() => leader() !== 0, 5000)).toBe(true);
    const put = (k: string, v: string, s: number): void => {
      c.withNode(leader(), (rn) => rn.propose(enc.encode(JSON.stringify({ c: 1, s, op: 'put', k, v }))));
      c.runFor(50);
    };
    for (let i = 1; i <= 60; i++) put('k', `v${i}`, i);
    const propose = (type: (typeof ConfChangeType)[keyof typeof ConfChangeType], id: number): boolean =>
      c.withNode(leader(), (rn: RawNode) => rn.proposeConfChange({ type, nodeId: id }));
    c.start(4); // the new server starts empty, outside the group
    expect(propose(ConfChangeType.AddLearner, 4)).toBe(true);
    c.runFor(1000);
    // Node 4 caught up (through a snapshot: the log was compacted) and holds the data.
    const n4 = c.get(4);
    expect(n4.node!.raft.isLearner).toBe(true);
    expect((n4.app as KvApp).kv.get('k')).toBe('v60');
    expect(propose(ConfChangeType.AddNode, 4)).toBe(true);
    c.runFor(500);
    expect(n4.node!.raft.prs.confState()).toEqual({ voters: [1, 2, 3, 4], learners: [] });
    expect(n4.node!.raft.isLearner).toBe(false);
    const old = leader();
    expect(propose(ConfChangeType.RemoveNode, old)).toBe(true);
    c.runFor(3000);
    const now = leader();
    expect(now).not.toBe(0);
    expect(now).not.toBe(old);
    expect(c.get(now).node!.raft.prs.confState().voters).not.toContain(old);
    put('k', 'after', 61);
    c.runFor(500);
    expect((c.get(now).app as KvApp).kv.get('k')).toBe('after');
    c.checkConverged();
  });

  test('the last voter cannot be demoted', () => {
    const r = newTestRaft(1, [1], { learners: [2] });
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    r.raftLog.commitTo(r.raftLog.lastIndex());
    r.raftLog.appliedTo(r.raftLog.lastIndex());
    expect(dropped(() => r.step(ccMsg(ConfChangeType.AddLearner, 1)))).toBe(true);
    // Applied anyway (as a log from elsewhere could hold it), it changes nothing.
    expect(r.applyConfChange({ type: ConfChangeType.AddLearner, nodeId: 1 })).toEqual({ voters: [1], learners: [2] });
  });

  test('a demoted leader steps down and keeps the log as a learner; the others commit without it (simulated cluster)', () => {
    const c = new Cluster({ seed: 12, n: 3, newApp: () => new KvApp() });
    const leader = (): number => c.leaders().sort((a, b) => b.term - a.term)[0]?.id ?? 0;
    expect(c.runUntilCond(() => leader() !== 0, 5000)).toBe(true);
    const put = (k: string, v: string, s: number): void => {
      c.withNode(leader(), (rn) => rn.propose(enc.encode(JSON.stringify({ c: 1, s, op: 'put', k, v }))));
      c.runFor(50);
    };
    for (let i = 1; i <= 10; i++) put('k', `v${i}`, i);
    const old = leader();
    expect(c.withNode(old, (rn: RawNode) => rn.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: old }))).toBe(true);
    c.runFor(3000);
    const now = leader();
    expect(now).not.toBe(0);
    expect(now).not.toBe(old);
    const voters = [1, 2, 3].filter((id) => id !== old);
    for (const id of [1, 2, 3]) expect(c.get(id).node!.raft.prs.confState()).toEqual({ voters, learners: [old] });
    expect(c.get(old).node!.raft.isLearner).toBe(true);
    // It still receives the log, never campaigns, and its vote is not needed.
    put('k', 'after', 11);
    c.runFor(2000);
    expect((c.get(old).app as KvApp).kv.get('k')).toBe('after');
    expect(c.get(old).node!.raft.state).toBe(StateType.Follower);
    c.crash(old);
    put('k', 'without', 12);
    c.runFor(500);
    expect((c.get(now).app as KvApp).kv.get('k')).toBe('without');
  });
});

describe('RawNode', () => {
  test('rejects local messages and responses from unknown peers', () => {
    const rn = new RawNode({ id: 1, storage: MemoryStorage.withPeers([1, 2]), electionTick: 10, heartbeatTick: 1, rand: new SeededRand(1) });
    let e1: unknown;
    try { rn.step(msg({ type: MessageType.Hup, from: 1, to: 1 })); } catch (e) { e1 = e; }
    expect(isRaftError(e1, RaftErrorCode.StepLocalMsg)).toBe(true);
    let e2: unknown;
    try { rn.step(msg({ type: MessageType.AppResp, from: 9, to: 1, term: 1 })); } catch (e) { e2 = e; }
    expect(isRaftError(e2, RaftErrorCode.StepPeerNotFound)).toBe(true);
  });

  test('a Ready carries hard state, entries, messages and committed entries in order', () => {
    const rn = new RawNode({ id: 1, storage: MemoryStorage.withPeers([1]), electionTick: 10, heartbeatTick: 1, rand: new SeededRand(1) });
    const s = rn.raft.raftLog.storage as MemoryStorage;
    rn.campaign();
    let rd = rn.ready();
    expect(rd.softState?.state).toBe(StateType.Leader);
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    expect(it(rd.entries)).toEqual([[1, 1]]);
    expect(rd.committedEntries).toEqual([]); // not committed before it is persisted
    expect(rd.mustSync).toBe(true);
    s.append(rd.entries);
    s.setHardState(rd.hardState!);
    rn.advance(rd);
    rd = rn.ready();
    expect(it(rd.committedEntries)).toEqual([[1, 1]]);
    expect(rd.hardState?.commit).toBe(1);
    rn.advance(rd);
    expect(rn.hasReady()).toBe(false);
  });

  /** A leader of [1, 2, 3] with entries 1-3 persisted and acknowledged by nobody yet. */
  function leaderOfThree(): { rn: RawNode; s: MemoryStorage; persist: (rd: Ready) => void } {
    const s = MemoryStorage.withPeers([1, 2, 3]);
    const rn = new RawNode({ id: 1, storage: s, electionTick: 10, heartbeatTick: 1, rand: new SeededRand(1) });
    const persist = (rd: Ready) => {
      s.append(rd.entries);
      if (rd.hardState) s.setHardState(rd.hardState);
    };
    rn.campaign(); // pre-vote first
    rn.step(msg({ type: MessageType.PreVoteResp, from: 2, to: 1, term: 1 }));
    let rd = rn.ready();
    persist(rd);
    rn.advance(rd);
    rn.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 }));
    rd = rn.ready();
    expect(rd.softState?.state).toBe(StateType.Leader);
    persist(rd);
    rn.advance(rd);
    rn.propose(enc.encode('a'));
    rn.propose(enc.encode('b'));
    rd = rn.ready();
    persist(rd);
    rn.advance(rd);
    expect(rn.raft.raftLog.lastIndex()).toBe(3);
    expect(rn.raft.raftLog.committed).toBe(0);
    return { rn, s, persist };
  }

  test('takeCommitted hands out, while a Ready syncs, the entries a commit learnt meanwhile made appliable, once', () => {
    const { rn, persist } = leaderOfThree();
    rn.propose(enc.encode('c'));
    const rd = rn.ready(); // entry 4, being synced
    expect(it(rd.entries)).toEqual([[4, 1]]);
    expect(rd.committedEntries).toEqual([]);
    // Both followers hold 1-4 before the leader's own sync of 4 is done: 4 commits (a quorum
    // without the leader), but only what this member persisted before the Ready may be applied.
    rn.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 4 }));
    rn.step(msg({ type: MessageType.AppResp, from: 3, to: 1, term: 1, index: 4 }));
    expect(rn.raft.raftLog.committed).toBe(4);
    expect(it(rn.takeCommitted(3))).toEqual([[1, 1], [2, 1], [3, 1]]);
    expect(rn.takeCommitted(3)).toEqual([]); // not twice
    // The appends that carry the new commit index can go now; they are not in the next Ready.
    const apps = rn.takeMessages((m) => m.type === MessageType.App);
    for (const to of [2, 3]) expect(Math.max(...apps.filter((m) => m.to === to).map((m) => m.commit))).toBe(4);
    expect(rn.takeMessages((m) => m.type === MessageType.App)).toEqual([]);
    expect(rn.raft.raftLog.applied).toBe(0); // counted applied only at advance
    persist(rd);
    rn.advance(rd);
    expect(rn.raft.raftLog.applied).toBe(3);
    const next = rn.ready();
    expect(it(next.committedEntries)).toEqual([[4, 1]]); // 1-3 are not handed out again
    persist(next);
    rn.advance(next);
    expect(rn.raft.raftLog.applied).toBe(4);
  });

  test('takeCommitted leaves membership changes, and everything after one, to the Ready path', () => {
    const { rn, persist } = leaderOfThree();
    rn.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 3 }));
    let rd = rn.ready();
    expect(it(rd.committedEntries)).toEqual([[1, 1], [2, 1], [3, 1]]);
    persist(rd);
    rn.advance(rd);
    rn.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
    rn.propose(enc.encode('d'));
    rd = rn.ready();
    expect(it(rd.entries)).toEqual([[4, 1], [5, 1]]);
    persist(rd);
    rn.advance(rd);
    rn.propose(enc.encode('e'));
    rd = rn.ready(); // entry 6 syncing
    rn.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 5 }));
    expect(rn.raft.raftLog.committed).toBe(5);
    expect(rn.takeCommitted(5)).toEqual([]); // 4 is a membership change: 4 and 5 wait for the Ready
    persist(rd);
    rn.advance(rd);
    rd = rn.ready();
    expect(it(rd.committedEntries)).toEqual([[4, 1], [5, 1]]);
    expect(rd.committedEntries[0].type).toBe(EntryType.ConfChange);
    persist(rd);
    rn.propose(enc.encode('f'));
    // The outstanding Ready's committed entries hold a membership change: nothing is taken.
    rn.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 6 }));
    expect(rn.raft.raftLog.committed).toBe(6);
    expect(rn.takeCommitted(6)).toEqual([]);
    rn.advance(rd);
    expect(rn.raft.prs.confState().learners).toEqual([4]);
  });
});
