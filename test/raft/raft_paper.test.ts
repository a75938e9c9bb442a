/**
 * Focused tests of the Raft core tied to sentences of the paper (Ongaro & Ousterhout 2014,
 * §5.1–5.4, Figures 7 and 8). Pre-vote and check-quorum are off unless a test says otherwise,
 * so that the behaviour is exactly the paper's.
 */

import { describe, expect, test } from 'vitest';
import { MessageType, StateType, None, RaftErrorCode, isRaftError, type Message } from '../../src/raft/types.js';
import type { Raft } from '../../src/raft/raft.js';
import {
  Network, allEntries, ent, it, msg, nextEnts, newTestRaft, persist, prop, readMessages, storageWithTerms,
} from './helpers.js';

function electLeader(r: Raft): void {
  r.becomeCandidate();
  r.becomeLeader();
  persist(r);
  readMessages(r);
}

function commitNoop(r: Raft): void {
  // Followers acknowledge the leader's no-op entry.
  for (const id of r.prs.voters) {
    if (id !== r.id) r.step(msg({ type: MessageType.AppResp, from: id, to: r.id, term: r.term, index: r.raftLog.lastIndex() }));
  }
  nextEnts(r);
  readMessages(r);
}

describe('§5.1 terms', () => {
  // "If a server's current term is smaller than the other's, it updates its current term to
  // the larger value. If a candidate or leader discovers that its term is out of date, it
  // immediately reverts to follower state."
  test.each([
    ['follower', (r: Raft) => r.becomeFollower(1, 2)],
    ['candidate', (r: Raft) => r.becomeCandidate()],
    ['leader', (r: Raft) => { r.becomeCandidate(); r.becomeLeader(); }],
  ])('a %s updates its term from a message and becomes follower', (_n, setup) => {
    const r = newTestRaft(1, [1, 2, 3]);
    setup(r);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 2 }));
    expect(r.term).toBe(2);
    expect(r.state).toBe(StateType.Follower);
    expect(r.lead).toBe(2);
  });

  // "If a server receives a request with a stale term number, it rejects the request."
  test('a request with a stale term is ignored', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeFollower(2, None);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: [ent(1, 1)] }));
    expect(r.raftLog.lastIndex()).toBe(0);
    expect(readMessages(r)).toEqual([]);
  });
});

