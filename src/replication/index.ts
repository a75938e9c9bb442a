/**
 * Replication: how a write becomes a committed, applied log entry. The Raft driver
 * ({@link ReplicationGroup}) sits between the Raft core (`src/raft/`) and the state machine the
 * application gives it (the server's command applier over the engine in external-log mode). See
 * `docs/replication.md`.
 * @module
 */
export {
  ReplicationGroup, ReplicationError, ReplicationErrorCode, encodeEntryPayload, decodeEntryPayload,
  type GroupStatus, type ReplicationGroupOptions, type StateMachine,
} from './group.js';
export type { PeerAddress, Transport } from './transport.js';
export {
  SessionTable, SessionStore, MemorySessionBook, SessionError, SessionErrorCode, encodeTable, decodeTable,
  SESSION_WINDOW, SESSION_CLIENT_BYTES, MAX_CLIENT_ID_LENGTH, SESSIONS_FORMAT,
  type SessionInput, type SessionRecord, type SessionDecision, type SessionBook, type SessionTableOptions, type SessionStoreOptions,
} from './sessions.js';
