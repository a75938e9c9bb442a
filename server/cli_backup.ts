/**
 * `proofkv backup` and `proofkv restore` (see `src/backup/backup.ts`):
 *
 * ```
 * proofkv backup  --data ./data --out ./backup-2026-11-29 [--public-key <hex>]
 * proofkv restore --from ./backup-2026-11-29 --data ./data2 [--node-key ./data/NODE_KEY] [--public-key <hex>]
 * ```
 * `backup` runs beside a serving node (same machine, its data directory) and copies the latest
 * checkpoint; both verify before they succeed and print what they hold as JSON. Exit 0 on
 * success, 1 on failure (the message on stderr).
 * @module
 */
import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { BackupInfo } from '../src/backup/backup.js';

/** The engine's backup module, loaded when a command runs (the other commands start without the engine). */
const backup = () => import('../src/backup/backup.js');

function publicKeyArg(s: string | undefined): Uint8Array | undefined {
  if (s === undefined) return undefined;
  const b = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, 'hex') : Buffer.from(s, 'base64url');
  if (b.length !== 32) throw new Error('--public-key must be 32 bytes, hex or base64url');
  return new Uint8Array(b);
}

async function run(f: () => Promise<BackupInfo>): Promise<void> {
  try {
    process.stdout.write(`${JSON.stringify(await f(), null, 2)}\n`);
  } catch (err) {
    process.stderr.write(`proofkv: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

/** Registers `backup` and `restore` on `program`. */
export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description('copy the latest checkpoint of a data directory (a node may be serving it) and verify it')
    .requiredOption('--data <dir>', 'data directory to back up')
    .requiredOption('--out <dir>', 'backup directory to create')
    .option('--public-key <key>', 'node public key the checkpoint must be signed by (default: the data directory\'s NODE_KEY)')
    .action((o: { data: string; out: string; publicKey?: string }) => run(async () => (await backup()).backupDatabase(o.data, o.out, { publicKey: publicKeyArg(o.publicKey) })));
  program
    .command('restore')
    .description('verify a backup and restore it into an empty data directory')
    .requiredOption('--from <dir>', 'backup directory')
    .requiredOption('--data <dir>', 'data directory to create (missing or empty)')
    .option('--node-key <file>', 'the node key to install as NODE_KEY (else serve needs --rotate-key)')
    .option('--public-key <key>', 'node public key the checkpoint must be signed by')
    .action((o: { from: string; data: string; nodeKey?: string; publicKey?: string }) =>
      run(async () =>
        (await backup()).restoreDatabase(o.from, o.data, {
          publicKey: publicKeyArg(o.publicKey),
          nodeKey: o.nodeKey === undefined ? undefined : new Uint8Array(fs.readFileSync(o.nodeKey)),
        }),
      ),
    );
}
