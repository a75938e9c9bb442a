/**
 * How tests start the `proofkv` command in a child process. The suite's global setup
 * (`test/support/global_setup.ts`) compiles the sources once per run with esbuild, file by file
 * — what tsx does in memory at every start — into a directory laid out as `dist/` is, and names it
 * in {@link TEST_BUILD_ENV}. A child then starts from plain JavaScript: about 1 s of CPU less per
 * process on the 2-core test machine than `node --import tsx server/cli.ts`, and the suite starts
 * a few hundred. Without the variable (a helper run outside vitest) the sources run through tsx.
 * The launcher `bin/proofkv.js` itself is tested by test/package/launcher.test.ts and pack.test.ts.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The environment variable naming the compiled tree (set by the global setup). */
export const TEST_BUILD_ENV = 'PROOFKV_TEST_BUILD';

/** The folders of sources the command imports (as in tsconfig.build.json). */
export const SOURCE_DIRS = ['src', 'proofs', 'server', 'client-sdk', 'node-entry', 'witness'];

/** Test scripts that run as child processes, compiled with the sources. */
export const CHILD_SCRIPTS = ['test/engine/crash-child.ts'];

/** `node` arguments that run `script` (a path from the checkout's root, `.ts`): compiled, or through tsx. */
export function scriptArgv(script: string): string[] {
  const dir = process.env[TEST_BUILD_ENV];
  if (!dir) return ['--import', 'tsx', path.join(ROOT, script)];
  const js = path.join(dir, script.replace(/\.ts$/, '.js'));
  if (!existsSync(js)) throw new Error(`${TEST_BUILD_ENV}=${dir} holds no ${path.relative(dir, js)}`);
  return [js];
}

/** `node` arguments that run the `proofkv` command: append the command's own arguments. */
export function cliArgv(): string[] {
  return scriptArgv('server/cli.ts');
}
