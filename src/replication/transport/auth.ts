/**
 * Authentication of peer requests: the HMAC-SHA256 every request carries, the headers it travels
 * in, and the replay guard. Pure (no I/O, no clock: the time is passed in).
 *
 * A request's MAC, keyed with the 32-byte cluster secret, covers
 * ```
 * "proofkv-peer-request-v1" | 0x00 | route:u8 (1 messages, 2 snapshot, 3 stream handshake)
 * | len:u16 | clusterId (UTF-8) | from:u32 | to:u32 | epoch:u64 | seq:u64 | time:u64
 * | len:u16 | target (UTF-8: "" for messages and streams, "index/name/offset/length" for a snapshot chunk)
 * | SHA-256(body)
 * ```
 * (integers big-endian). The claims travel in the `proofkv-peer-*` headers and the MAC is checked
 * with a constant-time comparison. A `409` that tells a sender its epoch is stale carries its own
 * MAC (domain `"proofkv-peer-epoch-v1"`, bound to the refused request's MAC), so nobody without
 * the secret can move a sender's epoch (a `409 replay` carries the same, for a sender that
 * restarted within the millisecond of its previous epoch). A stream's `101` answer carries a MAC
 * too ({@link streamAcceptMac}: the recipient's id and fresh nonce bound to the handshake's MAC),
 * and its frames are authenticated under {@link streamKey}, a key of that stream only. A snapshot
 * chunk's `200` answer carries a MAC over its bytes bound to the request's MAC
 * ({@link chunkAnswerMac}, domain `"proofkv-peer-chunk-answer-v1"`), and its refusals one over
 * their status and reason ({@link chunkRefusalMac}, domain `"proofkv-peer-chunk-refusal-v1"`).
 * A stream handshake may name the sender's peer URL, with a MAC of its own bound to the
 * handshake's ({@link senderUrlMac}, domain `"proofkv-peer-sender-url-v1"`).
 *
 * **Replay.** Raft itself tolerates duplicated and reordered messages, but a replayed `MsgProp`
 * would propose a command again (a conf change, for instance) so message batches are not
 * replayable: each sender numbers its requests to each recipient with `(epoch, seq)` — the epoch
 * is the sender's start time in ms (raised past what a recipient has seen when the recipient says
 * it is stale, e.g. after the sender's clock stepped back), `seq` counts up from 1 — and the
 * recipient accepts a batch (or a stream handshake) only when `(epoch, seq)` is above the last pair it accepted from that
 * sender, and only when the request's `time` is within `maxClockSkewMs` of its own clock (which
 * bounds what a recipient that restarted, and so forgot its pairs, could be replayed). Snapshot
 * chunk reads change nothing and may run in parallel, so they are checked for freshness only.
 * @module
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Bytes of the cluster secret. */
export const SECRET_BYTES = 32;

/** The HTTP headers of a peer request (lower case, as Node exposes them). */
export const PeerHeader = {
  cluster: 'proofkv-peer-cluster',
  from: 'proofkv-peer-from',
  to: 'proofkv-peer-to',
  epoch: 'proofkv-peer-epoch',
  seq: 'proofkv-peer-seq',
  time: 'proofkv-peer-time',
  mac: 'proofkv-peer-mac',
  /** On a `409 stale-epoch` answer: the lowest epoch the recipient still refuses. */
  minEpoch: 'proofkv-peer-min-epoch',
  /** On every refusal: the reason (one of {@link RefusalReason}). */
  refusal: 'proofkv-peer-refusal',
  /** On a stream's `101` answer: the recipient's 16-byte nonce (hex), which every frame's key covers. */
  nonce: 'proofkv-peer-nonce',
  /**
   * On a stream handshake: the sender's own peer URL, so that a member that does not know the
   * sender yet (it missed the sender's addition) can answer it ({@link senderUrlMac}).
   */
  senderUrl: 'proofkv-peer-sender-url',
  /** On a stream handshake with {@link PeerHeader.senderUrl}: {@link senderUrlMac} (hex). */
  senderUrlMac: 'proofkv-peer-sender-url-mac',
} as const;

/** Which route a request is for (part of what its MAC covers). */
export enum PeerRoute {
  Messages = 1,
  Snapshot = 2,
  /** The handshake of a message stream (stream.ts). */
  Stream = 3,
}

/** What a sender claims about a request; all of it is covered by the MAC. */
export interface PeerClaims {
  clusterId: string;
  from: number;
  to: number;
  epoch: number;
  seq: number;
  /** Sender's clock when it sent the request (ms since the epoch). */
  time: number;
}

