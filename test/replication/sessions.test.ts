/**
 * The replicated session table (`src/replication/sessions.ts`): the pure core's decisions and
 * eviction, which depend only on the inputs; the store restored exactly as of the engine's
 * durable index whatever was persisted after it; export/import round trips; malformed imports
 * refused with nothing changed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import {
  SESSION_CLIENT_BYTES, SESSION_WINDOW, SessionStore, SessionTable, decodeTable, encodeTable, type SessionInput,
} from '../../src/replication/sessions.js';
import { mulberry32 } from '../support/prng.js';

const digest = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const outcome = (i: number) => new TextEncoder().encode(`outcome-${i}`);
const input = (index: number, clientId: string, seq: number, what = `${clientId}/${seq}`, bytes = 100): SessionInput => ({ index, clientId, seq, digest: digest(what), bytes });

const dirs: string[] = [];
const stores: SessionStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-sessions-'));
  dirs.push(d);
  return d;
}
async function openStore(dir: string, durableIndex: number, maxBytes = 1 << 20): Promise<SessionStore> {
  const s = await SessionStore.open(dir, { durableIndex, maxBytes });
  stores.push(s);
  return s;
}
async function closeStore(s: SessionStore): Promise<void> {
  stores.splice(stores.indexOf(s), 1);
  await s.close();
}

/**
 * A seeded log of session inputs over `clients` clients: new requests, retries of recent ones,
 * reuses of a pair for another request, and stale seqs.
 */
function seededLog(seed: number, n: number, clients: number): SessionInput[] {
  const r = mulberry32(seed);
  const next = new Map<string, number>();
  const out: SessionInput[] = [];
  for (let i = 1; i <= n; i++) {
    const id = `client-${Math.floor(r() * clients)}`;
    const top = next.get(id) ?? 0;
    const x = r();
    if (top > 0 && x < 0.25) out.push(input(i, id, Math.max(0, top - 1 - Math.floor(r() * 4)), undefined, 100 + (top % 7) * 10));
    else if (top > 0 && x < 0.3) out.push(input(i, id, top - 1, `other-${i}`));
    else if (top > SESSION_WINDOW + 2 && x < 0.33) out.push(input(i, id, 0));
    else {
      out.push(input(i, id, top, undefined, 100 + ((top + 1) % 7) * 10));
      next.set(id, top + 1);
    }
    // A record's byte estimate is a function of the command: a retry repeats its original's.
    const last = out[out.length - 1];
    last.bytes = 100 + (last.seq % 7) * 10;
  }
  return out;
}

/** Applies `log` to `book`, setting each new record's outcome as the applier would. */
function feed(apply: (i: SessionInput) => ReturnType<SessionTable['apply']>, log: SessionInput[]): string[] {
  return log.map((i) => {
    const d = apply(i);
    if (d.kind === 'new') d.record.outcome = outcome(i.index);
    return d.kind === 'stale' ? `stale<${d.floor}` : `${d.kind}@${d.record.index}`;
  });
}

describe('SessionTable', () => {
  it('decides new, retry, reused and stale, and slides each client window', () => {
    const t = new SessionTable({ maxBytes: 1 << 20 });
    expect(t.apply(input(1, 'a', 5)).kind).toBe('new');
    expect(t.apply(input(2, 'a', 5))).toMatchObject({ kind: 'retry', record: { index: 1 } });
    expect(t.apply(input(3, 'a', 5, 'something else'))).toMatchObject({ kind: 'reused', record: { index: 1 } });
    for (let s = 6; s < 6 + SESSION_WINDOW; s++) expect(t.apply(input(s, 'a', s)).kind).toBe('new');
    expect(t.apply(input(200, 'a', 5))).toEqual({ kind: 'stale', floor: 6 });
    expect(t.apply(input(201, 'a', 2))).toEqual({ kind: 'stale', floor: 6 });
    expect(t.bytes).toBe(SESSION_CLIENT_BYTES + 2 + SESSION_WINDOW * 100);
    expect(() => t.apply(input(201, 'b', 1))).toThrow(expect.objectContaining({ code: 'SESSIONS_BAD_STATE' }));
  });

  it('evicts least recently active clients by the log alone: two replicas fed the same log hold the same table', () => {
    const budget = 6 * (SESSION_CLIENT_BYTES + 16 + 3 * 130);
    const log = seededLog(77, 3000, 40);
    const a = new SessionTable({ maxBytes: budget });
    const b = new SessionTable({ maxBytes: budget });
    const da = feed((i) => a.apply(i), log);
    // The second replica settles outcomes in another order (late, reversed): nothing changes.
    const pending: Array<() => void> = [];
    const db = log.map((i) => {
      const d = b.apply(i);
      if (d.kind === 'new') pending.push(() => (d.record.outcome = outcome(i.index)));
      return d.kind === 'stale' ? `stale<${d.floor}` : `${d.kind}@${d.record.index}`;
    });
    pending.reverse().forEach((f) => f());
    expect(db).toEqual(da);
    expect(da.filter((x) => x.startsWith('retry')).length).toBeGreaterThan(20);
    expect(da.filter((x) => x.startsWith('reused')).length).toBeGreaterThan(10);
    expect(b.clientIds()).toEqual(a.clientIds());
    expect(b.bytes).toBe(a.bytes);
    expect(a.bytes).toBeLessThanOrEqual(budget);
    expect(a.count).toBeLessThan(40);
    expect(Buffer.from(encodeTable(b, 3000)).equals(Buffer.from(encodeTable(a, 3000)))).toBe(true);
    // An evicted client's old pair is new again — on both.
    const gone = [...new Set(log.map((i) => i.clientId))].find((id) => !a.clientIds().includes(id))!;
    expect(a.apply(input(3001, gone, 0)).kind).toBe('new');
  });
});

