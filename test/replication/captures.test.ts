/**
 * `CaptureStore` and the capture file format (src/replication/captures.ts): what a member keeps on
 * disk of the session table captured at a checkpoint, so that a restart does not lose it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CaptureStore, captureFileName, decodeCapture, encodeCapture, type Capture } from '../../src/replication/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'pkv-captures-'));
  dirs.push(d);
  return d;
}
const bytes = (...b: number[]) => new Uint8Array(b);
const files = (dir: string) => fs.readdirSync(dir).sort();

describe('capture format', () => {
  it('round-trips with and without a registry, empty session bytes included', () => {
    const a: Capture = { index: 7, sessions: bytes(1, 2, 3), members: bytes(9, 8) };
    const b: Capture = { index: 2 ** 40, sessions: bytes() };
    expect(decodeCapture(encodeCapture(a), 7)).toEqual(a);
    expect(decodeCapture(encodeCapture(b))).toEqual(b);
    expect(decodeCapture(encodeCapture({ index: 3, sessions: bytes(1), members: bytes() }))).toEqual({ index: 3, sessions: bytes(1), members: bytes() });
  });

  it('refuses every flipped byte, every cut, another index and another magic', () => {
    const enc = encodeCapture({ index: 12, sessions: bytes(5, 6, 7, 8), members: bytes(1) });
    for (let i = 0; i < enc.length; i++) {
      const bad = enc.slice();
      bad[i] ^= 0x10;
      expect(() => decodeCapture(bad, 12), `byte ${i}`).toThrow();
    }
    for (let n = 0; n < enc.length; n++) expect(() => decodeCapture(enc.subarray(0, n), 12), `cut at ${n}`).toThrow();
    expect(() => decodeCapture(enc, 13)).toThrow(/named 13/);
    expect(() => encodeCapture({ index: 0, sessions: bytes() })).toThrow(RangeError);
  });
});

describe('CaptureStore', () => {
  it('writes what is wanted, removes what is not, and a reopened store loads it newest first', async () => {
    const dir = tmp();
    const s = CaptureStore.open(dir, { maxBytes: 1024 });
    s.want([{ index: 5, sessions: bytes(5) }, { index: 9, sessions: bytes(9), members: bytes(1, 2) }]);
    await s.settled();
    expect(files(dir)).toEqual([captureFileName(5), captureFileName(9)]);
    s.want([{ index: 9, sessions: bytes(9), members: bytes(1, 2) }, { index: 11, sessions: bytes(11) }]);
    // Replaced before the worker reached it: only the latest list is written.
    s.want([{ index: 11, sessions: bytes(11) }, { index: 13, sessions: bytes(13) }]);
    await s.close();
    expect(files(dir)).toEqual([captureFileName(11), captureFileName(13)]);
    s.want([]); // closed: nothing more is done
    await s.settled();
    expect(files(dir)).toEqual([captureFileName(11), captureFileName(13)]);

    const r = CaptureStore.open(dir, { maxBytes: 1024 });
    const { captures, refused } = r.load();
    expect(refused).toEqual([]);
    expect(captures).toEqual([{ index: 13, sessions: bytes(13) }, { index: 11, sessions: bytes(11) }]);
    // Loaded files count as written: wanting them again writes nothing, the others are removed.
    const before = fs.statSync(path.join(dir, captureFileName(13))).mtimeMs;
    r.want([{ index: 13, sessions: bytes(13) }]);
    await r.settled();
    expect(files(dir)).toEqual([captureFileName(13)]);
    expect(fs.statSync(path.join(dir, captureFileName(13))).mtimeMs).toBe(before);
  });

  it('refuses damaged, torn, oversized and misnamed files at load, removes them at the next want, and rewrites a wanted index whose file was bad', async () => {
    const dir = tmp();
    const good = encodeCapture({ index: 4, sessions: bytes(4, 4) });
    fs.writeFileSync(path.join(dir, captureFileName(4)), good);
    const flipped = encodeCapture({ index: 6, sessions: bytes(6, 6) });
    flipped[flipped.length - 6] ^= 1;
    fs.writeFileSync(path.join(dir, captureFileName(6)), flipped);
    fs.writeFileSync(path.join(dir, captureFileName(8)), encodeCapture({ index: 8, sessions: bytes(8) }).subarray(0, 20));
    fs.writeFileSync(path.join(dir, captureFileName(10)), encodeCapture({ index: 3, sessions: bytes(3) }));
    fs.writeFileSync(path.join(dir, captureFileName(12)), encodeCapture({ index: 12, sessions: new Uint8Array(200) }));
    fs.writeFileSync(path.join(dir, `${captureFileName(14)}.tmp`), good);
    fs.writeFileSync(path.join(dir, 'unrelated'), 'x');

    const s = CaptureStore.open(dir, { maxBytes: 100 });
    expect(fs.existsSync(path.join(dir, `${captureFileName(14)}.tmp`))).toBe(false);
    const { captures, refused } = s.load();
    expect(captures).toEqual([{ index: 4, sessions: bytes(4, 4) }]);
    expect(refused.map((r) => r.file).sort()).toEqual([captureFileName(10), captureFileName(12), captureFileName(6), captureFileName(8)].sort());
    expect(refused.find((r) => r.file === captureFileName(6))!.reason).toMatch(/checksum/);
    expect(refused.find((r) => r.file === captureFileName(10))!.reason).toMatch(/named 10/);
    expect(refused.find((r) => r.file === captureFileName(12))!.reason).toMatch(/over the bound/);
    // Nothing was changed by the load.
    expect(files(dir)).toEqual([captureFileName(10), captureFileName(12), captureFileName(4), captureFileName(6), captureFileName(8), 'unrelated'].sort());

    s.want([{ index: 4, sessions: bytes(4, 4) }, { index: 6, sessions: bytes(6, 6) }]);
    await s.close();
    expect(files(dir)).toEqual([captureFileName(4), captureFileName(6), 'unrelated']);
    const again = CaptureStore.open(dir, { maxBytes: 100 }).load();
    expect(again.refused).toEqual([]);
    expect(again.captures).toEqual([{ index: 6, sessions: bytes(6, 6) }, { index: 4, sessions: bytes(4, 4) }]);
  });

  it('reports a failed write and goes on; the capture is written by a later want once it can be', async () => {
    const dir = tmp();
    const errors: string[] = [];
    const s = CaptureStore.open(dir, { maxBytes: 1024, onError: (e) => errors.push(e.message) });
    // A directory where the temporary file must go: the open fails.
    fs.mkdirSync(path.join(dir, `${captureFileName(3)}.tmp`));
    s.want([{ index: 3, sessions: bytes(3) }]);
    await s.settled();
    expect(errors.length).toBe(1);
    expect(files(dir)).toEqual([`${captureFileName(3)}.tmp`]);
    fs.rmdirSync(path.join(dir, `${captureFileName(3)}.tmp`));
    s.want([{ index: 3, sessions: bytes(3) }]);
    await s.close();
    expect(files(dir)).toEqual([captureFileName(3)]);
    expect(CaptureStore.open(dir, { maxBytes: 1024 }).load().captures).toEqual([{ index: 3, sessions: bytes(3) }]);
  });
});