const REQUEST_DOMAIN = new TextEncoder().encode('proofkv-peer-request-v1\0');
const EPOCH_DOMAIN = new TextEncoder().encode('proofkv-peer-epoch-v1\0');
const ACCEPT_DOMAIN = new TextEncoder().encode('proofkv-peer-stream-accept-v1\0');
const STREAM_KEY_DOMAIN = new TextEncoder().encode('proofkv-peer-stream-key-v1\0');
const CHUNK_ANSWER_DOMAIN = new TextEncoder().encode('proofkv-peer-chunk-answer-v1\0');
const CHUNK_REFUSAL_DOMAIN = new TextEncoder().encode('proofkv-peer-chunk-refusal-v1\0');
const SENDER_URL_DOMAIN = new TextEncoder().encode('proofkv-peer-sender-url-v1\0');
const te = new TextEncoder();

/** SHA-256 of a request body. */
export function bodyDigest(body: Uint8Array): Uint8Array {
  return createHash('sha256').update(body).digest();
}

function u64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, Math.floor(v / 0x1_0000_0000));
  dv.setUint32(4, v >>> 0);
  return b;
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

function lp16(s: string): Uint8Array[] {
  const b = te.encode(s);
  return [Uint8Array.of(b.length >>> 8, b.length & 0xff), b];
}

function hmac(secret: Uint8Array, parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The MAC of a request: see the module comment for what it covers. */
export function requestMac(secret: Uint8Array, route: PeerRoute, c: PeerClaims, target: string, digest: Uint8Array): Uint8Array {
  return hmac(secret, [
    REQUEST_DOMAIN, Uint8Array.of(route), ...lp16(c.clusterId), u32(c.from), u32(c.to),
    u64(c.epoch), u64(c.seq), u64(c.time), ...lp16(target), digest,
  ]);
}

/** The MAC of a `409 stale-epoch` answer from `from` (the recipient) to `to` (the sender). */
export function epochMac(secret: Uint8Array, clusterId: string, from: number, to: number, minEpoch: number, reqMac: Uint8Array): Uint8Array {
  return hmac(secret, [EPOCH_DOMAIN, ...lp16(clusterId), u32(from), u32(to), u64(minEpoch), reqMac]);
}

/**
 * The MAC of a stream's `101` answer from `from` (the recipient) to `to` (the sender): it binds
 * the recipient's id and its `nonce` to the handshake request's MAC, so the sender knows which
 * member accepted and nobody without the secret can accept a stream in a member's name.
 */
export function streamAcceptMac(secret: Uint8Array, clusterId: string, from: number, to: number, nonce: Uint8Array, reqMac: Uint8Array): Uint8Array {
  return hmac(secret, [ACCEPT_DOMAIN, ...lp16(clusterId), u32(from), u32(to), Uint8Array.of(nonce.length), nonce, reqMac]);
}

/**
 * The MAC of the sender's peer URL on a stream handshake, bound to the handshake's MAC: nobody
 * without the secret can make a member answer a sender at another address. A header of its own,
 * not part of the request MAC, so that a member of an earlier release (which ignores it) still
 * accepts the handshake.
 */
export function senderUrlMac(secret: Uint8Array, reqMac: Uint8Array, url: string): Uint8Array {
  return hmac(secret, [SENDER_URL_DOMAIN, reqMac, ...lp16(url)]);
}

/**
 * The key of one stream's frame MACs: HMAC(secret, domain | handshake MAC | recipient's nonce).
 * The handshake MAC covers the sender's `(epoch, seq)`, which the replay guard never accepts
 * twice, and the nonce is fresh for each accepted stream: no two streams share a key, so a frame
 * captured on one stream fails on every other.
 */
export function streamKey(secret: Uint8Array, reqMac: Uint8Array, nonce: Uint8Array): Uint8Array {
  return hmac(secret, [STREAM_KEY_DOMAIN, reqMac, Uint8Array.of(nonce.length), nonce]);
}

/**
 * The MAC of a snapshot chunk's `200` answer from `from` (the member that serves it) to `to` (the
 * member that asked): it binds the chunk's bytes (`digest`, their SHA-256) to the request's MAC,
 * which covers the chunk's `index/name/offset/length` and the asker's `(epoch, seq)` — fresh for
 * every request — so a tampered chunk, another chunk's answer or an answer to an earlier request
 * fails, and nobody without the secret can answer in a member's name.
 */
export function chunkAnswerMac(secret: Uint8Array, clusterId: string, from: number, to: number, reqMac: Uint8Array, digest: Uint8Array): Uint8Array {
  return hmac(secret, [CHUNK_ANSWER_DOMAIN, ...lp16(clusterId), u32(from), u32(to), reqMac, digest]);
}

/**
 * The MAC of a snapshot chunk's refusal (any status but `200`) from `from` (the member that
 * refuses) to `to` (the member that asked): it binds the status and the reason (the
 * `proofkv-peer-refusal` header) to the request's MAC, exactly as {@link chunkAnswerMac} binds a
 * chunk's bytes, so that nobody without the secret can refuse a chunk in a member's name, and a
 * refusal recorded for one request fails for every other.
 */
export function chunkRefusalMac(secret: Uint8Array, clusterId: string, from: number, to: number, reqMac: Uint8Array, status: number, reason: string): Uint8Array {
  return hmac(secret, [CHUNK_REFUSAL_DOMAIN, ...lp16(clusterId), u32(from), u32(to), reqMac, Uint8Array.of(status >>> 8, status & 0xff), ...lp16(reason)]);
}

/** Constant-time comparison of a received MAC with the expected one. */
export function macEquals(expected: Uint8Array, got: Uint8Array): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}

