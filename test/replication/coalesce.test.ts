/**
 * coalesceAppendAcks: a send's accepted MsgAppResps collapse to one per recipient and term (the
 * highest index, where the last was); everything else is kept in order; and a leader that steps
 * the collapsed acknowledgements ends where it ends stepping all of them, with fewer messages out.
 */
import { describe, expect, test } from 'vitest';
import { coalesceAppendAcks } from '../../src/replication/coalesce.js';
import { EntryType, MessageType, newMessage, type Message } from '../../src/raft/types.js';
import type { Raft } from '../../src/raft/raft.js';
import { msg, newTestRaft, persist, readMessages } from '../raft/helpers.js';

const ack = (to: number, term: number, index: number): Message => newMessage({ type: MessageType.AppResp, from: 2, to, term, index });

describe('coalesceAppendAcks', () => {
  test('keeps the highest accepted acknowledgement per recipient and term, in the place of the last', () => {
    const hb = newMessage({ type: MessageType.HeartbeatResp, from: 2, to: 1, term: 3 });
    const refusal = newMessage({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: 4, reject: true, rejectHint: 2 });
    const a9 = ack(1, 3, 9);
    const a7 = ack(1, 3, 7);
    const other = ack(4, 3, 5);
    const oldTerm = ack(1, 2, 11);
    const out = coalesceAppendAcks([ack(1, 3, 5), hb, a9, oldTerm, refusal, other, a7]);
    // (1, term 3): 5, 9 and 7 become 9 where 7 was; term 2's and recipient 4's stand alone.
    expect(out).toEqual([hb, oldTerm, refusal, other, a9]);
  });

  test('returns its input when there is nothing to collapse', () => {
    const one = [ack(1, 3, 5), newMessage({ type: MessageType.App, from: 2, to: 1, term: 3 })];
    expect(coalesceAppendAcks(one)).toBe(one);
    const distinct = [ack(1, 3, 5), ack(4, 3, 6), ack(1, 4, 7)];
    expect(coalesceAppendAcks(distinct)).toBe(distinct);
    const refusals = [1, 2].map((i) => newMessage({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: i, reject: true }));
    expect(coalesceAppendAcks(refusals)).toBe(refusals);
    expect(coalesceAppendAcks([])).toEqual([]);
  });

  test('a leader stepping the collapsed acknowledgements ends in the same state, with fewer messages', () => {
    // Two identical leaders of [1, 2, 3] with the same three appends in flight to follower 2.
    const leader = (): Raft => {
      const r = newTestRaft(1, [1, 2, 3]);
      r.becomeCandidate();
      r.becomeLeader();
      persist(r);
      for (const id of [2, 3]) r.step(msg({ type: MessageType.AppResp, from: id, to: 1, term: r.term, index: r.raftLog.lastIndex() }));
      for (let i = 0; i < 3; i++) {
        r.step(msg({ type: MessageType.Prop, from: 1, to: 1, entries: [{ index: 0, term: 0, type: EntryType.Normal, data: new Uint8Array([i]) }] }));
        persist(r);
      }
      readMessages(r);
      return r;
    };
    const all = leader();
    const one = leader();
    const first = all.raftLog.lastIndex() - 2;
    const acks = [0, 1, 2].map((k) => msg({ type: MessageType.AppResp, from: 2, to: 1, term: all.term, index: first + k }));
    for (const m of acks) all.step(m);
    for (const m of coalesceAppendAcks(acks)) one.step(m);
    expect(coalesceAppendAcks(acks)).toHaveLength(1);
    for (const id of [2, 3]) {
      expect(one.prs.progress.get(id)!.match).toBe(all.prs.progress.get(id)!.match);
      expect(one.prs.progress.get(id)!.next).toBe(all.prs.progress.get(id)!.next);
    }
    expect(one.raftLog.committed).toBe(all.raftLog.committed);
    expect(one.raftLog.committed).toBe(first + 2);
    // Each acknowledgement that moved the commit index broadcast a commit-only append.
    const sentAll = readMessages(all);
    const sentOne = readMessages(one);
    expect(sentOne.length).toBeLessThan(sentAll.length);
    const commitTo = (ms: Message[], id: number) => Math.max(...ms.filter((m) => m.to === id).map((m) => m.commit));
    for (const id of [2, 3]) expect(commitTo(sentOne, id)).toBe(commitTo(sentAll, id));
  });
});
