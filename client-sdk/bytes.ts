/**
 * Byte helpers of the client: base64url (RFC 4648 §5, no padding) as the HTTP API's JSON uses it,
 * key and value coercion, and URL encoding of keys. Isomorphic: no `node:` imports.
 * @module
 */
import { toBytes } from '../proofs/bytes.js';

/** A key or value as the SDK accepts it: bytes, or a string that is UTF-8 encoded. */
export type BytesLike = Uint8Array | string;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/** Encodes bytes as base64url without padding (RFC 4648 §5). */
export function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >>> 18] + ALPHABET[(n >>> 12) & 63] + ALPHABET[(n >>> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += ALPHABET[n >>> 18] + ALPHABET[(n >>> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += ALPHABET[n >>> 18] + ALPHABET[(n >>> 12) & 63] + ALPHABET[(n >>> 6) & 63];
  }
  return out;
}

/**
 * Decodes base64url (padding tolerated, nothing else). Throws `TypeError` on a character outside
 * the alphabet or an impossible length.
 */
export function fromBase64Url(text: string): Uint8Array {
  if (typeof text !== 'string') throw new TypeError(`base64url must be a string, got ${typeof text}`);
  const s = text.replace(/=+$/, '');
  if (s.length % 4 === 1) throw new TypeError(`base64url string has impossible length ${s.length}`);
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c] : -1;
    if (v < 0) throw new TypeError(`invalid base64url character at ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return out;
}

/** UTF-8 encodes a string key or value; checks the type of everything else. */
export function asBytes(input: BytesLike, name: string): Uint8Array {
  if (typeof input === 'string' || input instanceof Uint8Array) return toBytes(input);
  throw new TypeError(`${name} must be a Uint8Array or a string, got ${input === null ? 'null' : typeof input}`);
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** The UTF-8 text of `bytes`, or `undefined` when they are not valid UTF-8. */
export function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

const UNRESERVED = /^[A-Za-z0-9\-_~]$/;

/**
 * The URL path segment of a key: every byte outside `A-Z a-z 0-9 - _ ~` percent-encoded, so the
 * server decodes the segment back to exactly these bytes. Dots are escaped too; a key made only of
 * one or two dots still cannot travel as a path segment (URL parsers resolve `%2E` as a dot
 * segment), so {@link keyPath} sends those as base64url.
 */
export function percentEncodeKey(key: Uint8Array): string {
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const b = key[i];
    const ch = String.fromCharCode(b);
    out += b < 128 && UNRESERVED.test(ch) ? ch : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** `{ segment, base64 }`: how `key` travels in a `/v1/kv/{key}` URL. */
export function keyPath(key: Uint8Array): { segment: string; base64: boolean } {
  const dots = key.length <= 2 && key.every((b) => b === 0x2e);
  return dots ? { segment: toBase64Url(key), base64: true } : { segment: percentEncodeKey(key), base64: false };
}