describe('§5.2 leader election', () => {
  // "When servers start up, they begin as followers."
  test('starts as follower', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    expect(r.state).toBe(StateType.Follower);
    expect(r.term).toBe(0);
  });

  // "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to all
  // followers in order to maintain their authority."
  test('leader broadcasts heartbeats every heartbeat timeout', () => {
    const r = newTestRaft(1, [1, 2, 3], { heartbeat: 1 });
    electLeader(r);
    r.tick();
    const msgs = readMessages(r).sort((a, b) => a.to - b.to);
    expect(msgs.map((m) => [m.type, m.to, m.term, m.entries.length])).toEqual([
      [MessageType.Heartbeat, 2, 1, 0],
      [MessageType.Heartbeat, 3, 1, 0],
    ]);
  });

  // "If a follower receives no communication over a period of time called the election
  // timeout, then it ... begins an election: it increments its current term and transitions
  // to candidate state. It then votes for itself and issues RequestVote RPCs in parallel."
  test.each([['follower'], ['candidate']])('a %s starts a new election after the election timeout', (who) => {
    const r = newTestRaft(1, [1, 2, 3], { election: 10 });
    if (who === 'candidate') r.becomeCandidate();
    const t0 = r.term;
    for (let i = 0; i < 20; i++) r.tick();
    expect(r.term).toBe(t0 + 1);
    expect(r.state).toBe(StateType.Candidate);
    expect(r.vote).toBe(1);
    const msgs = readMessages(r).filter((m) => m.term === t0 + 1).sort((a, b) => a.to - b.to);
    expect(msgs.map((m) => [m.type, m.to])).toEqual([[MessageType.Vote, 2], [MessageType.Vote, 3]]);
  });

  // "A candidate wins an election if it receives votes from a majority of the servers in the
  // full cluster for the same term."
  test.each([
    [1, new Map<number, boolean>(), StateType.Leader],
    [3, new Map([[2, true], [3, true]]), StateType.Leader],
    [3, new Map([[2, true]]), StateType.Leader],
    [5, new Map([[2, true], [3, true], [4, true], [5, true]]), StateType.Leader],
    [5, new Map([[2, true], [3, true], [4, true]]), StateType.Leader],
    [5, new Map([[2, true], [3, true]]), StateType.Leader],
    [3, new Map([[2, false], [3, false]]), StateType.Follower],
    [5, new Map([[2, false], [3, false], [4, false], [5, false]]), StateType.Follower],
    [5, new Map([[2, true], [3, false], [4, false], [5, false]]), StateType.Follower],
    [3, new Map<number, boolean>(), StateType.Candidate],
    [5, new Map([[2, true]]), StateType.Candidate],
    [5, new Map([[2, false], [3, false]]), StateType.Candidate],
  ])('election in one round: size %i votes %o -> %s', (size, votes, want) => {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const r = newTestRaft(1, ids);
    r.step(msg({ type: MessageType.Hup, from: 1, to: 1 }));
    for (const [id, granted] of votes) {
      r.step(msg({ type: MessageType.VoteResp, from: id, to: 1, term: r.term, reject: !granted }));
    }
    expect(r.state).toBe(want);
    expect(r.term).toBe(1);
  });

  // "Each server will vote for at most one candidate in a given term, on a first-come-first-served basis."
  test.each([
    [None, 2, false], [None, 3, false], [2, 2, false], [3, 3, false], [2, 3, true], [3, 2, true],
  ])('follower with vote %i asked by %i rejects=%s', (vote, from, reject) => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.term = 1;
    r.vote = vote;
    r.step(msg({ type: MessageType.Vote, from, to: 1, term: 1 }));
    const msgs = readMessages(r);
    expect(msgs.map((m) => [m.type, m.to, m.term, m.reject])).toEqual([[MessageType.VoteResp, from, 1, reject]]);
  });

  // "While waiting for votes, a candidate may receive an AppendEntries RPC from another server
  // claiming to be leader. If the leader's term is at least as large as the candidate's current
  // term, then the candidate recognizes the leader as legitimate and returns to follower state."
  test.each([1, 2])('candidate falls back on AppendEntries of term %i', (term) => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.step(msg({ type: MessageType.Hup, from: 1, to: 1 }));
    expect(r.state).toBe(StateType.Candidate);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term }));
    expect(r.state).toBe(StateType.Follower);
    expect(r.term).toBe(term);
  });

  // "Raft uses randomized election timeouts ... chosen randomly from a fixed interval."
  test.each([['follower'], ['candidate']])('%s election timeout is randomized in [et, 2et)', (who) => {
    const et = 10;
    const seen = new Set<number>();
    for (let seed = 1; seed <= 200; seed++) {
      const r = newTestRaft(1, [1, 2, 3], { election: et, seed });
      if (who === 'candidate') r.becomeCandidate();
      const t0 = r.term;
      let ticks = 0;
      while (r.term === t0) { r.tick(); ticks++; }
      expect(ticks).toBeGreaterThanOrEqual(et);
      expect(ticks).toBeLessThan(2 * et);
      seen.add(ticks);
    }
    // Every value of the interval occurs.
    expect(seen.size).toBe(et);
  });

  // "In most cases only a single server will time out."
  test('followers rarely time out together', () => {
    let conflicts = 0;
    const rounds = 1000;
    for (let round = 0; round < rounds; round++) {
      const rs = [1, 2, 3, 4, 5].map((id) => newTestRaft(id, [1, 2, 3, 4, 5], { seed: round * 10 + id }));
      let timedOut = false;
      while (!timedOut) {
        let n = 0;
        for (const r of rs) {
          r.tick();
          if (readMessages(r).length > 0) n++;
        }
        if (n > 0) { timedOut = true; if (n > 1) conflicts++; }
      }
    }
    expect(conflicts / rounds).toBeLessThanOrEqual(0.3);
  });
});

