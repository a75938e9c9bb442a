/**
 * Tiny builders for unit tests of the Raft core, in the style of etcd-io/raft's tests: a raft
 * over a MemoryStorage, message readers, and a synchronous network that delivers every message
 * at once (with cuts, isolation and drops).
 */

import { expect } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { SeededRand } from '../../src/raft/rand.js';
import { RawNode, type Ready } from '../../src/raft/rawnode.js';
import { MemoryStorage, type Storage } from '../../src/raft/storage.js';
import {
  EntryType, MessageType, StateType, newMessage, type Config, type Entry, type Message, type MessageType as MT,
} from '../../src/raft/types.js';

/** Options for {@link newTestRaft}. */
export interface TestRaftOpts {
  election?: number;
  heartbeat?: number;
  storage?: MemoryStorage;
  preVote?: boolean;
  checkQuorum?: boolean;
  seed?: number;
  maxInflight?: number;
  maxSizePerMsg?: number;
  learners?: number[];
  snapshotChunkSize?: number;
  snapshotToSend?: Config['snapshotToSend'];
}

/** A raft node `id` in a group of `peers` (pass storage to start from a log). */
export function newTestRaft(id: number, peers: number[], o: TestRaftOpts = {}): Raft {
  const storage = o.storage ?? MemoryStorage.withPeers(peers, o.learners ?? []);
  const c: Config = {
    id, electionTick: o.election ?? 10, heartbeatTick: o.heartbeat ?? 1, storage,
    rand: new SeededRand(o.seed ?? id), preVote: o.preVote ?? false, checkQuorum: o.checkQuorum ?? false,
    maxInflightMsgs: o.maxInflight ?? 256, maxSizePerMsg: o.maxSizePerMsg ?? Number.MAX_SAFE_INTEGER,
    snapshotChunkSize: o.snapshotChunkSize, snapshotToSend: o.snapshotToSend,
  };
  return new Raft(c);
}

/** A storage whose log holds entries with the given terms at indexes 1..n. */
export function storageWithTerms(peers: number[], terms: number[]): MemoryStorage {
  const s = MemoryStorage.withPeers(peers);
  s.append(terms.map((t, i) => ent(i + 1, t)));
  return s;
}

/** An entry. */
export function ent(index: number, term: number, data = ''): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(data) };
}

/** Takes and returns the node's outgoing messages. */
export function readMessages(r: Raft): Message[] {
  const m = r.msgs;
  r.msgs = [];
  return m;
}

/** Persists the unstable log and hard state to the raft's MemoryStorage (as a Ready would). */
export function persist(r: Raft): void {
  const s = r.raftLog.storage as MemoryStorage;
  const snap = r.raftLog.unstable.snapshot;
  if (snap) {
    s.applySnapshot(snap);
    r.raftLog.stableSnapTo(snap.metadata.index);
  }
  const ents = r.raftLog.unstableEntries();
  if (ents.length > 0) {
    s.append(ents);
    const last = ents[ents.length - 1];
    r.stableTo(last.index, last.term);
  }
  s.setHardState(r.hardState());
}

/** Persists, then returns and applies the committed-but-unapplied entries. */
export function nextEnts(r: Raft): Entry[] {
  persist(r);
  const ents = r.raftLog.nextCommittedEnts();
  if (ents.length > 0) r.raftLog.appliedTo(ents[ents.length - 1].index);
  return ents;
}

