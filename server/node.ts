/**
 * A single ProofKV node: opens the database, wires the write path, the express app and the HTTP
 * server, takes automatic checkpoints, and shuts down gracefully.
 *
 * Automatic checkpoints run every `checkpointIntervalMs` when there were writes since the last
 * checkpoint, and as soon as `checkpointWrites` operations accumulated since it; at most one runs
 * at a time. Shutdown stops accepting connections, answers requests that arrive on open
 * connections with `503 UNAVAILABLE`, lets in-flight requests finish, takes a last checkpoint if
 * there were new writes, and closes the database.
 * @module
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { toHex } from '../proofs/bytes.js';
import { DEFAULT_MAX_OPEN_TABLES, ProofDB, type DBOptions } from '../src/index.js';
import { errorCodeOf } from '../src/db/core.js';
import { NODE_KEY_FILE } from '../src/proof/node_key.js';
import { createApp, type BuiltApp } from './app.js';
import { problem, type HttpCode } from './errors.js';
import { Authenticator, type TokenEntry } from './auth.js';
import { DEFAULTS, type EdgeLimits } from './config.js';
import { limitsFor, type AppContext } from './context.js';
import { Metrics } from './metrics.js';
import { CheckpointNotes, type NoteOptions } from './notes.js';
import { RaftWritePath, type LogCommandFormat } from './raft_write_path.js';
import type { RaftSnapshotOptions, SnapshotEvent } from './raft_snapshot.js';
import { initialSignerSetOf, memberOf, type ClusterConfig } from './cluster_config.js';
import { describeDivergence } from '../src/replication/cosign.js';
import { HttpTransport, TransportError, TransportErrorCode } from '../src/replication/transport/index.js';
import { describeShape, learnClusterShape } from '../src/replication/shape.js';
import { holdsEngineState } from '../src/db/snapshot_install.js';
import type { Shape } from '../src/options.js';
import { LocalWritePath, writesSinceCheckpoint, type LocalWritePathOptions, type PathFault, type WritePath } from './write_path.js';
import { StreamServer, maxFrameBytes } from './stream/index.js';
import { softwareVersion } from './version.js';

export { softwareVersion };

/** Options of {@link ProofNode.start}. */
export interface NodeOptions {
  /** Database directory (created if missing). */
  dataDir: string;
  /** Listen address. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Bearer tokens; none means every request is admin (the CLI then insists on loopback). */
  tokens: TokenEntry[];
  /** Checkpoint interval in ms; 0 disables interval checkpoints. */
  checkpointIntervalMs: number;
  /** Checkpoint after this many write operations; 0 disables. */
  checkpointWrites: number;
  /** Structured logger (pino). */
  logger: Logger;
  /** Database options (e.g. `maxValueSize`). */
  db?: DBOptions;
  /** How long shutdown waits for in-flight requests before closing their connections (default 10 s). */
  drainTimeoutMs?: number;
  /** Checkpoint notes: origin and the witnesses to push each new head to (docs/witness.md). */
  notes?: NoteOptions;
  /**
   * Apply writes directly to the engine (its own journal, `writeAheadLog: 'journal'`) instead of
   * through the Raft group. Not a product mode: `proofkv serve --local-write-path` (hidden) keeps
   * it only as the reference column of `bench/raft.ts`. Default false: every node runs a Raft
   * group (`<dataDir>/raft`, one member without `cluster`) whose log is the write-ahead log; a
   * data directory the local path wrote is taken over at its first start (the engine's first
   * external-log open flushes its journal). A directory with a Raft log refuses this option.
   */
  localWritePath?: boolean;
  /** Connection limit and timeouts (defaults: {@link DEFAULTS}; `maxConnections` 0 derives it from the fd limit). */
  edge?: Partial<EdgeLimits>;
  /** Serve HTTPS with this PEM material; `ca` makes the server require client certificates it signed. */
  tls?: { cert: string | Buffer; key: string | Buffer; ca?: string | Buffer };
  /**
   * This node as member `nodeId` of a cluster (implies `raft`): its peer listener serves the
   * authenticated transport at the member's `peerUrl`, and the other members are its Raft peers
   * (docs/cluster.md). The node's `NODE_KEY` must be the member's key in the cluster file.
   */
  cluster?: {
    config: ClusterConfig;
    nodeId: number;
    secret: Uint8Array;
    /** A secret accepted besides `secret` while the cluster rotates it (the secret file's second line; docs/cluster.md). */
    acceptSecrets?: Uint8Array[];
    /** A member added at runtime (`serve --join`): it never bootstraps and learns the log from the leader. */
    join?: boolean;
    /**
     * Dial overrides (`serve --peer-via ID=URL`): member id → the URL this node dials that member
     * at instead of its registered `peerUrl` (a proxy, a tunnel, NAT). They win in the transport's
     * initial peers and in the group's peer resolution; the member registry keeps the registered URL.
     */
    peerVia?: ReadonlyMap<number, string>;
  };
  /** Log compaction margin and snapshot-install options of the Raft write path (`server/raft_snapshot.ts`). */
  snapshots?: RaftSnapshotOptions;
  /** The form of the `put`/`delete` commands this node proposes (`serve --log-commands`; default `binary`). */
  logCommands?: LogCommandFormat;
}

