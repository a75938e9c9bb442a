/**
 * Replication snapshots (src/replication/snapshot.ts): member A (external-log mode, a few thousand
 * writes, several checkpoints, compactions) serves its latest checkpoint; B installs it through an
 * in-memory `fetchChunk` over `readSnapshotChunk` and must then be A at that checkpoint — same
 * MasterRoot, checkpoint and head, byte-identical proofs, and the same checkpoints after the same
 * further log entries. Every refusal (tampered or truncated chunk, missing table, untrusted or
 * altered certificate, foreign file names) must leave B's directory exactly as it was, and a
 * crash at any step of the install must open to the old or the new state.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { checkpointBytes, generateKeyPair } from '../../proofs/checkpoint.js';
import { getProofCodec, historyProofCodec, scanProofCodec } from '../../proofs/lsm_encoding.js';
import {
  decodeSnapshotDescriptor,
  encodeSnapshotDescriptor,
  installSnapshot,
  MAX_DESCRIPTOR_BYTES,
  readInstalledSnapshot,
  readSnapshotChunk,
  snapshotDescriptor,
  SNAPSHOT_CHUNK_BYTES,
  type FetchChunk,
  type SnapshotTrust,
} from '../../src/replication/snapshot.js';
import { proofCbor } from '../../proofs/cbor_instance.js';
import { mulberry32 } from '../support/prng.js';
import type { SignerSet } from '../../proofs/signer_set.js';
import { TINY } from '../engine/harness.js';
import { SNAPSHOT_FETCHED_DIR } from '../../src/db/snapshot_install.js';
import { memberDir, scratchDirs } from './snapshot_helpers.js';

const OPTS: DBOptions = { ...TINY, writeBufferSize: 4096, targetFileSize: 4096, writeAheadLog: 'external' };
const te = new TextEncoder();
const KEYS = 120;

const scratch = scratchDirs('proofkv-snap-');

/** Applies log entries [from, to] of a seeded stream: puts, deletes, batches, a checkpoint every `every`. */
async function applyLog(db: ProofDB, seed: number, from: number, to: number, every: number, signers?: SignerSet): Promise<void> {
  const r = mulberry32(seed + from);
  for (let i = from; i <= to; i++) {
    const k = `key-${Math.floor(r() * KEYS)}`;
    const x = r();
    if (i % every === 0) await db.checkpoint({ logIndex: i, ...(signers ? { signers } : {}) });
    else if (x < 0.75) await db.put(k, `v${i}-${'x'.repeat(Math.floor(r() * 40))}`, { logIndex: i });
    else if (x < 0.85) await db.delete(k, { logIndex: i });
    else {
      const b = db.batch();
      b.put(k, `b${i}`).put(`key-${Math.floor(r() * KEYS)}`, `c${i}`);
      await db.write(b, { logIndex: i });
    }
  }
}

/** Every file of `dir` (recursively) with its SHA-256: "nothing changed" is this being equal. */
function dirState(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p, `${rel}${e.name}/`);
      else out[`${rel}${e.name}`] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

/**
 * {@link dirState} of a data directory but the tables a failed install keeps for the next attempt
 * (`SNAPSHOT-FETCHED/`), after checking that each kept file is byte for byte the table of that
 * name in `served` (the serving member's {@link dirState} when the snapshot was taken): only
 * verified tables may be kept.
 */
function engineState(dir: string, served: Record<string, string>): Record<string, string> {
  const out = dirState(dir);
  for (const name of Object.keys(out).filter((n) => n.startsWith(`${SNAPSHOT_FETCHED_DIR}/`))) {
    expect(name, 'only tables are kept').toMatch(/\/\d{6}\.sst$/);
    expect(out[name], `${name} is the served table`).toBe(served[path.basename(name)]);
    delete out[name];
  }
  return out;
}

function copyDir(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true });
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * What a member proves at its latest checkpoint, for sampled keys, encoded; `signed = false`
 * leaves the certificate's signatures out (members sign with their own keys).
 */