describe('SessionStore', () => {
  it('restores the table exactly as of the durable index, whatever was persisted after it', async () => {
    const log = seededLog(5, 600, 12);
    const budget = 8 * (SESSION_CLIENT_BYTES + 16 + 10 * 130);
    // The reference: the table as of every index, from a plain table.
    const ref = new SessionTable({ maxBytes: budget });
    const images: Uint8Array[] = [encodeTable(ref, 0)];
    for (const i of log) {
      feed((x) => ref.apply(x), [i]);
      images.push(encodeTable(ref, i.index));
    }
    const r = mulberry32(99);
    for (let trial = 0; trial < 12; trial++) {
      const dir = tmp();
      let s = await openStore(dir, 0, budget);
      // Persist at random points, as the engine's installs would: journal up to `index`, base up to `durable`.
      let durable = 0;
      let persisted = 0;
      for (const i of log) {
        feed((x) => s.apply(x), [i]);
        if (r() < 0.05) {
          const index = persisted + Math.floor(r() * (i.index - persisted + 1));
          await s.persist(index, durable);
          persisted = index;
          if (r() < 0.7) durable = index; // the install succeeded (else: crash or failure before it)
        }
      }
      await closeStore(s);
      // Reopen as of what the engine recorded; the table must be the reference as of that index.
      s = await openStore(dir, durable, budget);
      expect(Buffer.from(s.export(durable)).equals(Buffer.from(images[durable]))).toBe(true);
      // Re-applying the rest of the log reaches the live table's end state.
      feed((x) => s.apply(x), log.slice(durable));
      expect(Buffer.from(s.export(600)).equals(Buffer.from(images[600]))).toBe(true);
      await s.persist(600, durable);
      await closeStore(s);
      s = await openStore(dir, 600, budget);
      expect(Buffer.from(s.export(600)).equals(Buffer.from(images[600]))).toBe(true);
      await closeStore(s);
    }
  });

  it('while a persist waits for its write, export sees each index\'s table (no input twice) and refuses one the base already passed', async () => {
    const log = seededLog(7, 300, 9);
    const ref = new SessionTable({ maxBytes: 1 << 20 });
    const images: Uint8Array[] = [encodeTable(ref, 0)];
    for (const i of log) {
      feed((x) => ref.apply(x), [i]);
      images.push(encodeTable(ref, i.index));
    }
    const s = await openStore(tmp(), 0);
    feed((x) => s.apply(x), log);
    // Hold the store's write: the persist folds up to its target into the base, then waits.
    const db = (s as unknown as { db: { batch: (...a: unknown[]) => Promise<void> } }).db;
    const write = db.batch.bind(db);
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    db.batch = async (...a: unknown[]) => {
      await gate;
      return write(...a);
    };
    const p = s.persist(250, 200);
    await new Promise((res) => setTimeout(res, 20));
    for (const at of [200, 250, 300]) expect(Buffer.from(s.export(at)).equals(Buffer.from(images[at])), `as of ${at}`).toBe(true);
    expect(() => s.export(150)).toThrow(expect.objectContaining({ code: 'SESSIONS_UNAVAILABLE' }));
    release();
    await p;
    for (const at of [200, 250, 300]) expect(Buffer.from(s.export(at)).equals(Buffer.from(images[at])), `as of ${at}, after`).toBe(true);
    await closeStore(s);
  });

  it('waits for outcomes in flight before it persists them, and refuses a base ahead of the engine', async () => {
    const dir = tmp();
    const s = await openStore(dir, 0);
    const d = s.apply(input(1, 'a', 1));
    expect(d.kind).toBe('new');
    let settle!: () => void;
    s.settling(d.kind === 'new' ? d.record : (undefined as never), new Promise<void>((res) => (settle = res)));
    let done = false;
    const p = s.persist(1, 0).then(() => (done = true));
    await new Promise((res) => setTimeout(res, 20));
    expect(done).toBe(false);
    if (d.kind === 'new') d.record.outcome = outcome(1);
    settle();
    await p;
    s.apply(input(2, 'b', 1)); // settled = no outcome: a persist covering it fails
    await expect(s.persist(2, 1)).rejects.toMatchObject({ code: 'SESSIONS_BAD_STATE' });
    await closeStore(s);
    const t = await openStore(dir, 1);
    expect(t.table.lookup('a', 1)?.outcome).toEqual(outcome(1));
    await t.persist(1, 1);
    await closeStore(t);
    await expect(SessionStore.open(dir, { durableIndex: 0, maxBytes: 1 << 20 })).rejects.toMatchObject({ code: 'SESSIONS_BAD_STATE' });
  });

  it('exports and imports a table; malformed bytes are refused and change nothing', async () => {
    const budget = 1 << 20;
    const a = await openStore(tmp(), 0, budget);
    feed((x) => a.apply(x), seededLog(3, 400, 9));
    await a.persist(400, 0);
    const bytes = a.export(400);
    expect(() => a.export(401)).not.toThrow(); // nothing after 400: the same table
    const bDir = tmp();
    const b = await openStore(bDir, 0, budget);
    feed((x) => b.apply(x), [input(1, 'zz', 1)]);
    expect(await b.import(bytes)).toBe(400);
    expect(Buffer.from(b.export(400)).equals(Buffer.from(bytes))).toBe(true);
    expect(b.table.lookup('zz', 1)).toBeUndefined();
    await closeStore(b);
    const b2 = await openStore(bDir, 400, budget);
    expect(Buffer.from(b2.export(400)).equals(Buffer.from(bytes))).toBe(true);

    const enc = new Encoder({ useRecords: false, mapsAsObjects: true });
    const doc = enc.decode(bytes) as { v: number; asOf: number; clients: unknown[][] };
    const mutate = (f: (d: typeof doc) => void) => {
      const d = enc.decode(bytes) as typeof doc;
      f(d);
      return enc.encode(d);
    };
    const bad: Array<[string, Uint8Array]> = [
      ['garbage', new Uint8Array([0xff, 0x00, 0x13])],
      ['truncated', bytes.subarray(0, bytes.length - 9)],
      ['other version', mutate((d) => (d.v = 2))],
      ['not a map', enc.encode([1, 2, 3])],
      ['duplicate client', mutate((d) => d.clients.push(d.clients[0]))],
      ['bad digest', mutate((d) => ((d.clients[0][3] as unknown[][])[0][2] = new Uint8Array(31)))],
      ['record after asOf', mutate((d) => (d.asOf = 3))],
      ['long id', mutate((d) => (d.clients[0][0] = 'x'.repeat(65)))],
      ['missing outcome', mutate((d) => ((d.clients[0][3] as unknown[][])[0][4] = null))],
      ['seq below floor', mutate((d) => (d.clients[0][1] = 1e9))],
      ['over budget', mutate((d) => ((d.clients[0][3] as unknown[][])[0][3] = budget))],
    ];
    expect(doc.clients.length).toBeGreaterThan(3);
    for (const [what, b] of bad) {
      await expect(b2.import(b), what).rejects.toMatchObject({ code: 'SESSIONS_MALFORMED' });
      expect(Buffer.from(b2.export(400)).equals(Buffer.from(bytes)), what).toBe(true);
    }
    expect(() => decodeTable(bytes, { maxBytes: 1000 })).toThrow(expect.objectContaining({ code: 'SESSIONS_MALFORMED' }));
    await closeStore(b2);
    const b3 = await openStore(bDir, 400, budget);
    expect(Buffer.from(b3.export(400)).equals(Buffer.from(bytes))).toBe(true);
    expect(() => b3.export(399)).toThrow(expect.objectContaining({ code: 'SESSIONS_UNAVAILABLE' }));
  });

  it('reopens with a lowered budget (evicting at the next new record), and keeps a lone client over budget', async () => {
    const dir = tmp();
    let s = await openStore(dir, 0, 1 << 20);
    feed((x) => s.apply(x), Array.from({ length: 30 }, (_, i) => input(i + 1, `c${i % 10}`, Math.floor(i / 10))));
    await s.persist(30, 0);
    await s.persist(30, 30);
    await closeStore(s);
    const small = 3 * (SESSION_CLIENT_BYTES + 4 + 3 * 100);
    s = await openStore(dir, 30, small);
    expect(s.count).toBe(10);
    feed((x) => s.apply(x), [input(31, 'c0', 3)]);
    expect(s.bytes).toBeLessThanOrEqual(small);
    expect(s.table.clientIds()).toEqual(['c9', 'c0']); // c0 now holds 4 records: c8 no longer fits
    // One client alone may exceed a tiny budget (the one being served is never evicted): its export imports.
    const lone = await openStore(tmp(), 0, 500);
    feed((x) => lone.apply(x), [input(1, 'big', 1, undefined, 2000)]);
    expect(lone.bytes).toBeGreaterThan(500);
    const other = await openStore(tmp(), 0, 500);
    expect(await other.import(lone.export(1))).toBe(1);
    expect(other.table.lookup('big', 1)?.bytes).toBe(2000);
  });
});
