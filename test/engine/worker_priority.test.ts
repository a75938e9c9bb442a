/**
 * The flush and compaction workers run at background priority (`WORKER_NICE`, Linux, where nice
 * is per thread): the worker's own thread gets the nice value, and no other thread of the process
 * is touched — the thread that serves reads and writes keeps its priority.
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { WORKER_NICE } from '../../src/compaction/runner.js';
import { lowerThreadPriority, niceToSet } from '../../src/compaction/worker.js';
import { tempDir } from './harness.js';

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** Nice value of each thread of this process, by thread id (Linux). */
function threadNices(): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of fs.readdirSync('/proc/self/task')) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      // Fields after the command's closing parenthesis: state is field 3, nice field 19.
      out.set(Number(t), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const ownThread = (): number => Number(fs.readlinkSync('/proc/thread-self').split('/').pop());

describe('compaction worker priority', () => {
  it('a flush runs on a thread at WORKER_NICE; the calling thread keeps its priority (Linux; elsewhere nothing is set)', async () => {
    expect(WORKER_NICE).toBeGreaterThan(0);
    if (process.platform !== 'linux') {
      expect(lowerThreadPriority(WORKER_NICE)).toBe(false);
      return;
    }
    const me = ownThread();
    const mine = threadNices().get(me);
    const t = tempDir('proofkv-worker-nice-');
    cleanups.push(t.cleanup);
    const db = await ProofDB.open(t.dir);
    try {
      for (let i = 0; i < 200; i++) await db.put(`k${i}`, `v${i}`);
      await db.checkpoint(); // a flush job: the flush worker is running now
      const nices = threadNices();
      expect(nices.get(me)).toBe(mine);
      expect(mine).not.toBe(WORKER_NICE);
      expect([...nices.values()].filter((n) => n === WORKER_NICE).length).toBeGreaterThanOrEqual(1);
    } finally {
      await db.close();
    }
  }, 30_000);

  it('never raises a thread above the priority it has: a nice already at or past the target is kept', () => {
    expect(niceToSet(0, 10)).toBe(10);
    expect(niceToSet(5, 10)).toBe(10);
    expect(niceToSet(10, 10)).toBeNull();
    expect(niceToSet(15, 10)).toBeNull(); // a service started at nice 15: its workers keep 15
    expect(niceToSet(-5, 10)).toBe(10);
    expect(niceToSet(0, 40)).toBe(19); // Linux's lowest priority
    expect(niceToSet(19, 40)).toBeNull();
    for (const bad of [0, -3, 1.5, Number.NaN]) expect(niceToSet(0, bad)).toBeNull();
    expect(niceToSet(Number.NaN, 10)).toBeNull();
  });

  it('lowerThreadPriority changes nothing for a nice value of 0, below it or not an integer', () => {
    const before = process.platform === 'linux' ? threadNices() : null;
    for (const n of [0, -5, 2.5, Number.NaN]) expect(lowerThreadPriority(n)).toBe(false);
    if (before) expect(threadNices().get(ownThread())).toBe(before.get(ownThread()));
  });
});
