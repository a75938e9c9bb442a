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
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { toHex } from '../proofs/bytes.js';
import { ProofDB, type DBOptions } from '../src/index.js';
import { createApp, type BuiltApp } from './app.js';
import { problem } from './errors.js';
import { Authenticator, type TokenEntry } from './auth.js';
import { limitsFor, type AppContext } from './context.js';
import { loadOrCreateNodeKey } from '../src/proof/node_key.js';
import { Metrics } from './metrics.js';
import { CheckpointNotes, type NoteOptions } from './notes.js';
import { RaftWritePath } from './raft_write_path.js';
import { LocalWritePath, type LocalWritePathOptions, type WritePath } from './write_path.js';

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
  /** Route writes through a one-member Raft group (`<dataDir>/raft`) instead of applying them directly. Default false. */
  raft?: boolean;
}

/** Largest request head: a 64 KiB key percent-encoded three times over, plus headers. */
export const MAX_HEADER_BYTES = 256 * 1024;

/** The software version from package.json. */
export function softwareVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'proofkv' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

/** A running node. */
export class ProofNode {
  private closing = false;
  private shutdownPromise: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private checkpointing: Promise<void> | null = null;
  /** Checkpoint notes and the witness pushes. */
  notes?: CheckpointNotes;

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
    const db = await ProofDB.open(options.dataDir, options.db);
    let raftPath: RaftWritePath | undefined;
    try {
      const publicKey = db.publicKey();
      const nodeId = toHex(publicKey).slice(0, 16);
      const metrics = new Metrics(db);
      let node: ProofNode | undefined;
      const wpOptions: LocalWritePathOptions = {
        onApplied: (cmd, ops) => {
          if (cmd.type === 'batch') metrics.writes.inc({ op: 'batch_op' }, ops);
          else if (cmd.type === 'put' || cmd.type === 'delete') metrics.writes.inc({ op: cmd.type });
          node?.afterWrite();
        },
      };
      if (options.raft) {
        raftPath = await RaftWritePath.open(db, path.join(options.dataDir, 'raft'), {
          ...wpOptions,
          warn: (msg, fields) => options.logger.warn(fields ?? {}, msg),
        });
      }
      const writePath: WritePath = raftPath ?? new LocalWritePath(db, wpOptions);
      metrics.trackIdempotency(writePath);
      const ctx: AppContext = {
        db,
        writePath,
        info: { nodeId, publicKey, version: softwareVersion() },
        limits: limitsFor(db.options.maxValueSize, db.options.maxKeySize),
        metrics,
        notes: new CheckpointNotes(db, loadOrCreateNodeKey(options.dataDir), { warn: (msg, f) => options.logger.warn(f ?? {}, msg), ...options.notes }),
      };
      const built = createApp(ctx, { auth, logger: options.logger, isClosing: () => node?.closing ?? false });
      const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES }, built.app);
      // Idle keep-alive connections outlive typical client pools' own timeouts (undici: the server's
      // hint minus 1 s), so a client never sends on a connection the server is closing.
      server.keepAliveTimeout = 65_000;
      server.headersTimeout = 66_000;
      node = new ProofNode(db, writePath, metrics, built, server, nodeId, options);
      node.notes = ctx.notes;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('clientError', (err, socket) => {
        // Unparseable HTTP (bad request line or method, bad header, oversized head): a problem
        // document when the socket still takes one, then close.
        if (!socket.writable) {
          socket.destroy();
          return;
        }
        const tooLarge = (err as NodeJS.ErrnoException).code === 'HPE_HEADER_OVERFLOW';
        const body = JSON.stringify({
          ...problem(tooLarge ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST', tooLarge ? 'request head exceeds 256 KiB' : 'malformed HTTP request'),
          status: tooLarge ? 431 : 400,
        });
        socket.end(
          `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n` +
            `Content-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
            `ProofKV-Node-Id: ${nodeId}\r\nConnection: close\r\n\r\n${body}`,
        );
      });
      if (options.checkpointIntervalMs > 0) {
        node.timer = setInterval(() => node!.maybeCheckpoint('interval'), options.checkpointIntervalMs);
        node.timer.unref();
      }
      return node;
    } catch (err) {
      await raftPath?.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      throw err;
    }
  }

  /** The bound port. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `http://host:port`. */
  get url(): string {
    const h = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${h}:${this.port}`;
  }

  /** Write operations since the last checkpoint (its seq), 0 when none. */
  private pendingWrites(): number {
    let checkpointSeq = 0;
    try {
      checkpointSeq = this.db.latestCheckpoint().checkpoint.seq;
    } catch {
      // no checkpoint yet
    }
    return this.db.stats().lastSeq - checkpointSeq;
  }

  private afterWrite(): void {
    const n = this.options.checkpointWrites;
    if (n > 0 && !this.checkpointing && this.pendingWrites() >= n) this.maybeCheckpoint('writes');
  }

  /** Takes a checkpoint when there are new writes and none is running. */
  private maybeCheckpoint(trigger: 'interval' | 'writes'): void {
    if (this.closing || this.checkpointing) return;
    if (this.pendingWrites() <= 0) return;
    this.checkpointing = this.checkpoint(trigger).finally(() => {
      this.checkpointing = null;
    });
  }

  private async checkpoint(trigger: string): Promise<void> {
    try {
      const o = await this.metrics.timeCheckpoint(trigger, () => this.writePath.propose({ type: 'checkpoint' }));
      if (o.type === 'checkpoint') this.options.logger.debug({ trigger, index: o.checkpoint.checkpoint.index, seq: o.checkpoint.seq }, 'checkpoint');
    } catch (err) {
      this.options.logger.error({ err, trigger }, 'checkpoint failed');
    }
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
      const drained = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      const force = setTimeout(() => this.server.closeAllConnections(), this.options.drainTimeoutMs ?? 10_000);
      force.unref();
      await drained;
      clearTimeout(force);
      if (this.checkpointing) await this.checkpointing;
      if (this.pendingWrites() > 0) await this.checkpoint('shutdown');
      await this.notes?.close();
      if (this.writePath instanceof RaftWritePath) await this.writePath.close();
      await this.db.close();
      log.info('stopped');
    })();
    return this.shutdownPromise;
  }
}
