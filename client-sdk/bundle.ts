/**
 * Saved proofs: a JSON document holding an encoded get or history proof and the question it
 * answers, verifiable later and offline (no server) against trusted keys. Isomorphic: no `node:`
 * imports. The CLI's `proof` command writes one and `verify` checks it.
 *
 * ```json
 * { "format": "proofkv-proof-v1", "type": "get", "key": "<b64url>", "version": 3, "edges": true,
 *   "proof": "<b64url of getProofCodec CBOR>", "endpoint": "http://…", "createdAt": "…" }
 * { "format": "proofkv-proof-v1", "type": "history", "key": "<b64url>", "minVersion": 0,
 *   "maxVersion": 9007199254740991, "limit": 1000, "proof": "<b64url of historyProofCodec CBOR>" }
 * ```
 * Offline there is no consistency proof to fetch, so a bundle is checked against the keys (and,
 * when a trusted head is given, against that head only where no proof is needed: an equal head, or
 * the same size with another root, which is a `FORK`).
 *
 * `edges: true` records that the proof was fetched with edge proofs (docs/proofs.md §8.12) and makes
 * the verifier require them; a bundle without the field (older bundles) or with `false` is verified
 * without edges, and the result's `edges` says which check ran.
 * @module
 */
import { equalBytes } from '../proofs/bytes.js';
import type { LogHead, TrustPolicy } from '../proofs/checkpoint.js';
import { DecodeError, Reason, VerificationError } from '../proofs/errors.js';
import { verifyGetProof, verifyHistoryProof, type GetFacts, type HistoryFacts } from '../proofs/lsm_proof.js';
import { getProofCodec, historyProofCodec } from '../proofs/lsm_encoding.js';
import { fromBase64Url, toBase64Url } from './bytes.js';
import { verificationFailure } from './errors.js';
import { check } from './trust.js';

/** A saved proof. Bytes are base64url. */
export type ProofBundle =
  | { format: 'proofkv-proof-v1'; type: 'get'; key: string; version?: number; edges?: boolean; proof: string; endpoint?: string; createdAt?: string }
  | {
      format: 'proofkv-proof-v1';
      type: 'history';
      key: string;
      minVersion?: number;
      maxVersion?: number;
      limit?: number;
      edges?: boolean;
      proof: string;
      endpoint?: string;
      createdAt?: string;
    };

/** How a verified bundle's head relates to the trusted head given to {@link verifyProofBundle}. */
export type HeadRelation = 'none' | 'same' | 'older' | 'newer';

/** The facts a bundle proves, and how its head relates to the trusted one. */
export type BundleFacts = ({ type: 'get' } & GetFacts) | ({ type: 'history' } & HistoryFacts);

/** Builds a get-proof bundle; pass `edges: true` when the proof was fetched with edge proofs. */
export function getProofBundle(key: Uint8Array, proof: Uint8Array, options: { version?: number; edges?: boolean; endpoint?: string } = {}): ProofBundle {
  const b: ProofBundle = { format: 'proofkv-proof-v1', type: 'get', key: toBase64Url(key), proof: toBase64Url(proof), createdAt: new Date().toISOString() };
  for (const f of ['version', 'edges', 'endpoint'] as const) if (options[f] !== undefined) (b as Record<string, unknown>)[f] = options[f];
  return b;
}

/** Builds a history-proof bundle; pass `edges: true` when the proof was fetched with edge proofs. */
export function historyProofBundle(
  key: Uint8Array,
  proof: Uint8Array,
  options: { minVersion?: number; maxVersion?: number; limit?: number; edges?: boolean; endpoint?: string } = {},
): ProofBundle {
  const b: ProofBundle = { format: 'proofkv-proof-v1', type: 'history', key: toBase64Url(key), proof: toBase64Url(proof), createdAt: new Date().toISOString() };
  for (const f of ['minVersion', 'maxVersion', 'limit', 'edges', 'endpoint'] as const) if (options[f] !== undefined) (b as Record<string, unknown>)[f] = options[f];
  return b;
}

/**
 * Verifies a saved proof offline against `trust` (keys and quorum). With `trustedHead`, a head at
 * the same size with another root is a `FORK`; `relation` reports whether the proof's head is the
 * same as, older or newer than the trusted one (a newer head's consistency cannot be checked
 * offline). Edge proofs are required exactly when the bundle says `edges: true`; `edges` in the
 * result reports whether they were checked (false for a bundle without the field). Throws
 * {@link VerificationError}, including `MALFORMED_ENCODING` for a bad bundle (or an `edges` that is
 * not a boolean).
 */
export function verifyProofBundle(bundle: unknown, trust: TrustPolicy, trustedHead?: LogHead): BundleFacts & { relation: HeadRelation; edges: boolean } {
  const b = bundle as ProofBundle;
  if (typeof b !== 'object' || b === null || b.format !== 'proofkv-proof-v1' || (b.type !== 'get' && b.type !== 'history')) {
    throw new DecodeError('', 'not a proofkv-proof-v1 bundle');
  }
  if (b.edges !== undefined && typeof b.edges !== 'boolean') throw new DecodeError('', 'bundle edges is not a boolean');
  const edges = b.edges === true;
  let key: Uint8Array;
  let bytes: Uint8Array;
  try {
    key = fromBase64Url(b.key);
    bytes = fromBase64Url(b.proof);
  } catch (err) {
    throw new DecodeError('', `bundle key or proof: ${(err as Error).message}`);
  }
  let facts: BundleFacts;
  if (b.type === 'get') {
    const r = verifyGetProof(getProofCodec.decode(bytes), { key, version: b.version, edges }, { trust });
    check(r);
    facts = { type: 'get', ...(r as GetFacts) };
  } else {
    const r = verifyHistoryProof(historyProofCodec.decode(bytes), { key, minVersion: b.minVersion, maxVersion: b.maxVersion, limit: b.limit, edges }, { trust });
    check(r);
    facts = { type: 'history', ...(r as HistoryFacts) };
  }
  let relation: HeadRelation = 'none';
  if (trustedHead) {
    const h = facts.head;
    if (h.size === trustedHead.size) {
      if (!equalBytes(h.root, trustedHead.root)) verificationFailure(Reason.FORK, `proof head root differs from the trusted root at size ${h.size}`);
      relation = 'same';
    } else relation = h.size < trustedHead.size ? 'older' : 'newer';
  }
  return { ...facts, relation, edges };
}


