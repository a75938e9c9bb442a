/**
 * Byte helpers of the client: base64url (RFC 4648 §5, no padding) as the HTTP API's JSON uses it,
 * key and value coercion, and URL encoding of keys. Isomorphic: no `node:` imports.
 * @module
 */
import { fromBase64Url, toBase64Url, toBytes } from '../proofs/bytes.js';

/** A key or value as the SDK accepts it: bytes, or a string that is UTF-8 encoded. */
export type BytesLike = Uint8Array | string;

/**
 * base64url (RFC 4648 §5, no padding). Decoding is strict — no padding, no non-zero trailing bits,
 * nothing outside the URL-safe alphabet — and shared with the server and the proofs library.
 */
export { fromBase64Url, toBase64Url };

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
