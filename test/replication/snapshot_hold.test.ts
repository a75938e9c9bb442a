/**
 * A serving member holds a snapshot while another member fetches it (`RaftSnapshots`'s chunk
 * reads, `ProofDB.holdServedCheckpoint`; docs/replication.md § Snapshots, *Held while fetched*):
 * its tables outlive newer checkpoints and the compactions that replace them while chunks of it
 * are read, and are let go — then deleted — once none was read for `SNAPSHOT_HOLD_MS`, or for a
 * newer snapshot past `MAX_HELD_SNAPSHOTS`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { SessionStore, decodeSnapshotDescriptor, readSnapshotChunk, snapshotDescriptor, type Transport } from '../../src/replication/index.js';
import { files } from '../../src/version/version_set.js';
import { MAX_HELD_SNAPSHOTS, RaftSnapshots, SNAPSHOT_HOLD_MS } from '../../server/raft_snapshot.js';
import { tempDir, TINY } from '../engine/harness.js';

const OPTS: DBOptions = { ...TINY, writeBufferSize: 4096, targetFileSize: 4096, writeAheadLog: 'external' };
const MAX_SESSION_BYTES = 1 << 20;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Read = (index: number, name: string, offset: number, length: number) => Promise<Uint8Array>;

async function member(): Promise<{ db: ProofDB; read: Read; snaps: RaftSnapshots; clock: { now: number }; next: () => Promise<{ index: number; tables: string[] }> }> {
  const t = tempDir('proofkv-snaphold-');
  cleanups.push(t.cleanup);
  const dir = path.join(t.dir, 'a');
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'NODE_KEY'), generateKeyPair().privateKey, { mode: 0o600 });
  const db = await ProofDB.open(dir, OPTS);
  cleanups.push(() => db.close().catch(() => undefined));
  const store = await SessionStore.open(path.join(dir, 'raft', 'sessions'), { durableIndex: 0, maxBytes: MAX_SESSION_BYTES });
  cleanups.push(() => store.close());
  let read: Read | undefined;
  const transport = { onSnapshotRead: (h: Read) => void (read = h) } as unknown as Transport;
  const clock = { now: 1_000 };
  const snaps = new RaftSnapshots(db, store, { transport, trust: () => ({ publicKeys: [db.publicKey()], quorum: 1 }), maxSessionBytes: MAX_SESSION_BYTES, now: () => clock.now });
  cleanups.push(() => snaps.close());
  let logIndex = 0;
  /** 300 more entries over 40 keys and a checkpoint (certified at once: one member); the served snapshot. */
  const next = async () => {
    for (let i = 0; i < 300; i++) {
      logIndex++;
      await db.put(`key-${logIndex % 40}`, `value-${logIndex}-${'x'.repeat(40)}`, { logIndex, time: 1_000_000 + logIndex });
    }
    logIndex++;
    await db.checkpoint({ logIndex });
    await db.waitForCompactions();
    const d = decodeSnapshotDescriptor(snapshotDescriptor(db, { index: logIndex }).data);
    return { index: d.index, tables: d.tables.map((t) => files.table(t.number)) };
  };
  return { db, read: read!, snaps, clock, next };
}

const code = (p: Promise<unknown>) => p.then(() => 'served', (e: { code?: string }) => e.code);

describe('snapshots held while fetched', () => {
  it('serves a snapshot being fetched after newer checkpoints replaced its tables, and lets it go once no chunk was read for the hold time', async () => {
    const m = await member();
    const s1 = await m.next();
    const first = await m.read(s1.index, s1.tables[0], 0, 64);
    expect(first.length).toBe(64);
    expect(m.snaps.stats().held).toBe(1);

    // Newer checkpoints; compactions replace some of s1's tables.
    let latest = s1;
    for (let i = 0; i < 4; i++) latest = await m.next();
    const gone = s1.tables.filter((t) => !latest.tables.includes(t));
    expect(gone.length).toBeGreaterThan(0);
    // Not the one served any more: refused without the hold ...
    expect(await code(readSnapshotChunk(m.db, s1.index, gone[0], 0, 64))).toBe('SNAPSHOT_UNAVAILABLE');
    // ... served with it, every table, and the files are still there.
    m.clock.now += SNAPSHOT_HOLD_MS - 1;
    for (const t of s1.tables) expect((await m.read(s1.index, t, 0, 16)).length).toBeGreaterThan(0);
    for (const t of gone) expect(fs.existsSync(path.join(m.db.location, t))).toBe(true);

    // No chunk read for the hold time: let go, refused, and its replaced tables deleted.
    m.clock.now += SNAPSHOT_HOLD_MS;
    expect(await code(m.read(s1.index, s1.tables[0], 0, 16))).toBe('SNAPSHOT_UNAVAILABLE');
    expect(m.snaps.stats().held).toBe(0);
    await m.next(); // a compaction's deletion pass runs
    for (let i = 0; i < 100 && gone.some((t) => fs.existsSync(path.join(m.db.location, t))); i++) await new Promise((r) => setTimeout(r, 20));
    for (const t of gone) expect(fs.existsSync(path.join(m.db.location, t))).toBe(false);
  });

  it(`holds at most ${MAX_HELD_SNAPSHOTS}: the least recently read is let go for a newer one`, async () => {
    const m = await member();
    const held = [];
    for (let i = 0; i <= MAX_HELD_SNAPSHOTS; i++) {
      const s = await m.next();
      m.clock.now += 10;
      await m.read(s.index, s.tables[0], 0, 16);
      held.push(s);
      expect(m.snaps.stats().held).toBe(Math.min(i + 1, MAX_HELD_SNAPSHOTS));
    }
    // The first was read least recently: let go; the others are still served.
    expect(await code(m.read(held[0].index, held[0].tables[0], 0, 16))).toBe('SNAPSHOT_UNAVAILABLE');
    for (const s of held.slice(1)) expect(await code(m.read(s.index, s.tables[0], 0, 16))).toBe('served');
    // Closing lets go of everything.
    await m.snaps.close();
    expect(m.snaps.stats().held).toBe(0);
  });
});
