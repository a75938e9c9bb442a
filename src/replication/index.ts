/**
 * Replication: how a write becomes a committed, applied log entry. The Raft driver
 * ({@link ReplicationGroup}) sits between the Raft core (`src/raft/`) and the state machine the
 * application gives it (the server's command applier over the engine in external-log mode). See
 * `docs/replication.md`.
 * @module
 */
export {
  ReplicationGroup, LaterAnswer, ReplicationError, ReplicationErrorCode, encodeEntryPayload, decodeEntryPayload, applyConfChangeTo,
  DEFAULT_COMPACT_MARGIN, MAX_HEARD_PEERS, MAX_REMOVED_IDS, MAX_INBOUND_BYTES, MAX_INBOUND_MESSAGES, MAX_PROPOSAL_BATCH_BYTES, APPLY_RETRY_BASE_MS, APPLY_RETRY_MAX_MS, isPassingIoError, passingIoCode,
  type ApplyPause, type GroupRole, type GroupStatus, type ReplicationGroupOptions, type RestoreSnapshot, type StateMachine,
} from './group.js';
export { realClock, type Clock, type TimerHandle } from './clock.js';
export type { PeerAddress, Transport } from './transport.js';
export {
  snapshotDescriptor, readSnapshotChunk, readServedChunk, servedSnapshotOf, installSnapshot, readInstalledSnapshot, encodeSnapshotDescriptor,
  decodeSnapshotDescriptor, checkSnapshotDescriptor, snapshotPolicy, SnapshotError, SnapshotErrorCode, SNAPSHOT_CHUNK_BYTES,
  MAX_DESCRIPTOR_BYTES, MAX_SNAPSHOT_TABLES,
  type SnapshotDescriptor, type SnapshotTable, type ServedSnapshot, type SnapshotTrust, type FetchChunk, type InstalledSnapshot, type InstallOptions,
} from './snapshot.js';
export {
  learnClusterShape, askShape, encodeShape, decodeShape, describeShape, ShapeError, ShapeErrorCode, SHAPE_FILE, MAX_SHAPE_BYTES, MAX_TOLD_SHAPE,
  type LearnShapeOptions, type ShapeFetch, type ToldShape,
} from './shape.js';
export {
  SessionTable, SessionStore, MemorySessionBook, SessionError, SessionErrorCode, encodeTable, decodeTable,
  SESSION_WINDOW, SESSION_CLIENT_BYTES, MAX_CLIENT_ID_LENGTH, SESSIONS_FORMAT,
  type SessionInput, type SessionRecord, type SessionDecision, type SessionBook, type SessionTableOptions, type SessionStoreOptions,
} from './sessions.js';
export {
  CosignTally, HeadCosigns, MAX_CONFLICTS, checkCosignCommand, checkSignerSet, describeDivergence, meetsQuorums, soloSignerSet,
  type CosignCommand, type CosignCounters, type CosignVerdict, type Divergence, type MemberSignature, type SignerSet,
} from './cosign.js';
export {
  CaptureStore, encodeCapture, decodeCapture, captureFileName, CAPTURE_MAGIC,
  type Capture, type CaptureStoreOptions, type RefusedCapture,
} from './captures.js';
