#!/usr/bin/env node
// The `proofkv` command, in one process (signals reach the server directly).
//
// Which code runs:
// - in a checkout (server/cli.ts sits next to bin/): the TypeScript sources, through tsx's register
//   API; never dist/, which a checkout may hold stale from an earlier build;
// - in an installed package (no sources ship): dist/server/cli.js.
//
// Started by npm (`npm start`, `npm run proofkv`, `npx proofkv`), npm runs `sh -c <command>` and
// forwards SIGTERM/SIGINT only to that shell. dash (Debian's sh) neither execs the command nor
// forwards signals, so the shell dies and this process would be orphaned, keeping the port and the
// data directory's lock. So under npm this process follows its launcher: when its parent goes away
// (it is re-parented), it sends itself SIGTERM, the signal npm meant for it.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const PARENT_POLL_MS = 200;

/** Under npm (which sets npm_lifecycle_event), SIGTERM to ourselves once the parent is gone. */
function followLauncher() {
  const parent = process.ppid;
  if (process.env.npm_lifecycle_event === undefined || parent <= 1) return;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, PARENT_POLL_MS);
  timer.unref();
}

const source = fileURLToPath(new URL('../server/cli.ts', import.meta.url));
const built = fileURLToPath(new URL('../dist/server/cli.js', import.meta.url));

followLauncher();
let entry;
if (existsSync(source)) {
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    process.stderr.write('proofkv: this is a checkout, which runs the TypeScript sources: install the dev dependencies (npm ci)\n');
    process.exit(1);
  }
  tsx.register();
  entry = pathToFileURL(source).href;
} else if (existsSync(built)) {
  entry = pathToFileURL(built).href;
} else {
  process.stderr.write(`proofkv: neither the sources nor dist/ are present next to ${fileURLToPath(import.meta.url)}\n`);
  process.exit(1);
}
const { main } = await import(entry);
await main(process.argv).catch((err) => {
  // One line, as the CLI reports every error (its commands report theirs themselves).
  process.stderr.write(`proofkv: ${String(err?.message ?? err).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exitCode = 1;
});
