/**
 * The proof codecs' CBOR writer: the wire values their schemas produce (`encoding.ts`) written
 * straight into one buffer, in the core deterministic encoding (RFC 8949 §4.2.1: shortest heads,
 * definite lengths; map keys in the order the schema emits them, which is the canonical order).
 *
 * It writes exactly what the codecs' cbor-x instance (`cbor_instance.ts`) writes for the same
 * value — `test/proofs/cbor_write.test.ts` compares the two on every proof type and on random
 * values — at a fraction of the cost: the generic encoder was about a quarter of a served proof's
 * CPU (bench/README.md § "Serving a proof"). Only the proof data model is accepted: unsigned
 * integers (a `number` up to 2^32 − 1, a `bigint` up to 2^64 − 1, which cbor-x writes in the
 * 8-byte form), byte strings, text strings, arrays, `Map`s, booleans and null. Anything else
 * throws `TypeError` (the schemas never produce it). Isomorphic: no `node:` imports.
 * @module
 */

const utf8 = new TextEncoder();

/**
 * A growable output buffer (doubling; the codecs bound a proof's size). One is kept for the next
 * call while it stays at most {@link KEEP_BYTES}.
 */
class Out {
  buf = new Uint8Array(4096);
  view = new DataView(this.buf.buffer);
  at = 0;

  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** A head of major type `major` with argument `n` (0 ≤ n ≤ 2^32 − 1), shortest form. */
  head(major: number, n: number): void {
    this.ensure(5);
    const m = major << 5;
    if (n < 24) {
      this.buf[this.at++] = m | n;
    } else if (n < 0x100) {
      this.buf[this.at++] = m | 24;
      this.buf[this.at++] = n;
    } else if (n < 0x10000) {
      this.buf[this.at++] = m | 25;
      this.view.setUint16(this.at, n);
      this.at += 2;
    } else {
      this.buf[this.at++] = m | 26;
      this.view.setUint32(this.at, n);
      this.at += 4;
    }
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }
}

function write(o: Out, v: unknown): void {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new TypeError(`not a proof wire value: the number ${v}`);
    o.head(0, v);
  } else if (v instanceof Uint8Array) {
    if (v.length > 0xffffffff) throw new TypeError('byte string too long');
    o.head(2, v.length);
    o.bytes(v);
  } else if (Array.isArray(v)) {
    o.head(4, v.length);
    for (const x of v) write(o, x);
  } else if (v instanceof Map) {
    o.head(5, v.size);
    v.forEach((x, k) => {
      write(o, k);
      write(o, x);
    });
  } else if (typeof v === 'string') {
    const b = utf8.encode(v);
    o.head(3, b.length);
    o.bytes(b);
  } else if (typeof v === 'bigint') {
    if (v < 0n || v > 0xffffffffffffffffn) throw new TypeError(`not a proof wire value: the integer ${v}`);
    // cbor-x writes every bigint in the 8-byte form; the schemas pass a bigint only above 2^32 − 1,
    // where that form is also the shortest.
    o.ensure(9);
    o.buf[o.at++] = 0x1b;
    o.view.setBigUint64(o.at, v);
    o.at += 8;
  } else if (v === true || v === false) {
    o.ensure(1);
    o.buf[o.at++] = v ? 0xf5 : 0xf4;
  } else if (v === null) {
    o.ensure(1);
    o.buf[o.at++] = 0xf6;
  } else {
    throw new TypeError(`not a proof wire value: ${typeof v}`);
  }
}

/** The largest scratch buffer kept between calls (64 KiB); a larger one is dropped after its call. */
const KEEP_BYTES = 64 * 1024;
let scratch: Out | null = null;

/** `v` (a proof wire value) in the codecs' CBOR: a fresh `Uint8Array` of exactly its bytes. */
export function writeCbor(v: unknown): Uint8Array {
  // Taken for the call (a nested call, which the schemas never make, would get its own).
  const o = scratch ?? new Out();
  scratch = null;
  o.at = 0;
  try {
    write(o, v);
    return o.buf.slice(0, o.at);
  } finally {
    if (o.buf.length <= KEEP_BYTES) scratch = o;
  }
}
