/**
 * Raft data types: entries, messages, hard and soft state, snapshots, configuration changes,
 * the node configuration and the sentinel errors of the API.
 *
 * Terms and indexes are plain numbers (safe integers); node ids are positive integers and
 * {@link None} (0) means "no node".
 * @module
 */

import type { Rand } from './rand.js';
import type { Storage } from './storage.js';

/** "No node": used for an unknown leader or an empty vote. */
export const None = 0;

/** Kinds of log entry. */
export const EntryType = {
  /** Application data (an empty normal entry is the new leader's no-op). */
  Normal: 'Normal',
  /** A membership change; `data` is an encoded {@link ConfChange}. */
  ConfChange: 'ConfChange',
} as const;
/** One of {@link EntryType}. */
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One log entry. */
export interface Entry {
  /** Term of the leader that created the entry. */
  readonly term: number;
  /** Position in the log (first real entry is 1). */
  readonly index: number;
  /** Normal data or a membership change. */
  readonly type: EntryType;
  /** Opaque payload. */
  readonly data: Uint8Array;
}

/** The state that must be on stable storage before any message depending on it is sent. */
export interface HardState {
  /** Latest term this node has seen. */
  readonly term: number;
  /** Candidate voted for in `term`, or {@link None}. */
  readonly vote: number;
  /** Highest index known committed. */
  readonly commit: number;
}

/** The membership of the group: voters and non-voting learners (disjoint sets). */
export interface ConfState {
  /** Node ids that vote and count for commit. */
  readonly voters: readonly number[];
  /** Node ids that receive the log but neither vote nor count. */
  readonly learners: readonly number[];
}

/** Where a snapshot sits in the log and the membership at that point. */
export interface SnapshotMetadata {
  /** Last index covered by the snapshot. */
  readonly index: number;
  /** Term of the entry at `index`. */
  readonly term: number;
  /** Membership after applying everything up to `index`. */
  readonly confState: ConfState;
}

/** An application snapshot: state-machine bytes at `metadata.index`. */
export interface Snapshot {
  /** Position and membership. */
  readonly metadata: SnapshotMetadata;
  /** State-machine bytes, opaque to Raft. */
  readonly data: Uint8Array;
}

/**
 * One chunk of an InstallSnapshot transfer. A snapshot of `total` bytes is sent as consecutive
 * chunks; the follower acknowledges each with {@link MessageType.SnapResp} and restores the
 * snapshot when `offset + data.length === total`.
 */
export interface SnapshotChunk {
  /** Metadata of the snapshot being transferred (repeated in every chunk). */
  readonly metadata: SnapshotMetadata;
  /** Byte offset of `data` within the snapshot. */
  readonly offset: number;
  /** Total size of the snapshot data in bytes. */
  readonly total: number;
  /** The chunk's bytes. */
  readonly data: Uint8Array;
}

/** Message kinds. `Hup`, `Beat` and `CheckQuorum` are local (never sent on the wire). */
export const MessageType = {
  Hup: 'MsgHup',
  Beat: 'MsgBeat',
  CheckQuorum: 'MsgCheckQuorum',
  Prop: 'MsgProp',
  App: 'MsgApp',
  AppResp: 'MsgAppResp',
  Vote: 'MsgVote',
  VoteResp: 'MsgVoteResp',
  PreVote: 'MsgPreVote',
  PreVoteResp: 'MsgPreVoteResp',
  Snap: 'MsgSnap',
  SnapResp: 'MsgSnapResp',
  Heartbeat: 'MsgHeartbeat',
  HeartbeatResp: 'MsgHeartbeatResp',
  Unreachable: 'MsgUnreachable',
  TransferLeader: 'MsgTransferLeader',
  TimeoutNow: 'MsgTimeoutNow',
  ReadIndex: 'MsgReadIndex',
  ReadIndexResp: 'MsgReadIndexResp',
} as const;
/** One of {@link MessageType}. */
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** True for message types that never leave the node. */
export function isLocalMessage(t: MessageType): boolean {
  return t === MessageType.Hup || t === MessageType.Beat || t === MessageType.CheckQuorum ||
    t === MessageType.Unreachable;
}

/** True for replies, which are ignored when they come from a node outside the group. */
export function isResponseMessage(t: MessageType): boolean {
  return t === MessageType.AppResp || t === MessageType.VoteResp || t === MessageType.PreVoteResp ||
    t === MessageType.HeartbeatResp || t === MessageType.SnapResp || t === MessageType.Unreachable;
}

