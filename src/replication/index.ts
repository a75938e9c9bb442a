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
  CosignTally, HeadCosigns, MAX_CONFLICTS, checkCosignCommand, checkSignerSet, describeDivergence, meetsQuorums, soloSignerSet,
  type CosignCommand, type CosignCounters, type CosignVerdict, type Divergence, type MemberSignature, type SignerSet,
} from './cosign.js';
