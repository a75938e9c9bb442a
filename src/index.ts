/**
 * `proofkv`: the embedded database. See {@link ProofDB}. Importing it installs `node:crypto`'s
 * SHA-256 as the default hasher of the proof verifiers (`proofs/`), as the Node entry points of
 * `proofkv/proofs` and `proofkv/client` do.
 * @module
 */
import { installNodeSha256 } from '../node-entry/sha256.js';

installNodeSha256();

export { ProofDB, Snapshot } from './db/db.js';
export type { CheckpointOptions, CheckpointResult, CosignOptions, ConditionalWriteOptions, HistoryOptions, LogIndexState, ProofOptions, ProvenGet, ProvenHistory, ProvenScan, ScanProofOptions, TableInfo, WriteOptions } from './db/db.js';
export type { CheckpointMeta, CosignResult, SignedCheckpoint, TakenCheckpoint } from './proof/checkpointer.js';
export type { KeyRotation } from './proof/node_key.js';
export { verifyKeyRotation } from './proof/node_key.js';
export { WriteBatch } from './db/batch.js';
export type { BatchOp, WriteCondition } from './db/batch.js';
export type { WriteResult } from './db/write.js';
export { DBIterator } from './db/iterator.js';
export type { IteratorOptions, VersionEntry } from './db/iterator.js';
export type { EngineStats, WriteFault } from './db/core.js';
export { WriteFaultError } from './db/core.js';
export type { DBOptions, ResolvedOptions } from './options.js';
export { DEFAULT_MAX_OPEN_TABLES } from './options.js';
export {
  ConditionFailedError,
  CorruptionError,
  DatabaseClosedError,
  DirectoryLockedError,
  ErrorCode,
  InvalidArgumentError,
  ProofKVError,
  VersionConflictError,
} from './errors.js';
