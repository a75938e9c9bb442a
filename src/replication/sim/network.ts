/**
 * {@link SimNetwork}: an in-memory network of {@link Transport}s for the simulator. Every message
 * is delivered (or not) by an event of the {@link VirtualClock}: after a seeded delay, possibly
 * dropped, duplicated (never a relayed proposal, `MsgProp`: the peer transport delivers a message at
 * most once) or held back long enough to be reordered; links can be cut one way or both
 * (partitions, isolation). A transport sends only to the peers it was given (`setPeers`). It
 * accepts a message from any member of the network (every one of them is "authenticated": in a
 * real cluster, a node holding the cluster secret), also one outside its peer set, because a member
 * that lags does not yet know the members added after its applied index — among them, possibly,
 * the leader it must hear from to catch up (etcd's pipeline handler accepts such senders too).
 * The group itself ignores messages from members it knows were removed.
 * @module
 */
import { MessageType, type Message, type SeededRand } from '../../raft/index.js';
import type { PeerAddress, Transport } from '../transport.js';
import type { VirtualClock } from './clock.js';

/** How the network behaves; probabilities are per message. */
export interface NetworkOptions {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  dup: number;
  /** Delivery delay range, ms. */
  minDelay: number;
  maxDelay: number;
  /** Probability of an extra delay of up to `longDelayMax` ms (reordering). */
  longDelay: number;
  longDelayMax: number;
}

/** The in-memory network. */
export class SimNetwork {
  readonly options: NetworkOptions;
  private readonly endpoints = new Map<number, SimTransport>();
  private readonly cuts = new Set<string>();
  /** Messages handed to the network, delivered, and dropped (by cut, loss or refusal). */
  readonly counts = { sent: 0, delivered: 0, dropped: 0 };
  /** Called with the recipient of every delivered message (the simulation's counts). */
  onDeliver: ((to: number) => void) | undefined;

  constructor(private readonly clock: VirtualClock, private readonly rand: SeededRand, options: Partial<NetworkOptions> = {}) {
    this.options = { drop: 0, dup: 0, minDelay: 1, maxDelay: 5, longDelay: 0, longDelayMax: 0, ...options };
  }

  /** A fresh transport for member `id` (a restarted member gets a new one; the old one is detached). */
  transport(id: number): SimTransport {
    this.endpoints.get(id)?.detach();
    const t = new SimTransport(id, this);
    this.endpoints.set(id, t);
    return t;
  }

  /** Cuts the link from `a` to `b` (one way). */
  cut(a: number, b: number): void {
    this.cuts.add(`${a}>${b}`);
  }

  /** Cuts the link between `a` and `b` both ways. */
  cutBoth(a: number, b: number): void {
    this.cut(a, b);
    this.cut(b, a);
  }

  /** Cuts `id` off from every other id in `ids`, both ways. */
  isolate(id: number, ids: readonly number[]): void {
    for (const o of ids) if (o !== id) this.cutBoth(id, o);
  }

  /** Splits `ids` into the given sides; ids on no side are isolated. */
  partition(ids: readonly number[], ...sides: number[][]): void {
    this.heal();
    const side = new Map<number, number>();
    sides.forEach((s, i) => s.forEach((id) => side.set(id, i)));
    for (const a of ids) for (const b of ids) if (a !== b && (side.get(a) === undefined || side.get(a) !== side.get(b))) this.cut(a, b);
  }

  /** Removes every cut. */
  heal(): void {
    this.cuts.clear();
  }

  /** True when `a` can reach `b`. */
  linked(a: number, b: number): boolean {
    return !this.cuts.has(`${a}>${b}`);
  }

