/**
 * `proofkv backup` while a node serves and checkpoints, then `proofkv restore` and a node on the
 * restored directory: every write of the backed-up checkpoint is there and proofs verify against
 * the same log. A damaged backup is refused before anything is restored.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { call, json, startServer, tmpDir, type ServerProc } from './harness.js';
import { cliArgv } from '../support/cli_build.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const servers: ServerProc[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop('SIGKILL');
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...cliArgv(), ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('backup and restore', () => {
  it('backs up a serving node at a verified checkpoint and restores it', async () => {
    const s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    servers.push(s);
    for (let i = 0; i < 300; i++) expect((await call(s.url, 'PUT', `/v1/kv/k${i}`, json({ valueUtf8: `v${i}` }))).status).toBe(200);
    expect((await call(s.url, 'POST', '/v1/checkpoints')).status).toBe(200);
    // Keep writing and checkpointing while the backup runs.
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop && i < 2000; i++) {
        await call(s.url, 'PUT', `/v1/kv/later${i}`, json({ valueUtf8: 'x'.repeat(500) }));
        if (i % 50 === 49) await call(s.url, 'POST', '/v1/checkpoints');
      }
    })();
    const out = path.join(tmpDir(), 'backup');
    const b = await cli('backup', '--data', s.dataDir, '--out', out);
    stop = true;
    await load;
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    const info = JSON.parse(b.stdout);
    expect(info.checkpoint.seq).toBeGreaterThanOrEqual(300);
    expect(info.head.size).toBe(info.checkpoint.index + 1);
    expect(fs.existsSync(path.join(out, 'NODE_KEY'))).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'BACKUP.json'), 'utf8')).checkpoint).toEqual(info.checkpoint);

    const restored = path.join(tmpDir(), 'restored');
    const r = await cli('restore', '--from', out, '--data', restored, '--node-key', path.join(s.dataDir, 'NODE_KEY'));
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).checkpoint).toEqual(info.checkpoint);
    expect(fs.statSync(restored).mode & 0o777).toBe(0o700);

    const t = await startServer({ dataDir: restored, args: ['--checkpoint-interval', '0'] });
    servers.push(t);
    const latest = (await call(t.url, 'GET', '/v1/checkpoints/latest')).body;
    expect(latest.checkpoint.index).toBe(info.checkpoint.index);
    expect(Buffer.from(latest.checkpoint.masterRoot, 'base64url').toString('hex')).toBe(info.checkpoint.masterRoot);
    for (let i = 0; i < 300; i += 37) expect((await call(t.url, 'GET', `/v1/kv/k${i}`)).body.valueUtf8).toBe(`v${i}`);
    const st = (await call(t.url, 'GET', '/v1/status')).body;
    expect(st.lastSeq).toBe(info.checkpoint.seq);
    // The restored node takes writes and checkpoints on top of the backed-up log.
    expect((await call(t.url, 'PUT', '/v1/kv/new', json({ valueUtf8: 'n' }))).status).toBe(200);
    const cp = (await call(t.url, 'POST', '/v1/checkpoints')).body;
    expect(cp.checkpoint.index).toBe(info.checkpoint.index + 1);
    expect((await call(t.url, 'GET', `/v1/checkpoints/consistency?from=${info.head.size}&to=${cp.head.size}`)).status).toBe(200);
  });

  it('refuses a damaged backup, a backup signed by another key, and a data directory without a checkpoint', async () => {
    const s = await startServer({ args: ['--checkpoint-interval', '0'] });
    servers.push(s);
    const empty = await cli('backup', '--data', s.dataDir, '--out', path.join(tmpDir(), 'b0'));
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/no checkpoint yet/);
    for (let i = 0; i < 100; i++) await call(s.url, 'PUT', `/v1/kv/k${i}`, json({ valueUtf8: `v${i}` }));
    expect((await call(s.url, 'POST', '/v1/checkpoints')).status).toBe(200);
    const out = path.join(tmpDir(), 'backup');
    expect((await cli('backup', '--data', s.dataDir, '--out', out)).code).toBe(0);

    const other = await cli('restore', '--from', out, '--data', path.join(tmpDir(), 'x'), '--public-key', '11'.repeat(32));
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/not signed by 1111111111111111/);

    const sst = fs.readdirSync(out).find((n) => n.endsWith('.sst'))!;
    const p = path.join(out, sst);
    const bytes = fs.readFileSync(p);
    bytes[Math.floor(bytes.length / 3)] ^= 0x01;
    fs.writeFileSync(p, bytes);
    const target = path.join(tmpDir(), 'y');
    const bad = await cli('restore', '--from', out, '--data', target);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/corruption/i);
    expect(fs.existsSync(target)).toBe(false);
  });
});
