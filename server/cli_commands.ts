/**
 * The client-side CLI commands, built on `proofkv/client`; `server/cli.ts` calls
 * {@link registerClientCommands} once, after registering `serve`. The commands live in
 * `server/cli/`, one file per family: `kv.ts` (`put`, `get`, `del`, `history`, `scan`),
 * `proof.ts` (`proof`, `verify`, `checkpoint`), `transfer.ts` (`import`, `export`), `node.ts`
 * (`status`, `trust show|reset`), and `common.ts` (options, parsing, output, errors).
 *
 * ```
 * proofkv get greeting                      # verified read, as of the latest checkpoint
 * proofkv get greeting --no-verify          # plain read
 * proofkv put greeting hello [--verify]     # --verify waits until a checkpoint proves the write
 * proofkv history greeting --min 2
 * proofkv scan --prefix user:               # plain (unverified) scan
 * proofkv proof greeting --out p.json       # save a proof; `proofkv verify p.json` checks it offline
 * proofkv checkpoint [--create]
 * proofkv export --out data.jsonl           # JSON lines that `import` reads back
 * proofkv import data.jsonl|data.csv        # validated whole, then atomic batches
 * proofkv status                            # node, leader, last checkpoint, trusted state
 * proofkv trust show|reset                  # the trusted-state file
 * proofkv note [--size N] [--verifier-key K] # the checkpoint as a C2SP signed note, verified
 * proofkv witness --name W --log-key K       # run a tlog-witness (server/cli/witness.ts)
 * ```
 * Every command takes `--endpoint` (repeatable; env `PROOFKV_ENDPOINT`, default
 * `http://127.0.0.1:7070`), `--token` (env `PROOFKV_TOKEN`), `--json`, and trust options:
 * `--public-key <hex|base64url|base64>` (repeatable) with `--quorum`, or trust on first use; the
 * trusted state persists in `--state` (env `PROOFKV_STATE`, default `~/.proofkv/trust.json`).
 *
 * Exit codes: 0 success, 1 error (HTTP, network, usage), 3 verification failure, 4 not found.
 * @module
 */
import type { Command } from 'commander';
import { registerKeyCommands } from './cli/kv.js';
import { registerNodeCommands } from './cli/node.js';
import { registerNoteCommand } from './cli/note.js';
import { registerWitnessCommand } from './cli/witness.js';
import { registerProofCommands } from './cli/proof.js';
import { registerTransferCommands } from './cli/transfer.js';

export { CLIENT_EXIT, DEFAULT_ENDPOINT, DEFAULT_STATE_FILE } from './cli/common.js';
export { parseCsvLine } from './cli/transfer.js';

/**
 * Registers the client-side subcommands (`put`, `get`, `del`, `history`, `scan`, `proof`,
 * `verify`, `checkpoint`, `import`, `export`, `status`, `trust`) on `program`.
 */
export function registerClientCommands(program: Command): void {
  // `--version <n>` of put/get must reach the subcommand, not the program's `-V, --version`.
  program.enablePositionalOptions();
  registerKeyCommands(program);
  registerProofCommands(program);
  registerTransferCommands(program);
  registerNodeCommands(program);
  registerNoteCommand(program);
  registerWitnessCommand(program);
}
