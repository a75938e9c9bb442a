/**
 * Text forms of node public keys, keys and values. Isomorphic: no `node:` imports.
 *
 * A node prints its Ed25519 public key at start-up in hex and base64url, and `GET /v1/status`
 * gives it in base64url; {@link parsePublicKey} takes any of these (and standard base64, as other
 * tools print keys), so a trust configuration can hold the key exactly as it was copied.
 * {@link decodeText} and {@link encodeText} convert keys and values between bytes and the text
 * encodings the CLI and JSON-lines files use.
 * @module
 */
import { fromHex, toHex } from '../proofs/bytes.js';
import { KEY_TYPE_ED25519, isVerifierKeyText, parseVerifierKey } from '../proofs/note.js';
import { fromBase64Url, toBase64Url } from './bytes.js';

/** Length of an Ed25519 public key, bytes. */
export const PUBLIC_KEY_BYTES = 32;

/** Text encodings of keys and values: UTF-8 text, hex, base64url (RFC 4648 §5) or base64 (§4). */
export type TextEncoding = 'utf8' | 'hex' | 'base64url' | 'base64';

/** Every {@link TextEncoding}, in the order help texts list them. */
export const TEXT_ENCODINGS: readonly TextEncoding[] = ['utf8', 'hex', 'base64url', 'base64'];

const HEX_KEY = /^[0-9A-Fa-f]{64}$/;
const B64URL_KEY = /^[A-Za-z0-9_-]{43}=?$/;
const B64_KEY = /^[A-Za-z0-9+/]{43}=?$/;

/**
 * A 32-byte Ed25519 public key from the forms a node prints: 64 hex digits, 43 base64url
 * characters (optionally padded), standard base64, or a note verifier key
 * (`name+hash+base64(0x01 || key)`, checked); surrounding white space is ignored. A
 * `Uint8Array` of 32 bytes is returned as is. Anything else throws `TypeError`.
 */
export function parsePublicKey(key: string | Uint8Array): Uint8Array {
  if (key instanceof Uint8Array) {
    if (key.length !== PUBLIC_KEY_BYTES) throw new TypeError(`public key must be ${PUBLIC_KEY_BYTES} bytes, got ${key.length}`);
    return key;
  }
  if (typeof key !== 'string') throw new TypeError(`public key must be a string or a Uint8Array, got ${key === null ? 'null' : typeof key}`);
  const t = key.trim();
  if (HEX_KEY.test(t)) return fromHex(t.toLowerCase());
  if (isVerifierKeyText(t)) {
    // A note verifier key (`name+hash+base64(0x01 || key)`, C2SP signed-note), as `proofkv note` and witnesses print them.
    let v;
    try {
      v = parseVerifierKey(t);
    } catch (err) {
      throw new TypeError(`verifier key: ${(err as Error).message}`);
    }
    if (v.type !== KEY_TYPE_ED25519) throw new TypeError(`verifier key ${v.name} is not an Ed25519 note key (a witness key belongs in trust.witnesses)`);
    return v.publicKey;
  }
  if (B64URL_KEY.test(t)) return fromBase64Url(unpad(t));
  if (B64_KEY.test(t)) return fromBase64Url(unpad(t).replace(/\+/g, '-').replace(/\//g, '_'));
  const shown = t.length > 80 ? `${t.slice(0, 77)}...` : t;
  throw new TypeError(`public key ${JSON.stringify(shown)} is not 64 hex digits, 43 base64url characters or base64 of ${PUBLIC_KEY_BYTES} bytes`);
}

/**
 * Text typed by a person may carry base64 padding; the wire decoder is strict (no padding), so
 * padding is checked here (only where it makes the length a multiple of 4) and removed.
 */
function unpad(text: string): string {
  const body = text.replace(/=+$/, '');
  if (body.length === text.length) return text;
  if (text.length % 4 !== 0 || text.length - body.length > 2) throw new TypeError('has misplaced base64 padding');
  return body;
}

// `ignoreBOM`: a leading U+FEFF is part of the bytes, not a marker to drop (else the text would
// name another key than the bytes).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The bytes of `text` in `encoding`. UTF-8 text must not contain U+FFFD (the replacement
 * character): it is what Node and most decoders put where input bytes were not valid UTF-8, so
 * storing it would silently change the key or value; give such data in hex or base64url instead.
 * Throws `TypeError` naming the problem.
 */
export function decodeText(text: string, encoding: TextEncoding): Uint8Array {
  if (typeof text !== 'string') throw new TypeError(`expected a string, got ${typeof text}`);
  switch (encoding) {
    case 'utf8':
      if (text.includes('\uFFFD')) {
        throw new TypeError('contains U+FFFD, the character that stands in for bytes that were not valid UTF-8 (the original bytes are lost)');
      }
      if (/[\uD800-\uDFFF]/u.test(text.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''))) throw new TypeError('contains an unpaired surrogate (not encodable as UTF-8)');
      return new TextEncoder().encode(text);
    case 'hex':
      if (!/^(?:[0-9A-Fa-f]{2})*$/.test(text)) throw new TypeError('is not an even number of hex digits');
      return fromHex(text.toLowerCase());
    case 'base64url':
      if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new TypeError('is not base64url (A-Z a-z 0-9 - _)');
      return fromBase64Url(unpad(text));
    case 'base64':
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new TypeError('is not base64 (A-Z a-z 0-9 + /)');
      return fromBase64Url(unpad(text).replace(/\+/g, '-').replace(/\//g, '_'));
    default:
      throw new TypeError(`unknown encoding ${String(encoding)}`);
  }
}

/**
 * `bytes` as text in `encoding`, or `undefined` when `encoding` is `utf8` and the bytes are not
 * valid UTF-8 (so the caller can fall back to a binary-safe form).
 */
export function encodeText(bytes: Uint8Array, encoding: TextEncoding): string | undefined {
  switch (encoding) {
    case 'utf8':
      try {
        return strictUtf8.decode(bytes);
      } catch {
        return undefined;
      }
    case 'hex':
      return toHex(bytes);
    case 'base64url':
      return toBase64Url(bytes);
    case 'base64':
      return toBase64Url(bytes).replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((3 - (bytes.length % 3)) % 3);
    default:
      throw new TypeError(`unknown encoding ${String(encoding)}`);
  }
}
