/**
 * The engine's in-place snapshot install (`ProofDB.replaceFromSnapshot`, src/db/db.ts) and the
 * session recovery after a crash between install and import (`recoverInstalledSessions`,
 * server/raft_snapshot.ts): member A serves its latest certified checkpoint, member B (an open
 * database with its own state) replaces its state by it while staying the same object — refused
 * while an iterator stays open (nothing changed), reopened on its old state when the install fails
 * after closing, calls refused during the swap, hooks kept, old `Snapshot`s refused after.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { SessionStore, SessionTable, encodeTable } from '../../src/replication/index.js';
import { installSnapshot, readSnapshotChunk, snapshotDescriptor, type FetchChunk } from '../../src/replication/snapshot.js';
import { SNAPSHOT_STAGING_DIR } from '../../src/db/snapshot_install.js';
import { RaftSnapshots, recoverInstalledSessions, type SnapshotEvent } from '../../server/raft_snapshot.js';
import { encodeSnapshotDescriptor, decodeSnapshotDescriptor } from '../../src/replication/snapshot.js';
import type { Transport } from '../../src/replication/index.js';
import { tempDir, TINY } from '../engine/harness.js';

const OPTS: DBOptions = { ...TINY, writeBufferSize: 4096, targetFileSize: 4096, writeAheadLog: 'external' };
const te = new TextEncoder();
const td = new TextDecoder();
const MAX_SESSION_BYTES = 1 << 20;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function memberDir(name: string): string {
  const t = tempDir('proofkv-snapwire-');
  cleanups.push(t.cleanup);
  const dir = path.join(t.dir, name);
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'NODE_KEY'), generateKeyPair().privateKey, { mode: 0o600 });
  return dir;
}

async function open(dir: string): Promise<ProofDB> {
  const db = await ProofDB.open(dir, OPTS);
  cleanups.push(() => db.close().catch(() => undefined));
  return db;
}

/** A serving with `n` entries (checkpoint at the last), and the snapshot it serves, sessions of one client included. */
async function source(n: number): Promise<{ a: ProofDB; index: number; data: Uint8Array; sessions: Uint8Array; fetch: FetchChunk }> {
  const a = await open(memberDir('a'));
  for (let i = 1; i < n; i++) await a.put(`key-${i % 40}`, `a-${i}`, { logIndex: i, time: 1_000_000 + i });
  await a.checkpoint({ logIndex: n });
  const table = new SessionTable({ maxBytes: MAX_SESSION_BYTES });
  const d = table.apply({ index: 3, clientId: 'client-a', seq: 1, digest: new Uint8Array(32).fill(7), bytes: 100 });
  if (d.kind !== 'new') throw new Error('a first request is new');
  d.record.outcome = te.encode('settled');
  const sessions = encodeTable(table, n);
  const { index, data } = snapshotDescriptor(a, { index: n, sessions });
  const fetch: FetchChunk = (name, offset, length) => readSnapshotChunk(a, index, name, offset, length);
  return { a, index, data, sessions, fetch };
}

async function memberB(): Promise<ProofDB> {
  const b = await open(memberDir('b'));
  for (let i = 1; i <= 5; i++) await b.put('own', `b-${i}`, { logIndex: i });
  await b.checkpoint({ logIndex: 6 });
  return b;
}

const codeOf = async (p: Promise<unknown> | (() => unknown)): Promise<string | undefined> => {
  try {
    await (typeof p === 'function' ? p() : p);
    return undefined;
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string } };
    return e.cause?.code ?? e.code;
  }
};