async function proofs(db: ProofDB, signed = true): Promise<string[]> {
  const out: string[] = [];
  const strip = <P extends { certificate: { signatures: unknown[] } }>(p: P): P => (signed ? p : { ...p, certificate: { ...p.certificate, signatures: [] } });
  for (let i = 0; i < KEYS; i += 7) {
    const k = `key-${i}`;
    out.push(hex(getProofCodec.encode(strip((await db.getWithProof(k)).proof))));
    out.push(hex(historyProofCodec.encode(strip((await db.getVersionHistoryWithProof(k)).proof))));
  }
  out.push(hex(scanProofCodec.encode(strip((await db.scanWithProof({ start: 'key-1', end: 'key-5', limit: 20 })).proof))));
  return out;
}

/** The latest checkpoint message and head root (hex). */
function latest(db: ProofDB): { checkpoint: string; head: string; size: number } {
  const c = db.latestCheckpoint();
  return { checkpoint: hex(checkpointBytes(c.checkpoint)), head: hex(c.head.root), size: c.head.size };
}

/** Member A after `n` log entries (checkpoint every 400, the last entry a checkpoint). */
async function memberA(root: string, n = 3200): Promise<ProofDB> {
  const a = await ProofDB.open(memberDir(root, 'a'), OPTS);
  await applyLog(a, 7, 1, n, 400);
  return a;
}

const fetchFrom = (db: ProofDB, index: number): FetchChunk => (name, offset, length) => readSnapshotChunk(db, index, name, offset, length);
const trustOf = (db: ProofDB): SnapshotTrust => ({ publicKeys: [db.publicKey()], quorum: 1 });

