/**
 * Byte helpers shared by the hash layouts, encoders and verifiers. Isomorphic: no `node:` imports.
 * @module
 */

const textEncoder = new TextEncoder();

/** UTF-8 encodes a string; passes a `Uint8Array` through unchanged. */
export function toBytes(input: Uint8Array | string): Uint8Array {
  return typeof input === 'string' ? textEncoder.encode(input) : input;
}

/** Bytewise (unsigned, lexicographic) comparison: negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** True when both arrays hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Concatenates byte arrays into a new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The two lower-case hex digits of each byte value. */
const HEX_PAIRS: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hexadecimal. */
export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX_PAIRS[b[i]];
  return s;
}

/** Parses lower- or upper-case hexadecimal; throws `TypeError` on odd length or a non-hex digit. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0) throw new TypeError(`hex string has odd length ${hex.length}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const byte = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    if (Number.isNaN(byte) || !/^[0-9a-fA-F]{2}$/.test(hex.slice(2 * i, 2 * i + 2))) {
      throw new TypeError(`invalid hex digit at ${2 * i}`);
    }
    out[i] = byte;
  }
  return out;
}

const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64URL_LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < B64URL_ALPHABET.length; i++) B64URL_LOOKUP[B64URL_ALPHABET.charCodeAt(i)] = i;

/** Encodes bytes as base64url without padding (RFC 4648 §5). */
export function toBase64Url(bytes: Uint8Array): string {
  const A = B64URL_ALPHABET;
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += A[n >>> 18] + A[(n >>> 12) & 63] + A[(n >>> 6) & 63] + A[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += A[n >>> 18] + A[(n >>> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += A[n >>> 18] + A[(n >>> 12) & 63] + A[(n >>> 6) & 63];
  }
  return out;
}

/**
 * Decodes strict base64url (RFC 4648 §5) without padding: the only accepted text for a byte string
 * is the one {@link toBase64Url} produces. Throws `TypeError` on a non-string, a character outside
 * the URL-safe alphabet (`=` padding, `+`, `/`, whitespace included), an impossible length
 * (`length % 4 = 1`), or non-zero trailing bits in the last character (RFC 4648 §3.5), so that no
 * two strings decode to the same bytes.
 */
export function fromBase64Url(text: string): Uint8Array {
  if (typeof text !== 'string') throw new TypeError(`base64url must be a string, got ${text === null ? 'null' : typeof text}`);
  if (text.length % 4 === 1) throw new TypeError(`base64url string has impossible length ${text.length}`);
  return decodeBase64Body(text, text.length, B64URL_LOOKUP, 'base64url');
}

/** Decodes the first `end` characters of `text` in the alphabet of `lookup`; zero trailing bits. */
function decodeBase64Body(text: string, end: number, lookup: Int16Array, name: string): Uint8Array {
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? lookup[c] : -1;
    if (v < 0) throw new TypeError(`invalid ${name} character ${JSON.stringify(text[i])} at ${i}`);
    acc = ((acc << 6) | v) & 0xfff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new TypeError(`${name} has non-zero trailing bits`);
  return out;
}

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < B64_ALPHABET.length; i++) B64_LOOKUP[B64_ALPHABET.charCodeAt(i)] = i;

/** Standard padded base64 (RFC 4648 §4), as Go's `base64.StdEncoding` writes it (signed notes). */
export function toBase64(bytes: Uint8Array): string {
  const s = toBase64Url(bytes).replace(/-/g, '+').replace(/_/g, '/');
  return s + '='.repeat((4 - (s.length % 4)) % 4);
}

/**
 * Decodes strict padded base64 (RFC 4648 §4): length a multiple of 4, `=` only as padding at the
 * end, zero trailing bits — the only text accepted for some bytes is the one {@link toBase64}
 * writes. Throws `TypeError`.
 */
export function fromBase64(text: string): Uint8Array {
  if (typeof text !== 'string') throw new TypeError(`base64 must be a string, got ${text === null ? 'null' : typeof text}`);
  if (text.length % 4 !== 0) throw new TypeError(`base64 length ${text.length} is not a multiple of 4`);
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return decodeBase64Body(text, text.length - pad, B64_LOOKUP, 'base64');
}

/** Largest u64 value this implementation represents exactly as a JS number (2^53 - 1). */
export const MAX_U64_NUMBER = Number.MAX_SAFE_INTEGER;

/**
 * Writes `v` (a safe non-negative integer) as a big-endian u64 at `off`.
 * Numbers above 2^53 - 1 are refused: the on-disk field is a full u64 so the range can widen later.
 */
export function writeU64BE(buf: Uint8Array, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  buf[off] = hi >>> 24;
  buf[off + 1] = (hi >>> 16) & 0xff;
  buf[off + 2] = (hi >>> 8) & 0xff;
  buf[off + 3] = hi & 0xff;
  buf[off + 4] = lo >>> 24;
  buf[off + 5] = (lo >>> 16) & 0xff;
  buf[off + 6] = (lo >>> 8) & 0xff;
  buf[off + 7] = lo & 0xff;
}

/** Reads a big-endian u64; returns `undefined` when it does not fit in a safe integer. */
export function readU64BE(buf: Uint8Array, off: number): number | undefined {
  const hi = ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
  const lo = ((buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]) >>> 0;
  if (hi > 0x1fffff) return undefined;
  return hi * 0x100000000 + lo;
}

/** Writes a big-endian u32 at `off`. */
export function writeU32BE(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** Reads a big-endian u32. */
export function readU32BE(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}
