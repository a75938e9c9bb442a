/**
 * The contract between the Raft driver ({@link ReplicationGroup}) and whatever carries its
 * messages to the other members: an authenticated HTTP transport between processes
 * (`src/replication/transport/`), or an in-memory network in the simulator.
 *
 * Raft tolerates lost, duplicated and reordered messages (it retransmits from its own state), so a
 * transport may drop: it never blocks the driver and never throws from {@link Transport.send}. It
 * must not deliver a message that was altered or that comes from a non-member.
 * @module
 */
import type { Message } from '../raft/index.js';

/** Where a member can be reached by its peers. */
export interface PeerAddress {
  /** Raft node id (> 0). */
  readonly id: number;
  /** Base URL of the member's peer listener, e.g. `http://127.0.0.1:7101`. */
  readonly peerUrl: string;
}

/** Carries Raft messages between the members of one group. */
export interface Transport {
  /**
   * Queues each message for its `to` member. Never blocks and never throws: a message for an
   * unknown member, or one that does not fit its member's bounded queue, is dropped (and the
   * member may be reported unreachable).
   */
  send(messages: readonly Message[]): void;
  /**
   * Sets the receiver of inbound messages. Every message handed to it was authenticated as coming
   * from its `from` member, is addressed to this node, and comes from a current member.
   */
  onMessages(handler: (messages: Message[]) => void): void;
  /** Sets the receiver of "member `id` could not be reached" reports (Raft's `reportUnreachable`). */
  onUnreachable(handler: (id: number) => void): void;
  /** Replaces the set of members this node talks to and accepts messages from (itself excluded). */
  setPeers(peers: readonly PeerAddress[]): void;
  /**
   * Reads `length` bytes (at most 1 MiB) at `offset` of file `name` of the snapshot taken at log
   * index `index` from member `id` (installing a snapshot: the engine's table files, fetched in
   * chunks). Rejects when the member cannot be reached or does not hold that snapshot; an answer
   * shorter than `length` means the end of the file.
   */
  fetchSnapshotChunk(id: number, index: number, name: string, offset: number, length: number): Promise<Uint8Array>;
  /** Sets the server side of {@link fetchSnapshotChunk}: reads this node's snapshot files. */
  onSnapshotRead(handler: (index: number, name: string, offset: number, length: number) => Promise<Uint8Array>): void;
  /** Stops sending and receiving; drops what is queued. */
  close(): Promise<void>;
}
