/**
 * The cluster's shape as one member tells it to another (src/replication/shape.ts): the codec (the
 * manifest's tag-13 record, bounded), the joiner's rule (`learnClusterShape`: one shape told by
 * every member that tells one; older members that refuse the read are passed over, and a refusal
 * by all is `SHAPE_UNKNOWN`, never a guess), and the shape read over the real peer transport — a
 * joiner that is not a member yet is answered, an older member's refusal is read as one, and every
 * other read from a non-member is still refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SHAPE, LEGACY_SHAPE, SHAPE_OPTIONS, type Shape } from '../../src/options.js';
import { ByteWriter } from '../../src/util/coding.js';
import { encodeEdit } from '../../src/version/edit.js';
import {
  MAX_SHAPE_BYTES, MAX_TOLD_SHAPE, SHAPE_FILE, ShapeError, askShape, decodeShape, encodeShape, learnClusterShape, type ShapeFetch,
} from '../../src/replication/shape.js';
import { SnapshotError, SnapshotErrorCode } from '../../src/replication/snapshot.js';
import { TransportError, TransportErrorCode } from '../../src/replication/transport/index.js';
import { closeAll, startNode } from './transport_helpers.js';

afterEach(closeAll);

/** A shape record of the first `n` options, as a release whose shape had `n` options wrote it. */
function recordOf(shape: Shape, n: number, extra?: (w: ByteWriter) => void): Uint8Array {
  const w = new ByteWriter();
  extra?.(w);
  w.varint(13);
  w.varint(n);
  for (const k of SHAPE_OPTIONS.slice(0, n)) w.varint(shape[k]);
  // An option of a newer release beyond this one's.
  for (let i = SHAPE_OPTIONS.length; i < n; i++) w.varint(1);
  return w.finish();
}

const OLD: Shape = { ...DEFAULT_SHAPE, checkpointLevel0Bytes: 0, merkleGroup: 0, checkpointLevel0SizeRatio: 0 };

/** Rejects with the code of what `f` throws (or resolves 'ok'). */
async function codeOf(f: () => unknown): Promise<string> {
  try {
    await f();
    return 'ok';
  } catch (err) {
    return String((err as { code?: unknown }).code ?? (err as Error).message);
  }
}

describe('a told shape', () => {
  it('is the manifest\'s shape record: read back exactly, and an older record reads as an older release built', () => {
    for (const s of [DEFAULT_SHAPE, LEGACY_SHAPE, OLD]) expect(decodeShape(encodeShape(s))).toEqual(s);
    // A record of 10 options (before checkpointLevel0SizeRatio): a checkpoint merges all of level 0.
    expect(decodeShape(recordOf(DEFAULT_SHAPE, 10))).toEqual({ ...DEFAULT_SHAPE, checkpointLevel0SizeRatio: 0 });
    // 9 (before checkpointLevel0Bytes): the byte bound is off, as in the manifest.
    expect(decodeShape(recordOf(DEFAULT_SHAPE, 9))).toEqual({ ...DEFAULT_SHAPE, checkpointLevel0Bytes: 0, checkpointLevel0SizeRatio: 0 });
    // 8 (before merkleGroup): table format 2 too.
    expect(decodeShape(recordOf(DEFAULT_SHAPE, 8))).toEqual({ ...DEFAULT_SHAPE, checkpointLevel0Bytes: 0, merkleGroup: 0, checkpointLevel0SizeRatio: 0 });
  });

  it('is told in the shortest record that reads back as it, so an older release reads a shape it can build', () => {
    // [tag 13, option count, …]: the options a later release added, left "off", are left out.
    expect([...encodeShape(OLD).subarray(0, 2)]).toEqual([13, 8]);
    expect(encodeShape(OLD)).toEqual(recordOf(OLD, 8));
    expect([...encodeShape({ ...DEFAULT_SHAPE, checkpointLevel0Bytes: 0, checkpointLevel0SizeRatio: 0 }).subarray(0, 2)]).toEqual([13, 9]);
    expect([...encodeShape({ ...DEFAULT_SHAPE, checkpointLevel0SizeRatio: 0 }).subarray(0, 2)]).toEqual([13, 10]);
    expect([...encodeShape(DEFAULT_SHAPE).subarray(0, 2)]).toEqual([13, SHAPE_OPTIONS.length]);
    // merkleGroup 0 but the byte bound on: the options up to it are needed, the size ratio (off) is not.
    expect([...encodeShape({ ...OLD, checkpointLevel0Bytes: 1 << 20 }).subarray(0, 2)]).toEqual([13, 10]);
    for (const s of [OLD, DEFAULT_SHAPE, LEGACY_SHAPE, { ...OLD, checkpointLevel0Bytes: 1 << 20 }]) expect(decodeShape(encodeShape(s))).toEqual(s);
  });

  it('refuses malformed and hostile shapes with SHAPE_INVALID', () => {
    const bad: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array(0)],
      ['too long', new Uint8Array(MAX_SHAPE_BYTES + 1)],
      ['garbage', new Uint8Array([0xff, 0xff, 0xff])],
      ['a newer release\'s extra option', recordOf(DEFAULT_SHAPE, SHAPE_OPTIONS.length + 1)],
      ['7 options', recordOf(DEFAULT_SHAPE, 7)],
      ['no shape record', encodeEdit({ lastSeq: 5 })],
      ['another field beside it', encodeEdit({ shape: DEFAULT_SHAPE, appliedIndex: 9 })],
      ['truncated', encodeShape(DEFAULT_SHAPE).subarray(0, 6)],
    ];
    for (const k of SHAPE_OPTIONS) bad.push([`${k} above its bound`, encodeShape({ ...DEFAULT_SHAPE, [k]: MAX_TOLD_SHAPE[k] * 2 + 2 })]);
    bad.push(['blockSize under the engine\'s minimum', encodeShape({ ...DEFAULT_SHAPE, blockSize: 1 })]);
    bad.push(['writeBufferSize 0', encodeShape({ ...DEFAULT_SHAPE, writeBufferSize: 0 })]);
    bad.push(['merkleGroup not a power of two', encodeShape({ ...DEFAULT_SHAPE, merkleGroup: 12 })]);
    bad.push(['checkpointLevel0Bytes 1..1023', encodeShape({ ...DEFAULT_SHAPE, checkpointLevel0Bytes: 10 })]);
    for (const [what, bytes] of bad) {
      let err: unknown;
      try {
        decodeShape(bytes, 'member 9');
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(ShapeError);
      expect((err as ShapeError).code, what).toBe('SHAPE_INVALID');
      expect((err as ShapeError).message, what).toContain('member 9');
    }
    // The bounds themselves are accepted (the largest legal values).
    const top = { ...MAX_TOLD_SHAPE };
    expect(decodeShape(encodeShape(top))).toEqual(top);
  });
});

