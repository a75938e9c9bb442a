/**
 * The wire format of Raft messages between members: one message, and a batch of messages (the
 * body of one `POST`). Pure: bytes in, bytes out.
 *
 * Integers are unsigned LEB128 varints (at most 2^53 - 1, shortest form only); byte strings are a
 * varint length followed by the bytes.
 * ```
 * batch   := version:u8 (=1) | count:varint | count × (length:varint | message)
 * message := type:u8 | flags:u8 | to | from | term | logTerm | index | commit | rejectHint
 *            | nEntries:varint | nEntries × entry
 *            | [snapshot]  if flags & SNAPSHOT
 *            | [offset]    if flags & OFFSET
 *            | [context]   if flags & CONTEXT (length-prefixed bytes)
 * entry   := type:u8 (0 normal, 1 conf change) | term | index | data (length-prefixed)
 * snapshot:= index | term | nVoters | voter… | nLearners | learner… | offset | total | data (length-prefixed)
 * flags   := 1 REJECT | 2 FORCE present | 4 FORCE value | 8 SNAPSHOT | 16 OFFSET | 32 CONTEXT
 * type    := 1 Prop, 2 App, 3 AppResp, 4 Vote, 5 VoteResp, 6 PreVote, 7 PreVoteResp, 8 Snap,
 *            9 SnapResp, 10 Heartbeat, 11 HeartbeatResp, 12 TransferLeader, 13 TimeoutNow,
 *            14 ReadIndex, 15 ReadIndexResp   (local types never travel)
 * ```
 * Decoding is strict: every count is checked against the bytes left (and a fixed cap) before
 * anything is allocated, unknown types and flag bits, non-shortest varints, ids of 0 or above
 * 2^32 - 1 and trailing bytes are refused, and the only error thrown is {@link TransportError}
 * `TRANSPORT_MALFORMED`. Decoded byte strings are copies (they do not keep the body alive): a
 * message's entries share one copy of their bytes, which holds nothing but them.
 * @module
 */
import { EntryType, MessageType, type Entry, type Message, type SnapshotChunk } from '../../raft/index.js';
import { putVarint, StrictReader, varintLength } from '../../util/coding.js';
import { TransportError, TransportErrorCode } from './errors.js';

/** Version byte that starts every batch. */
export const BATCH_VERSION = 1;
/** Most messages one batch may carry. */
export const MAX_BATCH_MESSAGES = 1 << 16;
/** Most entries one message may carry. */
export const MAX_MESSAGE_ENTRIES = 1 << 20;
/** Most voters (and, separately, learners) a snapshot's membership may list. */
export const MAX_MEMBERS = 1 << 12;
/** Largest node id (ids are u32 in conf changes). */
export const MAX_NODE_ID = 0xffff_ffff;

const wireTypes: readonly MessageType[] = [
  MessageType.Prop, MessageType.App, MessageType.AppResp, MessageType.Vote, MessageType.VoteResp,
  MessageType.PreVote, MessageType.PreVoteResp, MessageType.Snap, MessageType.SnapResp,
  MessageType.Heartbeat, MessageType.HeartbeatResp, MessageType.TransferLeader,
  MessageType.TimeoutNow, MessageType.ReadIndex, MessageType.ReadIndexResp,
];
const typeCode = new Map<MessageType, number>(wireTypes.map((t, i) => [t, i + 1]));

const F_REJECT = 1;
const F_FORCE = 2;
const F_FORCE_VALUE = 4;
const F_SNAPSHOT = 8;
const F_OFFSET = 16;
const F_CONTEXT = 32;
const F_ALL = 63;

const malformedError = (why: string): TransportError => new TransportError(TransportErrorCode.Malformed, `malformed peer message: ${why}`);

function malformed(why: string): never {
  throw malformedError(why);
}

function invalid(why: string): never {
  throw new TransportError(TransportErrorCode.InvalidArgument, `cannot encode peer message: ${why}`);
}

/**
 * Output of checked varints and byte strings, into a buffer sized up front ({@link messageBound}):
 * one allocation per message, no growth and no copy at the end.
 */
