/**
 * The client commands start without the server's and the engine's modules: `serve` loads the
 * node (`server/node.ts`: express, prom-client, the engine, Raft and its classic-level storage),
 * `backup`/`restore` the engine's backup module, each when it runs (server/cli.ts,
 * server/cli_backup.ts). A `proofkv get` then starts in about half the time (docs/testing.md §
 * Time). The test runs the compiled command with a module hook that records every module it
 * loads, and fails when a change at the top of a command's imports pulls them in again.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cliArgv } from '../support/cli_build.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-cli-startup-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Registers load hooks that append every loaded module's URL to the file `PROOFKV_LOADED`. */
const REGISTER = `
import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(path.join(work, 'hooks.mjs')).href)});
`;
const HOOKS = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.PROOFKV_LOADED, url + '\\n');
  return next(url, context);
}
`;

/** The modules `proofkv <args>` loads (URLs), and its exit code. */
function loaded(args: string[]): Promise<{ urls: string[]; code: number | null; stderr: string }> {
  fs.writeFileSync(path.join(work, 'hooks.mjs'), HOOKS);
  fs.writeFileSync(path.join(work, 'register.mjs'), REGISTER);
  const out = path.join(work, `loaded-${args[0]}.txt`);
  fs.rmSync(out, { force: true });
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', pathToFileURL(path.join(work, 'register.mjs')).href, ...cliArgv(), ...args], { env: { ...process.env, HOME: work, PROOFKV_LOADED: out }, timeout: 60_000 }, (err, _stdout, stderr) => {
      const urls = fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean) : [];
      resolve({ urls, code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
}

/** Modules only `serve` (or `backup`/`restore`) needs. */
const SERVER_ONLY = [/\/server\/node\.(js|ts)$/, /\/server\/app\.(js|ts)$/, /\/src\/db\/db\.(js|ts)$/, /\/src\/backup\/backup\.(js|ts)$/, /\/src\/raft\/level_storage\.(js|ts)$/, /\/node_modules\/(express|prom-client|classic-level|pino)\//];

describe('the command line starts without the server', () => {
  it('a client command (get against no server) loads none of the server\'s or the engine\'s modules', async () => {
    const r = await loaded(['get', 'k', '--endpoint', 'http://127.0.0.1:9', '--timeout', '1000']);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.urls.some((u) => /\/server\/cli\.(js|ts)$/.test(u)), 'the hook saw the command load').toBe(true);
    expect(r.urls.some((u) => /\/client-sdk\//.test(u))).toBe(true);
    expect(r.urls.filter((u) => SERVER_ONLY.some((re) => re.test(u)))).toEqual([]);
  });

  it('`serve --help` and `backup --help` load none of them either; the hook sees them when a command needs them', async () => {
    for (const cmd of ['serve', 'backup', 'cluster']) {
      const r = await loaded([cmd, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.urls.filter((u) => SERVER_ONLY.some((re) => re.test(u))), cmd).toEqual([]);
    }
    // `backup` of a directory that is not a database: the backup module was loaded (and refused it).
    const r = await loaded(['backup', '--data', path.join(work, 'none'), '--out', path.join(work, 'out')]);
    expect(r.code).toBe(1);
    expect(r.urls.some((u) => /\/src\/backup\/backup\.(js|ts)$/.test(u))).toBe(true);
  });
});