  /** @internal a transport's send */
  send(from: SimTransport, messages: readonly Message[]): void {
    const o = this.options;
    const unreachable = new Set<number>();
    for (const m of messages) {
      this.counts.sent++;
      if (!from.peers.has(m.to)) { this.counts.dropped++; continue; }
      if (!this.linked(from.id, m.to)) {
        this.counts.dropped++;
        unreachable.add(m.to);
        continue;
      }
      if (this.rand.chance(o.drop)) { this.counts.dropped++; continue; }
      // A relayed proposal is never duplicated: the peer transport delivers a message at most once
      // (numbered frames, a replay guard), and Raft appends a proposal again for each copy it
      // receives — a duplicate would be a second write, not a network fault. (The draw is made
      // anyway, so that the seeds' other draws stay where they were.)
      const dup = this.rand.chance(o.dup);
      const copies = dup && m.type !== MessageType.Prop ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        let d = o.minDelay + this.rand.int(Math.max(1, o.maxDelay - o.minDelay + 1));
        if (o.longDelay > 0 && this.rand.chance(o.longDelay)) d += this.rand.int(Math.max(1, o.longDelayMax));
        const copy: Message = { ...m };
        this.clock.schedule(d, () => this.deliver(from.id, copy));
      }
    }
    // Like a connection that fails: the sender hears about it (Raft's reportUnreachable).
    for (const to of unreachable) this.clock.schedule(o.minDelay, () => from.unreachable(to));
  }

  private deliver(from: number, m: Message): void {
    const to = this.endpoints.get(m.to);
    // A cut made while the message was in flight loses it too.
    if (!to || !this.linked(from, m.to) || !to.accept(from, m)) {
      this.counts.dropped++;
      return;
    }
    this.counts.delivered++;
    this.onDeliver?.(m.to);
  }

  /** @internal a transport's fetchSnapshotChunk */
  async fetch(from: SimTransport, id: number, index: number, name: string, offset: number, length: number): Promise<Uint8Array> {
    const to = this.endpoints.get(id);
    if (!to || !from.peers.has(id) || !this.linked(from.id, id) || !this.linked(id, from.id)) throw new Error(`member ${id} is unreachable from ${from.id}`);
    return to.read(from.id, index, name, offset, length);
  }
}

/** One member's end of the {@link SimNetwork}. */
export class SimTransport implements Transport {
  /** Ids this member talks to and accepts messages from. */
  readonly peers = new Set<number>();
  private handler: ((messages: Message[]) => void) | undefined;
  private unreachableHandler: ((id: number) => void) | undefined;
  private snapshotRead: ((index: number, name: string, offset: number, length: number) => Promise<Uint8Array>) | undefined;
  private attached = true;

  /** @internal made by {@link SimNetwork.transport} */
  constructor(readonly id: number, private readonly net: SimNetwork) {}

  send(messages: readonly Message[]): void {
    if (this.attached) this.net.send(this, messages);
  }

  onMessages(handler: (messages: Message[]) => void): void {
    this.handler = handler;
  }

  onUnreachable(handler: (id: number) => void): void {
    this.unreachableHandler = handler;
  }

  setPeers(peers: readonly PeerAddress[]): void {
    this.peers.clear();
    for (const p of peers) if (p.id !== this.id) this.peers.add(p.id);
  }

  fetchSnapshotChunk(id: number, index: number, name: string, offset: number, length: number): Promise<Uint8Array> {
    if (!this.attached) return Promise.reject(new Error('transport is closed'));
    if (!(length > 0 && length <= 1 << 20)) return Promise.reject(new RangeError(`chunk length ${length} not in (0, 1 MiB]`));
    return this.net.fetch(this, id, index, name, offset, length);
  }

  onSnapshotRead(handler: (index: number, name: string, offset: number, length: number) => Promise<Uint8Array>): void {
    this.snapshotRead = handler;
  }

  close(): Promise<void> {
    this.detach();
    return Promise.resolve();
  }

  /** @internal */
  detach(): void {
    this.attached = false;
    this.handler = undefined;
    this.unreachableHandler = undefined;
  }

  /** @internal a delivery: false when refused (closed). */
  accept(_from: number, m: Message): boolean {
    if (!this.attached || !this.handler) return false;
    this.handler([m]);
    return true;
  }

  /** @internal */
  unreachable(id: number): void {
    if (this.attached) this.unreachableHandler?.(id);
  }

  /** @internal */
  read(from: number, index: number, name: string, offset: number, length: number): Promise<Uint8Array> {
    if (!this.attached || !this.snapshotRead || !this.peers.has(from)) return Promise.reject(new Error(`member ${this.id} does not serve snapshots to ${from}`));
    return this.snapshotRead(index, name, offset, length);
  }
}
