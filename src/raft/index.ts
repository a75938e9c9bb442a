/**
 * ProofKV's Raft consensus core: a deterministic state machine in the style of etcd-io/raft,
 * its storage interfaces and a classic-level storage. See `docs/raft.md`.
 * @module
 */

export * from './types.js';
export { SeededRand, type Rand } from './rand.js';
export { MemoryStorage, emptyConfState, emptyHardState, type Storage, type InitialState } from './storage.js';
export { RaftLog } from './log.js';
export { Progress, ProgressState, ProgressTracker, Inflights, VoteResult } from './progress.js';
export { Raft } from './raft.js';
export { RawNode, type Ready, type Status } from './rawnode.js';
export {
  LevelStorage, type PersistRequest, encodeEntry, decodeEntry, encodeHardState, decodeHardState,
  encodeSnapshot, decodeSnapshot, entryKey,
} from './level_storage.js';
