/**
 * The peer transport between member processes: the message codec (`codec.ts`), request
 * authentication and the replay guard (`auth.ts`), the frames of a message stream (`stream.ts`),
 * the bounded per-peer queue (`queue.ts`), all pure, and {@link HttpTransport} (`http.ts`), the I/O. See `docs/replication.md` § Transport.
 * @module
 */
export { TransportError, TransportErrorCode } from './errors.js';
export {
  BATCH_VERSION, MAX_BATCH_MESSAGES, MAX_MEMBERS, MAX_MESSAGE_ENTRIES, MAX_NODE_ID,
  batchSize, decodeBatch, decodeMessage, encodeBatch, encodeMessage, encodeMessages, writeBatch,
} from './codec.js';
export {
  PeerHeader, PeerRoute, ReplayGuard, SECRET_BYTES, authHeaders, bodyDigest, chunkAnswerMac, epochMac, isFresh,
  macEquals, parseAuthHeaders, requestMac, senderUrlMac, streamAcceptMac, streamKey, type Admission, type PeerClaims,
} from './auth.js';
export {
  FRAME_HEADER_BYTES, FrameReader, STREAM_NONCE_BYTES, STREAM_PATH, STREAM_PROTOCOL, encodeBatchFrame, encodeFrame,
  type FrameRead, type FrameRefusal,
} from './stream.js';
export { PeerQueue } from './queue.js';
export {
  HttpTransport, MAX_CHUNK_BYTES, MAX_INBOUND_PER_SENDER, MAX_PEER_URL_BYTES, MESSAGES_PATH, SNAPSHOT_PATH,
  type HttpTransportOptions, type PeerStats, type RefusalReason, type TransportStats, type TransportTls,
} from './http.js';