class Writer {
  private readonly out: Uint8Array;
  private pos = 0;
  constructor(bound: number) {
    this.out = new Uint8Array(bound);
  }
  u8(v: number): void {
    this.out[this.pos++] = v;
  }
  uint(v: number, what: string): void {
    if (!Number.isSafeInteger(v) || v < 0) invalid(`${what} must be a non-negative safe integer, got ${v}`);
    this.pos = putVarint(this.out, this.pos, v);
  }
  id(v: number, what: string): void {
    if (!Number.isSafeInteger(v) || v < 1 || v > MAX_NODE_ID) invalid(`${what} must be a node id in [1, 2^32 - 1], got ${v}`);
    this.pos = putVarint(this.out, this.pos, v);
  }
  bytes(b: Uint8Array, what: string): void {
    if (!(b instanceof Uint8Array)) invalid(`${what} must be bytes`);
    this.pos = putVarint(this.out, this.pos, b.length);
    this.out.set(b, this.pos);
    this.pos += b.length;
  }
  /** The bytes written: the whole buffer when the bound was exact, else a view of its prefix. */
  finish(): Uint8Array {
    return this.pos === this.out.length ? this.out : this.out.subarray(0, this.pos);
  }
}

/** Most bytes of a varint (2^53 - 1 takes 8). */
const VARINT_MAX = 8;

/** Byte length of `b` when it is bytes (else 0: the writer refuses it before writing). */
const lengthOf = (b: unknown): number => (b instanceof Uint8Array ? b.length : 0);

/**
 * An upper bound of the bytes {@link encodeMessage} writes for `m` (every varint counted at its
 * longest): the writer's one allocation. Counts and lists beyond a decoder's caps are refused by
 * the caller before this is used.
 */
function messageBound(m: Message, entries: readonly Entry[]): number {
  let n = 2 + 7 * VARINT_MAX + VARINT_MAX;
  for (const e of entries) n += 1 + 3 * VARINT_MAX + lengthOf(e.data);
  const s = m.snapshot;
  if (s !== undefined) {
    const voters = Array.isArray(s.metadata?.confState?.voters) ? s.metadata.confState.voters.length : 0;
    const learners = Array.isArray(s.metadata?.confState?.learners) ? s.metadata.confState.learners.length : 0;
    n += (7 + voters + learners) * VARINT_MAX + lengthOf(s.data);
  }
  if (m.offset !== undefined) n += VARINT_MAX;
  if (m.context !== undefined) n += VARINT_MAX + lengthOf(m.context);
  return n;
}

