/** A minimal CBOR writer for tests that need bytes no honest encoder produces (tags, odd heads). */
export class CborWriter {
  private readonly out: number[] = [];

  /** A head of `major` with argument `n`, shortest form unless `width` (1, 2, 4 or 8 bytes) is forced. */
  head(major: number, n: number, width?: 0 | 1 | 2 | 4 | 8): this {
    const w = width ?? (n < 24 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 0x100000000 ? 4 : 8);
    if (w === 0) {
      this.out.push((major << 5) | n);
      return this;
    }
    this.out.push((major << 5) | (24 + Math.log2(w)));
    for (let i = w - 1; i >= 0; i--) this.out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
    return this;
  }

  text(s: string): this {
    const b = new TextEncoder().encode(s);
    this.head(3, b.length);
    this.out.push(...b);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.head(2, b.length);
    this.out.push(...b);
    return this;
  }

  raw(...b: number[]): this {
    this.out.push(...b);
    return this;
  }

  /** Tag 28: the next item may be referenced by tag 29 (RFC 8949 value sharing). */
  shareable(): this {
    return this.head(6, 28);
  }

  /** Tag 29 with the index of an earlier shareable item. */
  sharedRef(index: number): this {
    return this.head(6, 29).head(0, index);
  }

  done(): Uint8Array {
    return new Uint8Array(this.out);
  }
}

/**
 * The value-sharing bomb of issue 8: a get-proof-shaped map whose `windows` refer `fan` times to
 * one shared window, whose `blocks` refer `fan` times to one shared block, whose `entries` refer
 * `fan` times to one shared entry — `fan`^3 entries for about 9 × fan bytes.
 */
export function sharingBomb(fan: number): Uint8Array {
  const w = new CborWriter();
  const h32 = new Uint8Array(32).fill(7);
  w.head(5, 2).text('body').head(5, 4);
  w.text('windows').head(4, fan).shareable();
  w.head(5, 4).text('table').head(0, 0).text('blocks').head(4, fan).shareable();
  w.head(5, 5).text('index').head(0, 0).text('proof').head(4, 0).text('offset').head(0, 0).text('entries').head(4, fan).shareable();
  w.head(5, 5).text('key').bytes(new Uint8Array([1])).text('seq').head(0, 1).text('kind').head(0, 1).text('version').head(0, 1).text('valueHash').bytes(h32);
  for (let i = 1; i < fan; i++) w.sharedRef(2);
  w.text('entryCount').head(0, 1);
  for (let i = 1; i < fan; i++) w.sharedRef(1);
  w.text('blockCount').head(0, 1).text('blockProof').head(4, 0);
  for (let i = 1; i < fan; i++) w.sharedRef(0);
  w.text('levelCounts').head(4, 7);
  for (let i = 0; i < 7; i++) w.head(0, 0);
  w.text('descriptors').head(4, 0).text('masterProof').head(4, 0);
  w.text('certificate').head(5, 0);
  return w.done();
}
