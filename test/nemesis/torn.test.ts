/**
 * The torn tail the harness appends (`tornRecord`) is what the engine's journal reader calls a
 * torn tail, never corruption and never a record: after journals of many lengths (including
 * those that end fewer than 7 bytes before a block boundary, where the writer leaves zeros), the
 * reader returns exactly the records written, `tornTail` true and `validLength` the old length;
 * and the partial record's header promises more payload than the file holds (within its block).
 */
import { describe, expect, it } from 'vitest';
import { readJournal } from '../../src/journal/reader.js';
import { formatRecords } from '../../src/journal/writer.js';
import { mulberry32 } from '../support/prng.js';
import { tornRecord } from './cluster.js';

const BLOCK = 32_768;

describe('tornRecord', () => {
  it('reads as a torn tail after the records written, at every kind of length', () => {
    const rand = mulberry32(3);
    const payload = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
    // Sizes chosen so that some journals end a few bytes before a block boundary.
    const cases: number[][] = [[], [10], [BLOCK - 7 - 3], [BLOCK - 7 - 6], [BLOCK - 7], [BLOCK - 14 - 100, 100 - 2], [40_000], [5, 70_000, 9]];
    for (let k = 0; k < 40; k++) cases.push(Array.from({ length: 1 + Math.floor(rand() * 6) }, () => Math.floor(rand() * 20_000)));
    for (const sizes of cases) {
      const journal = formatRecords(sizes.map(payload));
      for (let t = 0; t < 5; t++) {
        const torn = tornRecord(journal.length, rand);
        expect(torn.length).toBeGreaterThanOrEqual(7);
        const bytes = new Uint8Array(journal.length + torn.length);
        bytes.set(journal);
        bytes.set(torn, journal.length);
        const r = readJournal(bytes, 'test.log');
        expect(r.records.map((x) => x.length), `sizes ${sizes}`).toEqual(sizes);
        expect(r.tornTail).toBe(true);
        expect(r.validLength).toBe(journal.length);
        // Not a whole record that fails its checksum (the manifest would call that corruption):
        // the header's payload runs past the end of the file.
        let at = journal.length;
        if (BLOCK - (at % BLOCK) < 7) at += BLOCK - (at % BLOCK);
        const length = bytes[at + 4] | (bytes[at + 5] << 8);
        expect(bytes[at + 6]).toBe(1);
        expect(at + 7 + length).toBeGreaterThan(bytes.length);
        expect(at + 7 + length).toBeLessThanOrEqual(at - (at % BLOCK) + BLOCK);
      }
    }
  });
});