/** A fetch over a map of member id → answer. */
function fetchOf(answers: Record<number, Uint8Array | Error>, asked: number[] = []): ShapeFetch {
  return async (id, name, offset, length) => {
    asked.push(id);
    expect(name).toBe(SHAPE_FILE);
    expect(offset).toBe(0);
    expect(length).toBe(MAX_SHAPE_BYTES);
    const a = answers[id];
    if (a === undefined) throw new TransportError(TransportErrorCode.Unreachable, `member ${id}: ECONNREFUSED`);
    if (a instanceof Error) throw a;
    return a;
  };
}

const refusedByOld = (id: number) => new TransportError(TransportErrorCode.Refused, `member ${id} answered 500 (read-failed) for snapshot 0 SHAPE@0`);

describe('learnClusterShape (a joiner with an empty data directory)', () => {
  it('takes the shape every member that tells one tells, passing over older members that refuse the read', async () => {
    expect(await learnClusterShape(fetchOf({ 1: encodeShape(OLD), 2: encodeShape(OLD), 3: encodeShape(OLD) }), [1, 2, 3])).toEqual({ shape: OLD, from: [1, 2, 3] });
    // A rolling upgrade: member 2 still runs an older release, member 3 is down.
    expect(await learnClusterShape(fetchOf({ 1: encodeShape(OLD), 2: refusedByOld(2) }), [1, 2, 3], { waitMs: 0 })).toEqual({ shape: OLD, from: [1] });
    // Explicit shape options equal to the cluster's are fine.
    expect((await learnClusterShape(fetchOf({ 1: encodeShape(OLD) }), [1], { explicit: { checkpointLevel0Bytes: 0, maxValueSize: 5 } })).shape).toEqual(OLD);
  });

  it('refuses rather than guess: every member older (SHAPE_UNKNOWN, naming the way out), none reachable, members that disagree, a malformed answer, explicit options that differ', async () => {
    const allOld = await learnClusterShape(fetchOf({ 1: refusedByOld(1), 2: refusedByOld(2) }), [1, 2]).catch((e: ShapeError) => e);
    expect(allOld).toBeInstanceOf(ShapeError);
    expect((allOld as ShapeError).code).toBe('SHAPE_UNKNOWN');
    expect((allOld as ShapeError).message).toMatch(/member 1: refused .*member 2: refused/);
    expect((allOld as ShapeError).message).toContain('copy of a member\'s data directory');

    // Nobody reachable: asked again `rounds` times, then SHAPE_UNKNOWN.
    const asked: number[] = [];
    expect(await codeOf(() => learnClusterShape(fetchOf({}, asked), [1, 2], { rounds: 3, waitMs: 0 }))).toBe('SHAPE_UNKNOWN');
    expect(asked).toEqual([1, 2, 1, 2, 1, 2]);
    // Or as long as `patienceMs` allows (here: no second round).
    asked.length = 0;
    expect(await codeOf(() => learnClusterShape(fetchOf({}, asked), [1, 2], { patienceMs: 0, waitMs: 0 }))).toBe('SHAPE_UNKNOWN');
    expect(asked).toEqual([1, 2]);
    expect(await codeOf(() => learnClusterShape(fetchOf({}), [], { waitMs: 0 }))).toBe('SHAPE_UNKNOWN');

    const conflict = await learnClusterShape(fetchOf({ 1: encodeShape(OLD), 2: encodeShape(DEFAULT_SHAPE) }), [1, 2]).catch((e: ShapeError) => e);
    expect((conflict as ShapeError).code).toBe('SHAPE_CONFLICT');
    expect((conflict as ShapeError).message).toMatch(/member 1 .*checkpointLevel0Bytes=0.*member 2 .*checkpointLevel0Bytes=16777216/);

    const hostile = encodeShape({ ...OLD, writeBufferSize: 2 ** 40 });
    expect(await codeOf(() => learnClusterShape(fetchOf({ 1: encodeShape(OLD), 2: hostile }), [1, 2]))).toBe('SHAPE_INVALID');
    expect(await codeOf(() => learnClusterShape(fetchOf({ 1: new Uint8Array([1, 2, 3]) }), [1]))).toBe('SHAPE_INVALID');

    const explicit = await learnClusterShape(fetchOf({ 1: encodeShape(OLD) }), [1], { explicit: { checkpointLevel0Bytes: 1 << 20 } }).catch((e: ShapeError) => e);
    expect((explicit as ShapeError).code).toBe('SHAPE_CONFLICT');
    expect((explicit as ShapeError).message).toContain('checkpointLevel0Bytes');
  });

  it('reads a refusal in any of the forms an older member gives it, and anything else as unreachable', async () => {
    const refusals = [
      new TransportError(TransportErrorCode.Refused, 'read-failed'),
      new TransportError(TransportErrorCode.NotFound, 'not-found'),
      new SnapshotError(SnapshotErrorCode.BadRequest, '"SHAPE" is not a file of snapshot 0'),
      new SnapshotError(SnapshotErrorCode.Unavailable, 'snapshot 0 is not served'),
    ];
    for (const r of refusals) expect(await askShape(fetchOf({ 4: r }), 4)).toMatchObject({ id: 4, refused: r.message });
    expect(await askShape(fetchOf({ 4: new Error('socket hang up') }), 4)).toMatchObject({ id: 4, unreachable: 'socket hang up' });
  });
});