/** The soft `RLIMIT_NOFILE` of this process (Linux `/proc/self/limits`), or undefined. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') return Number(m[1]);
  } catch {
    // not Linux
  }
  return undefined;
}

/**
 * The default connection limit: 1024, but never more than three quarters of the file-descriptor
 * limit less 64, so that connections alone cannot starve the engine of descriptors (journal,
 * manifest, checkpoint log, table files, directory syncs). At least 16.
 */
export function defaultMaxConnections(nofile = openFileLimit()): number {
  if (nofile === undefined) return 1024;
  return Math.max(16, Math.min(1024, Math.floor(nofile * 0.75) - 64));
}

/**
 * The table-file bound `serve` uses unless `db.maxOpenTables` is set: {@link DEFAULT_MAX_OPEN_TABLES},
 * but never more than the file-descriptor limit less the connection limit less 64 (journal,
 * manifest, checkpoint log, Raft log, a compaction's inputs and outputs, directory syncs), so that
 * connections and table files together cannot exhaust the descriptors. At least 16.
 */
export function defaultMaxOpenTables(maxConnections: number, nofile = openFileLimit()): number {
  if (nofile === undefined) return DEFAULT_MAX_OPEN_TABLES;
  return Math.max(16, Math.min(DEFAULT_MAX_OPEN_TABLES, nofile - maxConnections - 64));
}

/** The edge limits in force: `edge` over {@link DEFAULTS}. */
export function resolveEdge(edge: Partial<EdgeLimits> = {}): EdgeLimits {
  const max = edge.maxConnections ?? DEFAULTS.maxConnections;
  return {
    maxConnections: max > 0 ? max : defaultMaxConnections(),
    headersTimeoutMs: edge.headersTimeoutMs ?? DEFAULTS.headersTimeout,
    requestTimeoutMs: edge.requestTimeoutMs ?? DEFAULTS.requestTimeout,
    keepAliveTimeoutMs: edge.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeout,
    maxRequestsPerSocket: edge.maxRequestsPerSocket ?? DEFAULTS.maxRequestsPerSocket,
    maxStreamInFlight: edge.maxStreamInFlight ?? DEFAULTS.maxStreamInFlight,
    maxStreamBufferedBytes: edge.maxStreamBufferedBytes ?? DEFAULTS.maxStreamBufferedBytes,
    maxStreamInFlightBytes: edge.maxStreamInFlightBytes ?? DEFAULTS.maxStreamInFlightBytes,
    maxStreamAnswerBytes: edge.maxStreamAnswerBytes ?? DEFAULTS.maxStreamAnswerBytes,
    maxStreamRequestBytes: edge.maxStreamRequestBytes ?? DEFAULTS.maxStreamRequestBytes,
  };
}

