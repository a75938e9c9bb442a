/**
 * The engine's proofs over format-3 tables (stored group roots, src/table/format.ts), end to end:
 * with blocks of dozens of entries (so most blocks store several group roots), every get, history
 * and scan proof equals the test-side reference prover's (which hashes every block from its
 * entries and knows nothing of stored nodes) and verifies; and a snapshot whose table carries a
 * stored group root that disagrees with the entries — its CRC fixed up, so only a recomputation
 * can tell — is refused with a typed error and changes nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { verifyGetProof, verifyHistoryProof } from '../../proofs/lsm_proof.js';
import { verifyScanProof } from '../../proofs/lsm_scan.js';
import { installSnapshot, readSnapshotChunk, snapshotDescriptor, type FetchChunk } from '../../src/replication/snapshot.js';
import { blockTrailer, splitDataBlock } from '../../src/table/format.js';
import { TableReader } from '../../src/table/table_reader.js';
import { files } from '../../src/version/version_set.js';
import { enc, norm, World } from '../proofs/lsm_helpers.js';
import { tempDir } from '../engine/harness.js';
import { mulberry32 } from '../support/prng.js';
import { SNAPSHOT_FETCHED_DIR } from '../../src/db/snapshot_install.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function scratch(): string {
  const t = tempDir('proofkv-nodes-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Blocks of about 40 entries (groups of 8), small tables, several levels. */
const OPTS: DBOptions = {
  writeBufferSize: 16 * 1024,
  targetFileSize: 16 * 1024,
  blockSize: 1500,
  level0CompactionTrigger: 2,
  maxBytesForLevelBase: 64 * 1024,
  compactionThread: 'inline',
};
const key = (i: number) => `k${String(i).padStart(5, '0')}`;

/** Data blocks of the database's tables that store group roots, and all data blocks. */
function blockCensus(dir: string): { withNodes: number; blocks: number } {
  let withNodes = 0;
  let blocks = 0;
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.sst'))) {
    const t = TableReader.open(path.join(dir, name), { fileNumber: 1, fileName: name });
    try {
      for (let b = 0; b < t.blockCount; b++) {
        blocks++;
        if (t.dataBlock(b).nodes.length > 0) withNodes++;
      }
    } finally {
      t.close();
    }
  }
  return { withNodes, blocks };
}

