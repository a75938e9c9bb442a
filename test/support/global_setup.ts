/**
 * Vitest global setup: compiles the sources for the child processes tests start (see
 * test/support/cli_build.ts) into a fresh directory under `node_modules/.cache` — inside the
 * checkout, so that the compiled files find its `node_modules` — and removes it after the run.
 * Each run has its own directory: two runs in one checkout do not share one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';
import { CHILD_SCRIPTS, SOURCE_DIRS, TEST_BUILD_ENV } from './cli_build.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PREFIX = 'proofkv-test-build-';

function sources(dir: string, out: string[]): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

export default async function setup(): Promise<() => void> {
  const cache = path.join(ROOT, 'node_modules/.cache');
  fs.mkdirSync(cache, { recursive: true });
  // Trees of runs that were killed (no teardown): gone after a day.
  for (const name of fs.readdirSync(cache)) {
    const old = path.join(cache, name);
    if (name.startsWith(PREFIX) && Date.now() - fs.statSync(old).mtimeMs > 24 * 3600_000) fs.rmSync(old, { recursive: true, force: true });
  }
  // The real path: `node_modules` may be a link (a worktree sharing a checkout's), and the CLI runs
  // its main only when `process.argv[1]` is the path its own `import.meta.url` names.
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(cache, PREFIX)));
  const entryPoints = [...SOURCE_DIRS.flatMap((d) => sources(path.join(ROOT, d), [])), ...CHILD_SCRIPTS.map((f) => path.join(ROOT, f))];
  // File by file, as tsx transforms them: no bundling, the same relative imports.
  await build({ entryPoints, outdir: dir, outbase: ROOT, bundle: false, format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' });
  // What the compiled files read beside them, as in dist/: the package's name and version, and the
  // explorer's sources (a checkout builds the explorer from them at start).
  fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(ROOT, 'explorer'), path.join(dir, 'explorer'));
  process.env[TEST_BUILD_ENV] = dir;
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