/** The answer to an unparseable or timed-out request, by the HTTP parser's error code. */
function clientErrorAnswer(code: string | undefined): { status: number; reason: string; http: HttpCode; detail: string } {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, reason: 'Request Header Fields Too Large', http: 'PAYLOAD_TOO_LARGE', detail: 'request head exceeds 256 KiB' };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, reason: 'Request Timeout', http: 'REQUEST_TIMEOUT', detail: 'the request was not received in time' };
  return { status: 400, reason: 'Bad Request', http: 'BAD_REQUEST', detail: 'malformed HTTP request' };
}

/** Largest request head: a 64 KiB key percent-encoded three times over, plus headers. */
export const MAX_HEADER_BYTES = 256 * 1024;

/** Warns when `NODE_KEY` in `dir` can be read or written by others (the engine then makes it 0600). */
function warnLooseNodeKey(dir: string, log: Logger): void {
  try {
    const mode = fs.statSync(path.join(dir, NODE_KEY_FILE)).mode & 0o777;
    if (mode & 0o077) log.warn({ file: NODE_KEY_FILE, mode: mode.toString(8) }, 'the node key was readable or writable by others: made it 0600; treat the key as exposed and consider --rotate-key');
  } catch {
    // no key yet
  }
}

/** The members of the cluster file as this member dials them (`--peer-via` overrides), itself included. */
function peersOf(cluster: NonNullable<NodeOptions['cluster']>): { id: number; peerUrl: string }[] {
  // `--peer-via`: this member dials those peers elsewhere (a proxy, a tunnel); the registry keeps the registered URL.
  const via = cluster.peerVia ?? new Map<number, string>();
  return cluster.config.members.map((m) => ({ id: m.id, peerUrl: via.get(m.id) ?? m.peerUrl }));
}

/** Starts a cluster member's peer transport, listening at its `peerUrl`. */
function startPeerTransport(cluster: NonNullable<NodeOptions['cluster']>): Promise<HttpTransport> {
  const { config, nodeId: id, secret } = cluster;
  const peerUrl = new URL(memberOf(config, id).peerUrl);
  return HttpTransport.start({
    selfId: id,
    clusterId: config.clusterId,
    secret,
    acceptSecrets: cluster.acceptSecrets,
    listen: { host: peerUrl.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(peerUrl.port || (peerUrl.protocol === 'https:' ? 443 : 80)) },
    peers: peersOf(cluster).filter((p) => p.id !== id),
    // Named on every stream this member opens, so that a member that missed its addition can answer it.
    advertiseUrl: memberOf(config, id).peerUrl,
  });
}

/**
 * The shape options a member that joins with an empty data directory opens its engine with: the
 * cluster's, told by the other members of the cluster file (`learnClusterShape`), so that it
 * builds the tables its peers build whatever release created the cluster. Throws a `ShapeError`
 * (`SHAPE_UNKNOWN`, `SHAPE_CONFLICT`, `SHAPE_INVALID`) before anything is written.
 */
async function learnShape(cluster: NonNullable<NodeOptions['cluster']>, transport: HttpTransport, explicit: DBOptions | undefined, log: Logger): Promise<Shape> {
  const ids = cluster.config.members.map((m) => m.id).filter((id) => id !== cluster.nodeId);
  log.info({ event: 'shape_asked', members: ids }, `an empty data directory: asking member${ids.length > 1 ? 's' : ''} ${ids.join(', ')} for the cluster's shape before the engine opens`);
  const { shape, from } = await learnClusterShape((id, name, offset, length) => transport.fetchSnapshotChunk(id, 0, name, offset, length), ids, { explicit });
  log.info({ event: 'shape_learned', from, shape }, `joining with the cluster's shape, told by member${from.length > 1 ? 's' : ''} ${from.join(', ')}: ${describeShape(shape)}`);
  return shape;
}

/** How often a cluster member proposes again its signature on a head still pending, ms. */
export const COSIGN_RETRY_MS = 2000;
/** The pending writes are counted once per `checkpointWrites / CHECKPOINT_WRITES_COUNT_STEPS` operations (rounded down, at least 1). */
export const CHECKPOINT_WRITES_COUNT_STEPS = 64;

