/**
 * Keys and query parameters from the URL, binary-safe.
 *
 * A key in the path is one segment: `%XX` escapes decode to raw bytes (so `%00%FF` is the two
 * bytes 0x00 0xFF, and `%2F` a slash inside the key), other characters stand for their UTF-8
 * bytes. With `?keyEncoding=base64url` the segment, and the `prefix`, `start` and `end` query
 * parameters, are base64url instead. Query strings are parsed here rather than by express, because
 * express decodes escapes as UTF-8 text and would lose bytes like `%FF`; as in HTML forms, `+` in
 * a query value is a space.
 *
 * {@link canonicalKeyPath} runs before routing: it decodes the key segment once, keeps the bytes
 * in `res.locals.key`, and rewrites the segment to base64url so the router never sees an escape
 * it cannot decode.
 * @module
 */
import { parseTimeText } from '../client-sdk/time.js';
import type { NextFunction, Request, Response } from 'express';
import { fromBase64Url, toBase64Url } from './codec.js';
import { HttpError } from './errors.js';

/** Largest key, bytes (also the engine's limit). */
export const MAX_KEY_BYTES = 65536;

const HEX = /^[0-9A-Fa-f]{2}$/;

/**
 * Decodes a percent-encoded string to bytes: `%XX` is one byte, any other character its UTF-8
 * bytes, `+` a space when `plusIsSpace`. A `%` not followed by two hex digits is `400 BAD_REQUEST`.
 */
export function percentDecode(s: string, what: string, plusIsSpace = false): Uint8Array {
  if (s.indexOf('%') === -1 && !(plusIsSpace && s.includes('+'))) return new TextEncoder().encode(s);
  const out: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const hex = s.slice(i + 1, i + 3);
      if (!HEX.test(hex)) throw new HttpError('BAD_REQUEST', `${what}: malformed percent-escape at position ${i}`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (c === 0x2b && plusIsSpace) {
      out.push(0x20);
    } else if (c < 0x80) {
      out.push(c);
    } else {
      // A non-ASCII character (or surrogate pair) in the raw URL: its UTF-8 bytes.
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of enc.encode(ch)) out.push(b);
      if (cp > 0xffff) i++;
    }
  }
  return Uint8Array.from(out);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** How fresh a plain read must be (`?consistency=`), see {@link Query.consistency}. */
export type ReadConsistency = 'linearizable' | 'serializable';

/** The raw (still percent-encoded) query parameters of a request. */
export class Query {
  private readonly raw = new Map<string, string>();

  /** Parses the query part of `url`; a repeated or malformed parameter name is `400 INVALID_ARGUMENT`. */
  constructor(url: string) {
    const q = url.indexOf('?');
    if (q === -1) return;
    const s = url.slice(q + 1);
    if (s === '') return;
    for (const part of s.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const rawName = eq === -1 ? part : part.slice(0, eq);
      const value = eq === -1 ? '' : part.slice(eq + 1);
      let name = rawName;
      // A name without escapes or '+' decodes to itself (a URL's text has no lone surrogates).
      if (rawName.includes('%') || rawName.includes('+')) {
        try {
          name = strictUtf8.decode(percentDecode(rawName, 'query parameter name', true));
        } catch {
          throw new HttpError('BAD_REQUEST', 'malformed query parameter name');
        }
      }
      if (this.raw.has(name)) throw new HttpError('INVALID_ARGUMENT', `query parameter ${JSON.stringify(name.slice(0, 64))} is repeated`);
      this.raw.set(name, value);
    }
  }

  /** Throws `400 INVALID_ARGUMENT` naming the first parameter not in `allowed`. */
  only(allowed: readonly string[]): void {
    for (const name of this.raw.keys()) {
      if (!allowed.includes(name)) {
        throw new HttpError('INVALID_ARGUMENT', `unknown query parameter ${JSON.stringify(name.slice(0, 64))}; allowed: ${allowed.join(', ') || 'none'}`);
      }
    }
  }

  /** Whether `name` is present. */
  has(name: string): boolean {
    return this.raw.has(name);
  }

  /** Parameter `name` as UTF-8 text, or undefined; invalid UTF-8 is `400 BAD_REQUEST`. */
  text(name: string): string | undefined {
    const v = this.raw.get(name);
    if (v === undefined) return undefined;
    try {
      return strictUtf8.decode(percentDecode(v, `query parameter ${name}`, true));
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError('BAD_REQUEST', `query parameter ${name} is not valid UTF-8`);
    }
  }

  /** Parameter `name` as key bytes (percent-decoded, or base64url with `keyEncoding=base64url`), or undefined. */
  keyBytes(name: string, allowEmpty = false): Uint8Array | undefined {
    const v = this.raw.get(name);
    if (v === undefined) return undefined;
    const b = this.keyEncoding() === 'base64url'
      ? fromBase64Url(strictText(v, name), `query parameter ${name}`)
      : percentDecode(v, `query parameter ${name}`, true);
    checkKeySize(b, `query parameter ${name}`, allowEmpty);
    return b;
  }

