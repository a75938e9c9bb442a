/**
 * Crash test: a child process (`crash-child.ts`) writes to a database with `sync: true` and is
 * killed with SIGKILL at a random moment; the parent reopens the directory and checks that
 *
 * (a) every acknowledged write is there with exactly its version, seq, kind and value;
 * (b) the write in flight when the child died (printed as `P` before it started) is there
 *     entirely or not at all: never a part of a batch;
 * (c) the seqs present are exactly 1..lastSeq, and nothing beyond the acknowledged writes plus
 *     at most the in-flight one is present;
 * (d) the database then takes new writes and a checkpoint.
 *
 * Each lane cycles on one directory (the child is restarted on it after each kill, alternating
 * worker and inline compaction); lanes use fresh directories and run concurrently.
 *
 * Seeded: `CRASH_SEED=<n> npx vitest run test/engine/crash.test.ts` replays the operation
 * sequences and kill delays of a run (the exact kill point still depends on timing).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ProofDB, type VersionEntry } from '../../src/index.js';
import { CRASH_KEYS, CRASH_OPTIONS, prng, valueHash, type Line, type WireOp } from './crash-child.js';
import { tempDir } from './harness.js';
import { scriptArgv } from '../support/cli_build.js';

const SEED = process.env.CRASH_SEED !== undefined ? Number(process.env.CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isSafeInteger(SEED)) throw new Error(`CRASH_SEED must be an integer, got ${process.env.CRASH_SEED}`);
const REPLAY = `CRASH_SEED=${SEED} npx vitest run test/engine/crash.test.ts`;

/**
 * The parent reopens with the child's small write buffer, so recovery itself flushes and numbers
 * journals (this once lost acknowledged writes: a journal number reused after recovery).
 * `CRASH_REPLAY_FLUSH=0` reopens with a large buffer instead.
 */
const REPLAY_FLUSH = process.env.CRASH_REPLAY_FLUSH !== '0';
const PARENT_OPTIONS = { ...CRASH_OPTIONS, writeBufferSize: REPLAY_FLUSH ? CRASH_OPTIONS.writeBufferSize : 64 * 1024 * 1024 };

const LANES = 4;
const CYCLES_PER_LANE = 13;
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHILD = 'test/engine/crash-child.ts';

interface Rec {
  key: string;
  version: number;
  seq: number;
  kind: 'put' | 'delete';
  h: string;
  n: number;
}

const EMPTY_HASH = valueHash(new Uint8Array(0));

/** What the parent knows is durable: every acknowledged write (and recovered in-flight ones). */
class CrashModel {
  readonly keys = new Map<string, Rec[]>();
  lastSeq = 0;

  latest(k: string): number {
    const h = this.keys.get(k);
    return h && h.length > 0 ? h[h.length - 1].version : 0;
  }

  /** The records a write would produce, or null if the engine must reject it. */
  plan(ops: WireOp[]): Rec[] | null {
    const local = new Map<string, number>();
    const out: Rec[] = [];
    for (const [i, op] of ops.entries()) {
      const latest = local.get(op.k) ?? this.latest(op.k);
      const version = op.v ?? latest + 1;
      if (version < 1 || version <= latest) return null;
      local.set(op.k, version);
      out.push({
        key: op.k,
        version,
        seq: this.lastSeq + 1 + i,
        kind: op.d ? 'delete' : 'put',
        h: op.d ? EMPTY_HASH : op.h!,
        n: op.d ? 0 : op.n!,
      });
    }
    return out;
  }

  apply(recs: Rec[]): void {
    for (const r of recs) {
      if (r.seq !== this.lastSeq + 1) throw new Error(`model: seq ${r.seq} after ${this.lastSeq}`);
      if (!this.keys.has(r.key)) this.keys.set(r.key, []);
      this.keys.get(r.key)!.push(r);
      this.lastSeq = r.seq;
    }
  }

  /** Every record in the order of an all-versions scan: key ascending, version descending. */
  scanOrder(): Rec[] {
    const out: Rec[] = [];
    const keys = [...this.keys.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const k of keys) out.push(...this.keys.get(k)!.slice().reverse());
    return out;
  }
}

const dec = new TextDecoder();
const recOf = (e: VersionEntry): Rec => ({
  key: dec.decode(e.key),
  version: e.version,
  seq: e.seq,
  kind: e.kind,
  h: valueHash(e.value),
  n: e.value.length,
});

interface ChildRun {
  lines: Line[];
  partial: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  killed: boolean;
}