describe('ProofDB.replaceFromSnapshot', () => {
  it('replaces the state in place: same object, calls refused during the swap, hooks kept, old snapshots refused', async () => {
    const { a, index, data, fetch } = await source(300);
    const b = await memberB();
    const trust = { publicKeys: [a.publicKey()], quorum: 1 };
    const hooked: number[] = [];
    b.beforeLogIndexDurable(async (i) => {
      hooked.push(i);
    });
    const before = b.snapshot();
    let during: string | undefined;
    const got = await b.replaceFromSnapshot((dir, beforeCommit) =>
      installSnapshot(dir, data, fetch, trust, {
        beforeCommit: async () => {
          await beforeCommit();
          during = await codeOf(b.get('own'));
        },
      }),
    );
    expect(during).toBe('DATABASE_CLOSED');
    expect(got.index).toBe(index);
    expect(b.logIndex().durable).toBe(index);
    expect(b.latestCheckpoint().checkpoint.masterRoot).toEqual(a.latestCheckpoint().checkpoint.masterRoot);
    expect(td.decode((await b.get('key-1'))!)).toBe(td.decode((await a.get('key-1'))!));
    expect(await b.get('own')).toBeUndefined();
    expect(await codeOf(before.get('own'))).toBe('DATABASE_CLOSED');
    // The engine goes on from the snapshot index, the durability hook still in place, and commit
    // times resume where A's are (a command with an earlier time gets the previous commit time).
    hooked.length = 0;
    await b.put('after', 'x', { logIndex: index + 1, time: 5 });
    await b.checkpoint({ logIndex: index + 2 });
    expect(hooked).toContain(index + 2);
    await a.put('after', 'x', { logIndex: index + 1, time: 5 });
    await a.checkpoint({ logIndex: index + 2 });
    expect((await b.getWithVersion('after', 1))?.time).toBe((await a.getWithVersion('after', 1))?.time);
    expect(b.latestCheckpoint().checkpoint.masterRoot).toEqual(a.latestCheckpoint().checkpoint.masterRoot);
  });

  it('is refused (BUSY) while an iterator stays open, and nothing changes', async () => {
    const { a, data, fetch } = await source(120);
    const b = await memberB();
    const trust = { publicKeys: [a.publicKey()], quorum: 1 };
    const it = b.iterator();
    const code = await codeOf(b.replaceFromSnapshot((dir, beforeCommit) => installSnapshot(dir, data, fetch, trust, { beforeCommit }), { drainMs: 30 }));
    expect(code).toBe('BUSY');
    expect(fs.existsSync(path.join(b.location, SNAPSHOT_STAGING_DIR))).toBe(false);
    expect(td.decode((await b.get('own'))!)).toBe('b-5');
    expect(b.logIndex().durable).toBe(6);
    const first = await it.next();
    expect(first.done).toBe(false);
    it.close();
    await b.replaceFromSnapshot((dir, beforeCommit) => installSnapshot(dir, data, fetch, trust, { beforeCommit }), { drainMs: 30 });
    expect(b.logIndex().durable).toBe(120);
  });

  it('reopens the old state when the install fails after the engine was closed, and refuses a second install at once', async () => {
    const b = await memberB();
    let second: string | undefined;
    const code = await codeOf(
      b.replaceFromSnapshot(async (_dir, beforeCommit) => {
        second = await codeOf(b.replaceFromSnapshot(async () => undefined));
        await beforeCommit();
        throw Object.assign(new Error('fetch failed'), { code: 'TEST_FAILURE' });
      }),
    );
    expect(second).toBe('BUSY');
    expect(code).toBe('TEST_FAILURE');
    expect(td.decode((await b.get('own'))!)).toBe('b-5');
    await b.put('own', 'b-7', { logIndex: 7 });
    expect(td.decode((await b.get('own'))!)).toBe('b-7');
  });
});

describe('recoverInstalledSessions', () => {
  it("imports the installed snapshot's session table when the engine is still at its index, and only then", async () => {
    const { a, index, data, sessions, fetch } = await source(150);
    const b = await memberB();
    const storeDir = path.join(b.location, 'raft', 'sessions');
    let store = await SessionStore.open(storeDir, { durableIndex: b.logIndex().durable, maxBytes: MAX_SESSION_BYTES });
    expect(await recoverInstalledSessions(b, store)).toBe(false);
    // A crash right after the engine install: the session store never saw the import.
    await b.replaceFromSnapshot((dir, beforeCommit) => installSnapshot(dir, data, fetch, { publicKeys: [a.publicKey()], quorum: 1 }, { beforeCommit }));
    await store.close();
    store = await SessionStore.open(storeDir, { durableIndex: 6, maxBytes: MAX_SESSION_BYTES });
    cleanups.push(() => store.close());
    expect(() => store.export(index)).not.toThrow(); // the store alone knows nothing of the snapshot's client
    expect(store.export(index)).not.toEqual(sessions);
    expect(await recoverInstalledSessions(b, store)).toBe(true);
    expect(store.export(index)).toEqual(sessions);
    // Once the engine moved past the snapshot, its own store is the truth: nothing is imported.
    await b.put('later', 'x', { logIndex: index + 1 });
    await b.checkpoint({ logIndex: index + 2 });
    expect(b.logIndex().durable).toBe(index + 2);
    expect(await recoverInstalledSessions(b, store)).toBe(false);
  });
});