  /** `keyEncoding`: `percent` (default) or `base64url`; anything else is `400 INVALID_ARGUMENT`. */
  keyEncoding(): 'percent' | 'base64url' {
    const v = this.raw.get('keyEncoding');
    if (v === undefined || v === 'percent') return 'percent';
    if (v === 'base64url') return 'base64url';
    throw new HttpError('INVALID_ARGUMENT', 'keyEncoding must be "percent" or "base64url"');
  }

  /**
   * Integer parameter `name` in `min .. max`, or `def` when absent. Only plain decimal digits are
   * accepted; anything else is `400 code`.
   */
  /**
   * A time parameter: ms since the epoch (decimal digits) or an ISO 8601 date-time (`2026-11-29`,
   * `2026-11-29T10:00:00Z`, `…+02:00`; without a zone: UTC). `400 INVALID_ARGUMENT` otherwise.
   */
  time(name: string): number | undefined {
    const v = this.text(name);
    if (v === undefined) return undefined;
    const ms = parseTimeText(v);
    if (ms === undefined) throw new HttpError('INVALID_ARGUMENT', `${name} must be ms since the epoch or an ISO 8601 date-time`);
    return ms;
  }

  int(name: string, min: number, max: number, def: number | undefined, code: 'INVALID_ARGUMENT' | 'INVALID_VERSION' = 'INVALID_ARGUMENT'): number | undefined {
    const v = this.raw.get(name);
    if (v === undefined) return def;
    if (!/^[0-9]{1,16}$/.test(v)) throw new HttpError(code, `${name} must be a decimal integer in ${min} .. ${max}`);
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new HttpError(code, `${name} must be a decimal integer in ${min} .. ${max}`);
    return n;
  }

  /**
   * `consistency`: `linearizable` (default: the read reflects every write acknowledged before it
   * began, on any member) or `serializable` (this member's applied state, possibly behind).
   */
  consistency(): ReadConsistency {
    const v = this.raw.get('consistency');
    if (v === undefined || v === 'linearizable') return 'linearizable';
    if (v === 'serializable') return 'serializable';
    throw new HttpError('INVALID_ARGUMENT', 'consistency must be "linearizable" or "serializable"');
  }

  /** A boolean flag: `true`/`1` or `false`/`0`; absent gives false. */
  flag(name: string): boolean {
    const v = this.raw.get(name);
    if (v === undefined || v === 'false' || v === '0') return false;
    if (v === 'true' || v === '1' || v === '') return true;
    throw new HttpError('INVALID_ARGUMENT', `${name} must be true or false`);
  }
}

function strictText(v: string, name: string): string {
  if (v.includes('%')) throw new HttpError('INVALID_ARGUMENT', `query parameter ${name}: base64url must not be percent-encoded`);
  return v;
}

/** Throws `EMPTY_KEY` / `KEY_TOO_LARGE` for a key outside 1 B .. 64 KiB. */
export function checkKeySize(b: Uint8Array, what: string, allowEmpty = false): void {
  if (b.length === 0 && !allowEmpty) throw new HttpError('EMPTY_KEY', `${what}: the key is empty`);
  if (b.length > MAX_KEY_BYTES) throw new HttpError('KEY_TOO_LARGE', `${what}: key is ${b.length} bytes, limit ${MAX_KEY_BYTES}`);
}

/** The parsed query of a request (set by {@link canonicalKeyPath}). */
export function queryOf(res: Response): Query {
  return res.locals.query as Query;
}

/** The key bytes of a `/v1/kv/{key}…` request (set by {@link canonicalKeyPath}). */
export function keyOf(res: Response): Uint8Array {
  const k = res.locals.key as Uint8Array | undefined;
  if (!k) throw new HttpError('EMPTY_KEY', 'the key is empty');
  return k;
}

// The key segment may be empty (`/v1/kv/`, `/v1/kv//proof`): that is `400 EMPTY_KEY`, not a
// scan (`/v1/kv` without the slash) nor a 404/405.
const KEY_PATH = /^\/v1\/kv\/([^/?]*)(\/(?:proof|history|append))?\/?$/;

/**
 * Pre-routing middleware: parses the query (into `res.locals.query`), and for `/v1/kv/{key}`,
 * `/v1/kv/{key}/proof`, `/v1/kv/{key}/history` and `/v1/kv/{key}/append` decodes the key into `res.locals.key` and
 * rewrites the segment to base64url. An empty key segment (`/v1/kv/`, `/v1/kv//history`) is
 * `400 EMPTY_KEY` whatever the method.
 */
export function canonicalKeyPath(req: Request, res: Response, next: NextFunction): void {
  try {
    const query = new Query(req.url);
    res.locals.query = query;
    const q = req.url.indexOf('?');
    const path = q === -1 ? req.url : req.url.slice(0, q);
    const m = KEY_PATH.exec(path);
    if (m) {
      const seg = m[1];
      const key = query.keyEncoding() === 'base64url' ? fromBase64Url(seg, 'key') : percentDecode(seg, 'key');
      checkKeySize(key, 'key');
      res.locals.key = key;
      req.url = `/v1/kv/${toBase64Url(key)}${m[2] ?? ''}${q === -1 ? '' : req.url.slice(q)}`;
    }
    next();
  } catch (err) {
    next(err);
  }
}

