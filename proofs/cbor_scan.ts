/**
 * A linear pre-pass over CBOR bytes (RFC 8949) that runs before anything is decoded. Isomorphic:
 * no `node:` imports.
 *
 * A general CBOR decoder does work that the bytes alone do not bound: value-sharing tags (28/29)
 * let a 1 KB input stand for a tree of millions of nodes, which a schema walk and a re-encoding
 * then visit one by one; indefinite lengths and deep nesting cost stack and allocations; a
 * declared length of 2^32 with a short body makes a decoder reserve memory it never fills.
 * {@link scanCbor} walks the bytes once, without recursion or allocation beyond one small frame per
 * open container, reads each head once, and rejects with {@link DecodeError}:
 *
 * - every tag (major type 6, value sharing 28/29 included), indefinite lengths (additional
 *   information 31) and reserved additional information (28–30);
 * - a byte or text string longer than the bytes left, an array or map with more items than bytes
 *   left (every item takes at least one byte), more items than `maxArray` / `maxMap`, nesting
 *   deeper than `maxDepth`, text that is not UTF-8, trailing bytes;
 * - in `canonical` mode, also non-shortest heads, everything outside ProofKV's proof data model
 *   (negative integers, floats, simple values, unsigned integers above 2^53 − 1, map keys that are
 *   of the codec's key type — text, or unsigned integers for the compact format) and map keys not
 *   in strictly increasing order of their encodings (RFC 8949 §4.2.1; no duplicates). Outside canonical mode (request bodies from any encoder) a longer head than
 *   needed is accepted — cbor-x itself writes 16-bit map heads — since it costs no extra work.
 *
 * In canonical mode a successful scan proves that the bytes are the core deterministic encoding
 * (RFC 8949 §4.2.1) of a value of the proof data model, so a decoder needs no re-encoding to check
 * canonical form (see `codec` in `encoding.ts`). Work is O(input length): at most one head per
 * byte, plus the UTF-8 check and key comparisons over bytes read once each.
 * @module
 */
import { DecodeError } from './errors.js';

/** Bounds on the shape a scan accepts. */
export interface CborLimits {
  /** Most open arrays and maps at once (a top-level map alone is depth 1). */
  maxDepth: number;
  /** Most items in one array. */
  maxArray: number;
  /** Most entries (key/value pairs) in one map. */
  maxMap: number;
  /**
   * Accept only the canonical encoding of the proof data model: shortest heads, unsigned
   * integers up to 2^53 − 1, byte strings, text strings, arrays and maps with text keys in
   * strictly increasing encoded order. Otherwise also longer heads than needed, negative
   * integers, floats, `false`, `true` and `null`, and maps with keys of any type in any order.
   */
  canonical: boolean;
  /**
   * In canonical mode, the type of every map key: text strings (the text-keyed proof format 1,
   * the default) or unsigned integers (the compact proof format 2, docs/proofs.md §8.10). One
   * type per codec: a map with a key of the other type is refused.
   */
  mapKeys?: 'text' | 'uint';
}

/** Work counters of one scan, for tests and benchmarks. */
export interface CborScanStats {
  /** Item heads read. Never more than the input length. */
  heads: number;
}