/** A running node. */
export class ProofNode {
  private closing = false;
  private shutdownPromise: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private checkpointing: Promise<void> | null = null;
  /** Checkpoint notes and the witness pushes. */
  notes?: CheckpointNotes;
  /** The edge limits in force. */
  edge!: EdgeLimits;
  /** The stream front's connections (docs/stream-protocol.md). */
  stream!: StreamServer;
  /** The peer transport of a cluster member. */
  private transport?: HttpTransport;
  private cosignTimer: NodeJS.Timeout | null = null;
  /** Consecutive failed checkpoints, and when automatic checkpoints may try again (ms since the epoch). */
  private checkpointFailures = 0;
  private checkpointRetryAt = 0;
  /** Operations applied since `afterWrite` last counted the pending writes (see {@link afterWrite}). */
  private opsSinceCount = 0;

  private constructor(
    /** The database (reads; writes go through {@link writePath}). */
    readonly db: ProofDB,
    /** The write path every change goes through. */
    readonly writePath: WritePath,
    /** The node's Prometheus metrics. */
    readonly metrics: Metrics,
    /** The express app and its route table. */
    readonly built: BuiltApp,
    /** The HTTP server. */
    readonly server: http.Server,
    /** 16-hex-char prefix of the public key. */
    readonly nodeId: string,
    private readonly options: NodeOptions,
  ) {}

