/**
 * `proofkv/client`: the ProofKV client SDK — plain and verified operations over the HTTP API,
 * trusted state (memory, file, browser storage), failover with leader hints, timeouts, idempotent
 * retries, typed errors, and offline verification of saved proofs. Isomorphic: it never imports
 * `src/` or `server/`, and no `node:` module at top level (only `FileStateStore` loads
 * `node:fs/promises` when used), so it bundles for browsers (mark `node:*` external). The stream
 * protocol's client (`streamFetch`, `stream.ts`) needs `node:http`: the Node entry
 * (`node-entry/client.ts`) exports it, this module does not. `docs/client.md` is the guide.
 * @module
 */
export {
  ProofKVClient,
  MAX_VERSION,
  type ProofKVClientOptions,
  type BatchOp,
  type WriteCondition,
  type HistoryPage,
  type ScanPage,
  type ScanRange,
  type VerifiedScanPage,
  type VerifiedCheckpoint,
  type VerifiedGetResult,
  type VerifiedHistoryResult,
  type VerifiedPutResult,
} from './client.js';
export {
  ClientReason,
  ProofKVClientError,
  ProofKVHttpError,
  ProofKVNetworkError,
  ProofKVResponseTooLargeError,
  VerificationError,
  type AnyReason,
  type Problem,
} from './errors.js';
export { Reason } from '../proofs/errors.js';
export { MemoryStateStore, FileStateStore, BrowserStateStore, type StateStore, type StorageLike, type TrustedState } from './state.js';
export {
  TrustKeeper,
  trustId,
  MAX_CHAIN_LINKS,
  MAX_SIGNER_SET_WALK,
  BACK_WALK_CHECKPOINTS,
  type TrustConfig,
  type WitnessPolicy,
  WITNESS_MEMO_SIZE,
  type AcceptContext,
  type AcceptedHead,
  type Answer,
  type IncludedCheckpoint,
  type SetChangePage,
} from './trust.js';
export {
  Transport,
  normalizeEndpoint,
  originOf,
  responseLimits,
  CONTROL_RESPONSE_BYTES,
  DEFAULT_MAX_PAGE_BYTES,
  DEFAULT_MAX_VALUE_SIZE,
  DEFAULT_RETRIES,
  DEFAULT_RETRY_DELAY_MS,
  DEFAULT_TIMEOUT_MS,
  type FetchLike,
  type TransportOptions,
  type RequestSpec,
  type Reply,
  type ResponseKind,
} from './transport.js';
export { MalformedResponse, type Entry, type WriteResult, type SignedCheckpoint } from './wire.js';
export { parseTimeText, toTimeMs, timeWindowOf, type TimeLike, type TimeRange } from './time.js';
export { toBase64Url, fromBase64Url, utf8OrUndefined, type BytesLike } from './bytes.js';
export { parsePublicKey, decodeText, encodeText, PUBLIC_KEY_BYTES, TEXT_ENCODINGS, type TextEncoding } from './keys.js';
export { getProofBundle, historyProofBundle, verifyProofBundle, type ProofBundle, type BundleFacts, type HeadRelation } from './bundle.js';
