/**
 * The explorer's pure display helpers: which keys are shown as text and which as hex (nothing
 * invisible or look-alike passes as text), bounded value views, and the line diff (every diff
 * rebuilds both sides; inputs above the bound are refused, not compared slowly).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diff, diffLines, formatBytes, hexDump, keyView, MAX_DIFF_CELLS, MAX_HEX_BYTES, preview, valueJson, valueText } from '../../explorer/src/format.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('keyView', () => {
  it('shows printable UTF-8 as text', () => {
    expect(keyView(utf8('users/42'))).toEqual({ form: 'text', text: 'users/42' });
    expect(keyView(utf8('größe/日本'))).toEqual({ form: 'text', text: 'größe/日本' });
  });

  it('shows bytes that are not strict UTF-8, controls and invisible or reordering characters as hex', () => {
    for (const k of [
      new Uint8Array([0x00, 0xff]),
      new Uint8Array([0xc3]), // truncated UTF-8
      utf8('a\nb'),
      utf8('a\u0000'),
      utf8('admin\u202Etxt.exe'), // right-to-left override
      utf8('ad\u200Bmin'), // zero-width space
      utf8('\uFEFFkey'),
      utf8('a\u0085b'), // C1 control
      utf8('\uFFFD'),
    ]) {
      const v = keyView(k);
      expect(v.form, JSON.stringify([...k])).toBe('hex');
      expect(v.text).toBe(Buffer.from(k).toString('hex'));
    }
  });
});

describe('value views', () => {
  it('text only for strict UTF-8 without controls (tab and newlines allowed)', () => {
    expect(valueText(utf8('line 1\n\tline 2\r\n'))).toBe('line 1\n\tline 2\r\n');
    expect(valueText(new Uint8Array([0x68, 0x00, 0x69]))).toBeUndefined();
    expect(valueText(new Uint8Array([0xff]))).toBeUndefined();
  });

  it('JSON pretty-printed only when the whole value parses', () => {
    expect(valueJson(utf8('{"a":[1,2]}'))).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(valueJson(utf8('{"a":'))).toBeUndefined();
    expect(valueJson(utf8('   '))).toBeUndefined();
  });

  it('a hex dump with offsets and ASCII, cut at its bound', () => {
    expect(hexDump(utf8('ABC\u0001'))).toEqual(['00000000  41 42 43 01' + ' '.repeat(36) + '  ABC.']);
    const big = new Uint8Array(MAX_HEX_BYTES + 100);
    expect(hexDump(big)).toHaveLength(MAX_HEX_BYTES / 16);
  });

  it('previews on one line, text or hex', () => {
    expect(preview(utf8('a\n  b'))).toEqual({ form: 'text', text: 'a b' });
    expect(preview(utf8('x'.repeat(100)), 10)).toEqual({ form: 'text', text: 'xxxxxxxxx…' });
    expect(preview(new Uint8Array([0, 1, 0xff]))).toEqual({ form: 'hex', text: '0001ff' });
    expect(preview(new Uint8Array())).toEqual({ form: 'empty', text: '' });
    expect(formatBytes(1536)).toBe('1.5 KiB');
  });
});

describe('diff', () => {
  const rebuild = (d: ReturnType<typeof diff>) => ({
    a: d!.filter((l) => l.op !== '+').map((l) => l.text),
    b: d!.filter((l) => l.op !== '-').map((l) => l.text),
  });

  it('marks removed lines before added ones and keeps the rest', () => {
    expect(diff(['a', 'b', 'c'], ['a', 'x', 'c'])).toEqual([
      { op: ' ', text: 'a' },
      { op: '-', text: 'b' },
      { op: '+', text: 'x' },
      { op: ' ', text: 'c' },
    ]);
  });

  it('rebuilds both sides and is minimal against a longest common subsequence (property)', () => {
    const lines = fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 25 });
    fc.assert(
      fc.property(lines, lines, (a, b) => {
        const d = diff(a, b);
        expect(rebuild(d)).toEqual({ a, b });
        // Kept lines are a common subsequence of maximal length (checked by a plain DP).
        const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
        for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
        expect(d!.filter((l) => l.op === ' ').length).toBe(lcs[0][0]);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses inputs above its bound instead of allocating for them', () => {
    const n = Math.ceil(Math.sqrt(MAX_DIFF_CELLS)) + 1;
    const a = Array.from({ length: n }, (_, i) => `a${i}`);
    const b = Array.from({ length: n }, (_, i) => `b${i}`);
    expect(diff(a, b)).toBeUndefined();
    // A shared head and tail do not count against the bound.
    expect(diff([...a, 'x'], [...a, 'y'])).toHaveLength(n + 2);
  });

  it('compares JSON pretty-printed, text by lines, binary by hex-dump lines', () => {
    expect(diffLines(utf8('{"a":1}'))).toEqual(['{', '  "a": 1', '}']);
    expect(diffLines(utf8('x\ny'))).toEqual(['x', 'y']);
    expect(diffLines(new Uint8Array([0, 255]))).toEqual(['00 ff' + ' '.repeat(42) + '  ..']);
  });
});
