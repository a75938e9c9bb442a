/**
 * CommitNotices: a leader's commit-only appends are held per follower until an append with
 * entries (or a heartbeat) carries their commit index, or until they are taken when due; a
 * follower whose relayed proposal awaits its commit, or that gets a read index, is told at once.
 */
import { describe, expect, test } from 'vitest';
import { CommitNotices, isCommitNotice } from '../../src/replication/commit_notices.js';
import { EntryType, MessageType, newMessage, type Message } from '../../src/raft/types.js';

const notice = (to: number, commit: number, index = 10): Message => newMessage({ type: MessageType.App, from: 1, to, term: 2, index, logTerm: 2, commit });
const append = (to: number, commit: number, index = 10): Message =>
  newMessage({ type: MessageType.App, from: 1, to, term: 2, index, logTerm: 2, commit, entries: [{ term: 2, index: index + 1, type: EntryType.Normal, data: new Uint8Array([1]) }] });
const heartbeat = (to: number, commit: number): Message => newMessage({ type: MessageType.Heartbeat, from: 1, to, term: 2, commit });
const yes = () => true;

describe('CommitNotices', () => {
  test('isCommitNotice: an append without entries', () => {
    expect(isCommitNotice(notice(2, 5))).toBe(true);
    expect(isCommitNotice(append(2, 5))).toBe(false);
    expect(isCommitNotice(heartbeat(2, 5))).toBe(false);
  });

  test('holds a commit-only append; the next append with entries supersedes it', () => {
    const n = new CommitNotices();
    const hb = heartbeat(3, 1);
    expect(n.pass([notice(2, 5), hb], yes)).toEqual([hb]);
    expect(n.size).toBe(1);
    const a = append(2, 5, 11);
    const sent = [a];
    expect(n.pass(sent, yes)).toBe(sent);
    expect(n.size).toBe(0);
    expect(n.take()).toEqual([]);
  });

  test('keeps the latest notice per follower and gives them all when due', () => {
    const n = new CommitNotices();
    n.pass([notice(2, 5), notice(3, 5)], yes);
    n.pass([notice(2, 6)], yes);
    const due = n.take();
    expect(due.map((m) => [m.to, m.commit])).toEqual([[2, 6], [3, 5]]);
    expect(n.size).toBe(0);
  });

  test('a heartbeat with a lower commit does not drop a held notice; one at least as high does', () => {
    const n = new CommitNotices();
    n.pass([notice(2, 7)], yes);
    n.pass([heartbeat(2, 4)], yes);
    expect(n.size).toBe(1);
    n.pass([heartbeat(2, 7)], yes);
    expect(n.size).toBe(0);
  });

  test('a follower not replicating normally is told at once', () => {
    const n = new CommitNotices();
    const m = notice(2, 5);
    const out = n.pass([m], (x) => x.to !== 2);
    expect(out).toEqual([m]);
    expect(n.size).toBe(0);
  });

  test('a follower whose relayed proposal awaits its commit is told at once, then held again', () => {
    const n = new CommitNotices();
    n.noteRelayed(2, 12);
    const first = notice(2, 11);
    expect(n.pass([first], yes)).toEqual([first]); // told 11 < relayed 12: at once
    const second = notice(2, 12);
    expect(n.pass([second], yes)).toEqual([second]); // still owed at the moment of sending
    expect(n.pass([notice(2, 13)], yes)).toEqual([]); // told 12 covers it: held
    // Another follower is unaffected by 2's relay.
    expect(n.pass([notice(3, 13)], yes)).toEqual([]);
    expect(n.size).toBe(2);
  });

  test('a read index to a follower sends its held notice with it, before it', () => {
    const n = new CommitNotices();
    const held = notice(2, 8);
    n.pass([held], yes);
    const resp = newMessage({ type: MessageType.ReadIndexResp, from: 1, to: 2, term: 2, index: 8 });
    const other = heartbeat(3, 8);
    expect(n.pass([other, resp], yes)).toEqual([other, held, resp]);
    expect(n.size).toBe(0);
    // Counted as told: a later notice at 8 or below is not owed to a relay up to 8.
    n.noteRelayed(2, 8);
    expect(n.pass([notice(2, 9)], yes)).toEqual([]);
  });

  test('clear forgets what is held, told and relayed', () => {
    const n = new CommitNotices();
    n.pass([notice(2, 5)], yes);
    n.noteRelayed(3, 9);
    n.clear();
    expect(n.size).toBe(0);
    expect(n.take()).toEqual([]);
    expect(n.pass([notice(3, 6)], yes)).toEqual([]); // nothing owed any more
  });
});