describe('RaftSnapshots.restore', () => {
  it('refuses a snapshot before replacing anything (other index, bad session table, untrusted certificate, tampered chunk), then installs the good one with its sessions', async () => {
    const { a, index, data, sessions, fetch } = await source(200);
    const b = await memberB();
    const store = await SessionStore.open(path.join(b.location, 'raft', 'sessions'), { durableIndex: b.logIndex().durable, maxBytes: MAX_SESSION_BYTES });
    cleanups.push(() => store.close());
    let tamper = false;
    const transport = {
      onSnapshotRead() {},
      fetchSnapshotChunk: async (from: number, i: number, name: string, offset: number, length: number) => {
        expect(from).toBe(1);
        expect(i).toBe(index);
        const chunk = await fetch(name, offset, length);
        if (tamper && name.endsWith('.sst')) chunk[0] ^= 1;
        return chunk;
      },
    } as unknown as Transport;
    const events: SnapshotEvent[] = [];
    let trusted = [b.publicKey()];
    const snaps = new RaftSnapshots(b, store, { transport, trust: () => ({ publicKeys: trusted, quorum: 1 }), maxSessionBytes: MAX_SESSION_BYTES, onEvent: (e) => events.push(e) });
    const unchanged = async () => {
      expect(td.decode((await b.get('own'))!)).toBe('b-5');
      expect(b.logIndex().durable).toBe(6);
      expect(fs.existsSync(path.join(b.location, SNAPSHOT_STAGING_DIR))).toBe(false);
    };
    const refused = async (snap: { index: number; term: number; data: Uint8Array }, code: string) => {
      const err = await snaps.restore(snap, 1).then(() => undefined, (e: unknown) => e as { code?: string });
      expect(err?.code).toBe(code);
      await unchanged();
    };
    const d = decodeSnapshotDescriptor(data);
    await refused({ index: index + 1, term: 2, data }, 'SNAPSHOT_MISMATCH');
    await refused({ index, term: 2, data: encodeSnapshotDescriptor({ ...d, sessions: te.encode('not a table') }) }, 'SNAPSHOT_INVALID');
    await refused({ index, term: 2, data: encodeSnapshotDescriptor({ ...d, sessions: encodeTable(new SessionTable({ maxBytes: MAX_SESSION_BYTES }), index - 1) }) }, 'SNAPSHOT_MISMATCH');
    await refused({ index, term: 2, data }, 'SNAPSHOT_UNTRUSTED'); // B trusts only itself
    trusted = [a.publicKey()];
    tamper = true;
    await refused({ index, term: 2, data }, 'SNAPSHOT_MISMATCH');
    expect(snaps.stats()).toMatchObject({ installed: 0, refused: 5 });
    tamper = false;
    await snaps.restore({ index, term: 2, data }, 1);
    expect(b.logIndex().durable).toBe(index);
    expect(store.export(index)).toEqual(sessions);
    expect(snaps.snapshot()).toEqual({ index, data });
    expect(snaps.stats()).toMatchObject({ installed: 1, refused: 5, index });
    expect(events.filter((e) => e.type === 'refused').map((e) => (e as { code: string }).code)).toEqual([
      'SNAPSHOT_MISMATCH', 'SNAPSHOT_INVALID', 'SNAPSHOT_MISMATCH', 'SNAPSHOT_UNTRUSTED', 'SNAPSHOT_MISMATCH',
    ]);
  });
});
