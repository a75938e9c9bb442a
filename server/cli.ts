/**
 * The `proofkv` command line. {@link buildProgram} registers `serve` (an embedded single node) and
 * then the client-side commands from `cli_commands.ts`; {@link main} runs it.
 *
 * ```
 * proofkv serve --data ./data --host 127.0.0.1 --port 7070 [--config proofkv.json]
 *               [--checkpoint-interval 1000] [--checkpoint-writes 10000] [--log-level info] [--raft]
 * ```
 * `--raft` (off by default) routes writes through a one-member Raft group (`<data>/raft`, see
 * `server/raft_write_path.ts`).
 * `--port 0` picks a free port; the start-up banner on stdout says which (`listening on <url>`).
 * Logs are pino JSON lines on stderr.
 * @module
 */
import * as fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { toHex } from '../proofs/bytes.js';
import { toBase64Url } from './codec.js';
import { registerBackupCommands } from './cli_backup.js';
import { registerClientCommands } from './cli_commands.js';
import { ConfigError, DEFAULTS, LOG_LEVELS, resolveConfig, type ServeConfig, type ServeFlags } from './config.js';
import { ProofNode, softwareVersion, type NodeOptions } from './node.js';

/** Exit codes of `serve`. */
export const EXIT = { ok: 0, failed: 1, config: 2 } as const;

function logger(level: string): Logger {
  return pino({ level, base: { name: 'proofkv' } }, pino.destination({ dest: 2, sync: true }));
}

/** Reads the PEM files of `tls` (a missing file is a {@link ConfigError}). */
function readTls(tls: ServeConfig['tls']): NodeOptions['tls'] {
  if (!tls) return undefined;
  const read = (what: string, f: string) => {
    try {
      return fs.readFileSync(f);
    } catch (err) {
      throw new ConfigError(`cannot read ${what} ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  return { cert: read('tls-cert', tls.cert), key: read('tls-key', tls.key), ca: tls.clientCa === undefined ? undefined : read('tls-client-ca', tls.clientCa) };
}

/** Runs `serve` until SIGTERM/SIGINT; resolves when the node stopped. */
export async function serve(flags: ServeFlags & { raft?: boolean }, explicit: ReadonlySet<string>): Promise<void> {
  let cfg;
  try {
    cfg = resolveConfig(flags, process.env, explicit);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`proofkv: ${err.message}\n`);
      process.exitCode = EXIT.config;
      return;
    }
    throw err;
  }
  const log = logger(cfg.logLevel);
  if (cfg.tokens.length === 0) {
    log.warn({ host: cfg.host }, 'no tokens configured: listening on loopback only and treating every request as admin');
  }
  let node: ProofNode;
  try {
    node = await ProofNode.start({
      dataDir: cfg.dataDir,
      host: cfg.host,
      port: cfg.port,
      tokens: cfg.tokens,
      checkpointIntervalMs: cfg.checkpointIntervalMs,
      checkpointWrites: cfg.checkpointWrites,
      logger: log,
      db: { ...(cfg.maxValueSize === undefined ? {} : { maxValueSize: cfg.maxValueSize }), sync: cfg.sync, rotateKey: cfg.rotateKey },
      raft: flags.raft === true,
      edge: cfg.edge,
      tls: readTls(cfg.tls),
    });
  } catch (err) {
    log.fatal({ err }, 'could not start');
    process.stderr.write(`proofkv: could not start: ${(err as Error).message}\n`);
    process.exitCode = EXIT.failed;
    return;
  }
  const pk = node.db.publicKey();
  process.stdout.write(
    [
      `ProofKV ${softwareVersion()} listening on ${node.url}`,
      `  node id     ${node.nodeId}`,
      `  public key  ${toHex(pk)} (hex)`,
      `  public key  ${toBase64Url(pk)} (base64url)`,
      `  data        ${cfg.dataDir}`,
      `  write path  ${flags.raft === true ? 'raft (one-member group)' : 'local'}`,
      `  auth        ${cfg.tokens.length === 0 ? 'none (loopback only, every request is admin)' : `${cfg.tokens.length} token(s)`}`,
      '',
    ].join('\n'),
  );
  log.info({ url: node.url, nodeId: node.nodeId, dataDir: cfg.dataDir }, 'listening');

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      node.shutdown(signal).then(
        () => {
          process.exitCode = EXIT.ok;
          resolve();
        },
        (err: unknown) => {
          log.fatal({ err }, 'shutdown failed');
          process.exitCode = EXIT.failed;
          resolve();
        },
      );
    };
    // Repeated signals while stopping are harmless: shutdown is idempotent.
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/** The commander program: `serve`, then the client commands. */
export function buildProgram(): Command {
  const program = new Command('proofkv')
    .description('ProofKV: a verifiable, versioned key-value database')
    .version(softwareVersion());
  program
    .command('serve')
    .description('run a single node (embedded database, HTTP API)')
    .option('--data <dir>', 'data directory', DEFAULTS.data)
    .option('--host <host>', 'listen address (loopback only without tokens)', DEFAULTS.host)
    .option('--port <port>', 'listen port; 0 picks a free one', String(DEFAULTS.port))
    .option('--config <file>', 'JSON config file (tokens and any of the settings below)')
    .option('--checkpoint-interval <ms>', 'checkpoint every N ms when there were writes (0: off)', String(DEFAULTS.checkpointInterval))
    .option('--checkpoint-writes <n>', 'checkpoint after N write operations (0: off)', String(DEFAULTS.checkpointWrites))
    .addOption(new Option('--log-level <level>', 'log level (env PROOFKV_LOG_LEVEL)').choices(LOG_LEVELS as unknown as string[]))
    .option('--raft', 'route writes through a one-member Raft group in <data>/raft (experimental; default off)')
    .option('--sync', 'fdatasync the journal before acknowledging each write (default; survives power loss)')
    .option('--no-sync', 'acknowledge writes once the OS has them (survives a process crash, not a power loss)')
    .option('--max-connections <n>', 'open connections at most (default: from the file-descriptor limit, at most 1024)')
    .option('--headers-timeout <ms>', 'time to send a request head; also drops silent connections', String(DEFAULTS.headersTimeout))
    .option('--request-timeout <ms>', 'time to send a whole request', String(DEFAULTS.requestTimeout))
    .option('--keep-alive-timeout <ms>', 'idle time of a keep-alive connection', String(DEFAULTS.keepAliveTimeout))
    .option('--max-requests-per-socket <n>', 'requests per connection before it is closed (0: no limit)', String(DEFAULTS.maxRequestsPerSocket))
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', 'require client certificates signed by this PEM CA')
    .option('--allow-insecure-http', 'allow plain HTTP on a non-loopback address (e.g. behind a TLS proxy)')
    .option('--rotate-key', 'start with a new node key although a checkpoint log exists (a logged, signed key rotation)')
    .action(async (flags: ServeFlags & { raft?: boolean }, cmd: Command) => {
      const explicit = new Set(Object.keys(flags).filter((k) => cmd.getOptionValueSource(k) === 'cli'));
      await serve(flags, explicit);
    });
  registerClientCommands(program);
  registerBackupCommands(program);
  return program;
}

/** Parses `argv` (as `process.argv`) and runs the chosen command. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await buildProgram().parseAsync(argv);
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  main().catch((err: unknown) => {
    process.stderr.write(`proofkv: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = EXIT.failed;
  });
}
