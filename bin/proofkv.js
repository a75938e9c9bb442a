#!/usr/bin/env node
// The `proofkv` command: runs dist/server/cli.js when the package is built, otherwise
// server/cli.ts through tsx in a child process (signals and the exit code are passed through).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = fileURLToPath(new URL('../dist/server/cli.js', import.meta.url));

if (existsSync(built)) {
  const { main } = await import(pathToFileURL(built).href);
  await main(process.argv);
} else {
  let tsx;
  try {
    tsx = import.meta.resolve('tsx');
  } catch {
    process.stderr.write('proofkv: not built (npm run build) and tsx is not installed\n');
    process.exit(1);
  }
  const source = fileURLToPath(new URL('../server/cli.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', tsx, source, ...process.argv.slice(2)], { stdio: 'inherit', cwd: process.cwd() });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => child.kill(sig));
  }
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 128 : 1);
  });
  child.on('error', (err) => {
    process.stderr.write(`proofkv: ${err.message} (${root})\n`);
    process.exitCode = 1;
  });
}
