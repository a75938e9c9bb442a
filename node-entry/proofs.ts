/**
 * `proofkv/proofs` (and `proofkv-client/proofs`) in Node: the isomorphic proof foundation with
 * {@link installNodeSha256} done (node:crypto for messages of 128 bytes and more). Same API and
 * digests as `proofs/index.ts`; browsers and bundlers without the `node` condition get that one.
 * @module
 */
import { installNodeSha256 } from './sha256.js';

installNodeSha256();

export * from '../proofs/index.js';
