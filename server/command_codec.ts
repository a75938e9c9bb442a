/**
 * The encoding of a {@link WriteCommand} in a Raft log entry (docs/replication.md § Decisions,
 * *Log commands*). Every member decodes every committed command, so the hot ones — `put` and
 * `delete` — have a binary form; every other command, and a `put` or `delete` with anything the
 * binary form does not carry, is CBOR as before. The two are told apart by the first byte: a CBOR
 * command is a map (0xa0–0xbf), a binary one starts with its tag (0x01 put, 0x02 delete). Entries
 * written before the binary form existed decode as they always did.
 *
 * ```
 * put     := 0x01 | flags:u8 | [time] | [version] | [ifVersion] | [session] | key | value
 * delete  := 0x02 | flags:u8 | [time] | [ifVersion] | [session] | key
 * session := clientId (length | UTF-8) | seq
 * flags   := 0x01 time | 0x02 version (put) | 0x04 ifVersion | 0x08 ifAbsent (put) | 0x10 session
 * ```
 *
 * Integers are unsigned LEB128 varints (at most 2^53 − 1, shortest form); `key`, `value` and the
 * client id are a varint length and the bytes. The decoder is strict — unknown flags, a field the
 * command type does not have, a non-shortest varint, a length beyond the bytes left, a client id
 * that is not well-formed UTF-8 or longer than {@link MAX_CLIENT_ID_BYTES}, trailing bytes — and
 * throws only {@link CommandCodecError}; what it accepts re-encodes to the same bytes. It decodes
 * to exactly the object the CBOR form decodes to (key and value as views of the entry's bytes),
 * so applying either gives the same engine writes, session decisions and tables.
 * @module
 */
import { Encoder } from 'cbor-x';
import { ErrorCode, ProofKVError } from '../src/errors.js';
import { putVarint, StrictReader, varintLength } from '../src/util/coding.js';
import type { Session, WriteCommand } from './write_path.js';

/** First byte of a binary `put` command. */
export const TAG_PUT = 0x01;
/** First byte of a binary `delete` command. */
export const TAG_DELETE = 0x02;
/** Longest client id the binary form carries (UTF-8 bytes; a session's id is 1–64 characters). */
export const MAX_CLIENT_ID_BYTES = 256;

const F_TIME = 0x01;
const F_VERSION = 0x02;
const F_IF_VERSION = 0x04;
const F_IF_ABSENT = 0x08;
const F_SESSION = 0x10;
const PUT_FLAGS = F_TIME | F_VERSION | F_IF_VERSION | F_IF_ABSENT | F_SESSION;
const DELETE_FLAGS = F_TIME | F_IF_VERSION | F_SESSION;
const PUT_FIELDS = new Set(['type', 'key', 'value', 'version', 'ifVersion', 'ifAbsent', 'session', 'time']);
const DELETE_FIELDS = new Set(['type', 'key', 'ifVersion', 'session', 'time']);