/** Strict cursor; every failure is `TRANSPORT_MALFORMED`. */
class Reader extends StrictReader {
  constructor(buf: Uint8Array, start: number, end: number) {
    super(buf, start, end, malformedError);
  }
  id(what: string): number {
    const v = this.uint(what);
    if (v < 1 || v > MAX_NODE_ID) this.malformed(`${what}: node id ${v} out of range`);
    return v;
  }
  /** A count of items each at least `minSize` bytes, checked before anything is allocated. */
  count(what: string, cap: number, minSize: number): number {
    const n = this.uint(what);
    if (n > cap) this.malformed(`${what}: ${n} is above the cap of ${cap}`);
    if (n * minSize > this.remaining) this.malformed(`${what}: ${n} items cannot fit in ${this.remaining} bytes`);
    return n;
  }
  /** A length-prefixed byte string, copied. */
  bytes(what: string): Uint8Array {
    const n = this.length(what);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

function checkIds(ids: unknown, what: string): void {
  if (!Array.isArray(ids) || ids.length > MAX_MEMBERS) invalid(`${what} must be a list of at most ${MAX_MEMBERS} ids`);
}

function writeIds(w: Writer, ids: readonly number[], what: string): void {
  checkIds(ids, what);
  w.uint(ids.length, what);
  for (const id of ids) w.id(id, what);
}

function readIds(r: Reader, what: string): number[] {
  const n = r.count(what, MAX_MEMBERS, 1);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.id(what));
  return ids;
}

/**
 * Encodes one message. Throws {@link TransportError} `TRANSPORT_INVALID_ARGUMENT` for a local
 * message type, a field out of range, or more entries or members than a decoder accepts.
 */
export function encodeMessage(m: Message): Uint8Array {
  const code = typeCode.get(m.type);
  if (code === undefined) invalid(`type ${String(m.type)} never travels between members`);
  const entries = m.entries ?? [];
  if (entries.length > MAX_MESSAGE_ENTRIES) invalid(`${entries.length} entries is above the cap of ${MAX_MESSAGE_ENTRIES}`);
  const s = m.snapshot;
  if (s !== undefined) {
    // Checked before the bound counts them (writeIds checks them again as it writes).
    checkIds(s.metadata?.confState?.voters, 'voters');
    checkIds(s.metadata?.confState?.learners, 'learners');
  }
  const w = new Writer(messageBound(m, entries));
  let flags = 0;
  if (m.reject) flags |= F_REJECT;
  if (m.force !== undefined) flags |= F_FORCE | (m.force ? F_FORCE_VALUE : 0);
  if (m.snapshot !== undefined) flags |= F_SNAPSHOT;
  if (m.offset !== undefined) flags |= F_OFFSET;
  if (m.context !== undefined) flags |= F_CONTEXT;
  w.u8(code);
  w.u8(flags);
  w.id(m.to, 'to');
  w.id(m.from, 'from');
  w.uint(m.term, 'term');
  w.uint(m.logTerm, 'logTerm');
  w.uint(m.index, 'index');
  w.uint(m.commit, 'commit');
  w.uint(m.rejectHint, 'rejectHint');
  w.uint(entries.length, 'entries');
  for (const e of entries) {
    if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) invalid(`entry type ${String(e.type)}`);
    w.u8(e.type === EntryType.ConfChange ? 1 : 0);
    w.uint(e.term, 'entry term');
    w.uint(e.index, 'entry index');
    w.bytes(e.data, 'entry data');
  }
  if (s !== undefined) {
    if (s.offset + s.data.length > s.total) invalid(`snapshot chunk ends at ${s.offset + s.data.length}, beyond its total ${s.total}`);
    w.uint(s.metadata.index, 'snapshot index');
    w.uint(s.metadata.term, 'snapshot term');
    writeIds(w, s.metadata.confState.voters, 'voters');
    writeIds(w, s.metadata.confState.learners, 'learners');
    w.uint(s.offset, 'snapshot offset');
    w.uint(s.total, 'snapshot total');
    w.bytes(s.data, 'snapshot data');
  }
  if (m.offset !== undefined) w.uint(m.offset, 'offset');
  if (m.context !== undefined) w.bytes(m.context, 'context');
  return w.finish();
}

function readMessage(r: Reader): Message {
  const code = r.u8('type');
  const type = wireTypes[code - 1];
  if (type === undefined) malformed(`unknown message type ${code}`);
  const flags = r.u8('flags');
  if ((flags & ~F_ALL) !== 0) malformed(`unknown flag bits ${flags}`);
  if ((flags & F_FORCE_VALUE) !== 0 && (flags & F_FORCE) === 0) malformed('force value without force');
  const m: Message = {
    type,
    to: r.id('to'),
    from: r.id('from'),
    term: r.uint('term'),
    logTerm: r.uint('logTerm'),
    index: r.uint('index'),
    commit: r.uint('commit'),
    reject: (flags & F_REJECT) !== 0,
    rejectHint: r.uint('rejectHint'),
    entries: [],
  };
  const n = r.count('entries', MAX_MESSAGE_ENTRIES, 4);
  const entries: Entry[] = [];
  // The entries' bytes are copied once, together (their data are views of that copy): one
  // allocation per message instead of one per entry, and the copy holds only this message's
  // entries, not the rest of the frame.
  const from = r.pos;
  // Per entry: its type, term, index, data offset (from `from`) and length.
  const fields: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = r.u8('entry type');
    if (t > 1) malformed(`unknown entry type ${t}`);
    const term = r.uint('entry term');
    const index = r.uint('entry index');
    const length = r.length('entry data');
    fields.push(t, term, index, r.pos - from, length);
    r.pos += length;
  }
  const copy = n > 0 ? r.buf.slice(from, r.pos) : undefined;
  for (let i = 0; i < 5 * n; i += 5) {
    const at = fields[i + 3];
    entries.push({ term: fields[i + 1], index: fields[i + 2], type: fields[i] === 1 ? EntryType.ConfChange : EntryType.Normal, data: copy!.subarray(at, at + fields[i + 4]) });
  }
  m.entries = entries;
  if ((flags & F_SNAPSHOT) !== 0) {
    const index = r.uint('snapshot index');
    const term = r.uint('snapshot term');
    const voters = readIds(r, 'voters');
    const learners = readIds(r, 'learners');
    const offset = r.uint('snapshot offset');
    const total = r.uint('snapshot total');
    const data = r.bytes('snapshot data');
    if (offset + data.length > total) malformed(`snapshot chunk ends at ${offset + data.length}, beyond its total ${total}`);
    const chunk: SnapshotChunk = { metadata: { index, term, confState: { voters, learners } }, offset, total, data };
    m.snapshot = chunk;
  }
  if ((flags & F_OFFSET) !== 0) m.offset = r.uint('offset');
  if ((flags & F_CONTEXT) !== 0) m.context = r.bytes('context');
  if ((flags & F_FORCE) !== 0) m.force = (flags & F_FORCE_VALUE) !== 0;
  return m;
}

