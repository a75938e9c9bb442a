/**
 * The `proofkv` command line. {@link buildProgram} registers `serve` (an embedded single node) and
 * then the client-side commands from `cli_commands.ts`; {@link main} runs it.
 *
 * ```
 * proofkv serve --data ./data --host 127.0.0.1 --port 7070 [--config proofkv.json]
 *               [--checkpoint-interval 1000] [--checkpoint-writes 10000] [--log-level info]
 *               [--sync | --no-sync] [--cluster cluster.json --node-id N --cluster-secret-file F]
 *               [--join] [--peer-via ID=URL ...]
 * ```
 * Every node writes through a Raft group whose log (`<data>/raft`) is the write-ahead log (see
 * `docs/replication.md`): one member without `--cluster`. `--sync` (default) fdatasyncs that log
 * before a write is acknowledged, `--no-sync` does not. A data directory written by the local
 * path of earlier versions is taken over at its first start. Hidden flags: `--raft` (accepted,
 * does nothing: it is the default), `--local-write-path` (the engine's own journal instead of the
 * Raft log; only for `bench/raft.ts`'s reference column).
 * `--port 0` picks a free port; the start-up banner on stdout says which (`listening on <url>`).
 * Logs are pino JSON lines on stderr. A port that cannot be listened on is reported before the data
 * directory (and its `NODE_KEY`) is created; a start-up failure is one line on stderr and a log
 * record with the message and code, never a stack trace.
 * @module
 */
import * as fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createServer } from 'node:net';
import { Command, CommanderError, Option } from 'commander';
import type { Logger } from 'pino';
import { toHex } from '../proofs/bytes.js';
import { toBase64Url } from './codec.js';
import { CLIENT_EXIT, oneLine, reportError } from './cli/common.js';
import { registerBackupCommands } from './cli_backup.js';
import { registerClusterCommands } from './cli/cluster.js';
import { registerClientCommands } from './cli_commands.js';
import { addNoteServeOptions, noteOptionsOf } from './cli/note.js';
import { formatVerifierKey } from '../proofs/note.js';
import { ConfigError, DEFAULTS, LOG_LEVELS, resolveConfig, type ServeConfig, type ServeFlags } from './config.js';
import type { ProofNode, NodeOptions } from './node.js';
import { softwareVersion } from './version.js';
import { memberOf, parsePeerVia, readClusterConfig, readClusterSecrets } from './cluster_config.js';
import { isLoopbackHost } from './auth.js';

/** Exit codes of `serve`. */
export const EXIT = { ok: 0, failed: 1, config: 2 } as const;

