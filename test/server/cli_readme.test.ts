/**
 * The README's SDK example, run as written against a real `proofkv serve`, with the public key
 * exactly as the server's banner prints it (hex, then base64url): the example cannot rot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startServer, tmpDir, type ServerProc } from './harness.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The first `ts` block after the heading `## Using the client SDK`. */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using the client SDK'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README has no ts block under "Using the client SDK"');
  return m[1];
}

/** Runs `code` as an ES module from `dir` (60 s timeout). */
function runModule(dir: string, code: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = path.join(dir, `example-${Math.random().toString(36).slice(2)}.mts`);
  fs.writeFileSync(file, code);
  return new Promise((resolve) => {
    // `tsx` resolved from the repository: the example runs in its own directory (for ./trust.json).
    const tsx = pathToFileURL(createRequire(path.join(ROOT, 'package.json')).resolve('tsx')).href;
    execFile(process.execPath, ['--import', tsx, file], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('README SDK example', () => {
  let s: ServerProc;
  beforeAll(async () => {
    s = await startServer({ args: ['--port', '0'] });
  });
  afterAll(async () => {
    await s?.stop('SIGKILL');
  });

  it('runs as written with the key from the banner, in hex and in base64url', async () => {
    const example = readmeExample();
    expect(example).toMatch(/^const nodePublicKey = '[^']*';/m);
    expect(example).toContain("from 'proofkv/client'");
    const banner = (form: string) => new RegExp(`public key\\s+(\\S+) \\(${form}\\)`).exec(s.stdout())![1];
    const dir = tmpDir('proofkv-readme-');
    const client = pathToFileURL(path.join(ROOT, 'client-sdk/index.ts')).href;
    const withKey = (key: string) =>
      example
        .replace("from 'proofkv/client'", `from '${client}'`)
        .replace(/^const nodePublicKey = '[^']*';/m, `const nodePublicKey = '${key}';`)
        .replace("'http://127.0.0.1:7070'", `'${s.url}'`);

    const hex = await runModule(dir, withKey(banner('hex')));
    expect(hex.stderr).toBe('');
    expect(hex.code).toBe(0);
    expect(hex.stdout.trim()).toBe('paid 1 1');
    // The same identity in the other printed form: it continues from the state the first run saved.
    const b64 = await runModule(dir, withKey(banner('base64url')));
    expect(b64.code).toBe(0);
    expect(b64.stdout.trim()).toBe('paid 2 2');
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'trust.json'), 'utf8'));
    expect(Object.keys(state.states)).toEqual([`keys:${banner('hex')}:q1`]);
    // A key in neither form is refused with a clear TypeError before any request.
    const bad = await runModule(dir, withKey('not-a-key'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('trust.publicKeys[0]: public key "not-a-key" is not 64 hex digits');
  });
});