/** The headers that carry claims and MAC. */
export function authHeaders(c: PeerClaims, mac: Uint8Array): Record<string, string> {
  return {
    [PeerHeader.cluster]: c.clusterId,
    [PeerHeader.from]: String(c.from),
    [PeerHeader.to]: String(c.to),
    [PeerHeader.epoch]: String(c.epoch),
    [PeerHeader.seq]: String(c.seq),
    [PeerHeader.time]: String(c.time),
    [PeerHeader.mac]: Buffer.from(mac).toString('hex'),
  };
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;
const CLUSTER_ID = /^[\x21-\x7e]{1,128}$/;
const HEX_MAC = /^[0-9a-f]{64}$/;

/** A non-negative safe integer in canonical decimal, or undefined. */
export function parseDecimal(v: unknown): number | undefined {
  if (typeof v !== 'string' || !DECIMAL.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** True for a cluster id the headers can carry: 1–128 printable ASCII characters. */
export function isValidClusterId(v: unknown): v is string {
  return typeof v === 'string' && CLUSTER_ID.test(v);
}

/**
 * Reads claims and MAC from request headers; undefined when any is missing or not in its
 * canonical form (a header given twice counts as malformed).
 */
export function parseAuthHeaders(headers: Record<string, string | string[] | undefined>): { claims: PeerClaims; mac: Uint8Array } | undefined {
  const one = (name: string): string | undefined => {
    const v = headers[name];
    return typeof v === 'string' ? v : undefined;
  };
  const clusterId = one(PeerHeader.cluster);
  const from = parseDecimal(one(PeerHeader.from));
  const to = parseDecimal(one(PeerHeader.to));
  const epoch = parseDecimal(one(PeerHeader.epoch));
  const seq = parseDecimal(one(PeerHeader.seq));
  const time = parseDecimal(one(PeerHeader.time));
  const mac = one(PeerHeader.mac);
  if (!isValidClusterId(clusterId) || from === undefined || to === undefined || epoch === undefined ||
    seq === undefined || time === undefined || mac === undefined || !HEX_MAC.test(mac)) return undefined;
  if (from < 1 || from > 0xffff_ffff || to < 1 || to > 0xffff_ffff) return undefined;
  return { claims: { clusterId, from, to, epoch, seq, time }, mac: Buffer.from(mac, 'hex') };
}

/** True when a request sent at `time` is fresh at `now`. */
export function isFresh(time: number, now: number, maxClockSkewMs: number): boolean {
  return Math.abs(now - time) <= maxClockSkewMs;
}

/** Outcome of {@link ReplayGuard.admit}. */
export type Admission = { ok: true } | { ok: false; reason: 'replay' | 'stale-epoch'; minEpoch: number };

/**
 * The last `(epoch, seq)` accepted from each sender. Holds at most `maxSenders` entries (only
 * authenticated members create them; the oldest is forgotten first).
 */
export class ReplayGuard {
  private readonly last = new Map<number, { epoch: number; seq: number }>();
  constructor(readonly maxSenders = 4096) {}

  /** Accepts and records `(epoch, seq)` from `from` when it is above the last accepted pair. */
  admit(from: number, epoch: number, seq: number): Admission {
    const cur = this.last.get(from);
    if (cur !== undefined) {
      if (epoch < cur.epoch) return { ok: false, reason: 'stale-epoch', minEpoch: cur.epoch };
      if (epoch === cur.epoch && seq <= cur.seq) return { ok: false, reason: 'replay', minEpoch: cur.epoch };
      this.last.delete(from);
    } else if (this.last.size >= this.maxSenders) {
      const oldest = this.last.keys().next().value as number;
      this.last.delete(oldest);
    }
    this.last.set(from, { epoch, seq });
    return { ok: true };
  }

  /** Number of senders remembered. */
  get size(): number {
    return this.last.size;
  }
}