describe('§5.3 log replication', () => {
  // "Once a leader has been elected, it begins servicing client requests. ... The leader
  // appends the command to its log as a new entry, then issues AppendEntries RPCs in parallel
  // to each of the other servers to replicate the entry."
  test('leader starts replication', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    electLeader(r);
    commitNoop(r);
    const li = r.raftLog.lastIndex();
    r.step(prop(1, 'some data'));
    expect(r.raftLog.lastIndex()).toBe(li + 1);
    expect(r.raftLog.committed).toBe(li);
    const msgs = readMessages(r).sort((a, b) => a.to - b.to);
    expect(msgs.map((m) => [m.type, m.to, m.index, m.logTerm, m.commit, it(m.entries)])).toEqual([
      [MessageType.App, 2, li, 1, li, [[li + 1, 1]]],
      [MessageType.App, 3, li, 1, li, [[li + 1, 1]]],
    ]);
    expect(it(r.raftLog.unstableEntries())).toEqual([[li + 1, 1]]);
  });

  // "A log entry is committed once the leader that created the entry has replicated it on a
  // majority of the servers. ... Once the leader has committed it, it applies the entry."
  test('leader commits an entry replicated on a majority and tells followers', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    electLeader(r);
    commitNoop(r);
    const li = r.raftLog.lastIndex();
    r.step(prop(1, 'some data'));
    persist(r);
    for (const m of readMessages(r)) {
      r.step(msg({ type: MessageType.AppResp, from: m.to, to: 1, term: 1, index: m.index + m.entries.length }));
    }
    expect(r.raftLog.committed).toBe(li + 1);
    expect(it(nextEnts(r))).toEqual([[li + 1, 1]]);
    const msgs = readMessages(r).filter((m) => m.type === MessageType.App).sort((a, b) => a.to - b.to);
    expect(msgs.map((m) => [m.to, m.commit])).toEqual([[2, li + 1], [3, li + 1]]);
  });

  test.each([
    [1, [], true], [3, [], false], [3, [2], true], [3, [2, 3], true],
    [5, [], false], [5, [2], false], [5, [2, 3], true], [5, [2, 3, 4], true], [5, [2, 3, 4, 5], true],
  ])('size %i, acks from %o -> committed %s', (size, acks, want) => {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const r = newTestRaft(1, ids);
    electLeader(r);
    commitNoop(r);
    const li = r.raftLog.lastIndex();
    r.step(prop(1, 'some data'));
    persist(r);
    for (const m of readMessages(r)) {
      if ((acks as number[]).includes(m.to)) {
        r.step(msg({ type: MessageType.AppResp, from: m.to, to: 1, term: 1, index: m.index + m.entries.length }));
      }
    }
    expect(r.raftLog.committed > li).toBe(want);
  });

  // "When the leader commits an entry, it also commits all preceding entries in its log,
  // including entries created by previous leaders."
  test.each([[[]], [[2]], [[1, 1]], [[1, 2]], [[1, 1, 2]]])('leader commits preceding entries %o', (terms) => {
    const storage = storageWithTerms([1, 2, 3], terms as number[]);
    const r = newTestRaft(1, [1, 2, 3], { storage });
    r.term = 2;
    r.becomeCandidate();
    r.becomeLeader();
    r.step(prop(1, 'some data'));
    persist(r);
    for (const m of readMessages(r)) {
      r.step(msg({ type: MessageType.AppResp, from: m.to, to: 1, term: 3, index: m.index + m.entries.length }));
    }
    const li = (terms as number[]).length;
    const got = it(nextEnts(r));
    expect(got).toEqual([...(terms as number[]).map((t, i) => [i + 1, t]), [li + 1, 3], [li + 2, 3]]);
  });

  // "Once a follower learns that a log entry is committed, it applies the entry to its local
  // state machine (in log order)."
  test.each([
    [[ent(1, 1, 'a')], 1],
    [[ent(1, 1, 'a'), ent(2, 1, 'b')], 2],
    [[ent(1, 1, 'a'), ent(2, 1, 'b')], 1],
  ])('follower commits entries %#', (ents, commit) => {
    const r = newTestRaft(1, [1, 2, 3]);
    r.becomeFollower(1, 2);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: ents, commit }));
    expect(r.raftLog.committed).toBe(commit);
    expect(it(nextEnts(r))).toEqual(it(ents.slice(0, commit)));
  });

  // "When sending an AppendEntries RPC, the leader includes the index and term of the entry in
  // its log that immediately precedes the new entries. If the follower does not find an entry
  // in its log with the same index and term, then it refuses the new entries."
  test.each([
    // [term, index, wantIndex, wantReject, wantRejectHint, wantLogTerm]
    [0, 0, 1, false, 0, 0],
    [1, 1, 1, false, 0, 0],
    [2, 2, 2, false, 0, 0],
    [1, 2, 2, true, 1, 1], // term mismatch: hint at the last index whose term <= 1
    [3, 3, 3, true, 2, 2], // beyond the log: hint at our last entry
  ])('follower consistency check at (term %i, index %i)', (term, index, wantIndex, reject, hint, logTerm) => {
    const storage = storageWithTerms([1, 2, 3], [1, 2]);
    const r = newTestRaft(1, [1, 2, 3], { storage });
    r.raftLog.commitTo(1);
    r.becomeFollower(2, 2);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 2, logTerm: term, index, commit: 1 }));
    const msgs = readMessages(r);
    expect(msgs.map((m) => [m.type, m.index, m.reject, m.rejectHint, m.logTerm])).toEqual([
      [MessageType.AppResp, wantIndex, reject, hint, logTerm],
    ]);
  });

  // "If an existing entry conflicts with a new one (same index but different terms), delete
  // the existing entry and all that follow it; append any new entries not already in the log."
  test.each([
    [2, 2, [ent(3, 3)], [[1, 1], [2, 2], [3, 3]], [[3, 3]]],
    [1, 1, [ent(2, 3), ent(3, 4)], [[1, 1], [2, 3], [3, 4]], [[2, 3], [3, 4]]],
    [0, 0, [ent(1, 1)], [[1, 1], [2, 2]], []],
    [0, 0, [ent(1, 3)], [[1, 3]], [[1, 3]]],
  ])('follower appends at (%i, %i) %#', (index, term, ents, want, wantUnstable) => {
    const storage = storageWithTerms([1, 2, 3], [1, 2]);
    const r = newTestRaft(1, [1, 2, 3], { storage });
    r.becomeFollower(2, 2);
    r.step(msg({ type: MessageType.App, from: 2, to: 1, term: 2, logTerm: term, index, entries: ents }));
    expect(it(allEntries(r))).toEqual(want);
    expect(it(r.raftLog.unstableEntries())).toEqual(wantUnstable);
  });

  // Figure 7: "When the leader at the top comes to power, it is possible that any of scenarios
  // (a–f) could occur in follower logs." The leader brings every one into agreement.
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  test.each([
    ['a', [1, 1, 1, 4, 4, 5, 5, 6, 6]],
    ['b', [1, 1, 1, 4]],
    ['c', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
    ['d', [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
    ['e', [1, 1, 1, 4, 4, 4, 4]],
    ['f', [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
  ])('Figure 7 (%s): the leader syncs the follower log', (_name, followerTerms) => {
    const lead = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], leaderTerms) });
    lead.term = 8;
    lead.raftLog.commitTo(leaderTerms.length);
    const follower = newTestRaft(2, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], followerTerms as number[]) });
    follower.term = 7;
    // The third node's log is the leader's, so that it can vote and the leader can win (§5.4).
    const third = newTestRaft(3, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], leaderTerms) });
    third.term = 7;
    const n = new Network([lead, follower, third]);
    n.campaign(1);
    expect(lead.state).toBe(StateType.Leader);
    // Heartbeat replies make the leader probe; fast backtracking finds the matching point.
    n.send(msg({ type: MessageType.Beat, from: 1, to: 1 }));
    n.propose(1, 'sync');
    expect(it(allEntries(follower))).toEqual(it(allEntries(lead)));
    expect(follower.raftLog.committed).toBe(lead.raftLog.committed);
  });
});

