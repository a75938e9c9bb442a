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
   * Writes at once what {@link send} queued, instead of with the rest of the event-loop turn's
   * messages (a transport that coalesces a turn's sends into one write per peer). The group
   * calls it after the messages a write waits on: a leader's appends before its own log write
   * starts, a member's acknowledgement once its log is synced. Optional: a transport that writes
   * on `send` has nothing to do. Never throws.
   */
  flush?(): void;
  /**
   * Sets the receiver of inbound messages. Every message handed to it was authenticated as coming
   * from its `from` member, is addressed to this node, and comes from a current member (or a
   * sender the {@link onUnknownSender} handler accepted).
   */
  onMessages(handler: (messages: Message[]) => void): void;
  /**
   * Sets the receiver of "member `id` could not be reached" reports (Raft's `reportUnreachable`):
   * made when a request to it fails and when its queue overflows, possibly many times in a row.
   */
  onUnreachable(handler: (id: number) => void): void;
  /** Replaces the set of members this node talks to and accepts messages from (itself excluded). */
  setPeers(peers: readonly PeerAddress[]): void;
  /**
   * Optional: sets who decides on an authenticated sender outside the peer set that names its
   * own address (a member added after this member's applied index, which this member must hear
   * and answer to catch up). The handler returns true to accept it, having added it to the peer
   * set with {@link setPeers}; a transport without this method refuses such senders, or (the
   * simulator) delivers every sender's messages.
   */
  onUnknownSender?(handler: (peer: PeerAddress) => boolean): void;
  /**
   * Reads `length` bytes (at most 1 MiB) at `offset` of file `name` of the snapshot taken at log
   * index `index` from member `id` (installing a snapshot: the engine's table files, fetched in
   * chunks). Rejects when the member cannot be reached or does not hold that snapshot; an answer
   * shorter than `length` means the end of the file.
   *
   * `name` is 1 to 4 `/`-separated segments, each of letters, digits, `.`, `_` and `-` starting
   * with a letter or digit (so never `..` or an absolute path). The HTTP transport rejects with a
   * `TransportError`: `TRANSPORT_NOT_FOUND` (not held), `TRANSPORT_UNREACHABLE` (not a current
   * peer, connection failure, timeout), `TRANSPORT_REFUSED` (refused or failed on the member),
   * `TRANSPORT_INVALID_ARGUMENT`, `TRANSPORT_CLOSED`. The bytes are not authenticated beyond the
   * channel: the caller checks what it assembles (against the certified MasterRoot).
   */
  fetchSnapshotChunk(id: number, index: number, name: string, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Sets the server side of {@link fetchSnapshotChunk}: reads this node's snapshot files. Resolve
   * with at most `length` bytes (fewer at the end of the file); reject with an error whose `code`
   * is `'ENOENT'` or `'TRANSPORT_NOT_FOUND'` when the snapshot or file is not held. It is called
   * only for an authenticated request from a current member.
   */
  onSnapshotRead(handler: (index: number, name: string, offset: number, length: number) => Promise<Uint8Array>): void;
  /** Stops sending and receiving; drops what is queued. */
  close(): Promise<void>;
}