/**
 * A Raft message. Only the fields meaningful for its `type` are set; the others are zero.
 */
export interface Message {
  type: MessageType;
  /** Recipient. */
  to: number;
  /** Sender. */
  from: number;
  /** Sender's term (0 for local messages and proposals). */
  term: number;
  /**
   * App: term of the entry at `index`. Vote: candidate's last term. AppResp reject: term at
   * `rejectHint`. ReadIndex forwarded by a follower: the follower's term when it forwarded its
   * own request (0: relayed for another member, or not stated).
   */
  logTerm: number;
  /** App: index preceding `entries`. Vote: candidate's last index. AppResp: ack or rejected index. ReadIndex: read index. */
  index: number;
  /** Entries carried by App or Prop. */
  entries: Entry[];
  /** Leader's commit index (App, Heartbeat). */
  commit: number;
  /** True when the reply refuses (AppResp, VoteResp, PreVoteResp, SnapResp). */
  reject: boolean;
  /** AppResp reject: the follower's hint for where the logs may match. */
  rejectHint: number;
  /** Snap: the chunk. */
  snapshot?: SnapshotChunk;
  /** SnapResp: bytes of the snapshot the follower holds so far. */
  offset?: number;
  /** ReadIndex / Heartbeat: the request context. */
  context?: Uint8Array;
  /** Vote / PreVote sent on leadership transfer: voters ignore their leader lease. */
  force?: boolean;
}

/** Builds a message with every unset field zeroed. */
export function newMessage(m: Partial<Message> & { type: MessageType }): Message {
  return {
    to: None, from: None, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false,
    rejectHint: 0, ...m,
  };
}

/** Kinds of single-step membership change. */
export const ConfChangeType = {
  /** Add a voter, or promote an existing learner to voter. */
  AddNode: 'AddNode',
  /** Remove a voter or a learner. */
  RemoveNode: 'RemoveNode',
  /** Add a learner. */
  AddLearner: 'AddLearner',
} as const;
/** One of {@link ConfChangeType}. */
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** A membership change: one node added, promoted or removed. */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: number;
}

const ccCodes: ConfChangeType[] = [ConfChangeType.AddNode, ConfChangeType.RemoveNode, ConfChangeType.AddLearner];

/**
 * Encodes a {@link ConfChange} as entry data.
 * ```
 * +--------+-------------------------+
 * | type:1 | nodeId: uint32 big end. |
 * +--------+-------------------------+
 * ```
 */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = ccCodes.indexOf(cc.type);
  new DataView(out.buffer).setUint32(1, cc.nodeId);
  return out;
}

/** Decodes {@link encodeConfChange} output; throws {@link RaftError} `ERR_CORRUPT` on bad bytes. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length !== 5 || data[0] >= ccCodes.length) {
    throw new RaftError(RaftErrorCode.Corrupt, `bad conf change encoding of ${data.length} bytes`);
  }
  return { type: ccCodes[data[0]], nodeId: new DataView(data.buffer, data.byteOffset, 5).getUint32(1) };
}

/** Role of a node. */
export const StateType = {
  Follower: 'Follower',
  PreCandidate: 'PreCandidate',
  Candidate: 'Candidate',
  Leader: 'Leader',
} as const;
/** One of {@link StateType}. */
export type StateType = (typeof StateType)[keyof typeof StateType];

/** Volatile state worth reporting: who leads and our role. */
export interface SoftState {
  readonly lead: number;
  readonly state: StateType;
}

/** A completed ReadIndex request: reads at or after `index` applied are linearizable. */
export interface ReadState {
  readonly index: number;
  readonly requestCtx: Uint8Array;
}

/** Configuration of one Raft node; checked by {@link validateConfig}. */
export interface Config {
  /** This node's id (> 0). */
  id: number;
  /** Ticks without hearing from a leader before a follower campaigns; timeouts are randomized in [electionTick, 2*electionTick). */
  electionTick: number;
  /** Ticks between leader heartbeats; must be less than `electionTick`. */
  heartbeatTick: number;
  /** Stable storage the log and hard state are read from. */
  storage: Storage;
  /** Seeded randomness: the only source of nondeterminism in the core. */
  rand: Rand;
  /** Last applied index at restart (0 means the storage's snapshot index). */
  applied?: number;
  /** Maximum bytes of entry data per append message (at least one entry is always sent). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Maximum append messages in flight per follower in replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Bytes per InstallSnapshot chunk. Default 64 KiB. */
  snapshotChunkSize?: number;
  /**
   * The snapshot to send when a transfer to a follower starts, given the one the storage holds:
   * the application may refresh its data (what it recorded can have grown stale while it waited
   * to be sent), or return undefined when it cannot be sent now (nothing is sent; the leader asks
   * again at the next append or heartbeat response, as when the storage's snapshot is temporarily
   * unavailable). It must return the same snapshot (same metadata) or `snap` itself; a transfer
   * sends one version of the data from its first chunk to its last. Default: `snap`.
   */
  snapshotToSend?: (snap: Snapshot) => Snapshot | undefined;
  /** Leader steps down without a quorum of active followers for an election timeout; followers honour the lease. Default true. */
  checkQuorum?: boolean;
  /** Run a pre-vote round before incrementing the term. Default true. */
  preVote?: boolean;
}

