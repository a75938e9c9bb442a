/**
 * The pure parts behind the CLI, without a server: public keys in every printed form
 * (`proofkv/client`'s `parsePublicKey`), the text encodings of keys and values, and the import
 * parser and batch planner.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeText, encodeText, parsePublicKey, TEXT_ENCODINGS } from '../../client-sdk/index.js';
import { TrustKeeper, MemoryStateStore } from '../../client-sdk/index.js';
import { parseImport, planBatches, type ImportLimits } from '../../server/cli/transfer.js';

const limits: ImportLimits = { maxKeySize: 16, maxValueSize: 32, maxBatchOps: 1000, maxBatchBodyBytes: 1 << 20 };
const te = new TextEncoder();

describe('parsePublicKey', () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 250) & 0xff);
  const hex = Buffer.from(key).toString('hex');
  it('accepts hex (either case), base64url (padded or not), base64 and bytes', () => {
    for (const form of [hex, hex.toUpperCase(), ` ${hex}\n`, Buffer.from(key).toString('base64url'), `${Buffer.from(key).toString('base64url')}=`, Buffer.from(key).toString('base64')]) {
      expect(parsePublicKey(form), form).toEqual(key);
    }
    expect(parsePublicKey(key)).toBe(key);
  });
  it('refuses anything else with a TypeError', () => {
    for (const bad of ['', hex.slice(2), `${hex}00`, `${hex.slice(0, 63)}g`, Buffer.from(key.subarray(1)).toString('base64url'), 'not-a-key']) {
      expect(() => parsePublicKey(bad), bad).toThrow(TypeError);
    }
    expect(() => parsePublicKey(new Uint8Array(31))).toThrow(/32 bytes/);
    expect(() => parsePublicKey(42 as unknown as string)).toThrow(TypeError);
  });
  it('lets a trust configuration hold keys as printed: one identity whatever the form', () => {
    const ids = [hex, Buffer.from(key).toString('base64url'), key].map((k) => new TrustKeeper({ publicKeys: [k], quorum: 1 }, new MemoryStateStore(), ['http://x'], () => undefined).id);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toBe(`keys:${hex}:q1`);
    expect(() => new TrustKeeper({ publicKeys: [hex, 'nope'], quorum: 1 }, new MemoryStateStore(), ['http://x'], () => undefined)).toThrow(/trust.publicKeys\[1\]/);
  });
});

describe('decodeText / encodeText', () => {
  it('round-trips every byte string in every binary-safe encoding, and UTF-8 text', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        for (const enc of TEXT_ENCODINGS.filter((e) => e !== 'utf8')) expect(decodeText(encodeText(b, enc)!, enc)).toEqual(b);
      }),
    );
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme' }).filter((s) => !s.includes('\uFFFD')),
        (s) => {
          expect(encodeText(decodeText(s, 'utf8'), 'utf8')).toBe(s);
        },
      ),
    );
  });
  it('refuses U+FFFD, unpaired surrogates and malformed hex or base64', () => {
    expect(() => decodeText('a\uFFFDb', 'utf8')).toThrow(/U\+FFFD/);
    expect(() => decodeText('a\uD800b', 'utf8')).toThrow(/surrogate/);
    expect(decodeText('a\uD83D\uDE00', 'utf8')).toEqual(te.encode('a😀'));
    expect(() => decodeText('abc', 'hex')).toThrow(TypeError);
    expect(() => decodeText('zz', 'hex')).toThrow(TypeError);
    expect(() => decodeText('a+b', 'base64url')).toThrow(TypeError);
    expect(() => decodeText('a-b', 'base64')).toThrow(TypeError);
    // Padding typed by a person is accepted where it is well placed, and refused elsewhere.
    expect(decodeText('aGk=', 'base64')).toEqual(te.encode('hi'));
    expect(() => decodeText('aGk==', 'base64')).toThrow(/padding/);
    expect(() => decodeText('aG=k', 'base64url')).toThrow(TypeError);
    expect(encodeText(new Uint8Array([0xff]), 'utf8')).toBeUndefined();
  });
  it('UTF-8 text of bytes names the same bytes: a leading byte-order mark is kept, not dropped', () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x6b]);
    expect(encodeText(bom, 'utf8')).toBe('\uFEFFk');
    expect(decodeText(encodeText(bom, 'utf8')!, 'utf8')).toEqual(bom);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 32 }), (b) => {
        const t = encodeText(b, 'utf8');
        if (t !== undefined && !t.includes('\uFFFD')) expect(decodeText(t, 'utf8')).toEqual(b);
      }),
    );
  });
});

describe('import parser', () => {
  const enc = { key: 'utf8' as const, value: 'utf8' as const };
  const parse = (text: string, format: 'jsonl' | 'csv' = 'jsonl') => parseImport(te.encode(text), format, enc, limits);
  it('keeps line numbers, skips blank lines and the CSV header, reads both field forms', () => {
    const r = parse('\n{"key":"a","value":"1"}\r\n\n{"keyBase64url":"_w","valueBase64url":"AAE","version":3}\n');
    expect(r).toEqual([
      { line: 2, key: te.encode('a'), value: te.encode('1'), version: undefined },
      { line: 4, key: new Uint8Array([0xff]), value: new Uint8Array([0, 1]), version: 3 },
    ]);
    expect(parse('key,value\n"a,b","say ""hi""",7\nc,d\n', 'csv').map((x) => [x.line, x.version])).toEqual([
      [2, 7],
      [3, undefined],
    ]);
  });
  it('checks the server limits and names the line', () => {
    expect(() => parse(`{"key":"${'k'.repeat(17)}","value":"v"}`)).toThrow(/^line 1: the key is 17 bytes/);
    expect(() => parse(`{"key":"k","value":"v"}\n{"key":"k","value":"${'v'.repeat(33)}"}`)).toThrow(/^line 2: the value is 33 bytes/);
    expect(() => parse('{"key":"k","keyBase64url":"aw","value":"v"}')).toThrow(/^line 1: give exactly one of "key" and "keyBase64url"/);
    expect(() => parse('{"key":"k","value":"v","version":1.5}')).toThrow(/^line 1: version must be an integer/);
    expect(() => parse('[1]')).toThrow(/^line 1: want an object/);
  });
  it('plans batches by count and by request bytes, in file order, every record once', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 40 }), { maxLength: 60 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 100, max: 400 }), (sizes, maxOps, maxBytes) => {
        const recs = sizes.map((n, i) => ({ line: i + 1, key: new Uint8Array(1), value: new Uint8Array(n) }));
        const batches = planBatches(recs, maxOps, maxBytes);
        expect(batches.flat()).toEqual(recs);
        for (const b of batches) {
          expect(b.length).toBeGreaterThan(0);
          expect(b.length).toBeLessThanOrEqual(maxOps);
          const bytes = b.reduce((s, r) => s + Math.ceil((r.key.length * 4) / 3) + Math.ceil((r.value.length * 4) / 3) + 64, 0);
          if (b.length > 1) expect(bytes).toBeLessThanOrEqual(maxBytes);
        }
      }),
    );
  });
});
