/**
 * Three Raft nodes (the real core over MemoryStorage) talking only through HttpTransport on
 * 127.0.0.1: they elect a leader, commit proposals made on every member (a follower's proposal
 * travels as MsgProp to the leader) in one order everywhere, and re-elect after the leader's
 * transport closes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, MemoryStorage, RawNode, SeededRand, StateType } from '../../src/raft/index.js';
import { closeAll, startCluster, waitFor, type Node } from './transport_helpers.js';

afterEach(closeAll);

interface Member {
  node: Node;
  raft: RawNode;
  storage: MemoryStorage;
  applied: string[];
  timer?: NodeJS.Timeout;
  stopped: boolean;
}

const td = new TextDecoder();

function drive(m: Member): void {
  while (!m.stopped && m.raft.hasReady()) {
    const rd = m.raft.ready();
    if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
    m.storage.append(rd.entries);
    if (rd.hardState) m.storage.setHardState(rd.hardState);
    m.node.t.send(rd.messages);
    for (const e of rd.committedEntries) if (e.type === EntryType.Normal && e.data.length > 0) m.applied.push(td.decode(e.data));
    m.raft.advance(rd);
  }
}

describe('Raft over HttpTransport', () => {
  it('elects, replicates proposals from every member in one order, and re-elects after the leader goes', async () => {
    const nodes = await startCluster(3);
    const members: Member[] = nodes.map((node) => {
      const storage = MemoryStorage.withPeers([1, 2, 3]);
      const raft = new RawNode({ id: node.id, electionTick: 50, heartbeatTick: 1, storage, rand: new SeededRand(node.id * 7), preVote: true, checkQuorum: true });
      const m: Member = { node, raft, storage, applied: [], stopped: false };
      node.t.onMessages((ms) => {
        for (const msg of ms) {
          try {
            raft.step(msg);
          } catch {
            // a message Raft refuses (e.g. from a removed peer) is dropped
          }
        }
        drive(m);
      });
      node.t.onUnreachable((id) => {
        node.unreachable.push(id);
        raft.reportUnreachable(id);
      });
      m.timer = setInterval(() => {
        if (m.stopped) return;
        raft.tick();
        drive(m);
      }, 10);
      return m;
    });
    try {
      const leaderOf = (ms: Member[]) => ms.find((m) => !m.stopped && m.raft.status().softState.state === StateType.Leader);
      await waitFor(() => leaderOf(members) !== undefined && members.every((m) => m.raft.status().softState.lead !== 0), 'a leader known to all');
      const live = (): Member[] => members.filter((m) => !m.stopped);
      // proposals on every member; a follower forwards through the transport
      for (let i = 0; i < 30; i++) {
        const m = members[i % 3];
        try {
          m.raft.propose(new TextEncoder().encode(`c${i}`));
        } catch {
          // dropped during a leader change: the wait below then fails (the election timeout of 0.5–1 s makes it unlikely)
        }
        drive(m);
      }
      await waitFor(() => members.every((m) => m.applied.length === 30), 'all applied everywhere');
      const first = members[0].applied;
      for (const m of members) expect(m.applied).toEqual(first);
      expect([...first].sort()).toEqual(Array.from({ length: 30 }, (_, i) => `c${i}`).sort());

      const old = leaderOf(members)!;
      old.stopped = true;
      clearInterval(old.timer);
      await old.node.t.close();
      await waitFor(() => leaderOf(live()) !== undefined, 'a new leader');
      const leader = leaderOf(live())!;
      expect(leader).not.toBe(old);
      leader.raft.propose(new TextEncoder().encode('after'));
      drive(leader);
      await waitFor(() => live().every((m) => m.applied.at(-1) === 'after'), 'commit after re-election');
      const survivors = live();
      expect(survivors[0].applied).toEqual(survivors[1].applied);
      // the new leader keeps sending to the closed member, which it reports unreachable
      await waitFor(() => leader.node.t.stats().peers.find((p) => p.id === old.node.id)!.unreachable > 0, 'an unreachable report');
      expect(leader.node.unreachable).toContain(old.node.id);
    } finally {
      for (const m of members) {
        m.stopped = true;
        clearInterval(m.timer);
      }
    }
  });
});
