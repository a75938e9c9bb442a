/**
 * `bin/proofkv.js` and `npm start` in a checkout: SIGTERM to the npm process stops the server
 * (npm's script shell does not pass the signal on), a server started without npm is not tied to its
 * parent, and the bin runs the sources in a checkout and dist/ only where no sources ship.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { launch, leftoversAfterStop, reap, ROOT, run, tmpDir, type Launched } from './helpers.js';

const work = tmpDir('proofkv-launcher-');
const started: Launched[] = [];

afterAll(() => {
  for (const s of started) reap(s);
  fs.rmSync(work, { recursive: true, force: true });
});

describe('stopping a server started through npm', () => {
  it('SIGTERM to `npm start` stops the server: process gone, port free, data directory unlocked', async () => {
    const dataDir = path.join(work, 'npm-start');
    const s = await launch('npm', ['start', '--', '--data', dataDir, '--port', '0', '--log-level', 'warn'], ROOT, dataDir);
    started.push(s);
    // npm -> sh -c -> node: the process we signal is not the server.
    expect(s.serverPid).not.toBe(s.launcher.pid);
    // A checkout serves the explorer built from its sources.
    const ui = await fetch(`${s.url}/ui/`, { signal: AbortSignal.timeout(30_000) });
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('/ui/explorer.js');
    s.launcher.kill('SIGTERM');
    const left = await leftoversAfterStop(s);
    expect(left, s.output()).toEqual({ serverAlive: false, portFree: true, lockPresent: false });
  });

  it('a server started without npm keeps running when its parent exits (sh -c "... &"), and stops on its own SIGTERM', async () => {
    const dataDir = path.join(work, 'detached');
    const bin = path.join(ROOT, 'bin/proofkv.js');
    const cmd = `"${process.execPath}" "${bin}" serve --data "${dataDir}" --port 0 --log-level warn &`;
    const s = await launch('sh', ['-c', cmd], ROOT, dataDir);
    started.push(s);
    expect(await s.exited).toBe(0); // the shell is gone before the banner is read
    // Past several of the bin's parent checks (every 200 ms), the server still answers.
    await new Promise((r) => setTimeout(r, 1000));
    const status = await fetch(`${s.url}/v1/status`, { signal: AbortSignal.timeout(10_000) });
    expect(status.status).toBe(200);
    process.kill(s.serverPid, 'SIGTERM');
    const left = await leftoversAfterStop(s);
    expect(left).toEqual({ serverAlive: false, portFree: true, lockPresent: false });
  });
});

describe('bin/proofkv.js picks what to run', () => {
  // A miniature package: bin/ next to a source entry and/or a built one, with this checkout's
  // node_modules (for tsx). Each entry prints which one ran and the arguments it got.
  const pkg = path.join(work, 'pkg');
  const write = (rel: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(pkg, rel)), { recursive: true });
    fs.writeFileSync(path.join(pkg, rel), text);
  };
  write('package.json', JSON.stringify({ name: 'pkg', type: 'module' }));
  write('bin/proofkv.js', fs.readFileSync(path.join(ROOT, 'bin/proofkv.js'), 'utf8'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
  // TypeScript-only syntax: it runs only through tsx.
  write('server/cli.ts', "export async function main(argv: string[]): Promise<void> {\n  const which: string = 'sources';\n  console.log(which, argv.slice(2).join(' '));\n}\n");
  write('dist/server/cli.js', "export async function main(argv) {\n  console.log('dist', argv.slice(2).join(' '));\n}\n");
  const bin = path.join(pkg, 'bin/proofkv.js');

  it('in a checkout (sources present) it runs the sources, never dist/', async () => {
    const r = await run(process.execPath, [bin, 'get', 'k'], pkg);
    expect(r).toMatchObject({ code: 0, stdout: 'sources get k\n' });
  });

  it('in an installed package (no sources) it runs dist/', async () => {
    fs.rmSync(path.join(pkg, 'server'), { recursive: true });
    const r = await run(process.execPath, [bin, 'get', 'k'], pkg);
    expect(r).toMatchObject({ code: 0, stdout: 'dist get k\n' });
  });

  it('with neither, it says so and exits 1', async () => {
    fs.rmSync(path.join(pkg, 'dist'), { recursive: true });
    const r = await run(process.execPath, [bin, 'get', 'k'], pkg);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('neither the sources nor dist/');
  });
});
