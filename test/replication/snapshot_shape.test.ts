/**
 * A snapshot install records the shape the serving member tells (src/replication/snapshot.ts,
 * `installShape`): member A runs an older shape (no level-0 byte bound, table format 2), member B
 * this release's; after B installs A's snapshot in place (`replaceFromSnapshot`) it builds with
 * A's shape, so the same further log gives both the same tables and MasterRoots at every
 * checkpoint — where a B that kept its own shape differs (the control). From an older serving
 * member (it refuses the shape read) B keeps its own recorded shape; with no recorded shape
 * either the install is `SNAPSHOT_SHAPE_UNKNOWN`; a malformed or hostile shape is
 * `SNAPSHOT_INVALID`; nothing changes in the directory when it is refused.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyGetProof } from '../../proofs/lsm_proof.js';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { resolveOptions, shapeOf } from '../../src/options.js';
import { encodeShape, SHAPE_FILE } from '../../src/replication/shape.js';
import { installSnapshot, readSnapshotChunk, snapshotDescriptor, type FetchChunk, type SnapshotTrust } from '../../src/replication/snapshot.js';
import { TransportError, TransportErrorCode } from '../../src/replication/transport/index.js';
import { VersionSet } from '../../src/version/version_set.js';
import { SNAPSHOT_FETCHED_DIR } from '../../src/db/snapshot_install.js';
import { mulberry32 } from '../support/prng.js';
import { TINY } from '../engine/harness.js';
import { memberDir, scratchDirs } from './snapshot_helpers.js';

/** The cluster's older shape (before the level-0 byte bound and table format 3) and this release's, both small. */
const OLD: DBOptions = {
  ...TINY, writeBufferSize: 64 * 1024, targetFileSize: 16 * 1024, maxBytesForLevelBase: 256 * 1024, level0CompactionTrigger: 4, checkpointLevel0Bytes: 0, merkleGroup: 0,
};
const NEW: DBOptions = { ...OLD, checkpointLevel0Bytes: 128 * 1024, merkleGroup: 8 };
const EXTERNAL: DBOptions = { writeAheadLog: 'external', compactionThread: 'inline' };
const KEYS = 400;

const scratch = scratchDirs('proofkv-snapshape-');

/** Every file of `dir` with its SHA-256. */
function dirState(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile()) out[e.name] = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, e.name))).digest('hex');
  }
  return out;
}

/**
 * The names in data directory `dir` but `SNAPSHOT-FETCHED` (the verified tables a refused install
 * keeps for the next attempt: not engine state).
 */
const engineFiles = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n !== SNAPSHOT_FETCHED_DIR);

/**
 * Log entries [from, to] of a seeded stream: rounds of puts of random keys, a checkpoint every
 * `every` entries; the rounds alternate large and small so that level 0 holds small tables over a
 * larger level 1 at some checkpoints — where the two shapes' level-0 rules differ.
 */
async function applyLog(db: ProofDB, from: number, to: number, every: number): Promise<string[]> {
  const roots: string[] = [];
  const r = mulberry32(11 + from);
  for (let i = from; i <= to; i++) {
    if (i % every === 0) {
      await db.checkpoint({ logIndex: i, time: 1_700_000_000_000 + i });
      roots.push(Buffer.from(db.latestCheckpoint().checkpoint.masterRoot).toString('hex'));
    } else {
      const big = Math.floor(i / every) % 3 === 0;
      await db.put(`key-${Math.floor(r() * KEYS)}`, `v${i}-${'x'.repeat(big ? 120 : 20)}`, { logIndex: i, time: 1_700_000_000_000 + i });
    }
  }
  return roots;
}

const fetchFrom = (db: ProofDB, index: number): FetchChunk => (name, offset, length) => readSnapshotChunk(db, index, name, offset, length);
const trustOf = (db: ProofDB): SnapshotTrust => ({ publicKeys: [db.publicKey()], quorum: 1 });
/** A serving member of a release from before shapes were told: the shape read is refused on the wire. */
const older = (f: FetchChunk): FetchChunk => (name, offset, length) =>
  name === SHAPE_FILE ? Promise.reject(new TransportError(TransportErrorCode.Refused, 'member 1 answered 500 (read-failed) for snapshot 0 SHAPE@0')) : f(name, offset, length);