/** Decodes one message encoded by {@link encodeMessage}; throws only `TRANSPORT_MALFORMED`. */
export function decodeMessage(bytes: Uint8Array): Message {
  return guarded(() => {
    const r = new Reader(bytes, 0, bytes.length);
    const m = readMessage(r);
    if (r.remaining !== 0) malformed(`${r.remaining} trailing bytes`);
    return m;
  });
}

/** Bytes of the batch of already-encoded messages `encoded` ({@link encodeBatch}). */
export function batchSize(encoded: readonly Uint8Array[]): number {
  let size = 1 + varintLength(encoded.length);
  for (const e of encoded) size += varintLength(e.length) + e.length;
  return size;
}

/**
 * Writes the batch of already-encoded messages `encoded` into `out` at `at` (room for
 * {@link batchSize} bytes); returns the position after it. Lets a frame hold its batch without
 * a copy of it.
 */
export function writeBatch(encoded: readonly Uint8Array[], out: Uint8Array, at: number): number {
  out[at] = BATCH_VERSION;
  let pos = putVarint(out, at + 1, encoded.length);
  for (const e of encoded) {
    pos = putVarint(out, pos, e.length);
    out.set(e, pos);
    pos += e.length;
  }
  return pos;
}

/** Frames already-encoded messages ({@link encodeMessage}) as one batch. */
export function encodeBatch(encoded: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(batchSize(encoded));
  writeBatch(encoded, out, 0);
  return out;
}

/** Encodes messages as one batch (a convenience over {@link encodeMessage} and {@link encodeBatch}). */
export function encodeMessages(messages: readonly Message[]): Uint8Array {
  return encodeBatch(messages.map(encodeMessage));
}

/** Decodes a batch; throws only {@link TransportError} `TRANSPORT_MALFORMED`. */
export function decodeBatch(bytes: Uint8Array): Message[] {
  return guarded(() => {
    if (!(bytes instanceof Uint8Array)) malformed('not bytes');
    const r = new Reader(bytes, 0, bytes.length);
    const version = r.u8('version');
    if (version !== BATCH_VERSION) malformed(`unknown batch version ${version}`);
    // Smallest message: type, flags, 7 one-byte integers and an entry count = 10 bytes, plus its length.
    const n = r.count('messages', MAX_BATCH_MESSAGES, 11);
    const out: Message[] = [];
    for (let i = 0; i < n; i++) {
      const len = r.uint('message length');
      if (len > r.remaining) malformed(`message ${i}: length ${len} beyond the ${r.remaining} bytes left`);
      const inner = new Reader(bytes, r.pos, r.pos + len);
      out.push(readMessage(inner));
      if (inner.remaining !== 0) malformed(`message ${i}: ${inner.remaining} trailing bytes`);
      r.pos += len;
    }
    if (r.remaining !== 0) malformed(`${r.remaining} trailing bytes after ${n} messages`);
    return out;
  });
}

/** Runs a decoder so that nothing but `TRANSPORT_MALFORMED` escapes it. */
function guarded<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TransportError && e.code === TransportErrorCode.Malformed) throw e;
    throw new TransportError(TransportErrorCode.Malformed, `malformed peer message: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}