/** Runs the child until `killAfterMs` after it reports ready, then SIGKILLs it. */
function runChild(dir: string, seed: number, thread: 'worker' | 'inline', killAfterMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...scriptArgv(CHILD), dir, String(seed), thread], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    // Safety net only (a child that never becomes ready); not a timing assertion.
    const watchdog = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 60_000);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const first = out.length === 0 || !out.includes('\n');
      out += chunk;
      if (first && timer === undefined && out.includes('\n')) {
        timer = setTimeout(() => {
          killed = true;
          child.kill('SIGKILL');
        }, killAfterMs);
      }
    });
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      if (timer) clearTimeout(timer);
      const parts = out.split('\n');
      const partial = parts.pop()!; // a line cut short by the kill (or '')
      resolve({ lines: parts.map((l) => JSON.parse(l) as Line), partial, stderr, code, signal, killed });
    });
  });
}

interface Counts {
  cycles: number;
  acked: number;
  rejected: number;
  checkpoints: number;
  inflightPresent: number;
  inflightAbsent: number;
}

/** Folds a child's output into the model, checking each acknowledgement. Returns the in-flight write. */
function absorb(model: CrashModel, run: ChildRun, counts: Counts): { ops: WireOp[]; planned: Rec[] | null } | null {
  expect(run.lines[0], 'first line is ready').toMatchObject({ t: 'ready' });
  let pending: { id: number; ops: WireOp[]; planned: Rec[] | null } | null = null;
  for (const line of run.lines) {
    switch (line.t) {
      case 'ready':
        expect(line.lastSeq, 'lastSeq seen by the child at open').toBe(model.lastSeq);
        break;
      case 'P': {
        expect(pending, 'one write at a time').toBeNull();
        const planned = model.plan(line.ops);
        expect(planned === null, `write ${line.id} must be rejected: ${line.reject}`).toBe(line.reject);
        pending = { id: line.id, ops: line.ops, planned };
        break;
      }
      case 'A': {
        expect(pending?.id, 'ack of the pending write').toBe(line.id);
        const planned = pending!.planned!;
        expect(line.res, `versions/seqs of write ${line.id}`).toEqual(planned.map((r) => ({ version: r.version, seq: r.seq })));
        model.apply(planned);
        counts.acked += planned.length;
        pending = null;
        break;
      }
      case 'R':
        expect(pending?.id).toBe(line.id);
        expect(pending!.planned, `write ${line.id} rejected (${line.code}) but valid`).toBeNull();
        expect(['VERSION_NOT_INCREASING', 'INVALID_VERSION']).toContain(line.code);
        counts.rejected++;
        pending = null;
        break;
      case 'CP':
        break;
      case 'CA':
        expect(line.seq, 'checkpoint seq').toBe(model.lastSeq);
        counts.checkpoints++;
        break;
    }
  }
  return pending;
}

/** Reopens `dir` and checks (a)-(c) against the model; folds a recovered in-flight write in. */
async function verify(
  dir: string,
  model: CrashModel,
  inflight: { ops: WireOp[]; planned: Rec[] | null } | null,
  thread: 'worker' | 'inline',
  rnd: () => number,
  counts: Counts,
): Promise<ProofDB> {
  const db = await ProofDB.open(dir, { ...PARENT_OPTIONS, compactionThread: thread });
  try {
    const all = (await db.iterator({ allVersions: true }).all()).map(recOf);
    // (c) seqs contiguous from 1, lastSeq the highest.
    const seqs = all.map((r) => r.seq).sort((a, b) => a - b);
    seqs.forEach((s, i) => {
      if (s !== i + 1) expect.fail(`seqs present are not 1..${seqs.length}: position ${i} holds seq ${s}`);
    });
    expect(db.stats().lastSeq, 'lastSeq after recovery').toBe(seqs.length);
    // (b), (c) beyond the acknowledged writes: nothing, or exactly the whole in-flight write.
    const extra = all.filter((r) => r.seq > model.lastSeq).sort((a, b) => a.seq - b.seq);
    if (extra.length > 0) {
      expect(inflight, `records beyond the last acknowledged seq ${model.lastSeq} without a write in flight`).not.toBeNull();
      expect(inflight!.planned, 'a rejected write was applied').not.toBeNull();
      expect(extra, 'the in-flight write must be present entirely or not at all').toEqual(inflight!.planned);
      model.apply(inflight!.planned!);
      counts.inflightPresent++;
    } else if (inflight) {
      counts.inflightAbsent++;
    }
    // (a) every acknowledged write, exactly.
    expect(all, 'all-versions scan equals the acknowledged writes').toEqual(model.scanOrder());
    for (const k of CRASH_KEYS) {
      const want = model.keys.get(k) ?? [];
      expect((await db.getVersionHistory(k)).map(recOf), `history of ${k}`).toEqual(want);
      const last = want[want.length - 1];
      const got = await db.get(k);
      if (!last || last.kind === 'delete') expect(got, `get ${k}`).toBeUndefined();
      else expect(got && { h: valueHash(got), n: got.length }, `get ${k}`).toEqual({ h: last.h, n: last.n });
      if (want.length > 0) {
        // A version between or at recorded ones: the newest at or below it.
        const probe = Math.floor(rnd() * (last.version + 2));
        const at = want.filter((r) => r.version <= probe).pop();
        const e = await db.getWithVersion(k, probe);
        expect(e && recOf(e), `getWithVersion(${k}, ${probe})`).toEqual(at);
      }
    }
    return db;
  } catch (err) {
    await db.close();
    throw err;
  }
}

