/**
 * `proofkv/client` (and `proofkv-client`) in Node: the client SDK with {@link installNodeSha256}
 * done (node:crypto for messages of 128 bytes and more), plus the stream protocol's client
 * (`streamFetch`, `client-sdk/stream.ts`), which needs `node:http`. Otherwise the same API as
 * `client-sdk/index.ts`, which browsers and bundlers without the `node` condition get.
 * @module
 */
import { installNodeSha256 } from './sha256.js';

installNodeSha256();

export * from '../client-sdk/index.js';
export * from '../client-sdk/stream.js';