/** Stable codes of {@link RaftError}. */
export const RaftErrorCode = {
  /** The proposal was not accepted (no leader, transfer in progress, removed, pending conf change). */
  ProposalDropped: 'ERR_PROPOSAL_DROPPED',
  /** Requested index is older than the first index (compacted away). */
  Compacted: 'ERR_COMPACTED',
  /** Requested index is beyond the last index. */
  Unavailable: 'ERR_UNAVAILABLE',
  /** A snapshot is older than the storage's current snapshot. */
  SnapOutOfDate: 'ERR_SNAP_OUT_OF_DATE',
  /** The storage cannot produce a snapshot right now. */
  SnapshotTemporarilyUnavailable: 'ERR_SNAPSHOT_TEMPORARILY_UNAVAILABLE',
  /** A local message type was passed to `step`. */
  StepLocalMsg: 'ERR_STEP_LOCAL_MSG',
  /** A response came from a node that is not in the group. */
  StepPeerNotFound: 'ERR_STEP_PEER_NOT_FOUND',
  /** Invalid configuration. */
  Config: 'ERR_CONFIG',
  /** Encoded data failed to decode. */
  Corrupt: 'ERR_CORRUPT',
} as const;
/** One of {@link RaftErrorCode}. */
export type RaftErrorCode = (typeof RaftErrorCode)[keyof typeof RaftErrorCode];

/** Every error the Raft package throws on purpose; switch on `code`. */
export class RaftError extends Error {
  constructor(readonly code: RaftErrorCode, message: string) {
    super(message);
    this.name = 'RaftError';
  }
}

/** True when `e` is a {@link RaftError} with the given code. */
export function isRaftError(e: unknown, code: RaftErrorCode): e is RaftError {
  return e instanceof RaftError && e.code === code;
}

/** Validates a configuration up front; throws {@link RaftError} `ERR_CONFIG`. */
export function validateConfig(c: Config): void {
  const bad = (why: string): never => {
    throw new RaftError(RaftErrorCode.Config, why);
  };
  if (!Number.isSafeInteger(c.id) || c.id <= 0) bad(`id must be a positive integer, got ${c.id}`);
  if (!Number.isSafeInteger(c.heartbeatTick) || c.heartbeatTick <= 0) bad('heartbeatTick must be > 0');
  if (!Number.isSafeInteger(c.electionTick) || c.electionTick <= c.heartbeatTick) bad('electionTick must be > heartbeatTick');
  if (!c.storage) bad('storage is required');
  if (!c.rand) bad('rand is required');
  if (c.maxInflightMsgs !== undefined && (!Number.isSafeInteger(c.maxInflightMsgs) || c.maxInflightMsgs <= 0)) bad('maxInflightMsgs must be > 0');
  if (c.maxSizePerMsg !== undefined && !(c.maxSizePerMsg >= 0)) bad('maxSizePerMsg must be >= 0');
  if (c.snapshotChunkSize !== undefined && (!Number.isSafeInteger(c.snapshotChunkSize) || c.snapshotChunkSize <= 0)) bad('snapshotChunkSize must be > 0');
  if (c.applied !== undefined && (!Number.isSafeInteger(c.applied) || c.applied < 0)) bad('applied must be >= 0');
}

/** Total payload bytes of a list of entries. */
export function entsSize(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += e.data.length;
  return n;
}

/** Keeps a prefix of `ents` whose size is at most `maxSize`, but always at least one entry. */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = ents[0].data.length;
  let n = 1;
  for (; n < ents.length; n++) {
    size += ents[n].data.length;
    if (size > maxSize) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/** Throws a loud error for a broken internal invariant (a bug, never an input error). */
export function invariant(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`raft invariant violated: ${what}`);
}