  /** Opens the database in `dataDir`, starts listening, schedules checkpoints. */
  static async start(options: NodeOptions): Promise<ProofNode> {
    const auth = new Authenticator(options.tokens);
    const log = options.logger;
    // Every file and directory the node creates is private to its user, whatever the umask was
    // (the engine also makes the data directory 0700 and tightens files left with looser modes).
    process.umask(0o077);
    warnLooseNodeKey(options.dataDir, log);
    const raftDir = path.join(options.dataDir, 'raft');
    if (options.localWritePath && options.cluster) throw new Error('a cluster member cannot use the local write path');
    const raft = options.localWritePath !== true;
    if (!raft && fs.existsSync(raftDir)) {
      // The Raft log is this directory's write-ahead log: the engine alone lacks its newest writes.
      throw new Error(`${options.dataDir} belongs to a Raft group (${raftDir} holds its write-ahead log): start it without --local-write-path`);
    }
    // A cluster member's peer listener starts before its engine opens: a member that joins with an
    // empty data directory first learns the cluster's shape from the others (docs/cluster.md § Membership).
    const transport = options.cluster ? await startPeerTransport(options.cluster) : undefined;
    let db: ProofDB;
    try {
      const shape = options.cluster?.join === true && !holdsEngineState(options.dataDir) ? await learnShape(options.cluster, transport!, options.db, log) : {};
      db = await ProofDB.open(options.dataDir, {
        ...options.db,
        ...shape,
        maxOpenTables: options.db?.maxOpenTables ?? defaultMaxOpenTables(resolveEdge(options.edge).maxConnections),
        writeAheadLog: raft ? 'external' : 'journal',
      });
    } catch (err) {
      await transport?.close().catch(() => undefined);
      throw err;
    }
    const rotated = db.keyRotations().rotatedAtOpen;
    if (rotated) {
      log.warn(
        {
          event: 'key_rotation',
          logSize: rotated.logSize,
          oldPublicKey: toHex(rotated.oldPublicKey),
          newPublicKey: toHex(rotated.newPublicKey),
          signedByOldKey: rotated.oldSignature !== undefined,
        },
        rotated.oldSignature
          ? 'node key rotated: the statement is signed by the old key (GET /v1/key-rotations)'
          : 'node key rotated without the old key (it was lost): clients must get the new public key out of band',
      );
    }
    db.onWriteFault((f) => {
      if (f) log.error({ component: f.component, code: errorCodeOf(f.error), recoverable: f.recoverable, err: f.error }, 'write fault: writes are refused until it clears');
      else log.info('write fault cleared: writes resumed');
    });
    let raftPath: RaftWritePath | undefined;
    try {
      const publicKey = db.publicKey();
      const nodeId = toHex(publicKey).slice(0, 16);
      const metrics = new Metrics(db);
      let node: ProofNode | undefined;
      let cosigner: RaftWritePath | undefined;
      // A cluster member's checkpoints are certified by a majority of the voters at the
      // checkpoint's log index, with their keys from the member registry (RaftWritePath).
      const snapshots: RaftSnapshotOptions = {
        ...options.snapshots,
        onEvent: (e: SnapshotEvent) => {
          if (e.type === 'installed') log.info({ event: 'snapshot_installed', ...e }, `caught up by snapshot: installed the certified checkpoint at log index ${e.index} from member ${e.from}`);
          else if (e.type === 'refused') log.warn({ event: 'snapshot_refused', ...e }, 'refused a snapshot; the leader sends it again');
          else if (e.type === 'recorded') log.debug({ event: 'snapshot_recorded', ...e }, 'raft snapshot recorded at a certified checkpoint; log compacted behind it');
          else if (e.type === 'deferred') log.debug({ event: 'snapshot_deferred', ...e }, 'checkpoints applied again while the group opens: the next certified checkpoint is recorded');
          else if (e.type === 'captures') {
            if (e.refused.length > 0) log.warn({ event: 'snapshot_captures', ...e }, 'session tables captured at checkpoints: some on disk were refused (damaged or torn); the member goes on without them');
            else log.debug({ event: 'snapshot_captures', ...e }, 'session tables captured at checkpoints read from disk');
          } else if (e.type === 'capture_failed') log.warn({ event: 'snapshot_capture_failed', ...e }, 'a session table captured at a checkpoint could not be written to disk (kept in memory)');
          else log.warn({ event: 'snapshot_skipped', ...e }, 'no raft snapshot at this checkpoint');
          options.snapshots?.onEvent?.(e);
        },
      };
      const wpOptions: LocalWritePathOptions & { sync?: boolean; onPause?: (f: PathFault | undefined) => void } = {
        onPause: (f) => {
          if (f) log.error({ component: f.component, code: errorCodeOf(f.error), err: f.error }, f.component === 'raft-log' ? 'raft log write failed: writes are refused until the log is reopened' : 'applying paused at a refused log entry: writes are refused until it is applied again');
          else log.info('raft write path resumed: writes resumed');
        },
        // --sync / --no-sync: on the Raft path it is the Raft log's fdatasync (the engine writes no journal).
        ...(options.db?.sync === undefined ? {} : { sync: options.db.sync }),
        proposeCosign: (cmd) => {
          // Fire and forget: a lost proposal is proposed again by the cosign timer below.
          void cosigner?.propose(cmd).catch((err: unknown) => log.debug({ err, size: cmd.size }, 'cosign proposal not applied; it is proposed again'));
        },
        onCosign: (cmd, result) => {
          if (result.divergence) {
            log.error({ event: 'DIVERGENCE', size: result.divergence.size, ownRoot: toHex(result.divergence.ownRoot), quorumRoot: toHex(result.divergence.quorumRoot), signers: result.divergence.signers }, describeDivergence(result.divergence));
          } else if (result.verdict !== 'accepted' && result.verdict !== 'duplicate' && result.verdict !== 'stale') {
            log.warn({ event: 'cosign_ignored', verdict: result.verdict, nodeId: cmd.nodeId, size: cmd.size }, 'ignored a cosign entry');
          }
          if (result.certified) log.debug({ size: result.certified.head.size }, 'checkpoint certified');
        },
        onApplied: (cmd, ops) => {
          if (cmd.type === 'batch') metrics.writes.inc({ op: 'batch_op' }, ops);
          else if (cmd.type === 'put' || cmd.type === 'delete' || cmd.type === 'append') metrics.writes.inc({ op: cmd.type });
          node?.afterWrite(ops);
        },
      };
      if (options.cluster) {
        const { config, nodeId: id } = options.cluster;
        const me = memberOf(config, id);
        if (toHex(me.publicKey) !== toHex(publicKey)) {
          throw new Error(`the NODE_KEY of this data directory (${toHex(publicKey).slice(0, 16)}…) is not member ${id}'s key in the cluster file (${toHex(me.publicKey).slice(0, 16)}…)`);
        }
        const via = options.cluster.peerVia ?? new Map<number, string>();
        const peers = peersOf(options.cluster);
        raftPath = await RaftWritePath.open(db, raftDir, {
          ...wpOptions,
          logCommands: options.logCommands,
          snapshots,
          cluster: { id, peers, transport: transport!, members: config.members, join: options.cluster.join === true, peerVia: via, initialSignerSet: initialSignerSetOf(config, id) },
        });
        cosigner = raftPath;
      } else if (raft) {
        raftPath = await RaftWritePath.open(db, raftDir, { ...wpOptions, snapshots, logCommands: options.logCommands });
      }
      if (raftPath) {
        const rp = raftPath;
        metrics.trackRaftLog(() => rp.logSyncs);
      }
      const writePath: WritePath = raftPath ?? new LocalWritePath(db, wpOptions);
      metrics.trackIdempotency(writePath);
      metrics.pathFault = () => writePath.writeFault?.();
      if (raftPath) metrics.trackSnapshots(raftPath);
      if (transport) metrics.trackPeerTransport(transport);
      const ctx: AppContext = {
        db,
        writePath,
        info: { nodeId, publicKey, version: softwareVersion() },
        limits: limitsFor(db.options.maxValueSize, db.options.maxKeySize),
        metrics,
        notes: new CheckpointNotes(db, { warn: (msg, f) => options.logger.warn(f ?? {}, msg), ...options.notes }),
      };
      if (options.cluster && raftPath) {
        const rp = raftPath;
        const membership = rp.membership();
        ctx.cluster = {
          clusterId: options.cluster.config.clusterId,
          // The member registry's members (the cluster file's, then every change in the log).
          get members() {
            return membership ? membership.list().filter((m) => m.role !== 'registered') : options.cluster!.config.members;
          },
          view: () => rp.cluster(),
          setChangePending: () => rp.setChangePending(),
          leaderHint: () => rp.leaderHint(options.cluster!.config.members),
          ...(membership ? { membership } : {}),
        };
      }
      const built = createApp(ctx, { auth, logger: options.logger, isClosing: () => node?.closing ?? false });
      const edge = resolveEdge(options.edge);
      const serverOptions: http.ServerOptions = {
        maxHeaderSize: MAX_HEADER_BYTES,
        headersTimeout: edge.headersTimeoutMs,
        requestTimeout: edge.requestTimeoutMs,
        keepAliveTimeout: edge.keepAliveTimeoutMs,
        // How often the timeouts above are enforced (Node's default is 30 s).
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(edge.headersTimeoutMs / 4))),
      };
      const tls = options.tls;
      const server: http.Server = tls
        ? https.createServer({ ...serverOptions, cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: tls.ca !== undefined, rejectUnauthorized: tls.ca !== undefined }, built.listener)
        : http.createServer(serverOptions, built.listener);
      // Clients learn the idle timeout from the Keep-Alive hint (undici uses it minus 1 s), so they
      // never send on a connection the server is closing.
      server.keepAliveTimeout = edge.keepAliveTimeoutMs;
      server.maxRequestsPerSocket = edge.maxRequestsPerSocket;
      server.maxConnections = edge.maxConnections;
      let open = 0;
      server.on('connection', (socket: Socket) => {
        open++;
        socket.once('close', () => open--);
      });
      metrics.connections = () => ({ open, limit: edge.maxConnections });
      // The stream front (docs/stream-protocol.md) on the same port and TLS: its connections are
      // accepted by this server, so they count toward maxConnections like HTTP's.
      const stream = new StreamServer({
        routes: built.stream,
        auth,
        nodeId,
        listener: built.listener,
        limits: {
          maxFrameBytes: maxFrameBytes(ctx.limits.maxKeySize, ctx.limits.maxValueSize),
          maxInFlight: edge.maxStreamInFlight,
          maxBufferedBytes: edge.maxStreamBufferedBytes,
          maxInFlightBytes: edge.maxStreamInFlightBytes,
        },
        node: { maxAnswerBytes: edge.maxStreamAnswerBytes, maxRequestBytes: edge.maxStreamRequestBytes },
      });
      server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => stream.handleUpgrade(req, socket, head));
      metrics.streamConnections = () => stream.connections.size;
      metrics.streamBudgets = () =>
        (['answers', 'requests'] as const).map((budget) => {
          const b = stream.budgets[budget];
          return { budget, used: b.used, capacity: b.capacity, waiting: b.waiting, waits: b.stats.waits, evictions: b.stats.evictions };
        });
      server.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) => {
        metrics.refused.inc({ reason: 'connection_limit' });
        log.warn({ reason: 'connection_limit', limit: edge.maxConnections, remote: d?.remoteAddress, port: d?.remotePort }, 'refused connection');
      });
      if (tls) {
        server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
          metrics.refused.inc({ reason: 'tls' });
          log.warn({ reason: 'tls', code: err.code, remote: socket.remoteAddress }, 'refused connection');
        });
      }
      node = new ProofNode(db, writePath, metrics, built, server, nodeId, options);
      node.stream = stream;
      node.notes = ctx.notes;
      node.edge = edge;
      node.transport = transport;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
        // Unparseable HTTP (bad request line or method, bad header, oversized head) or a request
        // not received in time: a problem document when the socket still takes one, then close.
        const code = err.code;
        if (code === 'ECONNRESET' || code === 'EPIPE') {
          socket.destroy();
          return;
        }
        const a = clientErrorAnswer(code);
        const reason = a.status === 408 ? 'timeout' : a.status === 431 ? 'head_too_large' : 'malformed';
        metrics.refused.inc({ reason });
        log.warn({ reason, code, remote: socket.remoteAddress }, 'refused request');
        if (!socket.writable) {
          socket.destroy();
          return;
        }
        const body = JSON.stringify({ ...problem(a.http, a.detail), status: a.status });
        socket.end(
          `HTTP/1.1 ${a.status} ${a.reason}\r\n` +
            `Content-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
            `ProofKV-Node-Id: ${nodeId}\r\nConnection: close\r\n\r\n${body}`,
        );
        // A client that does not read its answer must not hold the descriptor.
        setTimeout(() => socket.destroy(), 1000).unref();
      });
      if (cosigner) {
        // This member's signature on its pending head, proposed again until the log holds it
        // (a proposal is lost when the leader changes under it); a duplicate is ignored at apply.
        const cs = cosigner;
        cs.resumeCosign();
        node.cosignTimer = setInterval(() => cs.resumeCosign(), COSIGN_RETRY_MS);
        node.cosignTimer.unref();
      }
      if (options.checkpointIntervalMs > 0) {
        node.timer = setInterval(() => node!.maybeCheckpoint('interval'), options.checkpointIntervalMs);
        node.timer.unref();
      }
      return node;
    } catch (err) {
      await raftPath?.close().catch(() => undefined);
      await transport?.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      throw err;
    }
  }

  /** The bound port. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `http://host:port` (`https://` with TLS). */
  get url(): string {
    const h = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${this.options.tls ? 'https' : 'http'}://${h}:${this.port}`;
  }

  /** Write operations since the latest certified checkpoint (`writesSinceCheckpoint`). */
  private pendingWrites(): number {
    return writesSinceCheckpoint(this.db);
  }

  /**
   * After `ops` operations were applied: a checkpoint once `checkpointWrites` accumulated. The
   * pending writes are counted (engine stats and the latest checkpoint) once per
   * `checkpointWrites / 64` applied operations, not after every write: on the leader that count
   * was a measurable part of a write's CPU (bench/README.md § The cluster's CPU per write), and a
   * checkpoint starts at most 1/64 of the threshold later than the exact count would start it.
   */
  private afterWrite(ops: number): void {
    const n = this.options.checkpointWrites;
    if (n <= 0) return;
    this.opsSinceCount += Math.max(1, ops);
    if (this.opsSinceCount < Math.max(1, Math.floor(n / CHECKPOINT_WRITES_COUNT_STEPS))) return;
    this.opsSinceCount = 0;
    if (!this.checkpointing && this.leads() && this.pendingWrites() >= n) this.maybeCheckpoint('writes');
  }

  /** In a cluster only the leader proposes checkpoints (every member applies them). */
  private leads(): boolean {
    return !(this.writePath instanceof RaftWritePath) || this.writePath.isLeader();
  }

  /** Takes a checkpoint when there are new writes (or a cluster member needs one: `RaftWritePath.checkpointDue`) and none is running. */
  private maybeCheckpoint(trigger: 'interval' | 'writes'): void {
    if (this.closing || this.checkpointing || !this.leads()) return;
    // A write fault refuses checkpoints and is retried by the engine; after failed automatic
    // checkpoints, wait (1 s doubling to 60 s) instead of failing and logging every interval.
    if (this.db.writeFault() || Date.now() < this.checkpointRetryAt) return;
    let why: string = trigger;
    if (this.pendingWrites() <= 0) {
      // Without new writes, a cluster member may still need one (a signer-set change to record, a
      // certified checkpoint it could not record as its Raft snapshot: RaftWritePath.checkpointDue).
      const due = this.writePath instanceof RaftWritePath ? this.writePath.checkpointDue() : undefined;
      if (!due) return;
      why = due;
    }
    this.checkpointing = this.checkpoint(why).finally(() => {
      this.checkpointing = null;
    });
  }

  private async checkpoint(trigger: string): Promise<void> {
    try {
      const o = await this.metrics.timeCheckpoint(trigger, () => this.writePath.propose({ type: 'checkpoint', time: Date.now() }));
      if (o.type === 'checkpoint') this.options.logger.debug({ trigger, index: o.checkpoint.checkpoint.index, seq: o.checkpoint.seq }, 'checkpoint');
      this.checkpointFailures = 0;
      this.checkpointRetryAt = 0;
    } catch (err) {
      this.checkpointFailures++;
      const waitMs = Math.min(60_000, 1000 * 2 ** Math.min(this.checkpointFailures - 1, 6));
      this.checkpointRetryAt = Date.now() + waitMs;
      this.options.logger.error({ err, trigger, failures: this.checkpointFailures, retryInMs: waitMs }, 'checkpoint failed');
    }
  }

  /**
   * Rotates the cluster secret of a member's peer transport without a restart
   * (`HttpTransport.setSecrets`; `serve` calls it on SIGHUP with the secret file read again):
   * from now on it sends with `secret` and accepts `secret` and `acceptSecrets`. Throws
   * `TRANSPORT_INVALID_ARGUMENT` (nothing changed) for bad secrets, and when this node is no
   * cluster member.
   */
  setClusterSecrets(secret: Uint8Array, acceptSecrets: readonly Uint8Array[] = []): void {
    if (!this.transport) throw new TransportError(TransportErrorCode.InvalidArgument, 'this node is not a cluster member: it has no peer transport');
    this.transport.setSecrets(secret, acceptSecrets);
  }

  /**
   * Graceful shutdown: stop accepting, finish in-flight requests (closing their connections after
   * `drainTimeoutMs`), take a last checkpoint when there are new writes, close the database.
   * Idempotent.
   */
  shutdown(reason = 'shutdown'): Promise<void> {
    if (this.shutdownPromise) return this.shutdownPromise;
    this.closing = true;
    const log = this.options.logger;
    this.shutdownPromise = (async () => {
      log.info({ reason }, 'shutting down');
      if (this.timer) clearInterval(this.timer);
      if (this.cosignTimer) clearInterval(this.cosignTimer);
      const drained = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      // Stream connections answer what is in flight (new requests get 503), then close.
      this.stream.drain();
      const force = setTimeout(() => {
        this.server.closeAllConnections();
        this.stream.destroyAll();
      }, this.options.drainTimeoutMs ?? 10_000);
      force.unref();
      await drained;
      clearTimeout(force);
      if (this.checkpointing) await this.checkpointing;
      if (this.pendingWrites() > 0 && this.leads()) await this.checkpoint('shutdown');
      await this.notes?.close();
      if (this.writePath instanceof RaftWritePath) await this.writePath.close();
      await this.transport?.close();
      await this.db.close();
      log.info('stopped');
    })();
    return this.shutdownPromise;
  }
}
