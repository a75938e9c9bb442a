/**
 * The compaction worker starts whatever flags the host process was started with: it gets an
 * explicit, empty `execArgv` instead of inheriting `process.execArgv`, and finds its TypeScript
 * entry even when a loader adds a query to the runner's URL.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { workerSpawnSpec } from '../../src/compaction/runner.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `node <flags> -e <code>` in the repository and returns its stdout (the child's own safety timeout: 60 s). */
function node(flags: string[], code: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...flags, '-e', code], { cwd: REPO, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 });
    });
  });
}

describe('compaction worker spawn', () => {
  it('flushes on the worker in a process started with node --input-type=module -e', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'proofkv-worker-'));
    dirs.push(dir);
    const code = `
      import { tsImport } from 'tsx/esm/api';
      const { ProofDB } = await tsImport('./src/index.ts', import.meta.url);
      const db = await ProofDB.open(${JSON.stringify(dir)}, { compactionThread: 'worker' });
      for (let i = 0; i < 50; i++) await db.put('k' + i, 'v' + i);
      let out;
      try { const c = await db.checkpoint(); out = { ok: true, seq: c.seq, tables: c.tables.length }; }
      catch (e) { out = { ok: false, code: e.code, message: e.message }; }
      const v = await db.get('k7');
      await db.close();
      console.log(JSON.stringify({ ...out, v: v === undefined ? null : new TextDecoder().decode(v) }));
    `;
    const r = await node(['--input-type=module'], code);
    expect(r.stderr).not.toMatch(/IO_ERROR|compaction worker/);
    const line = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ok: boolean; v: string | null; message?: string };
    // The flush wrote a table on the worker: the checkpoint covers all 50 writes.
    expect(line).toMatchObject({ ok: true, seq: 50, tables: 1, v: 'v7' });
    expect(r.code).toBe(0);
  });

  it('never passes the parent execArgv on, for compiled and TypeScript entries', () => {
    const js = workerSpawnSpec('file:///opt/proofkv/dist/src/compaction/runner.js');
    expect(js.options.execArgv).toEqual([]);
    expect(String(js.entry)).toBe('file:///opt/proofkv/dist/src/compaction/worker.js');
    const ts = workerSpawnSpec('file:///opt/proofkv/src/compaction/runner.ts?tsx-namespace=1234');
    expect(ts.options).toMatchObject({ eval: true, execArgv: [] });
    expect(String(ts.entry)).toContain('"file:///opt/proofkv/src/compaction/worker.ts"');
    expect(String(ts.entry)).not.toContain('tsx-namespace');
  });
});