async function logger(level: string): Promise<Logger> {
  const { pino } = await import('pino');
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
export async function serve(flags: ServeFlags & { origin?: string; witness?: string[] } & { localWritePath?: boolean; join?: boolean }, explicit: ReadonlySet<string>): Promise<void> {
  let cfg;
  let cluster: NodeOptions['cluster'];
  try {
    cfg = resolveConfig(flags, process.env, explicit);
    if (cfg.cluster) {
      const secrets = readClusterSecrets(cfg.cluster.secretFile);
      cluster = {
        config: readClusterConfig(cfg.cluster.file),
        nodeId: cfg.cluster.nodeId,
        secret: secrets.secret,
        acceptSecrets: secrets.accept,
        join: flags.join === true,
        peerVia: parsePeerVia(cfg.cluster.peerVia, cfg.cluster.nodeId),
      };
      // The client listener is where cluster.json says clients find this member.
      const client = new URL(memberOf(cluster.config, cluster.nodeId).clientUrl);
      if (!explicit.has('host')) cfg.host = client.hostname.replace(/^\[(.*)\]$/, '$1');
      if (!explicit.has('port')) cfg.port = Number(client.port || (client.protocol === 'https:' ? 443 : 80));
      if (cfg.tokens.length === 0 && !isLoopbackHost(cfg.host)) {
        throw new ConfigError(`refusing to listen on ${cfg.host} (this member's clientUrl) without tokens: every request would be admin`);
      }
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`proofkv: ${err.message}\n`);
      process.exitCode = EXIT.config;
      return;
    }
    throw err;
  }
  const log = await logger(cfg.logLevel);
  // Before anything touches the data directory: a port in use must not leave a fresh data
  // directory and node key behind.
  const busy = await portInUse(cfg.host, cfg.port);
  if (busy !== undefined) {
    process.stderr.write(`proofkv: could not start: ${busy}\n`);
    process.exitCode = EXIT.failed;
    return;
  }
  if (cfg.tokens.length === 0) {
    log.warn({ host: cfg.host }, 'no tokens configured: listening on loopback only and treating every request as admin');
  }
  let node: ProofNode;
  try {
    // Loaded here, not at the top: the client commands start without the server's modules.
    const { ProofNode } = await import('./node.js');
    node = await ProofNode.start({
      dataDir: cfg.dataDir,
      host: cfg.host,
      port: cfg.port,
      tokens: cfg.tokens,
      checkpointIntervalMs: cfg.checkpointIntervalMs,
      checkpointWrites: cfg.checkpointWrites,
      logger: log,
      db: {
        ...(cfg.maxValueSize === undefined ? {} : { maxValueSize: cfg.maxValueSize }),
        ...(cfg.maxOpenTables === 0 ? {} : { maxOpenTables: cfg.maxOpenTables }),
        sync: cfg.sync,
        rotateKey: cfg.rotateKey,
      },
      logCommands: cfg.logCommands,
      ...(flags.localWritePath === true ? { localWritePath: true } : {}),
      ...(cluster ? { cluster } : {}),
      notes: noteOptionsOf({ origin: cfg.origin, witness: cfg.witnesses }),
      edge: cfg.edge,
      tls: readTls(cfg.tls),
    });
  } catch (err) {
    // The message and code only: a start-up failure is the operator's to fix, not a bug to trace.
    const e = err as { message?: string; code?: unknown };
    log.fatal({ error: e?.message ?? String(err), code: typeof e?.code === 'string' ? e.code : undefined }, 'could not start');
    process.stderr.write(`proofkv: could not start: ${oneLine(e?.message ?? String(err))}\n`);
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
      `  note key    ${node.notes ? formatVerifierKey(node.notes.verifierKey()) : 'none'}`,
      `  data        ${cfg.dataDir}`,
      `  write path  ${cluster ? `raft (member ${cluster.nodeId} of cluster ${cluster.config.clusterId}, ${cluster.config.members.length} members; peers on ${memberOf(cluster.config, cluster.nodeId).peerUrl})` : flags.localWritePath === true ? 'local (reference only: --local-write-path)' : 'raft (one-member group)'}`,
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
    // A cluster member reads its secret file again on SIGHUP: the live step of a secret rotation
    // (docs/cluster.md § Rotating the cluster secret). A file that cannot be used changes nothing.
    const secretFile = cfg.cluster?.secretFile;
    if (secretFile !== undefined) {
      process.on('SIGHUP', () => {
        try {
          const s = readClusterSecrets(secretFile);
          node.setClusterSecrets(s.secret, s.accept);
          log.info({ event: 'cluster_secret_reloaded', accepted: 1 + s.accept.length }, `cluster secret reloaded from ${secretFile}: sending with its first secret, accepting ${1 + s.accept.length}`);
        } catch (err) {
          log.error({ event: 'cluster_secret_reload_failed', error: (err as Error).message }, 'cluster secret not reloaded; the previous secrets stay in force');
        }
      });
    }
  });
}

/**
 * Whether `host:port` is taken: listens on it once and closes. Returns why it cannot be used
 * (in use, not permitted, no such address), or undefined when it is free or `port` is 0. A probe,
 * not a reservation: a port taken between the probe and the node's own listen still fails there,
 * after the data directory was opened.
 */
