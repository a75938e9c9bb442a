/**
 * The debug-only replication trace (src/replication/trace.ts): off without PROOFKV_TRACE (nothing
 * recorded, nothing written); on, events are written as JSON lines on the monotonic clock, in
 * order, with the message summaries `bench/cluster_trace.ts` matches on.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EntryType, MessageType, newMessage } from '../../src/raft/index.js';

const dirs: string[] = [];
afterEach(() => {
  vi.unstubAllEnvs();
  vi.resetModules();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function load(prefix: string | undefined) {
  vi.resetModules();
  if (prefix === undefined) vi.stubEnv('PROOFKV_TRACE', '');
  else vi.stubEnv('PROOFKV_TRACE', prefix);
  return await import('../../src/replication/trace.js');
}

describe('replication trace', () => {
  it('records and writes nothing when PROOFKV_TRACE is not set', async () => {
    const t = await load(undefined);
    expect(t.tracing).toBe(false);
    t.trace('propose', 'x/1');
    expect(t.flushTrace()).toBeUndefined();
  });

  it('writes the events, in order, as JSON lines on the monotonic clock', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-trace-'));
    dirs.push(dir);
    const t = await load(path.join(dir, 'trace'));
    expect(t.tracing).toBe(true);
    const before = t.traceNow();
    t.trace('node', 2);
    t.trace('propose', 'abc/1');
    t.traceMessages('tx', [
      newMessage({ type: MessageType.App, from: 2, to: 3, index: 4, commit: 4, entries: [{ term: 1, index: 5, type: EntryType.Normal, data: new Uint8Array(1) }, { term: 1, index: 6, type: EntryType.Normal, data: new Uint8Array(1) }] }),
    ]);
    const file = t.flushTrace();
    expect(file).toBe(path.join(dir, `trace.${process.pid}.jsonl`));
    const events = fs.readFileSync(file!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown[]);
    expect(events.map((e) => e.slice(1))).toEqual([
      ['node', 2],
      ['propose', 'abc/1'],
      ['tx', MessageType.App, 2, 3, 4, 6, 4],
    ]);
    const times = events.map((e) => e[0] as number);
    expect(times[0]).toBeGreaterThanOrEqual(before);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    // Flushed events are forgotten: a second flush has nothing to write.
    expect(t.flushTrace()).toBeUndefined();
  });
});
