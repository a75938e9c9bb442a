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

/** The script a child runs: the compiled `server/cli.js`, or undefined to run the sources through tsx. */
function compiledCli(): string | undefined {
  const dir = process.env[TEST_BUILD_ENV];
  if (!dir) return undefined;
  const cli = path.join(dir, 'server/cli.js');
  if (!existsSync(cli)) throw new Error(`${TEST_BUILD_ENV}=${dir} holds no server/cli.js`);
  return cli;
}

/** `node` arguments that run the `proofkv` command: append the command's own arguments. */
export function cliArgv(): string[] {
  const cli = compiledCli();
  return cli ? [cli] : ['--import', 'tsx', path.join(ROOT, 'server/cli.ts')];
}