describe('§5.4 safety', () => {
  // "RequestVote RPC includes information about the candidate's log ... the voter denies its
  // vote if its own log is more up-to-date than that of the candidate."
  test.each([
    // voter log terms, candidate (index, term), reject
    [[1], 1, 1, false], [[1], 1, 2, false], [[1, 1], 1, 1, true], [[1], 1, 0, true],
    [[2], 1, 1, true], [[2], 2, 1, true], [[2], 1, 2, false], [[1, 2], 1, 2, true], [[1, 2], 2, 2, false],
  ])('voter with log %o and candidate at (%i, %i): reject=%s', (terms, index, logTerm, reject) => {
    const r = newTestRaft(1, [1, 2], { storage: storageWithTerms([1, 2], terms as number[]) });
    r.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 3, logTerm, index }));
    const msgs = readMessages(r);
    expect(msgs.map((m) => [m.type, m.reject])).toEqual([[MessageType.VoteResp, reject]]);
  });

  // "The RequestVote RPC includes information about the candidate's log."
  test('vote requests carry the last log index and term', () => {
    const r = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 2]) });
    r.becomeFollower(2, None);
    for (let i = 0; i < 20; i++) r.tick();
    const msgs = readMessages(r).sort((a, b) => a.to - b.to);
    expect(msgs.map((m) => [m.type, m.to, m.term, m.index, m.logTerm])).toEqual([
      [MessageType.Vote, 2, 3, 2, 2],
      [MessageType.Vote, 3, 3, 2, 2],
    ]);
  });

  // "Raft never commits log entries from previous terms by counting replicas. Only log entries
  // from the leader's current term are committed by counting replicas."
  test.each([[1, 0], [2, 0], [3, 3]])('ack at index %i commits %i', (index, want) => {
    const r = newTestRaft(1, [1, 2, 3], { storage: storageWithTerms([1, 2, 3], [1, 2]) });
    r.term = 2;
    r.becomeCandidate();
    r.becomeLeader();
    persist(r);
    readMessages(r);
    r.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: r.term, index }));
    expect(r.raftLog.committed).toBe(want);
  });

  // Figure 8, built directly: the logs after (b) — S1 and S2 hold (2, term 2), S5 holds
  // (2, term 3), S3 and S4 only index 1 — with every node at term 4.
  function figure8(): Network {
    const logs = [[1, 2], [1, 2], [1], [1], [1, 3]];
    const rs = logs.map((terms, i) => {
      const r = newTestRaft(i + 1, [1, 2, 3, 4, 5], { storage: storageWithTerms([1, 2, 3, 4, 5], terms) });
      r.term = 4;
      r.raftLog.commitTo(1);
      return r;
    });
    return new Network(rs);
  }

  // Figure 8 (c): "S1 restarts, is elected leader, and continues replication. At this point,
  // the log entry from term 2 has been replicated on a majority of the servers, but it is not
  // committed." (e): once an entry of the current term commits, so do the older ones.
  test('Figure 8 (c, e): an old-term entry on a majority is committed only by a current-term entry', () => {
    const n = figure8();
    const s1 = n.get(1);
    // S1 wins term 5 with S2, S3 (S4 and S5 unreachable); its no-op (3, 5) must not count.
    n.isolate(4); n.isolate(5);
    n.ignore(MessageType.App); // no replication yet: only the election
    n.campaign(1);
    expect(s1.state).toBe(StateType.Leader);
    expect(s1.term).toBe(5);
    // Replicate (2, term 2) to S3 only: it is now on S1, S2, S3 — a majority of five.
    s1.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 5, index: 2 }));
    s1.step(msg({ type: MessageType.AppResp, from: 3, to: 1, term: 5, index: 2 }));
    expect(s1.raftLog.committed).toBe(1);
    // (e): the no-op of term 5 reaches the same majority: it commits, and index 2 with it.
    s1.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 5, index: 3 }));
    s1.step(msg({ type: MessageType.AppResp, from: 3, to: 1, term: 5, index: 3 }));
    expect(s1.raftLog.committed).toBe(3);
  });

  // Figure 8 (d): "If S1 crashes as in (d), S5 could be elected leader (with votes from S2, S3,
  // and S4) and overwrite the entry with its own entry from term 3." That is why (c) must not
  // count the term-2 entry as committed.
  test('Figure 8 (d): the old-term entry on a majority can be overwritten by S5', () => {
    const n = figure8();
    // Put (2, term 2) on S3 as in (c), without anything of a newer term.
    n.get(3).step(msg({ type: MessageType.App, from: 1, to: 3, term: 4, index: 1, logTerm: 1, entries: [ent(2, 2)] }));
    persist(n.get(3));
    readMessages(n.get(3));
    expect(n.get(3).raftLog.lastTerm()).toBe(2);
    n.isolate(1); // S1 crashes
    n.campaign(5);
    const s5 = n.get(5);
    expect(s5.state).toBe(StateType.Leader);
    n.propose(5, 'after');
    for (const id of [2, 3, 4]) {
      expect(n.get(id).raftLog.term(2)).toBe(3);
      expect(it(allEntries(n.get(id)))).toEqual(it(allEntries(s5)));
    }
  });
});

describe('API errors', () => {
  test('a follower without a leader drops proposals with a sentinel error', () => {
    const r = newTestRaft(1, [1, 2, 3]);
    let err: unknown;
    try { r.step(prop(1)); } catch (e) { err = e; }
    expect(isRaftError(err, RaftErrorCode.ProposalDropped)).toBe(true);
  });

  test('invalid configuration is refused up front', () => {
    expect(() => newTestRaft(0, [1])).toThrow(/id must be/);
    expect(() => newTestRaft(1, [1], { election: 1, heartbeat: 1 })).toThrow(/electionTick/);
  });

  test('read messages are untouched by unknown types', () => {
    const r = newTestRaft(1, [1]);
    r.step(msg({ type: MessageType.Hup, from: 1, to: 1 }));
    expect(r.state).toBe(StateType.Leader);
    const ms: Message[] = readMessages(r);
    expect(ms).toEqual([]);
  });
});
