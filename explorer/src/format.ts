/**
 * Pure display helpers of the explorer: how keys and values are shown (text only when it is
 * strict UTF-8 without control or invisible characters, hex otherwise), bounded value views
 * (text, JSON, hex dump) and a bounded line diff. No DOM: unit-tested in Node.
 * @module
 */
import { toHex } from '../../proofs/bytes.js';
import { encodeText } from '../../client-sdk/keys.js';

/** Longest value prefix a view renders, bytes; the rest is summarised ("first N of M bytes"). */
export const MAX_VIEW_BYTES = 64 * 1024;
/** Longest prefix of a value the hex view dumps, bytes. */
export const MAX_HEX_BYTES = 4096;
/** Largest product of line counts the diff compares (its table takes 4 bytes a cell: at most 16 MB). */
export const MAX_DIFF_CELLS = 4_000_000;

/**
 * Characters that make a key look like another one or hide part of it: C0/C1 controls, DEL,
 * bidirectional overrides and isolates, zero-width and other format characters, U+FFFD.
 */
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufeff\ufff9-\ufffd]/u;

/** How a key (or a short value) is shown: as text when that is unambiguous, else as hex. */
export interface KeyView {
  form: 'text' | 'hex';
  text: string;
}

/** A key as safe text, or as hex when it is not strict UTF-8 or holds invisible or control characters. */
export function keyView(key: Uint8Array): KeyView {
  const t = encodeText(key, 'utf8');
  if (t !== undefined && t.length > 0 && !UNSAFE_TEXT.test(t)) return { form: 'text', text: t };
  return { form: 'hex', text: toHex(key) };
}

/** The value as text when it is strict UTF-8 (control characters other than tab and newlines make it binary). */
export function valueText(value: Uint8Array): string | undefined {
  const t = encodeText(value.subarray(0, MAX_VIEW_BYTES), 'utf8');
  if (t === undefined && value.length > MAX_VIEW_BYTES) {
    // The cut may split a character: retry a few bytes shorter.
    for (let cut = 1; cut <= 3; cut++) {
      const u = encodeText(value.subarray(0, MAX_VIEW_BYTES - cut), 'utf8');
      if (u !== undefined) return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(u) ? undefined : u;
    }
  }
  if (t === undefined || /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(t)) return undefined;
  return t;
}

/** The value pretty-printed as JSON, when the whole value is JSON (and not larger than the view bound). */
export function valueJson(value: Uint8Array): string | undefined {
  if (value.length > MAX_VIEW_BYTES) return undefined;
  const t = valueText(value);
  if (t === undefined || t.trim() === '') return undefined;
  try {
    return JSON.stringify(JSON.parse(t), null, 2);
  } catch {
    return undefined;
  }
}

/** A classic hex dump (offset, 16 bytes, ASCII) of the first `max` bytes. */
export function hexDump(value: Uint8Array, max = MAX_HEX_BYTES): string[] {
  const lines: string[] = [];
  const n = Math.min(value.length, max);
  for (let o = 0; o < n; o += 16) {
    const row = value.subarray(o, Math.min(o + 16, n));
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${o.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines;
}

/** A one-line preview of a value: text (cut to `max` characters) or hex, and which it is. */
export function preview(value: Uint8Array, max = 60): { form: 'text' | 'hex' | 'empty'; text: string } {
  if (value.length === 0) return { form: 'empty', text: '' };
  const t = valueText(value.subarray(0, Math.min(value.length, max * 4)));
  if (t !== undefined) {
    const one = t.replace(/\s+/g, ' ');
    return { form: 'text', text: one.length > max ? `${one.slice(0, max - 1)}…` : one };
  }
  const h = toHex(value.subarray(0, Math.ceil(max / 2)));
  return { form: 'hex', text: value.length > max / 2 ? `${h}…` : h };
}

/** Byte size for people: `512 B`, `1.5 KiB`, `2.0 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Lower-case hex cut to `n` leading digits and `…` (full hashes go in titles and downloads). */
export function shortHex(bytes: Uint8Array, n = 16): string {
  const h = toHex(bytes);
  return h.length > n ? `${h.slice(0, n)}…` : h;
}

/** One line of a diff: kept, removed (only in A) or added (only in B). */
export interface DiffLine {
  op: ' ' | '-' | '+';
  text: string;
}

/** The lines a diff compares: pretty-printed JSON, else text lines, else hex-dump lines. */
export function diffLines(value: Uint8Array): string[] {
  const j = valueJson(value);
  if (j !== undefined) return j.split('\n');
  const t = valueText(value);
  if (t !== undefined) return t.split('\n');
  return hexDump(value, MAX_VIEW_BYTES).map((l) => l.slice(10));
}

/**
 * A line diff of `a` and `b` (longest common subsequence), or `undefined` when the inputs exceed
 * {@link MAX_DIFF_CELLS} (the caller says the values are too large to compare line by line).
 */
export function diff(a: string[], b: string[]): DiffLine[] | undefined {
  // Common head and tail first: most versions differ in a few lines.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const ma = a.slice(head, a.length - tail);
  const mb = b.slice(head, b.length - tail);
  if ((ma.length + 1) * (mb.length + 1) > MAX_DIFF_CELLS) return undefined;
  const w = mb.length + 1;
  // lcs[i][j]: LCS length of ma[i..], mb[j..], in a Uint32Array of at most MAX_DIFF_CELLS cells.
  const lcs = new Uint32Array((ma.length + 1) * w);
  for (let i = ma.length - 1; i >= 0; i--) {
    for (let j = mb.length - 1; j >= 0; j--) {
      lcs[i * w + j] = ma[i] === mb[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    }
  }
  const out: DiffLine[] = a.slice(0, head).map((text) => ({ op: ' ', text }));
  let i = 0;
  let j = 0;
  while (i < ma.length || j < mb.length) {
    if (i < ma.length && j < mb.length && ma[i] === mb[j]) {
      out.push({ op: ' ', text: ma[i++] });
      j++;
    } else if (i < ma.length && (j === mb.length || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
      out.push({ op: '-', text: ma[i++] });
    } else {
      out.push({ op: '+', text: mb[j++] });
    }
  }
  for (const text of a.slice(a.length - tail)) out.push({ op: ' ', text });
  return out;
}