interface Frame {
  /** Items still to come (a map of n entries starts at 2n). */
  remaining: number;
  isMap: boolean;
  /** The previous key's encoding, `[keyStart, keyEnd)`, in canonical mode. */
  keyStart: number;
  keyEnd: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Checks `bytes` as one CBOR data item within `limits` in a single linear pass, before any
 * decoding; throws {@link DecodeError} (reason `MALFORMED_ENCODING`) naming the byte offset.
 */
export function scanCbor(bytes: Uint8Array, limits: CborLimits, stats?: CborScanStats): void {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('', 'want Uint8Array');
  const n = bytes.length;
  const keyMajor = limits.mapKeys === 'uint' ? 0 : 3;
  const stack: Frame[] = [];
  let pos = 0;
  const bad = (at: number, msg: string): never => {
    throw new DecodeError('', `CBOR at byte ${at}: ${msg}`);
  };
  do {
    const start = pos;
    if (pos >= n) bad(pos, 'truncated');
    const ib = bytes[pos++];
    if (stats) stats.heads++;
    const major = ib >> 5;
    const ai = ib & 31;
    const top = stack.length > 0 ? stack[stack.length - 1] : undefined;
    const isKey = top !== undefined && top.isMap && top.remaining % 2 === 0;
    if (major === 7) {
      if (limits.canonical) bad(start, `simple value or float (0x${ib.toString(16)}) outside the proof data model`);
      if (ai === 31) bad(start, 'break outside an indefinite-length item');
      if (ai >= 20 && ai <= 22) {
        // false, true, null
      } else if (ai >= 25 && ai <= 27) {
        const len = ai === 25 ? 2 : ai === 26 ? 4 : 8;
        if (n - pos < len) bad(start, 'truncated float');
        pos += len;
      } else {
        bad(start, `simple value ${ai === 24 ? bytes[pos] : ai} not accepted`);
      }
      itemDone(stack);
      continue;
    }
    if (major === 6) bad(start, ai === 24 && (bytes[pos] === 28 || bytes[pos] === 29) ? `value-sharing tag ${bytes[pos]} not accepted` : 'tags not accepted');
    if (ai === 31) bad(start, 'indefinite length not accepted');
    if (ai >= 28) bad(start, `reserved additional information ${ai}`);
    let arg = ai;
    let huge = false;
    if (ai >= 24) {
      const len = 1 << (ai - 24);
      if (n - pos < len) bad(start, 'truncated head');
      if (len === 1) {
        arg = bytes[pos];
        if (limits.canonical && arg < 24) bad(start, `non-shortest head for ${arg}`);
      } else if (len === 2) {
        arg = (bytes[pos] << 8) | bytes[pos + 1];
        if (limits.canonical && arg < 0x100) bad(start, `non-shortest head for ${arg}`);
      } else if (len === 4) {
        arg = ((bytes[pos] << 24) | (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]) >>> 0;
        if (limits.canonical && arg < 0x10000) bad(start, `non-shortest head for ${arg}`);
      } else {
        const hi = ((bytes[pos] << 24) | (bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]) >>> 0;
        const lo = ((bytes[pos + 4] << 24) | (bytes[pos + 5] << 16) | (bytes[pos + 6] << 8) | bytes[pos + 7]) >>> 0;
        if (limits.canonical && hi === 0) bad(start, `non-shortest head for ${lo}`);
        huge = hi > 0x1fffff;
        arg = hi * 0x100000000 + lo;
      }
      pos += len;
    }
    if (limits.canonical && isKey && major !== keyMajor) bad(start, `map key of major type ${major}, want ${keyMajor === 0 ? 'unsigned integer' : 'text'}`);
    switch (major) {
      case 0:
        if (limits.canonical && huge) bad(start, 'unsigned integer above 2^53 - 1');
        if (limits.canonical && isKey) keyInOrder(bytes, top!, start, pos, bad);
        itemDone(stack);
        break;
      case 1:
        if (limits.canonical) bad(start, 'negative integer outside the proof data model');
        itemDone(stack);
        break;
      case 2:
      case 3: {
        if (huge || arg > n - pos) bad(start, `string of ${arg} bytes with ${n - pos} bytes left`);
        if (major === 3) {
          try {
            utf8.decode(bytes.subarray(pos, pos + arg));
          } catch {
            bad(start, 'text string is not UTF-8');
          }
        }
        pos += arg;
        if (limits.canonical && isKey) keyInOrder(bytes, top!, start, pos, bad);
        itemDone(stack);
        break;
      }
      case 4:
      case 5: {
        const isMap = major === 5;
        if (huge || arg > (isMap ? limits.maxMap : limits.maxArray)) bad(start, `${isMap ? 'map' : 'array'} of ${arg} items, want at most ${isMap ? limits.maxMap : limits.maxArray}`);
        const items = isMap ? 2 * arg : arg;
        if (items > n - pos) bad(start, `${isMap ? 'map' : 'array'} of ${arg} items with ${n - pos} bytes left`);
        if (items === 0) {
          itemDone(stack);
          break;
        }
        if (stack.length >= limits.maxDepth) bad(start, `nesting deeper than ${limits.maxDepth}`);
        stack.push({ remaining: items, isMap, keyStart: 0, keyEnd: 0 });
        break;
      }
    }
  } while (stack.length > 0);
  if (pos !== n) bad(pos, `${n - pos} trailing bytes`);
}

/** A map key `[start, end)` must sort strictly after the previous key of its map (RFC 8949 §4.2.1). */
function keyInOrder(bytes: Uint8Array, top: Frame, start: number, end: number, bad: (at: number, msg: string) => never): void {
  if (top.keyEnd > top.keyStart && compareRanges(bytes, top.keyStart, top.keyEnd, start, end) >= 0) {
    bad(start, 'map keys not in strictly increasing canonical order (RFC 8949 §4.2.1)');
  }
  top.keyStart = start;
  top.keyEnd = end;
}

/** Bytewise order of `bytes[a0, a1)` and `bytes[b0, b1)` (a proper prefix first), without copying. */
function compareRanges(bytes: Uint8Array, a0: number, a1: number, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let i = 0; i < n; i++) {
    const d = bytes[a0 + i] - bytes[b0 + i];
    if (d !== 0) return d;
  }
  return a1 - a0 - (b1 - b0);
}

/** One item of the innermost open container is complete; closes every container it completes. */
function itemDone(stack: Frame[]): void {
  while (stack.length > 0) {
    const f = stack[stack.length - 1];
    if (--f.remaining > 0) return;
    stack.pop();
  }
}
