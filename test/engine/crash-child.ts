/**
 * Child process of the crash test (`crash.test.ts`). Not a test file: it is run as
 *
 *   node --import tsx test/engine/crash-child.ts <dir> <seed> [worker|inline]
 *
 * It opens the database with `sync: true` and a small write buffer, prints `ready`, then writes
 * forever (until the parent kills it with SIGKILL): puts, explicit-version puts, deletes, batches,
 * deliberately rejected writes and occasional checkpoints, one at a time. Before each write it
 * prints the intended operations (`P`), after the write is acknowledged the versions and seqs it
 * was given (`A`), or the rejection (`R`). Each line is one JSON object, written to the pipe
 * synchronously (see `emit`), so a line printed before a write is in the pipe before the write
 * starts.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { ProofDB, ProofKVError } from '../../src/index.js';

/** Keys the child writes: short and long ones, a few hundred in all. Shared with the parent. */
export const CRASH_KEYS: string[] = (() => {
  const keys: string[] = [];
  for (let i = 0; i < 280; i++) keys.push(`key-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < 20; i++) keys.push(`long-${i}-${'x'.repeat(40 + i * 11)}`);
  return keys;
})();

/** Options of every open of a crash-test database (plus `compactionThread`). */
export const CRASH_OPTIONS = {
  sync: true,
  writeBufferSize: 16 * 1024,
  targetFileSize: 16 * 1024,
  blockSize: 1024,
  level0CompactionTrigger: 3,
  maxBytesForLevelBase: 64 * 1024,
};

/** Hash of a value as the protocol reports it. */
export function valueHash(v: Uint8Array): string {
  return createHash('sha256').update(v).digest('hex').slice(0, 16);
}

/** sfc32: small seeded PRNG, shared with the parent. */
export function prng(seed: number): () => number {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 + seed * 31;
  let c = 0xb7e15162 ^ (seed >>> 3);
  let d = 1;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (a + b + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

/** One operation as printed on a `P` line. `d`: delete; `v`: explicit version; `h`/`n`: value hash/length. */
export interface WireOp {
  k: string;
  d?: 1;
  v?: number;
  h?: string;
  n?: number;
}

/** Lines of the protocol. */
export type Line =
  | { t: 'ready'; lastSeq: number }
  | { t: 'P'; id: number; ops: WireOp[]; batch: boolean; reject: boolean }
  | { t: 'A'; id: number; res: Array<{ version: number; seq: number }> }
  | { t: 'R'; id: number; code: string }
  | { t: 'CP'; id: number }
  | { t: 'CA'; id: number; seq: number };

/**
 * Writes a line to stdout before returning. `process.stdout.write` is not enough: when the pipe is
 * full (a busy parent), libuv queues the rest and returns, and a SIGKILL then loses lines about
 * writes that did happen. So write the bytes to fd 1 directly, retrying on EAGAIN.
 */
function emit(line: Line): void {
  const bytes = Buffer.from(`${JSON.stringify(line)}\n`);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += fs.writeSync(1, bytes, off, bytes.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

async function main(): Promise<void> {
  const [dir, seedArg, thread] = process.argv.slice(2);
  const seed = Number(seedArg);
  if (!dir || !Number.isSafeInteger(seed)) throw new Error('usage: crash-child.ts <dir> <seed> [worker|inline]');
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);

  const db = await ProofDB.open(dir, { ...CRASH_OPTIONS, compactionThread: thread === 'inline' ? 'inline' : 'worker' });
  const latest = new Map<string, number>();
  for (const k of CRASH_KEYS) latest.set(k, (await db.getWithVersion(k, Number.MAX_SAFE_INTEGER))?.version ?? 0);
  emit({ t: 'ready', lastSeq: db.stats().lastSeq });

  const value = (): Uint8Array => {
    const r = rnd();
    const n = r < 0.05 ? 0 : r < 0.6 ? int(64) : r < 0.95 ? 64 + int(1500) : 8000 + int(40000);
    const v = new Uint8Array(n);
    let x = int(0x7fffffff) | 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      v[i] = x & 0xff;
    }
    return v;
  };
  const key = () => CRASH_KEYS[rnd() < 0.5 ? int(40) : int(CRASH_KEYS.length)];

  for (let id = 1; ; id++) {
    const r = rnd();
    if (r < 0.03) {
      emit({ t: 'CP', id });
      const c = await db.checkpoint();
      emit({ t: 'CA', id, seq: c.seq });
      continue;
    }
    // Build the operations; `local` tracks versions given earlier in the same batch.
    const local = new Map<string, number>();
    const cur = (k: string) => local.get(k) ?? latest.get(k)!;
    const n = r < 0.75 ? 1 : 2 + int(7);
    const reject = rnd() < 0.05;
    const rejectAt = int(n);
    const ops: Array<WireOp & { value?: Uint8Array }> = [];
    for (let i = 0; i < n; i++) {
      const k = key();
      const c = rnd();
      let op: WireOp & { value?: Uint8Array };
      if (reject && i === rejectAt) {
        // Not increasing: the whole write must be rejected and change nothing.
        // (For a key never written, version 0: invalid, INVALID_VERSION.)
        op = { k, v: cur(k) === 0 ? 0 : Math.max(1, cur(k) - int(2)), value: value() };
      } else if (c < 0.15) {
        op = { k, d: 1 };
      } else if (c < 0.35) {
        op = { k, v: cur(k) + 1 + (rnd() < 0.1 ? int(1_000_000) : int(20)), value: value() };
      } else {
        op = { k, value: value() };
      }
      if (op.value) {
        op.h = valueHash(op.value);
        op.n = op.value.length;
      }
      if (!(reject && i === rejectAt)) local.set(k, op.v ?? cur(k) + 1);
      ops.push(op);
    }
    const batch = n > 1 || rnd() < 0.1;
    emit({ t: 'P', id, ops: ops.map(({ value: _v, ...w }) => w), batch, reject });
    try {
      let res: Array<{ version: number; seq: number }>;
      if (batch) {
        const b = db.batch();
        for (const op of ops) {
          if (op.d) b.delete(op.k);
          else if (op.v !== undefined) b.putWithVersion(op.k, op.value!, op.v);
          else b.put(op.k, op.value!);
        }
        res = await db.write(b);
      } else {
        const op = ops[0];
        if (op.d) res = [await db.delete(op.k)];
        else if (op.v !== undefined) res = [await db.putWithVersion(op.k, op.value!, op.v)];
        else res = [await db.put(op.k, op.value!)];
      }
      res.forEach((x, i) => latest.set(ops[i].k, x.version));
      emit({ t: 'A', id, res: res.map(({ version, seq }) => ({ version, seq })) });
    } catch (err) {
      if (!(err instanceof ProofKVError)) throw err;
      emit({ t: 'R', id, code: err.code });
    }
  }
}

// Only run when executed as a script (the parent imports the shared helpers above).
if (process.argv[1] && /crash-child\.[jt]s$/.test(process.argv[1])) {
  main().catch((err) => {
    process.stderr.write(`crash-child failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  });
}