describe('replication snapshots', () => {
  it('B installs A\'s latest checkpoint and is then A: roots, proofs, and later checkpoints', async () => {
    const root = scratch();
    const a = await memberA(root);
    try {
      expect(a.stats().compactions).toBeGreaterThan(0);
      expect(a.latestCheckpoint().checkpoint.index).toBeGreaterThanOrEqual(7);
      const sessions = te.encode('session table bytes');
      const snap = snapshotDescriptor(a, { index: 3200, sessions });
      expect(snap.index).toBe(3200);
      expect(snap.data.length).toBeLessThan(64 * 1024);
      const d = decodeSnapshotDescriptor(snap.data);
      expect(d.tables.length).toBe(a.tables().length);
      expect(hex(encodeSnapshotDescriptor(d))).toBe(hex(snap.data));
      expect(d.members).toBeUndefined();
      // A cluster member's descriptor also carries its member registry (opaque bytes).
      const withMembers = decodeSnapshotDescriptor(snapshotDescriptor(a, { index: 3200, sessions, members: te.encode('registry bytes') }).data);
      expect(withMembers.members).toEqual(te.encode('registry bytes'));

      const bDir = memberDir(root, 'b');
      let chunks = 0;
      const fetch: FetchChunk = async (name, offset, length) => {
        chunks++;
        expect(length).toBeLessThanOrEqual(SNAPSHOT_CHUNK_BYTES);
        return readSnapshotChunk(a, snap.index, name, offset, length);
      };
      const got = await installSnapshot(bDir, snap.data, fetch, trustOf(a));
      expect(chunks).toBeGreaterThanOrEqual(d.tables.length + 1);
      expect(got.index).toBe(3200);
      expect(got.sessions).toEqual(sessions);
      expect(readInstalledSnapshot(bDir)?.sessions).toEqual(sessions);
      expect(fs.existsSync(path.join(bDir, 'SNAPSHOT-STAGING'))).toBe(false);
      expect(fs.existsSync(path.join(bDir, 'SNAPSHOT-INSTALL'))).toBe(false);

      const b = await ProofDB.open(bDir, OPTS);
      try {
        expect(b.logIndex()).toEqual({ applied: 3200, durable: 3200 });
        expect(latest(b)).toEqual(latest(a));
        expect(b.tables().map((t) => [t.level, hex(t.root)])).toEqual(a.tables().map((t) => [t.level, hex(t.root)]));
        expect(b.consistencyProof(1, b.latestCheckpoint().head.size)).toEqual(a.consistencyProof(1, a.latestCheckpoint().head.size));
        expect(await proofs(b)).toEqual(await proofs(a));
        expect(b.stats().lastSeq).toBe(a.stats().lastSeq);

        // The same further entries, at the same log indexes, give the same checkpoints, as
        // replicas of one group that certify with one signer set: both members, quorum 1 (B's
        // signature alone does not certify the checkpoint that changes the set away from A's
        // set; the next one it certifies alone, and both serve the same certified checkpoint).
        const signers = { quorum: 1, members: [{ id: 1, publicKey: a.publicKey() }, { id: 2, publicKey: b.publicKey() }] };
        for (const [from, to] of [[3201, 3650], [3652, 4400]]) {
          await applyLog(a, 11, from, to, 150, signers);
          await applyLog(b, 11, from, to, 150, signers);
          await a.checkpoint({ logIndex: to + 1, signers });
          await b.checkpoint({ logIndex: to + 1, signers });
          expect(latest(b)).toEqual(latest(a));
          expect(b.tables().map((t) => [t.level, hex(t.root)])).toEqual(a.tables().map((t) => [t.level, hex(t.root)]));
        }
        // Each member signs the later checkpoints with its own key: all else is identical.
        expect(await proofs(b, false)).toEqual(await proofs(a, false));
        expect(a.latestCheckpoint().signatures[0].publicKey).toEqual(a.publicKey());
        expect(b.latestCheckpoint().signatures[0].publicKey).toEqual(b.publicKey());
        expect(b.stats().compactions).toBeGreaterThan(0);
        expect(fs.readFileSync(path.join(bDir, 'NODE_KEY'))).not.toEqual(fs.readFileSync(path.join(a.location, 'NODE_KEY')));
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  }, 120_000);

  it('uses the tables the member still holds and those a failed attempt fetched, each verified first, and fetches only the rest', async () => {
    const root = scratch();
    const a = await ProofDB.open(memberDir(root, 'a'), OPTS);
    try {
      // B applied the first 1200 entries of A's log and stopped there: its tables are A's of then.
      // Those entries write keys (`old-…`) that the later ones (`key-…`) do not touch, so some of
      // the tables that hold them are still A's when it has applied 3200.
      const bDir = memberDir(root, 'b');
      const b0 = await ProofDB.open(bDir, OPTS);
      for (const db of [a, b0]) {
        for (let i = 1; i <= 1200; i++) {
          if (i % 400 === 0) await db.checkpoint({ logIndex: i });
          else await db.put(`old-${String(i % 500).padStart(3, '0')}`, `v${i}-${'y'.repeat(i % 37)}`, { logIndex: i });
        }
      }
      const own = new Map(b0.tables().map((t) => [t.number, hex(t.root)]));
      await b0.close();
      await applyLog(a, 7, 1201, 3200, 400);
      const snap = snapshotDescriptor(a, { index: 3200 });
      const d = decodeSnapshotDescriptor(snap.data);
      const name = (t: { number: number }) => `${String(t.number).padStart(6, '0')}.sst`;
      const shared = d.tables.filter((t) => own.get(t.number) === hex(t.root));
      expect(shared.length).toBeGreaterThan(1);
      expect(shared.length).toBeLessThan(d.tables.length);
      // One of B's own tables that A's checkpoint names is damaged: it must be fetched, not used.
      const damaged = shared[1];
      const file = path.join(bDir, name(damaged));
      const bytes = fs.readFileSync(file);
      bytes[Math.floor(bytes.length / 3)] ^= 1;
      fs.writeFileSync(file, bytes);

      const fetched: string[] = [];
      const fetch: FetchChunk = async (n, offset, length) => {
        if (n.endsWith('.sst') && offset === 0) fetched.push(n);
        return readSnapshotChunk(a, snap.index, n, offset, length);
      };
      // The first attempt fails at the last table B lacks (its connection to A breaks).
      const lacking = d.tables.filter((t) => t === damaged || !shared.includes(t));
      const last = lacking[lacking.length - 1];
      const breaking: FetchChunk = async (n, offset, length) => {
        if (n === name(last)) throw new Error('connection reset');
        return fetch(n, offset, length);
      };
      await expect(installSnapshot(bDir, snap.data, breaking, trustOf(a))).rejects.toMatchObject({ code: 'SNAPSHOT_INSTALL_FAILED' });
      expect(fetched.sort()).toEqual(lacking.slice(0, -1).map(name).sort());
      // It kept every table it had staged (its own, linked, and the fetched ones), all verified.
      const keptDir = path.join(bDir, SNAPSHOT_FETCHED_DIR);
      expect(fs.readdirSync(keptDir).sort()).toEqual(d.tables.slice(0, d.tables.indexOf(last)).map(name).sort());
      engineState(bDir, dirState(a.location));
      // One kept table is damaged before the retry: it is fetched again.
      const spoiled = lacking[0];
      expect(spoiled).not.toBe(last);
      const keptFile = path.join(keptDir, name(spoiled));
      const kb = fs.readFileSync(keptFile);
      kb[kb.length - 40] ^= 1;
      fs.writeFileSync(keptFile, kb);

      // A second attempt breaks at the first table it must fetch (the spoiled one): what it took
      // from the kept tables goes back, and what it did not reach stays kept.
      fetched.length = 0;
      const breakingEarly: FetchChunk = async (n, offset, length) => {
        if (n === name(spoiled)) throw new Error('connection reset');
        return fetch(n, offset, length);
      };
      await expect(installSnapshot(bDir, snap.data, breakingEarly, trustOf(a))).rejects.toMatchObject({ code: 'SNAPSHOT_INSTALL_FAILED' });
      expect(fetched).toEqual([]);
      expect(fs.readdirSync(keptDir).sort()).toEqual(d.tables.slice(0, d.tables.indexOf(last)).map(name).sort());

      fetched.length = 0;
      const got = await installSnapshot(bDir, snap.data, fetch, trustOf(a));
      expect(fetched.sort()).toEqual([name(last), name(spoiled)].sort());
      expect(got.reusedTables).toBe(d.tables.length - 2);
      expect(got.reusedBytes).toBe(d.tables.filter((t) => t !== last && t !== spoiled).reduce((n, t) => n + t.size, 0));
      expect(got.bytes).toBe(d.tables.reduce((n, t) => n + t.size, d.log.bytes));
      expect(fs.existsSync(keptDir)).toBe(false);
      expect(fs.existsSync(path.join(bDir, 'SNAPSHOT-STAGING'))).toBe(false);

      const b = await ProofDB.open(bDir, OPTS);
      try {
        expect(latest(b)).toEqual(latest(a));
        expect(b.tables().map((t) => [t.level, hex(t.root)])).toEqual(a.tables().map((t) => [t.level, hex(t.root)]));
        for (const t of d.tables) expect(fs.readFileSync(path.join(bDir, name(t))).equals(fs.readFileSync(path.join(a.location, name(t))))).toBe(true);
        expect(await proofs(b)).toEqual(await proofs(a));
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  }, 120_000);

  it('refuses tampered, truncated and missing data and untrusted or altered certificates, changing nothing', async () => {
    const root = scratch();
    const a = await memberA(root, 1600);
    try {
      const snap = snapshotDescriptor(a, { index: 1600 });
      const d = decodeSnapshotDescriptor(snap.data);
      // B holds a database of its own: a refused install must leave it untouched.
      const bDir = memberDir(root, 'b');
      const b0 = await ProofDB.open(bDir, OPTS);
      await applyLog(b0, 99, 1, 300, 100);
      await b0.close();
      const before = dirState(bDir);
      const served = dirState(a.location);
      const fetch = fetchFrom(a, snap.index);
      const table = `${String(d.tables[0].number).padStart(6, '0')}.sst`;
      const refuse = async (data: Uint8Array, f: FetchChunk, code: string, trust = trustOf(a)) => {
        await expect(installSnapshot(bDir, data, f, trust)).rejects.toMatchObject({ code });
        expect(engineState(bDir, served)).toEqual(before);
      };

      // A flipped byte in one chunk of a table.
      await refuse(snap.data, async (name, offset, length) => {
        const c = await fetch(name, offset, length);
        if (name === table) c[Math.floor(c.length / 2)] ^= 1;
        return c;
      }, 'SNAPSHOT_MISMATCH');
      // A table that ends early (truncated file), and one the server does not have.
      await refuse(snap.data, async (name, offset, length) => (name === table ? (await fetch(name, offset, length)).subarray(0, Math.max(0, length - 10)) : fetch(name, offset, length)), 'SNAPSHOT_MISMATCH');
      await refuse(snap.data, async (name, offset, length) => {
        if (name === table) throw new Error('no such file');
        return fetch(name, offset, length);
      }, 'SNAPSHOT_INSTALL_FAILED');
      // A tampered checkpoint log.
      await refuse(snap.data, async (name, offset, length) => {
        const c = await fetch(name, offset, length);
        if (name === 'CHECKPOINTS' && offset === 0) c[20] ^= 1;
        return c;
      }, 'SNAPSHOT_MISMATCH');
      // A descriptor that drops a table: refused before anything is fetched.
      let fetched = 0;
      const counting: FetchChunk = (n, o, l) => {
        fetched++;
        return fetch(n, o, l);
      };
      await refuse(encodeSnapshotDescriptor({ ...d, tables: d.tables.slice(1) }), counting, 'SNAPSHOT_MISMATCH');
      // A wrong table root in the descriptor.
      const bent = d.tables.map((t, i) => (i === 0 ? { ...t, root: new Uint8Array(32).fill(7) } : t));
      await refuse(encodeSnapshotDescriptor({ ...d, tables: bent }), counting, 'SNAPSHOT_MISMATCH');
      // Untrusted key, altered signature, a quorum the certificate does not meet, another head.
      const stranger = generateKeyPair().publicKey;
      await refuse(snap.data, counting, 'SNAPSHOT_UNTRUSTED', { publicKeys: [stranger], quorum: 1 });
      await refuse(snap.data, counting, 'SNAPSHOT_UNTRUSTED', { publicKeys: [a.publicKey(), stranger], quorum: 2 });
      const sig = d.signatures.map((g) => ({ ...g, signature: g.signature.map((x, i) => (i === 0 ? x ^ 1 : x)) }));
      await refuse(encodeSnapshotDescriptor({ ...d, signatures: sig }), counting, 'SNAPSHOT_UNTRUSTED');
      await refuse(encodeSnapshotDescriptor({ ...d, head: { ...d.head, root: new Uint8Array(32) } }), counting, 'SNAPSHOT_UNTRUSTED');
      expect(fetched).toBe(0);
      // A checkpoint that is not the one the fetched log ends with (masterRoot altered with a matching table list is impossible; the seq is not).
      await refuse(encodeSnapshotDescriptor({ ...d, checkpoint: { ...d.checkpoint, seq: d.checkpoint.seq + 1 } }), fetch, 'SNAPSHOT_MISMATCH');
      // Malformed descriptors: garbage, truncated, an unknown field, another format, too large.
      await refuse(new Uint8Array([1, 2, 3]), fetch, 'SNAPSHOT_INVALID');
      await refuse(snap.data.subarray(0, snap.data.length - 1), fetch, 'SNAPSHOT_INVALID');
      const raw = proofCbor.decode(snap.data) as Map<string, unknown>;
      const reencode = (m: Map<string, unknown>) => new Uint8Array(proofCbor.encode(new Map([...m.entries()].sort(([x], [y]) => (x.length - y.length) || (x < y ? -1 : 1)))));
      expect(hex(reencode(raw))).toBe(hex(snap.data));
      await refuse(reencode(new Map([...raw, ['extra', 1]])), fetch, 'SNAPSHOT_INVALID');
      await refuse(reencode(new Map([...raw, ['format', 2]])), fetch, 'SNAPSHOT_INVALID');
      await refuse(reencode(new Map([...raw, ['tables', [...(raw.get('tables') as unknown[]), (raw.get('tables') as unknown[])[0]]]])), fetch, 'SNAPSHOT_INVALID');
      await refuse(new Uint8Array(MAX_DESCRIPTOR_BYTES + 1), fetch, 'SNAPSHOT_INVALID');
      // The directory in use by an open engine: verified, then refused at the lock.
      const open = await ProofDB.open(bDir, OPTS);
      try {
        const during = dirState(bDir);
        await expect(installSnapshot(bDir, snap.data, fetch, trustOf(a))).rejects.toMatchObject({ code: 'SNAPSHOT_INSTALL_FAILED' });
        expect(engineState(bDir, served)).toEqual(during);
      } finally {
        await open.close();
      }
      // A snapshot A no longer serves (a newer checkpoint was taken).
      await applyLog(a, 5, 1601, 1700, 1000);
      await a.checkpoint({ logIndex: 1701 });
      await refuse(snap.data, fetch, 'SNAPSHOT_UNAVAILABLE');
      expect(() => snapshotDescriptor(a, { index: 1600 })).toThrow(expect.objectContaining({ code: 'SNAPSHOT_UNAVAILABLE' }));
    } finally {
      await a.close();
    }
  }, 120_000);

  it('readSnapshotChunk serves only the latest checkpoint\'s files, within bounds', async () => {
    const root = scratch();
    const a = await memberA(root, 1200);
    try {
      const d = decodeSnapshotDescriptor(snapshotDescriptor(a, { index: 1200 }).data);
      const t = d.tables[0];
      const name = `${String(t.number).padStart(6, '0')}.sst`;
      const whole = fs.readFileSync(path.join(a.location, name));
      expect(await readSnapshotChunk(a, 1200, name, 0, SNAPSHOT_CHUNK_BYTES)).toEqual(new Uint8Array(whole));
      expect(await readSnapshotChunk(a, 1200, name, 10, 5)).toEqual(new Uint8Array(whole.subarray(10, 15)));
      expect((await readSnapshotChunk(a, 1200, name, t.size, 5)).length).toBe(0);
      const log = await readSnapshotChunk(a, 1200, 'CHECKPOINTS', 0, SNAPSHOT_CHUNK_BYTES);
      expect(log.length).toBe(d.log.bytes);
      const bad = async (n: string, offset = 0, length = 16) => expect(readSnapshotChunk(a, 1200, n, offset, length)).rejects.toMatchObject({ code: 'SNAPSHOT_BAD_REQUEST' });
      for (const n of ['../a/CURRENT', `../a/${name}`, `./${name}`, `${name}/`, 'CURRENT', 'NODE_KEY', 'LOCK', 'MANIFEST-000001', '/etc/passwd', '', '..', '999999.sst']) await bad(n);
      await bad(name, -1);
      await bad(name, 0, 0);
      await bad(name, 0, SNAPSHOT_CHUNK_BYTES + 1);
      await bad(name, 0.5);
      await expect(readSnapshotChunk(a, 1199, name, 0, 16)).rejects.toMatchObject({ code: 'SNAPSHOT_UNAVAILABLE' });
      // A table of an older checkpoint that compaction replaced is not served.
      await applyLog(a, 3, 1201, 2000, 10_000);
      await a.checkpoint({ logIndex: 2001 });
      const now = new Set(a.tables().map((x) => x.number));
      const gone = d.tables.find((x) => !now.has(x.number));
      expect(gone).toBeDefined();
      await expect(readSnapshotChunk(a, 2001, `${String(gone!.number).padStart(6, '0')}.sst`, 0, 16)).rejects.toMatchObject({ code: 'SNAPSHOT_BAD_REQUEST' });
      await expect(readSnapshotChunk(a, 1200, name, 0, 16)).rejects.toMatchObject({ code: 'SNAPSHOT_UNAVAILABLE' });
    } finally {
      await a.close();
    }
  }, 120_000);

  it('describes nothing before the first checkpoint, in journal mode, or with sessions of another index', async () => {
    const root = scratch();
    const a = await ProofDB.open(memberDir(root, 'a'), OPTS);
    try {
      await a.put('k', 'v', { logIndex: 1 });
      expect(() => snapshotDescriptor(a, { index: 1 })).toThrow(expect.objectContaining({ code: 'SNAPSHOT_UNAVAILABLE' }));
      await expect(readSnapshotChunk(a, 1, 'CHECKPOINTS', 0, 16)).rejects.toMatchObject({ code: 'SNAPSHOT_UNAVAILABLE' });
      await a.checkpoint({ logIndex: 2 });
      await a.put('k', 'w', { logIndex: 3 });
      // The session table must be the one of the checkpoint's own index.
      expect(() => snapshotDescriptor(a, { index: 3 })).toThrow(expect.objectContaining({ code: 'SNAPSHOT_UNAVAILABLE' }));
      const snap = snapshotDescriptor(a, { index: 2 });
      const b = memberDir(root, 'b');
      await installSnapshot(b, snap.data, fetchFrom(a, 2), trustOf(a));
      const db = await ProofDB.open(b, OPTS);
      try {
        expect(await db.get('k')).toEqual(te.encode('v'));
        expect(db.logIndex().durable).toBe(2);
      } finally {
        await db.close();
      }
    } finally {
      await a.close();
    }
    const j = await ProofDB.open(path.join(root, 'j'));
    try {
      await j.put('k', 'v');
      await j.checkpoint();
      expect(() => snapshotDescriptor(j, { index: 0 })).toThrow(expect.objectContaining({ code: 'SNAPSHOT_UNAVAILABLE' }));
    } finally {
      await j.close();
    }
  });

  it('a crash at any step of the install opens to the old or the new state', async () => {
    const root = scratch();
    const a = await memberA(root, 1600);
    try {
      const snap = snapshotDescriptor(a, { index: 1600, sessions: te.encode('s') });
      const bDir = memberDir(root, 'b');
      const b0 = await ProofDB.open(bDir, OPTS);
      await applyLog(b0, 42, 1, 500, 100);
      const oldState = latest(b0);
      await b0.close();
      const copies: Array<[string, string]> = [];
      await installSnapshot(bDir, snap.data, fetchFrom(a, snap.index), trustOf(a), {
        onStep: (step) => {
          const to = path.join(root, `crash-${copies.length}-${step}`);
          copyDir(bDir, to);
          copies.push([step, to]);
        },
      });
      expect(copies.map(([s]) => s)).toEqual(['fetched', 'verified', 'staged', 'committed', 'current-removed', 'old-removed', 'moved', 'current-installed', 'done']);
      const newState = latest(a);
      const newProofs = await proofs(a);
      // A crash in the middle of a step: the moves half done.
      const half = path.join(root, 'crash-half-moved');
      copyDir(copies[5][1], half);
      const inst = path.join(half, 'SNAPSHOT-INSTALL');
      const moving = fs.readdirSync(inst).filter((n) => n.endsWith('.sst'));
      for (const n of moving.slice(0, Math.ceil(moving.length / 2))) fs.renameSync(path.join(inst, n), path.join(half, n));
      copies.push(['half-moved', half]);
      // A committed, unfinished install (no open since the crash) then a newer install: the newer wins.
      const twice = path.join(root, 'crash-then-newer');
      copyDir(copies[4][1], twice);
      for (const [step, dir] of copies) {
        const db = await ProofDB.open(dir, OPTS);
        try {
          const committed = !['fetched', 'verified', 'staged'].includes(step);
          expect([step, latest(db)]).toEqual([step, committed ? newState : oldState]);
          if (committed) {
            expect(db.logIndex().durable).toBe(1600);
            expect(await proofs(db)).toEqual(newProofs);
          } else {
            expect(db.logIndex().durable).toBe(500);
          }
          expect(fs.existsSync(path.join(dir, 'SNAPSHOT-STAGING'))).toBe(false);
          expect(fs.existsSync(path.join(dir, 'SNAPSHOT-INSTALL'))).toBe(false);
        } finally {
          await db.close();
        }
      }
      await applyLog(a, 43, 1601, 1800, 1000);
      await a.checkpoint({ logIndex: 1801 });
      const snap2 = snapshotDescriptor(a, { index: 1801 });
      expect(fs.existsSync(path.join(twice, 'SNAPSHOT-INSTALL'))).toBe(true);
      await installSnapshot(twice, snap2.data, fetchFrom(a, 1801), trustOf(a));
      const db = await ProofDB.open(twice, OPTS);
      try {
        expect(latest(db)).toEqual(latest(a));
        expect(db.logIndex().durable).toBe(1801);
        expect(await proofs(db)).toEqual(await proofs(a));
      } finally {
        await db.close();
      }
    } finally {
      await a.close();
    }
  }, 120_000);
});
