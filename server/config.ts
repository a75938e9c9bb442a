/**
 * `proofkv serve` configuration: defaults, an optional JSON config file (`--config`), environment
 * (`PROOFKV_TOKENS`, `PROOFKV_LOG_LEVEL`) and command-line flags, in increasing precedence.
 * Validated up front; a bad setting is a {@link ConfigError} and nothing starts.
 *
 * Config file (every field optional; unknown fields are rejected):
 * ```json
 * { "tokens": [{ "token": "…", "role": "admin" }], "data": "./data", "host": "127.0.0.1",
 *   "port": 7070, "checkpointInterval": 1000, "checkpointWrites": 10000, "logLevel": "info",
 *   "maxValueSize": 1048576, "sync": true, "maxConnections": 1024, "maxOpenTables": 0, "headersTimeout": 10000,
 *   "requestTimeout": 60000, "keepAliveTimeout": 5000, "maxRequestsPerSocket": 0,
 *   "maxStreamInFlight": 1024, "maxStreamBufferedBytes": 8388608, "maxStreamInFlightBytes": 16777216, "maxStreamAnswerBytes": 536870912, "maxStreamRequestBytes": 268435456, "tlsCert": "cert.pem", "tlsKey": "key.pem", "tlsClientCa": "ca.pem", "allowInsecureHttp": false,
 *   "origin": "proofkv/prod", "witnesses": ["http://w1:7080=witness.example/w1+…"] }
 * ```
 * Limits, timeouts and the durability setting are described in `docs/operations.md`.
 * @module
 */
import * as fs from 'node:fs';
import { isLoopbackHost, isRole, parseTokenList, checkToken, type TokenEntry } from './auth.js';
import { LOG_COMMAND_FORMATS, type LogCommandFormat } from './command_codec.js';

/** A setting is invalid. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** pino levels accepted by `--log-level`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The resolved configuration of `serve`. */
export interface ServeConfig {
  dataDir: string;
  host: string;
  port: number;
  tokens: TokenEntry[];
  checkpointIntervalMs: number;
  checkpointWrites: number;
  logLevel: LogLevel;
  /** Database `maxValueSize`, when set. */
  maxValueSize?: number;
  /** fdatasync the journal before acknowledging a write (default true). */
  sync: boolean;
  /** The form of the `put`/`delete` commands this node proposes to the Raft log (default `binary`; `cbor` during a rolling upgrade). */
  logCommands: LogCommandFormat;
  /** Database `maxOpenTables` (0: derived from the file-descriptor limit less the connection limit). */
  maxOpenTables: number;
  /** Edge limits of the HTTP server. */
  edge: EdgeLimits;
  /** HTTPS material (PEM file paths), when serving TLS. */
  tls?: { cert: string; key: string; clientCa?: string };
  /** Allow a non-loopback plain-HTTP listener with tokens. */
  allowInsecureHttp: boolean;
  /** Start with a new node key even though a checkpoint log exists (a logged key rotation). */
  rotateKey: boolean;
  /** Checkpoint-note origin, when set (docs/witness.md). */
  origin?: string;
  /** Witnesses to push heads to, `<url>=<verifier key>` each, parsed by `serve`. */
  witnesses: string[];
  /** Membership of a cluster (`--cluster`, `--node-id`, `--cluster-secret-file`); absent: one node. */
  cluster?: {
    file: string;
    nodeId: number;
    secretFile: string;
    /** `--peer-via ID=URL` entries (or the file's `peerVia`), parsed by `serve` (`parsePeerVia`). */
    peerVia: string[];
  };
}