/** (d): the recovered database takes writes and a checkpoint. Closes it. */
async function writeAfterRecovery(db: ProofDB, model: CrashModel, rnd: () => number): Promise<void> {
  try {
    const k1 = CRASH_KEYS[Math.floor(rnd() * CRASH_KEYS.length)];
    const k2 = CRASH_KEYS[Math.floor(rnd() * CRASH_KEYS.length)];
    const v = new TextEncoder().encode(`parent-${model.lastSeq}`);
    // k1 gets version latest+1, then (if k2 is k1) another one for the delete, then an explicit jump.
    const explicit = model.latest(k1) + 1 + (k2 === k1 ? 1 : 0) + 5;
    const ops: WireOp[] = [
      { k: k1, h: valueHash(v), n: v.length },
      { k: k2, d: 1 },
      { k: k1, v: explicit, h: valueHash(v), n: v.length },
    ];
    const planned = model.plan(ops);
    if (!planned) throw new Error('parent write planned as invalid');
    const res = await db.write(db.batch().put(k1, v).delete(k2).putWithVersion(k1, v, explicit));
    expect(res.map(({ version, seq }) => ({ version, seq }))).toEqual(planned.map((r) => ({ version: r.version, seq: r.seq })));
    // One batch, one commit time.
    expect(new Set(res.map((r) => r.time)).size).toBe(1);
    model.apply(planned);
    const c = await db.checkpoint();
    expect(c.seq, 'checkpoint after recovery').toBe(model.lastSeq);
    const e = await db.getWithVersion(k1, Number.MAX_SAFE_INTEGER);
    expect(e && recOf(e)).toEqual(planned[2]);
  } finally {
    await db.close();
  }
}

async function lane(index: number): Promise<Counts> {
  const laneSeed = (SEED * 1_000_003 + index * 7919) >>> 0;
  const rnd = prng(laneSeed);
  const { dir, cleanup } = tempDir(`proofkv-crash-${index}-`);
  const model = new CrashModel();
  const counts: Counts = { cycles: 0, acked: 0, rejected: 0, checkpoints: 0, inflightPresent: 0, inflightAbsent: 0 };
  let where = 'start';
  try {
    for (let cycle = 0; cycle < CYCLES_PER_LANE; cycle++) {
      const childSeed = Math.floor(rnd() * 2 ** 31);
      const thread = (cycle + index) % 2 === 0 ? 'worker' : 'inline';
      const delay = rnd() < 0.1 ? 5 + Math.floor(rnd() * 45) : 50 + Math.floor(rnd() * 550);
      where = `lane ${index} cycle ${cycle} (child seed ${childSeed}, ${thread} compaction, kill after ${delay} ms)`;
      const run = await runChild(dir, childSeed, thread, delay);
      if (!run.killed || run.signal !== 'SIGKILL') {
        expect.fail(`child exited on its own (code ${run.code}, signal ${run.signal}):\n${run.stderr}`);
      }
      const inflight = absorb(model, run, counts);
      const db = await verify(dir, model, inflight, cycle % 2 === 0 ? 'inline' : 'worker', rnd, counts);
      await writeAfterRecovery(db, model, rnd);
      counts.cycles++;
    }
    // A clean reopen after the last cycle sees the same.
    where = `lane ${index} final reopen`;
    const db = await verify(dir, model, null, 'inline', rnd, counts);
    await db.close();
  } catch (err) {
    const e = err as Error;
    e.message = `[${REPLAY}; ${where}; dir ${dir}] ${e.message}`;
    throw e;
  }
  cleanup();
  return counts;
}

describe(`crash recovery under SIGKILL (CRASH_SEED=${SEED})`, () => {
  const results: Counts[] = [];
  it.concurrent.each(Array.from({ length: LANES }, (_, i) => i))('lane %i: kill, recover, verify, continue', async (i) => {
    const c = await lane(i);
    results.push(c);
    expect(c.cycles).toBe(CYCLES_PER_LANE);
    expect(c.acked, 'the children acknowledged writes').toBeGreaterThan(0);
    console.log(`[crash seed ${SEED}] lane ${i}:`, JSON.stringify(c));
  });
});
