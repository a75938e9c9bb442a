/**
 * `encodeStoredValue` cuts the memtable's stored values from shared slabs: each value must still
 * be its own bytes — right content across slab boundaries, no overlap with any other value (a write
 * into one changes no other), long values in arrays of their own.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeStoredValue, STORED_VALUE_SLAB, STORED_VALUE_SLAB_MAX, storedTime, storedUserValue } from '../../src/keys.js';

describe('encodeStoredValue', () => {
  it('gives every value its own bytes, across slabs', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ time: fc.nat(), value: fc.uint8Array({ maxLength: STORED_VALUE_SLAB_MAX + 50 }) }), { minLength: 1, maxLength: 300 }),
        (recs) => {
          const out = recs.map((r) => encodeStoredValue(r.time, r.value));
          out.forEach((o, i) => {
            expect(storedTime(o)).toBe(recs[i].time);
            expect(storedUserValue(o)).toEqual(recs[i].value);
            if (o.length > STORED_VALUE_SLAB_MAX) expect(o.byteOffset === 0 && o.buffer.byteLength === o.length).toBe(true);
          });
          // Overwrite every value with its index: had any two overlapped, one would read back wrong.
          out.forEach((o, i) => o.fill(i & 0xff));
          out.forEach((o, i) => expect(o.every((b) => b === (i & 0xff))).toBe(true));
        },
      ),
      { numRuns: 50 },
    );
  });

  it('starts a new slab when the current one cannot hold the value', () => {
    const v = new Uint8Array(STORED_VALUE_SLAB_MAX - 8).fill(9);
    const out = Array.from({ length: 2 * Math.ceil(STORED_VALUE_SLAB / STORED_VALUE_SLAB_MAX) }, (_, i) => encodeStoredValue(i, v));
    for (const o of out) {
      expect(o.byteOffset + o.length).toBeLessThanOrEqual(o.buffer.byteLength);
      expect(o.buffer.byteLength).toBe(STORED_VALUE_SLAB);
    }
    expect(new Set(out.map((o) => o.buffer)).size).toBeGreaterThan(1);
  });
});