describe('the shape read over the peer transport', () => {
  it('is answered to a joiner that is not a member yet; an older member refuses it; other reads from a non-member are still refused', async () => {
    // Members 1 (this release: tells its shape) and 2 (an older release: refuses any name but its
    // snapshot files, as readSnapshotChunk did) know each other only; 3 joins and knows both.
    const m1 = await startNode(1);
    const m2 = await startNode(2);
    m1.t.setPeers([{ id: 2, peerUrl: m2.t.url }]);
    m2.t.setPeers([{ id: 1, peerUrl: m1.t.url }]);
    m1.t.onSnapshotRead(async (_index, name, offset, length) => {
      if (name !== SHAPE_FILE) throw new SnapshotError(SnapshotErrorCode.BadRequest, `${name} is not a file of the snapshot`);
      return encodeShape(OLD).slice(offset, offset + length);
    });
    m2.t.onSnapshotRead(async (_index, name) => {
      throw new SnapshotError(SnapshotErrorCode.BadRequest, `${name} is not a file of the snapshot`);
    });
    const joiner = await startNode(3, { peers: [{ id: 1, peerUrl: m1.t.url }, { id: 2, peerUrl: m2.t.url }] });
    const fetch: ShapeFetch = (id, name, offset, length) => joiner.t.fetchSnapshotChunk(id, 0, name, offset, length);

    expect(await learnClusterShape(fetch, [1, 2])).toEqual({ shape: OLD, from: [1] });
    expect(await askShape(fetch, 2)).toMatchObject({ id: 2, refused: expect.stringContaining('read-failed') });
    expect(await codeOf(() => learnClusterShape(fetch, [2]))).toBe('SHAPE_UNKNOWN');
    // Any other read by a non-member: refused as before, and the handler never sees it.
    expect(await codeOf(() => joiner.t.fetchSnapshotChunk(1, 0, '000005.sst', 0, 10))).toBe('TRANSPORT_REFUSED');
    await expect(joiner.t.fetchSnapshotChunk(1, 0, '000005.sst', 0, 10)).rejects.toThrow(/not-member/);
    // A sender without the cluster secret is refused the shape read too.
    const stranger = await startNode(4, { secret: new Uint8Array(32).fill(7), peers: [{ id: 1, peerUrl: m1.t.url }] });
    await expect(stranger.t.fetchSnapshotChunk(1, 0, SHAPE_FILE, 0, MAX_SHAPE_BYTES)).rejects.toThrow(/bad-mac|unauthenticated/);
  });
});