describe('proofs over tables with stored group roots', () => {
  it('get, history and scan proofs equal the reference prover\'s and verify', async () => {
    const dir = scratch();
    const db = await ProofDB.open(dir, OPTS);
    try {
      const r = mulberry32(5);
      for (let round = 0; round < 6; round++) {
        const b = db.batch();
        for (let i = 0; i < 400; i++) b.put(key(Math.floor(r() * 1500)), `v${round}-${'y'.repeat(Math.floor(r() * 30))}`);
        await db.write(b);
      }
      const cp = await db.checkpoint();
      const census = blockCensus(dir);
      expect(census.withNodes, JSON.stringify(census)).toBeGreaterThan(census.blocks / 2);
      const world = World.load(db, cp.checkpoint.masterRoot);
      expect(world.tables.length).toBeGreaterThanOrEqual(2);
      const trust = { trust: { publicKeys: [db.publicKey()], quorum: 1 } };
      for (let i = 0; i < 1500; i += 13) {
        const k = key(i);
        const { proof } = await db.getWithProof(k);
        expect(norm(proof.body), `get ${k}`).toEqual(norm(world.refGet(enc(k), Number.MAX_SAFE_INTEGER).body));
        expect(verifyGetProof(proof, { key: enc(k), version: Number.MAX_SAFE_INTEGER }, trust).ok).toBe(true);
        const h = await db.getVersionHistoryWithProof(k);
        expect(norm(h.proof.body), `history ${k}`).toEqual(norm(world.refHistory(enc(k), 0, Number.MAX_SAFE_INTEGER).body));
        expect(verifyHistoryProof(h.proof, { key: enc(k) }, trust).ok).toBe(true);
      }
      for (const [start, limit] of [[key(0), 100], [key(700), 37], [key(1490), 50]] as const) {
        const s = await db.scanWithProof({ start, limit });
        expect(norm(s.proof), `scan from ${start}`).toEqual(norm(world.scanProof(s.proof.certificate, { start: enc(start), limit })));
        expect(verifyScanProof(s.proof, { start: enc(start), limit }, trust).ok).toBe(true);
      }
    } finally {
      await db.close();
    }
  }, 120_000);

  it('a snapshot whose table has a wrong stored group root (CRC fixed up) is refused, changing nothing', async () => {
    const root = scratch();
    const aDir = path.join(root, 'a');
    const bDir = path.join(root, 'b');
    for (const d of [aDir, bDir]) {
      fs.mkdirSync(d, { mode: 0o700 });
      fs.writeFileSync(path.join(d, 'NODE_KEY'), generateKeyPair().privateKey, { mode: 0o600 });
    }
    const opts: DBOptions = { ...OPTS, writeAheadLog: 'external' };
    const a = await ProofDB.open(aDir, opts);
    try {
      const r = mulberry32(9);
      let index = 0;
      for (let i = 0; i < 1200; i++) await a.put(key(Math.floor(r() * 800)), `w${i}-${'z'.repeat(Math.floor(r() * 20))}`, { logIndex: ++index });
      await a.checkpoint({ logIndex: ++index });
      const snap = snapshotDescriptor(a, { index });
      const fetch: FetchChunk = (name, offset, length) => readSnapshotChunk(a, snap.index, name, offset, length);
      const trust = { publicKeys: [a.publicKey()], quorum: 1 };

      // The first table of the snapshot's set with a block of several groups: one byte of one stored
      // root flipped, CRC recomputed. (From the live set: the directory may still hold obsolete
      // tables whose unlink is queued.)
      const tables = a.tables().map((t) => files.table(t.number)).sort();
      let victim: { name: string; bytes: Uint8Array } | undefined;
      for (const name of tables) {
        const bytes = new Uint8Array(fs.readFileSync(path.join(aDir, name)));
        const t = TableReader.fromBytes(bytes, { fileNumber: 1 });
        const b = [...Array(t.blockCount).keys()].find((i) => t.dataBlock(i).nodes.length > 0);
        if (b === undefined) continue;
        const h = t.blockHandle(b);
        const raw = bytes.subarray(h.offset, h.offset + h.size);
        splitDataBlock(raw, name, h.offset).nodes[0] ^= 1;
        bytes.set(blockTrailer(raw), h.offset + h.size);
        // Still a table that opens: only the recomputation sees the change.
        TableReader.fromBytes(bytes, { fileNumber: 1, checksumOnce: true });
        victim = { name, bytes };
        break;
      }
      expect(victim).toBeDefined();
      const v = victim!;
      const tampered: FetchChunk = async (name, offset, length) => (name === v.name ? v.bytes.slice(offset, offset + length) : fetch(name, offset, length));

      // The engine's files (a refused install may keep the tables it verified in SNAPSHOT-FETCHED/ for the next attempt).
      const state = (d: string) => Object.fromEntries(fs.readdirSync(d).filter((n) => n !== SNAPSHOT_FETCHED_DIR).map((n) => [n, crypto.createHash('sha256').update(fs.readFileSync(path.join(d, n))).digest('hex')]));
      const before = state(bDir);
      await expect(installSnapshot(bDir, snap.data, tampered, trust)).rejects.toMatchObject({ code: 'SNAPSHOT_MISMATCH', message: expect.stringMatching(/stored group root/) });
      expect(state(bDir)).toEqual(before);
      // The honest snapshot installs, and B then proves what A proves.
      await installSnapshot(bDir, snap.data, fetch, trust);
      const b = await ProofDB.open(bDir, opts);
      try {
        for (let i = 0; i < 800; i += 37) {
          const pa = (await a.getWithProof(key(i))).proof;
          const pb = (await b.getWithProof(key(i))).proof;
          expect(norm(pb.body)).toEqual(norm(pa.body));
        }
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  }, 120_000);
});
