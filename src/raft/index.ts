/**
 * ProofKV's Raft consensus core: a deterministic state machine in the style of etcd-io/raft,
 * its storage interfaces and its storages: segment files ({@link WalStorage}) and the classic-level
 * one it replaced ({@link LevelStorage}, kept to convert old data directories). See `docs/raft.md`.
 * @module
 */

export * from './types.js';
export { SeededRand, type Rand } from './rand.js';
export { MemoryStorage, emptyConfState, emptyHardState, type Storage, type InitialState } from './storage.js';
export { RaftLog } from './log.js';
export { MirroredStorage, type PersistRequest, type StagedWrite } from './mirrored_storage.js';
export { Progress, ProgressState, ProgressTracker, Inflights, VoteResult } from './progress.js';
export { Raft } from './raft.js';
export { RawNode, type ProgressSummary, type Ready, type Status } from './rawnode.js';
export {
  LevelStorage, encodeEntry, decodeEntry, encodeHardState, decodeHardState,
  encodeSnapshot, decodeSnapshot, entryKey,
} from './level_storage.js';
export {
  WalStorage, type WalOptions, type LogImage, DEFAULT_SEGMENT_BYTES, FIRST_SEGMENT_BYTES, segmentName, segmentSize,
} from './wal_storage.js';
export { RecordType, SnapshotKind, scanSegment, RECORD_HEADER } from './wal_format.js';