/** A log entry's command bytes that are not a command (`CORRUPTION`: a damaged or foreign entry). */
export class CommandCodecError extends ProofKVError {
  constructor(why: string) {
    super(ErrorCode.CORRUPTION, `malformed log command: ${why}`);
    this.name = 'CommandCodecError';
  }
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const view = (b: unknown): Uint8Array => (b instanceof Uint8Array ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(0));
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const optionalUint = (v: unknown): boolean => v === undefined || isUint(v);

/**
 * The client id's UTF-8 bytes when the binary form can carry the session exactly, else undefined.
 * An ASCII id (the usual case) is returned as the string itself, written byte for byte.
 */
function sessionBytes(s: unknown): Uint8Array | string | undefined {
  if (typeof s !== 'object' || s === null) return undefined;
  let fields = 0;
  for (const k in s) if (k !== 'clientId' && k !== 'seq') return undefined;
  else fields++;
  const { clientId, seq } = s as Partial<Session>;
  if (fields !== 2 || typeof clientId !== 'string' || !isUint(seq)) return undefined;
  let ascii = clientId.length <= MAX_CLIENT_ID_BYTES;
  for (let i = 0; ascii && i < clientId.length; i++) if (clientId.charCodeAt(i) >= 0x80) ascii = false;
  if (ascii) return clientId;
  const id = utf8.encode(clientId);
  // Lone surrogates do not survive UTF-8: such an id stays in CBOR, as it always was.
  if (id.length > MAX_CLIENT_ID_BYTES || LONE_SURROGATE.test(clientId)) return undefined;
  return id;
}

/** True when every own field of `cmd` is one of `fields` (an unknown field keeps the CBOR form). */
function onlyFields(cmd: object, fields: ReadonlySet<string>): boolean {
  for (const k in cmd) if (!fields.has(k)) return false;
  return true;
}

/** The binary form of a `put` or `delete`, or undefined when it has to stay CBOR. */
function encodeBinary(cmd: WriteCommand): Uint8Array | undefined {
  const put = cmd.type === 'put';
  if (!put && cmd.type !== 'delete') return undefined;
  if (!onlyFields(cmd, put ? PUT_FIELDS : DELETE_FIELDS) || !(cmd.key instanceof Uint8Array)) return undefined;
  if (put && !(cmd.value instanceof Uint8Array)) return undefined;
  const version = put ? cmd.version : undefined;
  const ifAbsent = put ? cmd.ifAbsent : undefined;
  if (!optionalUint(cmd.time) || !optionalUint(version) || !optionalUint(cmd.ifVersion) || (ifAbsent !== undefined && ifAbsent !== true)) return undefined;
  const id = cmd.session === undefined ? undefined : sessionBytes(cmd.session);
  if (cmd.session !== undefined && id === undefined) return undefined;
  let flags = 0;
  let size = 2 + varintLength(cmd.key.length) + cmd.key.length;
  if (cmd.time !== undefined) (flags |= F_TIME), (size += varintLength(cmd.time));
  if (version !== undefined) (flags |= F_VERSION), (size += varintLength(version));
  if (cmd.ifVersion !== undefined) (flags |= F_IF_VERSION), (size += varintLength(cmd.ifVersion));
  if (ifAbsent) flags |= F_IF_ABSENT;
  if (id) (flags |= F_SESSION), (size += varintLength(id.length) + id.length + varintLength(cmd.session!.seq));
  if (put) size += varintLength(cmd.value.length) + cmd.value.length;
  // From Node's buffer pool: a fresh small typed array costs more than the whole encoding, and
  // every byte of it is written below (the caller copies it into the entry's payload).
  const out: Uint8Array = Buffer.allocUnsafe(size);
  out[0] = put ? TAG_PUT : TAG_DELETE;
  out[1] = flags;
  let p = 2;
  const bytes = (b: Uint8Array | string) => {
    p = putVarint(out, p, b.length);
    if (typeof b === 'string') for (let i = 0; i < b.length; i++) out[p + i] = b.charCodeAt(i);
    else out.set(b, p);
    p += b.length;
  };
  if (cmd.time !== undefined) p = putVarint(out, p, cmd.time);
  if (version !== undefined) p = putVarint(out, p, version);
  if (cmd.ifVersion !== undefined) p = putVarint(out, p, cmd.ifVersion);
  if (id) {
    bytes(id);
    p = putVarint(out, p, cmd.session!.seq);
  }
  bytes(cmd.key);
  if (put) bytes(cmd.value);
  return out;
}

/** Strict cursor over a binary command: every failure is a {@link CommandCodecError}. */
class Reader extends StrictReader {
  constructor(b: Uint8Array) {
    super(b, 2, b.length, (why) => new CommandCodecError(why));
  }
  /** A length-prefixed byte string, as a view of the entry's bytes. */
  bytes(what: string, max = Infinity): Uint8Array {
    const n = this.length(what, max);
    const out = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return out;
  }
}

function decodeBinary(b: Uint8Array): WriteCommand {
  const put = b[0] === TAG_PUT;
  if (b.length < 2) throw new CommandCodecError('truncated at flags');
  const flags = b[1];
  if ((flags & ~(put ? PUT_FLAGS : DELETE_FLAGS)) !== 0) throw new CommandCodecError(`unknown flags 0x${flags.toString(16)} for a ${put ? 'put' : 'delete'}`);
  const r = new Reader(b);
  const time = flags & F_TIME ? r.uint('time') : undefined;
  const version = flags & F_VERSION ? r.uint('version') : undefined;
  const ifVersion = flags & F_IF_VERSION ? r.uint('ifVersion') : undefined;
  let session: Session | undefined;
  if (flags & F_SESSION) {
    const id = r.bytes('clientId', MAX_CLIENT_ID_BYTES);
    let clientId: string;
    try {
      clientId = utf8Strict.decode(id);
    } catch {
      throw new CommandCodecError('clientId is not UTF-8');
    }
    session = { clientId, seq: r.uint('seq') };
  }
  const key = r.bytes('key');
  const value = put ? r.bytes('value') : undefined;
  if (r.pos !== b.length) throw new CommandCodecError(`${b.length - r.pos} bytes after the command`);
  // Fields in the order the CBOR form has them, absent ones left out (as CBOR decodes them).
  const cmd: Record<string, unknown> = { type: put ? 'put' : 'delete', key };
  if (value) cmd.value = value;
  if (version !== undefined) cmd.version = version;
  if (ifVersion !== undefined) cmd.ifVersion = ifVersion;
  if (flags & F_IF_ABSENT) cmd.ifAbsent = true;
  if (session) cmd.session = session;
  if (time !== undefined) cmd.time = time;
  return cmd as WriteCommand;
}

/**
 * The forms a member may propose `put`/`delete` commands in (`proofkv serve --log-commands`):
 * `binary`, or `cbor` — what every command was before the binary form, for a rolling upgrade from a
 * release that decodes only CBOR. Every member decodes both.
 */
export type LogCommandFormat = 'binary' | 'cbor';
/** Every {@link LogCommandFormat}. */
export const LOG_COMMAND_FORMATS: readonly LogCommandFormat[] = ['binary', 'cbor'];

/** Encodes a command for the log: the binary form for a `put` or `delete` that fits it, else CBOR. */
export function encodeCommand(cmd: WriteCommand): Uint8Array {
  return encodeBinary(cmd) ?? encodeCommandCbor(cmd);
}

/** The CBOR form of any command (what every command was before the binary form; still every other one's). */
export function encodeCommandCbor(cmd: WriteCommand): Uint8Array {
  return cbor.encode(cmd);
}

/**
 * Decodes {@link encodeCommand} or {@link encodeCommandCbor} (told apart by the first byte),
 * with byte strings as `Uint8Array` views. A binary command that is malformed throws
 * {@link CommandCodecError}; a CBOR one throws what it threw before the binary form.
 */
export function decodeCommand(data: Uint8Array): WriteCommand {
  if (data.length > 0 && (data[0] === TAG_PUT || data[0] === TAG_DELETE)) return decodeBinary(data);
  const c = cbor.decode(data) as any;
  if (c.type === 'put' || c.type === 'append') c.value = view(c.value);
  if (c.type === 'put' || c.type === 'delete' || c.type === 'append') c.key = view(c.key);
  if (c.type === 'batch') for (const op of c.ops) { op.key = view(op.key); if (op.op === 'put' || op.op === 'append') op.value = view(op.value); }
  if (c.type === 'cosign') { c.root = view(c.root); c.signature = view(c.signature); }
  if (c.type === 'member' && c.op === 'add') c.publicKey = view(c.publicKey);
  return c as WriteCommand;
}