/** Resource limits of the HTTP server (`docs/operations.md`). */
export interface EdgeLimits {
  /** Open connections; more are closed at accept (0: the default, derived from the file-descriptor limit). */
  maxConnections: number;
  /** Time for a connection to send a complete request head, ms (also drops idle connections that send nothing). */
  headersTimeoutMs: number;
  /** Time for a whole request (head and body), ms. */
  requestTimeoutMs: number;
  /** Idle time of a keep-alive connection between requests, ms. */
  keepAliveTimeoutMs: number;
  /** Requests served on one connection before it is closed (0: no limit). */
  maxRequestsPerSocket: number;
  /** Requests in flight on one stream connection before the node stops reading it (docs/stream-protocol.md). */
  maxStreamInFlight: number;
  /** Unsent answer bytes of one stream connection before the node stops reading it. */
  maxStreamBufferedBytes: number;
  /** Request bytes in flight on one stream connection (the frames not answered yet) before the node stops reading it. */
  maxStreamInFlightBytes: number;
  /**
   * Answer bytes of all stream connections of the node: reads' reservations and answers not yet
   * handed to the kernel (docs/stream-protocol.md § Bounds). A read past it waits its turn.
   */
  maxStreamAnswerBytes: number;
  /** Request bytes in flight on all stream connections of the node; a frame past it waits, unread, for its turn. */
  maxStreamRequestBytes: number;
}

/** Defaults of `serve`. */
export const DEFAULTS = {
  data: './data',
  host: '127.0.0.1',
  port: 7070,
  checkpointInterval: 1000,
  checkpointWrites: 10000,
  logLevel: 'info' as LogLevel,
  sync: true,
  logCommands: 'binary' as LogCommandFormat,
  maxConnections: 0,
  maxOpenTables: 0,
  headersTimeout: 10_000,
  requestTimeout: 60_000,
  keepAliveTimeout: 5_000,
  maxRequestsPerSocket: 0,
  maxStreamInFlight: 1024,
  maxStreamBufferedBytes: 8 * 1024 * 1024,
  maxStreamInFlightBytes: 16 * 1024 * 1024,
  maxStreamAnswerBytes: 512 * 1024 * 1024,
  maxStreamRequestBytes: 256 * 1024 * 1024,
};

/** Flag values as commander gives them (strings), with the names given explicitly on the command line. */
export interface ServeFlags {
  data?: string;
  host?: string;
  port?: string;
  config?: string;
  checkpointInterval?: string;
  checkpointWrites?: string;
  logLevel?: string;
  /** `--sync` / `--no-sync`. */
  sync?: boolean;
  /** `--log-commands binary|cbor`. */
  logCommands?: string;
  maxConnections?: string;
  maxOpenTables?: string;
  headersTimeout?: string;
  requestTimeout?: string;
  keepAliveTimeout?: string;
  maxRequestsPerSocket?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  allowInsecureHttp?: boolean;
  rotateKey?: boolean;
  /** Checkpoint-note origin (docs/witness.md). */
  origin?: string;
  /** Witnesses to push heads to, `<url>=<verifier key>` each (docs/witness.md). */
  witness?: string[];
  /** `cluster.json` of the cluster this node is a member of (docs/cluster.md). */
  cluster?: string;
  /** This node's member id in `cluster.json`. */
  nodeId?: string;
  /** File holding the cluster secret (hex, mode 0600). */
  clusterSecretFile?: string;
  /** `ID=URL` dial overrides of peers (`--peer-via`, repeatable; docs/cluster.md). */
  peerVia?: string[];
}

const FILE_FIELDS = [
  'tokens',
  'data',
  'host',
  'port',
  'checkpointInterval',
  'checkpointWrites',
  'logLevel',
  'maxValueSize',
  'sync',
  'logCommands',
  'maxConnections',
  'maxOpenTables',
  'headersTimeout',
  'requestTimeout',
  'keepAliveTimeout',
  'maxRequestsPerSocket',
  'maxStreamInFlight',
  'maxStreamBufferedBytes',
  'maxStreamInFlightBytes',
  'maxStreamAnswerBytes',
  'maxStreamRequestBytes',
  'tlsCert',
  'tlsKey',
  'tlsClientCa',
  'allowInsecureHttp',
  'origin',
  'witnesses',
  'peerVia',
];

/** `--log-commands` / `logCommands`: one of {@link LOG_COMMAND_FORMATS}. */
function logCommandFormat(v: unknown): LogCommandFormat {
  if (typeof v !== 'string' || !(LOG_COMMAND_FORMATS as readonly string[]).includes(v)) throw new ConfigError(`log-commands must be one of ${LOG_COMMAND_FORMATS.join(', ')}`);
  return v as LogCommandFormat;
}