export async function portInUse(host: string, port: number): Promise<string | undefined> {
  if (port === 0) return undefined;
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'is already in use' : err.code === 'EACCES' ? 'is not permitted' : err.code === 'EADDRNOTAVAIL' ? 'is not an address of this host' : `cannot be used (${err.code ?? err.message})`;
      resolve(`${host}:${port} ${why}`);
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(undefined)));
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
    // Writes always go through the Raft group now: --raft stays accepted (and does nothing) for old
    // scripts; --local-write-path is the pre-Raft path, kept for bench/raft.ts's reference column.
    .addOption(new Option('--raft', 'no effect: writes always go through the Raft group').hideHelp())
    .addOption(new Option('--local-write-path', "apply writes through the engine's own journal, not the Raft log (benchmark reference only)").hideHelp())
    .option('--sync', 'fdatasync the write-ahead log (the Raft log) before acknowledging each write (default; survives power loss)')
    .option('--no-sync', 'acknowledge writes once the OS has them (survives a process crash, not a power loss)')
    .addOption(new Option('--log-commands <format>', "form of the put/delete commands this node proposes: binary (default), or cbor while a rolling upgrade still runs members that decode only CBOR").choices(['binary', 'cbor']))
    .option('--max-connections <n>', 'open connections at most (default: from the file-descriptor limit, at most 1024)')
    .option('--max-open-tables <n>', 'table files open at once (default: the file-descriptor limit less connections less 64, at most 1000)')
    .option('--headers-timeout <ms>', 'time to send a request head; also drops silent connections', String(DEFAULTS.headersTimeout))
    .option('--request-timeout <ms>', 'time to send a whole request', String(DEFAULTS.requestTimeout))
    .option('--keep-alive-timeout <ms>', 'idle time of a keep-alive connection', String(DEFAULTS.keepAliveTimeout))
    .option('--max-requests-per-socket <n>', 'requests per connection before it is closed (0: no limit)', String(DEFAULTS.maxRequestsPerSocket))
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', 'require client certificates signed by this PEM CA')
    .option('--allow-insecure-http', 'allow plain HTTP on a non-loopback address (e.g. behind a TLS proxy)')
    .option('--rotate-key', 'start with a new node key although a checkpoint log exists (a logged, signed key rotation)')
    .option('--cluster <file>', 'cluster.json of the cluster this node is a member of (made by `proofkv cluster init`; docs/cluster.md)')
    .option('--node-id <id>', "this node's member id in --cluster")
    .option('--cluster-secret-file <file>', 'the cluster secret shared by the members (mode 0600)')
    .option('--join', 'join a running cluster as a member added at runtime (`proofkv cluster add`, then `cluster add-member`): never bootstrap, learn the log from the leader (and, with an empty data directory, the engine shape from the other members first)')
    .option('--peer-via <id=url>', "dial member ID at URL instead of its registered peerUrl (a proxy, a tunnel, NAT; nothing replicated changes); repeatable", collectPeerVia);
  addNoteServeOptions(program.commands[program.commands.length - 1])
    .action(async (flags: ServeFlags & { localWritePath?: boolean; join?: boolean; origin?: string; witness?: string[] }, cmd: Command) => {
      const explicit = new Set(Object.keys(flags).filter((k) => cmd.getOptionValueSource(k) === 'cli'));
      await serve(flags, explicit);
    });
  registerClientCommands(program);
  registerBackupCommands(program);
  registerClusterCommands(program);
  return program;
}

/**
 * Parses `argv` (as `process.argv`) and runs the chosen command. A usage error commander finds
 * (unknown option, missing argument) is one line on stderr, or with `--json` an error object on
 * stdout like every other error.
 */
export async function main(argv: string[] = process.argv): Promise<void> {
  const json = argv.slice(2).includes('--json');
  // `proofkv scan | head`: a closed pipe ends the command quietly, as it does for other tools.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? 0);
  });
  const program = buildProgram();
  const quiet = (cmd: Command) => {
    cmd.exitOverride();
    cmd.configureOutput({ writeErr: (s) => (json ? undefined : process.stderr.write(s)) });
    for (const sub of cmd.commands) quiet(sub);
  };
  quiet(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return;
      if (json) reportError({ code: 'USAGE', status: null, detail: err.message.replace(/^error: /, ''), extra: {}, exit: CLIENT_EXIT.error }, true);
      process.exitCode = CLIENT_EXIT.error;
      return;
    }
    throw err;
  }
}

/** `--peer-via` is repeatable: each occurrence adds one `ID=URL` entry. */
const collectPeerVia = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  main().catch((err: unknown) => {
    process.stderr.write(`proofkv: ${oneLine((err as Error)?.message ?? String(err))}\n`);
    process.exitCode = EXIT.failed;
  });
}
