/**
 * Varints and fixed-width little-endian integers in LevelDB's encodings, plus a growable
 * byte writer. Varints here are unsigned and at most 2^53 - 1 (JS safe integers).
 * @module
 */

/** Appends bytes to a growing buffer; `finish()` returns the written prefix (no copy). */
export class ByteWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initial = 1024) {
    this.buf = new Uint8Array(initial);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Fixed 32-bit little-endian. */
  fixed32(v: number): void {
    this.ensure(4);
    putFixed32(this.buf, this.pos, v);
    this.pos += 4;
  }

  /** Fixed 64-bit little-endian (safe-integer range). */
  fixed64(v: number): void {
    this.ensure(8);
    putFixed64(this.buf, this.pos, v);
    this.pos += 8;
  }

  varint(v: number): void {
    this.ensure(10);
    this.pos = putVarint(this.buf, this.pos, v);
  }

  /** A varint length followed by the bytes. */
  lengthPrefixed(b: Uint8Array): void {
    this.varint(b.length);
    this.bytes(b);
  }

  get length(): number {
    return this.pos;
  }

  reset(): void {
    this.pos = 0;
  }

  /** The bytes written so far (a view, valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** A copy of the bytes written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

export function putFixed32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = (v >>> 16) & 0xff;
  buf[off + 3] = (v >>> 24) & 0xff;
}

export function getFixed32(buf: Uint8Array, off: number): number {
  return (buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)) >>> 0;
}

export function putFixed64(buf: Uint8Array, off: number, v: number): void {
  putFixed32(buf, off, v >>> 0);
  putFixed32(buf, off + 4, Math.floor(v / 0x100000000));
}

/** Reads a fixed 64-bit little-endian integer; throws `RangeError` above 2^53 - 1. */
export function getFixed64(buf: Uint8Array, off: number): number {
  const lo = getFixed32(buf, off);
  const hi = getFixed32(buf, off + 4);
  if (hi > 0x1fffff) throw new RangeError('fixed64 exceeds 2^53 - 1');
  return hi * 0x100000000 + lo;
}

/** Writes a varint at `off`; returns the offset after it. */
export function putVarint(buf: Uint8Array, off: number, v: number): number {
  while (v >= 0x80) {
    buf[off++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[off++] = v;
  return off;
}

/** Number of bytes `v` takes as a varint. */
export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/**
 * A cursor over bytes that decodes LevelDB encodings. Reading past the end throws
 * `RangeError` ("truncated"); callers turn that into a corruption error with their file name.
 */
export class ByteReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) throw new RangeError('truncated');
    return this.buf[this.pos++];
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) throw new RangeError('truncated');
    const v = getFixed32(this.buf, this.pos);
    this.pos += 4;
    return v;
  }

  fixed64(): number {
    if (this.pos + 8 > this.end) throw new RangeError('truncated');
    const v = getFixed64(this.buf, this.pos);
    this.pos += 8;
    return v;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.end) throw new RangeError('truncated varint');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (!Number.isSafeInteger(result)) throw new RangeError('varint exceeds 2^53 - 1');
        return result;
      }
      mul *= 0x80;
    }
    throw new RangeError('varint too long');
  }

  /** `n` bytes as a view into the underlying buffer. */
  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.end) throw new RangeError('truncated');
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  lengthPrefixed(): Uint8Array {
    return this.bytes(this.varint());
  }
}

/**
 * A cursor for strict encodings (the peer transport's messages, the log's binary commands):
 * unsigned LEB128 varints in shortest form and at most 2^53 − 1. Every failure throws the error
 * `fail(why)` builds, so each format keeps its own typed error.
 */
export class StrictReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
    private readonly fail: (why: string) => Error,
  ) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Throws the format's error. */
  malformed(why: string): never {
    throw this.fail(why);
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.malformed(`truncated at ${what}`);
    return this.buf[this.pos++];
  }

  uint(what: string): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8(what);
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (b === 0 && i > 0) this.malformed(`${what}: varint not in shortest form`);
        if (!Number.isSafeInteger(result)) this.malformed(`${what}: varint above 2^53 - 1`);
        return result;
      }
      mul *= 0x80;
    }
    return this.malformed(`${what}: varint too long`);
  }

  /** A varint length that fits in the bytes left (and is at most `max`). */
  length(what: string, max = Infinity): number {
    const n = this.uint(what);
    if (n > this.remaining) this.malformed(`${what}: length ${n} beyond the ${this.remaining} bytes left`);
    if (n > max) this.malformed(`${what}: ${n} bytes, at most ${max}`);
    return n;
  }
}
