/**
 * One strict base64url decoder (RFC 4648 §5, no padding) for the proofs library, the client SDK
 * and the server: every byte string has exactly one accepted text.
 */
import { describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../../proofs/bytes.js';
import * as sdkBytes from '../../client-sdk/bytes.js';
import { fromBase64Url as serverFromBase64Url } from '../../server/codec.js';
import { HttpError } from '../../server/errors.js';
import { prng } from './helpers.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('base64url', () => {
  it('round-trips every length 0..96 and matches node Buffer', () => {
    const rnd = prng(7);
    for (let n = 0; n <= 96; n++) {
      const b = rnd(n);
      const s = toBase64Url(b);
      expect(s).toBe(Buffer.from(b).toString('base64url'));
      expect(fromBase64Url(s)).toEqual(b);
    }
  });

  it('accepts exactly the canonical text among all strings of 1 to 3 characters', () => {
    // A string is canonical when re-encoding its bytes gives it back; Buffer (lenient) decodes.
    let accepted = 0;
    const wrong: string[] = [];
    const all = (len: number, prefix: string, f: (s: string) => void): void => {
      if (prefix.length === len) return f(prefix);
      for (const c of ALPHABET) all(len, prefix + c, f);
    };
    for (const len of [1, 2, 3]) {
      all(len, '', (s) => {
        const canonical = len !== 1 && Buffer.from(Buffer.from(s, 'base64url')).toString('base64url') === s;
        let ok: boolean;
        try {
          fromBase64Url(s);
          ok = true;
        } catch (e) {
          if (!(e instanceof TypeError)) wrong.push(`${s}: ${String(e)}`);
          ok = false;
        }
        if (ok !== canonical) wrong.push(s);
        if (ok) accepted++;
      });
    }
    expect(wrong).toEqual([]);
    // 2 characters: 64 × 4 last characters with zero trailing bits; 3 characters: 64 × 64 × 16.
    expect(accepted).toBe(64 * 4 + 64 * 64 * 16);
  });

  it('rejects padding, the standard alphabet, whitespace, non-ASCII, impossible lengths and non-strings', () => {
    const bad: unknown[] = ['QQ==', 'QQ=', 'QUI=', '=', '====', 'QR', 'QUJ', 'A', 'AAAAA', 'a+b_', 'ab/c', 'QU I', 'QUI\n', 'QUé', '\u0000AAA',
      null, undefined, 42, new Uint8Array(2), ['QQ'], {}];
    for (const s of bad) expect(() => fromBase64Url(s as string), String(s)).toThrow(TypeError);
    expect(fromBase64Url('')).toEqual(new Uint8Array(0));
    expect(fromBase64Url('QQ')).toEqual(new Uint8Array([0x41]));
    expect(fromBase64Url('QUI')).toEqual(new Uint8Array([0x41, 0x42]));
  });

  it('is the same decoder in the client SDK and (with HTTP errors) on the server', () => {
    expect(sdkBytes.fromBase64Url).toBe(fromBase64Url);
    expect(sdkBytes.toBase64Url).toBe(toBase64Url);
    expect(serverFromBase64Url('QUI', 'key')).toEqual(new Uint8Array([0x41, 0x42]));
    for (const s of ['QUI=', 'QUJ', 'A', 'a+b']) {
      let err: unknown;
      try {
        serverFromBase64Url(s, 'key', 'BAD_REQUEST');
      } catch (e) {
        err = e;
      }
      expect(err, s).toBeInstanceOf(HttpError);
      expect((err as HttpError).code).toBe('BAD_REQUEST');
    }
  });
});