/** Every entry of the log (storage and unstable) from the first index on. */
export function allEntries(r: Raft): Entry[] {
  const l = r.raftLog;
  return l.slice(l.firstIndex(), l.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
}

/** A compact [index, term] view of entries. */
export function it(ents: Entry[]): Array<[number, number]> {
  return ents.map((e) => [e.index, e.term]);
}

/** Shorthand for a message with the given fields. */
export function msg(m: Partial<Message> & { type: MT }): Message {
  return newMessage(m);
}

/** A proposal message. */
export function prop(to: number, data = 'x'): Message {
  return msg({ type: MessageType.Prop, from: to, to, entries: [ent(0, 0, data)] });
}

/**
 * A synchronous network of rafts: `send` delivers messages depth-first until quiet,
 * persisting every node after each step. `cut`, `isolate`, `drop` and `ignore` filter traffic.
 */
export class Network {
  readonly peers = new Map<number, Raft>();
  private dropped = new Set<string>();
  private ignored = new Set<string>();
  private dropRate = new Map<string, number>();
  private readonly rand = new SeededRand(7);

  constructor(nodes: Array<Raft | undefined>, o: TestRaftOpts = {}) {
    const ids = nodes.map((_, i) => i + 1);
    nodes.forEach((n, i) => {
      const id = i + 1;
      this.peers.set(id, n ?? newTestRaft(id, ids, o));
    });
  }

  /** Node `id`. */
  get(id: number): Raft {
    return this.peers.get(id)!;
  }

  /** Delivers messages (and everything they cause) until the network is quiet. */
  send(...msgs: Message[]): void {
    const queue = [...msgs];
    while (queue.length > 0) {
      const m = queue.shift()!;
      const p = this.peers.get(m.to);
      if (!p) continue;
      try {
        p.step(m);
      } catch (e) {
        if (!(e instanceof Error && e.name === 'RaftError')) throw e;
      }
      persist(p);
      queue.push(...this.filter(readMessages(p)));
      for (const q of this.peers.values()) {
        if (q !== p && q.msgs.length > 0) {
          persist(q);
          queue.push(...this.filter(readMessages(q)));
        }
      }
    }
  }

  /** Starts an election at `id`. */
  campaign(id: number): void {
    this.send(msg({ type: MessageType.Hup, from: id, to: id }));
  }

  /** Proposes `data` at `id`. */
  propose(id: number, data = 'x'): void {
    this.send(prop(id, data));
  }

  private filter(msgs: Message[]): Message[] {
    return msgs.filter((m) => {
      if (this.ignored.has(m.type)) return false;
      if (this.dropped.has(`${m.from}>${m.to}`)) return false;
      const p = this.dropRate.get(`${m.from}>${m.to}`);
      if (p !== undefined && this.rand.float() < p) return false;
      return true;
    });
  }

  /** Drops all traffic between a and b. */
  cut(a: number, b: number): void {
    this.dropped.add(`${a}>${b}`);
    this.dropped.add(`${b}>${a}`);
  }

  /** Drops all traffic to and from `id`. */
  isolate(id: number): void {
    for (const other of this.peers.keys()) if (other !== id) this.cut(id, other);
  }

  /** Drops a fraction `p` of messages from `from` to `to`. */
  drop(from: number, to: number, p: number): void {
    this.dropRate.set(`${from}>${to}`, p);
  }

  /** Drops every message of type `t`. */
  ignore(t: MT): void {
    this.ignored.add(t);
  }

  /** Heals every filter. */
  recover(): void {
    this.dropped.clear();
    this.ignored.clear();
    this.dropRate.clear();
  }
}

/** A storage on disk as the restart check drives it. */
export interface DiskLog extends Storage {
  save(rd: Ready): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * A single-node RawNode driven over the storage `open` gives (with membership [1] when new)
 * elects itself and commits three proposals; after a close and a reopen it recovers its hard state,
 * is elected again and hands the committed entries out again, then commits a fourth.
 */
export async function rawNodeRecoversAfterRestart(open: (voters?: number[]) => Promise<DiskLog>): Promise<void> {
  const td = new TextDecoder();
  const drive = async (rn: RawNode, s: DiskLog, applied: string[]): Promise<void> => {
    while (rn.hasReady()) {
      const rd = rn.ready();
      await s.save(rd); // synced before anything else
      for (const e of rd.committedEntries) if (e.data.length > 0) applied.push(td.decode(e.data));
      rn.advance(rd);
    }
  };
  let s = await open([1]);
  let rn = new RawNode({ id: 1, storage: s, electionTick: 10, heartbeatTick: 1, rand: new SeededRand(1) });
  const applied: string[] = [];
  rn.campaign();
  await drive(rn, s, applied);
  expect(rn.raft.state).toBe(StateType.Leader);
  for (const v of ['x', 'y', 'z']) {
    rn.propose(new TextEncoder().encode(v));
    await drive(rn, s, applied);
  }
  expect(applied).toEqual(['x', 'y', 'z']);
  const hs = rn.raft.hardState();
  await s.close();

  s = await open();
  expect(s.initialState().hardState).toEqual(hs);
  rn = new RawNode({ id: 1, storage: s, electionTick: 10, heartbeatTick: 1, rand: new SeededRand(2) });
  const replayed: string[] = [];
  for (let i = 0; i < 30 && rn.raft.state !== StateType.Leader; i++) {
    rn.tick();
    await drive(rn, s, replayed);
  }
  expect(rn.raft.state).toBe(StateType.Leader);
  expect(rn.raft.term).toBeGreaterThan(hs.term);
  // Committed entries are handed out again after a restart (applied starts at the snapshot).
  expect(replayed).toEqual(['x', 'y', 'z']);
  rn.propose(new TextEncoder().encode('w'));
  await drive(rn, s, replayed);
  expect(replayed).toEqual(['x', 'y', 'z', 'w']);
  await s.close();
}
