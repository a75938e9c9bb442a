/**
 * `proofkv/client` (and `proofkv-client`) in Node: the client SDK with `node:crypto`'s SHA-256
 * installed as the verifiers' default hasher. Same API as `client-sdk/index.ts`, which browsers
 * and bundlers without the `node` condition get.
 * @module
 */
import { installNodeSha256 } from './sha256.js';

installNodeSha256();

export * from '../client-sdk/index.js';
