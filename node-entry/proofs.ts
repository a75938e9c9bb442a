/**
 * `proofkv/proofs` (and `proofkv-client/proofs`) in Node: the isomorphic proof foundation with
 * `node:crypto`'s SHA-256 installed as the verifiers' default hasher, about 2–5x faster than
 * noble on the 65- and 70-byte messages a proof hashes. Same API and digests as `proofs/index.ts`;
 * browsers and bundlers without the `node` condition get that one.
 * @module
 */
import { installNodeSha256 } from './sha256.js';

installNodeSha256();

export * from '../proofs/index.js';
