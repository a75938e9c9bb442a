/**
 * The stream protocol's client, node-only: {@link streamFetch} (a `fetch` for the SDK that sends
 * the key-value routes over `proofkv-stream/1` connections), the connection it uses, and the
 * frame codec. Exported by the Node entry of `proofkv/client` (`node-entry/client.ts`), never by
 * `client-sdk/index.ts`, so browser bundles do not pull `node:http`. docs/client.md § The stream.
 * @module
 */
export { streamFetch, type StreamFetch, type StreamFetchOptions, type StreamFetchStats } from './stream_fetch.js';
export {
  StreamConnection,
  StreamRefused,
  DEFAULT_MAX_ANSWER_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_QUEUED_BYTES,
  type StreamConnectionOptions,
} from './stream_connection.js';
export {
  STREAM_PROTOCOL,
  STREAM_PATH,
  StreamOp,
  StreamAccept,
  StreamErrorCode,
  StreamProtocolError,
  FrameReader,
  encodeRequest,
  decodeRequest,
  encodeAnswer,
  decodeAnswer,
  type StreamRequest,
  type StreamAnswer,
} from './stream_codec.js';
