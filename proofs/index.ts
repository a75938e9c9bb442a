/**
 * `proofkv/proofs`: the isomorphic proof foundation — byte helpers, domain-separated hash layouts,
 * the RFC 9162 §2.1 checkpoint log, inclusion/adjacency/range proofs for ProofKV's trees,
 * checkpoints and Ed25519 quorum signatures, CBOR encodings and typed verification errors.
 * No `node:` imports: it bundles for browsers. `docs/proofs.md` specifies every layout.
 * @module
 */
export * from './bytes.js';
export * from './hash.js';
export * from './errors.js';
export {
  TREE_NODE_DOMAINS,
  type LeafWithPath,
  splitPoint,
  inclusionProofSize,
  rangeProofSize,
  treeRoot,
  treeInclusionProof,
  rootFromTreeInclusion,
  verifyTreeInclusion,
  verifyTreeAdjacent,
  treeRangeProof,
  rootFromTreeRange,
  verifyTreeRange,
} from './tree.js';
export {
  logLeafHash,
  logNodeHash,
  emptyLogRoot,
  logRoot,
  inclusionProof,
  consistencyProofSize,
  consistencyProof,
  rootFromInclusionProof,
  verifyInclusion,
  verifyConsistency,
  LogTree,
} from './log.js';
export * from './checkpoint.js';
export * from './signer_set.js';
export * from './set_changes.js';
export * from './rotation.js';
export * from './cbor_scan.js';
export * from './encoding.js';
export * from './lsm.js';
export {
  verifyCertificate,
  verifyGetProof,
  verifyHistoryProof,
  type CheckpointCertificate,
  type CheckpointExpectation,
  type EdgeOption,
  type GetFacts,
  type GetProof,
  type GetQuery,
  type HistoryFacts,
  type HistoryProof,
  type HistoryQuery,
  type LsmProofBody,
  type ProvenEntry,
  type TableWindow,
  type WindowBlock,
} from './lsm_proof.js';
export * from './lsm_scan.js';
export * from './lsm_time.js';
export { multiproofSize, rootFromMultiproof } from './multiproof.js';
export * from './lsm_encoding.js';
export { MAX_DERIVED_DESCRIPTORS, PROOF_FORMAT, PROOF_KEYS, proofFormatOf, compactGetProofSchema, compactHistoryProofSchema, compactScanProofSchema } from './compact_encoding.js';
export * from './note.js';