describe('a snapshot install records the serving member\'s shape', () => {
  it('an install in place from an older-shape member builds what that member builds; keeping its own shape it would not', async () => {
    const root = scratch();
    const a = await ProofDB.open(memberDir(root, 'a'), { ...OLD, ...EXTERNAL });
    const b = await ProofDB.open(memberDir(root, 'b'), { ...NEW, ...EXTERNAL });
    const c = await ProofDB.open(memberDir(root, 'c'), { ...NEW, ...EXTERNAL });
    try {
      await applyLog(a, 1, 600, 100);
      const snap = snapshotDescriptor(a, { index: 600, sessions: new Uint8Array(0) });
      const installed = await b.replaceFromSnapshot((dir, beforeCommit) => installSnapshot(dir, snap.data, fetchFrom(a, 600), trustOf(a), { beforeCommit }));
      expect(installed.shapeFrom).toBe('told');
      expect(installed.shape).toEqual(shapeOf(a.options));
      expect(shapeOf(b.options)).toEqual(shapeOf(a.options));
      expect(VersionSet.recordedShape(b.location)).toEqual(shapeOf(a.options));
      // The control: C installs the same snapshot from an "older" A and keeps its own (new) shape.
      const kept = await c.replaceFromSnapshot((dir, beforeCommit) => installSnapshot(dir, snap.data, older(fetchFrom(a, 600)), trustOf(a), { beforeCommit }));
      expect(kept.shapeFrom).toBe('own');
      expect(shapeOf(c.options)).toEqual(shapeOf(resolveOptions(NEW)));

      // The same further log on all three: B's MasterRoots are A's at every checkpoint; C's are not.
      const ra = await applyLog(a, 601, 2000, 100);
      const rb = await applyLog(b, 601, 2000, 100);
      const rc = await applyLog(c, 601, 2000, 100);
      expect(rb).toEqual(ra);
      expect(rc).not.toEqual(ra);
      expect(b.tables().map((t) => [t.level, t.number])).toEqual(a.tables().map((t) => [t.level, t.number]));
      // B serves proofs that verify against its (A's) certified root.
      const pk = b.publicKey();
      for (const k of ['key-1', 'key-77', 'key-399']) {
        const { proof } = await b.getWithProof(k);
        const v = verifyGetProof(getProofCodec.decode(getProofCodec.encode(proof)), { key: new TextEncoder().encode(k) }, { trust: { publicKeys: [pk], quorum: 1 } });
        expect(v.ok, `${k}: ${JSON.stringify(v).slice(0, 300)}`).toBe(true);
      }
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  });

  it('from an older serving member an empty directory is SNAPSHOT_SHAPE_UNKNOWN; a malformed or hostile shape SNAPSHOT_INVALID; nothing changes', async () => {
    const root = scratch();
    const a = await ProofDB.open(memberDir(root, 'a'), { ...OLD, ...EXTERNAL });
    try {
      await applyLog(a, 1, 400, 100);
      const snap = snapshotDescriptor(a, { index: 400, sessions: new Uint8Array(0) });
      const fetch = fetchFrom(a, 400);
      const empty = memberDir(root, 'empty');
      const before = dirState(empty);
      await expect(installSnapshot(empty, snap.data, older(fetch), trustOf(a))).rejects.toMatchObject({ code: 'SNAPSHOT_SHAPE_UNKNOWN', message: expect.stringContaining('did not tell its shape') });
      expect(dirState(empty)).toEqual(before);
      expect(engineFiles(empty)).toEqual(['NODE_KEY']);

      const tell = (bytes: Uint8Array): FetchChunk => (name, offset, length) => (name === SHAPE_FILE ? Promise.resolve(bytes.slice(offset, offset + length)) : fetch(name, offset, length));
      const shape = shapeOf(a.options);
      for (const bad of [new Uint8Array([0xff, 1, 2]), encodeShape({ ...shape, writeBufferSize: 2 ** 40 }), encodeShape({ ...shape, blockSize: 1 }), new Uint8Array(4096)]) {
        await expect(installSnapshot(empty, snap.data, tell(bad), trustOf(a))).rejects.toMatchObject({ code: 'SNAPSHOT_INVALID', message: expect.stringContaining('shape') });
        expect(dirState(empty)).toEqual(before);
        expect(engineFiles(empty)).toEqual(['NODE_KEY']);
      }
      // A member that cannot be reached for the shape: the install fails (asked again), nothing installed.
      const gone: FetchChunk = (name, offset, length) => (name === SHAPE_FILE ? Promise.reject(new Error('socket hang up')) : fetch(name, offset, length));
      await expect(installSnapshot(empty, snap.data, gone, trustOf(a))).rejects.toMatchObject({ code: 'SNAPSHOT_UNAVAILABLE' });
      expect(engineFiles(empty)).toEqual(['NODE_KEY']);

      // The good shape installs, into the same directory, from the tables the refused attempts
      // fetched and kept (only the checkpoint log is fetched again).
      const got = await installSnapshot(empty, snap.data, fetch, trustOf(a));
      expect(got.shapeFrom).toBe('told');
      expect(got.reusedTables).toBe(got.tables);
      expect(fs.readdirSync(empty)).not.toContain(SNAPSHOT_FETCHED_DIR);
      expect(VersionSet.recordedShape(empty)).toEqual(shape);
      // An older serving member into a directory that records a shape: that shape is kept.
      const own = memberDir(root, 'own');
      const o = await ProofDB.open(own, { ...NEW, ...EXTERNAL });
      await o.close();
      const kept = await installSnapshot(own, snap.data, older(fetch), trustOf(a));
      expect(kept.shapeFrom).toBe('own');
      expect(VersionSet.recordedShape(own)).toEqual(shapeOf(resolveOptions(NEW)));
    } finally {
      await a.close();
    }
  });

  it('serves the SHAPE pseudo-file at any index, before any checkpoint, within bounds', async () => {
    const root = scratch();
    const a = await ProofDB.open(memberDir(root, 'a'), { ...OLD, ...EXTERNAL });
    try {
      const whole = encodeShape(shapeOf(a.options));
      expect(await readSnapshotChunk(a, 0, SHAPE_FILE, 0, 1024)).toEqual(whole);
      expect(await readSnapshotChunk(a, 77, SHAPE_FILE, 2, 3)).toEqual(whole.slice(2, 5));
      expect(await readSnapshotChunk(a, 0, SHAPE_FILE, whole.length, 10)).toEqual(new Uint8Array(0));
      await expect(readSnapshotChunk(a, 0, SHAPE_FILE, 0, 0)).rejects.toMatchObject({ code: 'SNAPSHOT_BAD_REQUEST' });
      await expect(readSnapshotChunk(a, 0, SHAPE_FILE, -1, 10)).rejects.toMatchObject({ code: 'SNAPSHOT_BAD_REQUEST' });
    } finally {
      await a.close();
    }
  });
});
