/**
 * Extension point for the client-side CLI commands (`get`, `put`, `checkpoint`, `import`, …),
 * owned by the client SDK. `server/cli.ts` calls {@link registerClientCommands} once, after
 * registering `serve`, on the same commander program.
 * @module
 */
import type { Command } from 'commander';

/**
 * Registers the client-side subcommands on `program`. The server registers none of its own here;
 * client commands are added by the client SDK.
 */
export function registerClientCommands(program: Command): void {
  void program;
}