function strings(name: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new ConfigError(`${name} must be a list of strings`);
  return v as string[];
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function int(name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && /^[0-9]+$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer in ${min} .. ${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

function level(name: string, v: unknown): LogLevel {
  if (typeof v !== 'string' || !(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new ConfigError(`${name} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as LogLevel;
}

function str(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '') throw new ConfigError(`${name} must be a non-empty string`);
  return v;
}

/** Reads and validates a config file. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`config file ${file} must hold a JSON object`);
  for (const k of Object.keys(v)) if (!FILE_FIELDS.includes(k)) throw new ConfigError(`config file ${file}: unknown field "${k}"`);
  return v as Record<string, unknown>;
}

function fileTokens(v: unknown): TokenEntry[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ConfigError('config tokens must be an array of { token, role }');
  return v.map((t: unknown, i) => {
    if (t === null || typeof t !== 'object') throw new ConfigError(`config tokens[${i}] must be an object`);
    const { token, role } = t as { token?: unknown; role?: unknown };
    try {
      checkToken(token, `config tokens[${i}]`);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    if (!isRole(role)) throw new ConfigError(`config tokens[${i}].role must be read, write or admin`);
    return { token, role };
  });
}

/**
 * Resolves the configuration. `explicit` names the flags given on the command line (they win
 * over the config file; other flag values are commander defaults and lose to it).
 */
export function resolveConfig(flags: ServeFlags, env: NodeJS.ProcessEnv, explicit: ReadonlySet<string>): ServeConfig {
  const file = flags.config ? readConfigFile(flags.config) : {};
  const pick = (flag: keyof ServeFlags, fileKey: string, def: unknown): unknown =>
    explicit.has(flag) ? flags[flag] : file[fileKey] !== undefined ? file[fileKey] : flags[flag] ?? def;

  let tokens = fileTokens(file.tokens);
  if (env.PROOFKV_TOKENS !== undefined && env.PROOFKV_TOKENS.trim() !== '') {
    try {
      tokens = [...tokens, ...parseTokenList(env.PROOFKV_TOKENS)];
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  const logLevelRaw = explicit.has('logLevel') ? flags.logLevel : env.PROOFKV_LOG_LEVEL ?? file.logLevel ?? flags.logLevel ?? DEFAULTS.logLevel;
  const cfg: ServeConfig = {
    dataDir: str('data', pick('data', 'data', DEFAULTS.data)),
    host: str('host', pick('host', 'host', DEFAULTS.host)),
    port: int('port', pick('port', 'port', DEFAULTS.port), 0, 65535),
    tokens,
    checkpointIntervalMs: int('checkpoint-interval', pick('checkpointInterval', 'checkpointInterval', DEFAULTS.checkpointInterval), 0, 2 ** 31 - 1),
    checkpointWrites: int('checkpoint-writes', pick('checkpointWrites', 'checkpointWrites', DEFAULTS.checkpointWrites), 0, Number.MAX_SAFE_INTEGER),
    logLevel: level('log-level', logLevelRaw),
    sync: bool('sync', pick('sync', 'sync', DEFAULTS.sync)),
    logCommands: logCommandFormat(pick('logCommands', 'logCommands', DEFAULTS.logCommands)),
    maxOpenTables: int('max-open-tables', pick('maxOpenTables', 'maxOpenTables', DEFAULTS.maxOpenTables), 0, 1_000_000),
    edge: {
      maxConnections: int('max-connections', pick('maxConnections', 'maxConnections', DEFAULTS.maxConnections), 0, 1_000_000),
      headersTimeoutMs: int('headers-timeout', pick('headersTimeout', 'headersTimeout', DEFAULTS.headersTimeout), 100, 600_000),
      requestTimeoutMs: int('request-timeout', pick('requestTimeout', 'requestTimeout', DEFAULTS.requestTimeout), 100, 3_600_000),
      keepAliveTimeoutMs: int('keep-alive-timeout', pick('keepAliveTimeout', 'keepAliveTimeout', DEFAULTS.keepAliveTimeout), 100, 600_000),
      maxRequestsPerSocket: int('max-requests-per-socket', pick('maxRequestsPerSocket', 'maxRequestsPerSocket', DEFAULTS.maxRequestsPerSocket), 0, 1_000_000),
      // Config-file settings only (no flag).
      maxStreamInFlight: int('maxStreamInFlight', file.maxStreamInFlight ?? DEFAULTS.maxStreamInFlight, 1, 65_536),
      maxStreamBufferedBytes: int('maxStreamBufferedBytes', file.maxStreamBufferedBytes ?? DEFAULTS.maxStreamBufferedBytes, 64 * 1024, 1024 * 1024 * 1024),
      maxStreamInFlightBytes: int('maxStreamInFlightBytes', file.maxStreamInFlightBytes ?? DEFAULTS.maxStreamInFlightBytes, 64 * 1024, 1024 * 1024 * 1024),
      maxStreamAnswerBytes: int('maxStreamAnswerBytes', file.maxStreamAnswerBytes ?? DEFAULTS.maxStreamAnswerBytes, 1024 * 1024, 64 * 1024 * 1024 * 1024),
      maxStreamRequestBytes: int('maxStreamRequestBytes', file.maxStreamRequestBytes ?? DEFAULTS.maxStreamRequestBytes, 1024 * 1024, 64 * 1024 * 1024 * 1024),
    },
    allowInsecureHttp: bool('allow-insecure-http', pick('allowInsecureHttp', 'allowInsecureHttp', false)),
    rotateKey: flags.rotateKey === true,
    witnesses: strings('witnesses', explicit.has('witness') ? flags.witness : file.witnesses ?? flags.witness ?? []),
  };
  if (flags.cluster !== undefined || flags.nodeId !== undefined || flags.clusterSecretFile !== undefined) {
    if (flags.cluster === undefined || flags.nodeId === undefined || flags.clusterSecretFile === undefined) {
      throw new ConfigError('--cluster, --node-id and --cluster-secret-file go together');
    }
    cfg.cluster = {
      file: str('cluster', flags.cluster),
      nodeId: int('node-id', flags.nodeId, 1, 0xffff_ffff),
      secretFile: str('cluster-secret-file', flags.clusterSecretFile),
      peerVia: strings('peer-via', explicit.has('peerVia') ? flags.peerVia : file.peerVia ?? flags.peerVia ?? []),
    };
  } else if ((flags.peerVia ?? []).length > 0 || file.peerVia !== undefined) {
    throw new ConfigError('--peer-via needs --cluster: it overrides how this member dials its peers');
  }
  const origin = pick('origin', 'origin', undefined);
  if (origin !== undefined) cfg.origin = str('origin', origin);
  if (cfg.edge.headersTimeoutMs > cfg.edge.requestTimeoutMs) throw new ConfigError('headers-timeout must not exceed request-timeout');
  if (file.maxValueSize !== undefined) cfg.maxValueSize = int('maxValueSize', file.maxValueSize, 0, 64 * 1024 * 1024);
  const tlsCert = pick('tlsCert', 'tlsCert', undefined);
  const tlsKey = pick('tlsKey', 'tlsKey', undefined);
  const tlsClientCa = pick('tlsClientCa', 'tlsClientCa', undefined);
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new ConfigError('tls-cert and tls-key go together');
  if (tlsClientCa !== undefined && tlsCert === undefined) throw new ConfigError('tls-client-ca needs tls-cert and tls-key');
  if (tlsCert !== undefined) {
    cfg.tls = { cert: str('tls-cert', tlsCert), key: str('tls-key', tlsKey) };
    if (tlsClientCa !== undefined) cfg.tls.clientCa = str('tls-client-ca', tlsClientCa);
  }
  if (cfg.tokens.length === 0 && !isLoopbackHost(cfg.host)) {
    throw new ConfigError(
      `refusing to listen on ${cfg.host} without tokens: every request would be admin. Configure tokens (--config or PROOFKV_TOKENS) or use a loopback host`,
    );
  }
  if (!cfg.tls && !cfg.allowInsecureHttp && !isLoopbackHost(cfg.host)) {
    throw new ConfigError(
      `refusing to listen on ${cfg.host} over plain HTTP: bearer tokens would cross the network in clear. Give --tls-cert and --tls-key, or --allow-insecure-http (e.g. behind a TLS-terminating proxy)`,
    );
  }
  return cfg;
}
