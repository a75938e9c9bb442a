/**
 * Prometheus metrics (prom-client), one registry per node: HTTP request latency by route and
 * status, write and read counters, checkpoint timings, and — sampled when `/metrics` is scraped —
 * engine counters (flushes, compactions, write stalls), table counts per level, bytes on disk and
 * the last sequence number.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ProofDB } from '../src/index.js';
import type { TransportStats as PeerTransportStats } from '../src/replication/transport/index.js';

/** Total size of the regular files under `dir` (not following links); 0 if it is gone. */
export function bytesOnDisk(dir: string): number {
  let total = 0;
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const d of names) {
    const p = path.join(dir, d.name);
    try {
      if (d.isDirectory()) total += bytesOnDisk(p);
      else if (d.isFile()) total += fs.statSync(p).size;
    } catch {
      // A file removed by compaction between readdir and stat.
    }
  }
  return total;
}

/**
 * The label set `{ ...labels, status }` of a latency series, built once per status and reused: a
 * request looks it up instead of building an object and a status string. Bounded by the series
 * the histogram itself keeps (prom-client holds one per label set): statuses are those the
 * routes answer.
 */
class StatusLabels<L extends Record<string, string>> {
  private readonly byStatus = new Map<number, L & { status: string }>();

  constructor(private readonly labels: L) {}

  of(status: number): L & { status: string } {
    let set = this.byStatus.get(status);
    if (set === undefined) this.byStatus.set(status, (set = { ...this.labels, status: String(status) }));
    return set;
  }
}

/** One node-wide stream budget as `/metrics` reports it ({@link Metrics.streamBudgets}). */
export interface StreamBudgetSample {
  /** `answers` or `requests`. */
  budget: string;
  used: number;
  capacity: number;
  waiting: number;
  waits: number;
  evictions: number;
}

/** The node's metrics. */
export class Metrics {
  /** The registry `/metrics` renders. */
  readonly registry = new Registry();
  /** HTTP request latency, by method, route name and status. */
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Stream request latency (`proofkv-stream/1`, docs/stream-protocol.md), by route name and status. */
  readonly streamDuration: Histogram<'route' | 'status'>;
  /** Reports the open stream connections (also counted in {@link connections}) when `/metrics` is scraped. */
  streamConnections: (() => number) | null = null;
  /**
   * Reports the node-wide stream budgets (docs/stream-protocol.md § Bounds) when `/metrics` is
   * scraped: per budget (`answers`, `requests`) the bytes held, the capacity, the waiters, and the
   * waits and evictions since start.
   */
  streamBudgets: (() => ReadonlyArray<StreamBudgetSample>) | null = null;
  /** Write operations applied, by kind (`put`, `delete`, `append`, `batch_op`); replayed retries are not counted. */
  readonly writes: Counter<'op'>;
  /** Read requests served, by kind (`get`, `scan`, `history`, `proof`, `history_proof`). */
  readonly reads: Counter<'op'>;
  /** Checkpoint duration, by trigger (`interval`, `writes`, `request`, `shutdown`; a cluster member's `initial`, `set-change` or `snapshot`: `RaftWritePath.checkpointDue`). */
  readonly checkpointDuration: Histogram<'trigger'>;
  /** Failed checkpoints, by trigger. */
  readonly checkpointFailures: Counter<'trigger'>;
  /** Connections and requests refused at the edge or by a route, by reason (`connection_limit`, `timeout`, an error code, ...). */
  readonly refused: Counter<'reason'>;
  /** Reports open connections and their limit when `/metrics` is scraped (set by the node once it listens). */
  connections: (() => { open: number; limit: number }) | null = null;
  /**
   * The write path's own fault (the Raft log's write, the apply step paused at a refused entry),
   * shown in `proofkv_write_fault` when the engine has none: what `/v1/status` shows.
   */
  pathFault: (() => { component: string; recoverable: boolean } | undefined) | null = null;

  constructor(db: ProofDB, options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.httpDuration = new Histogram({
      name: 'proofkv_http_request_duration_seconds',
      help: 'HTTP request latency by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.streamDuration = new Histogram({
      name: 'proofkv_stream_request_duration_seconds',
      help: 'Stream request latency by route and status (requests multiplexed on proofkv-stream/1 connections)',
      labelNames: ['route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.writes = new Counter({ name: 'proofkv_writes_total', help: 'Write operations applied', labelNames: ['op'], registers });
    this.reads = new Counter({ name: 'proofkv_reads_total', help: 'Read requests served', labelNames: ['op'], registers });
    this.checkpointDuration = new Histogram({
      name: 'proofkv_checkpoint_duration_seconds',
      help: 'Checkpoint duration (flush, compaction install, log append, signature) by trigger',
      labelNames: ['trigger'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.checkpointFailures = new Counter({ name: 'proofkv_checkpoint_failures_total', help: 'Failed checkpoints', labelNames: ['trigger'], registers });
    this.refused = new Counter({ name: 'proofkv_refused_total', help: 'Connections and requests refused, by reason', labelNames: ['reason'], registers });

    const pathFault = () => this.pathFault?.();
    // Sampled at scrape time; a closed database reports nothing new.
    const live = <T>(f: () => T): T | undefined => {
      try {
        return f();
      } catch {
        return undefined;
      }
    };
    new Gauge({
      name: 'proofkv_divergence',
      help: '1 while this replica has diverged from what a quorum certified (it serves no proofs and takes no writes)',
      registers,
      collect() {
        const d = live(() => db.divergence());
        this.set(d ? 1 : 0);
      },
    });
    new Gauge({
      name: 'proofkv_tables',
      help: 'Tables per LSM level',
      labelNames: ['level'],
      registers,
      collect() {
        const tables = live(() => db.tables());
        if (!tables) return;
        this.reset();
        const counts = new Map<number, number>();
        for (const t of tables) counts.set(t.level, (counts.get(t.level) ?? 0) + 1);
        for (const [level, n] of counts) this.set({ level: String(level) }, n);
      },
    });
    new Gauge({
      name: 'proofkv_disk_bytes',
      help: 'Bytes of the files in the data directory',
      registers,
      collect() {
        this.set(bytesOnDisk(db.location));
      },
    });
    const engine = (name: string, help: string, pick: (s: ReturnType<ProofDB['stats']>) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = live(() => db.stats());
          if (s) this.set(pick(s));
        },
      });
    new Gauge({
      name: 'proofkv_write_fault',
      help: '1 while writes are refused because of a write fault, by component (journal, flush, checkpoint-log, internal; raft-log, raft-apply) and whether the node retries by itself',
      labelNames: ['component', 'recoverable'],
      registers,
      collect() {
        this.reset();
        const f = live(() => db.writeFault()) ?? pathFault();
        if (f) this.set({ component: f.component, recoverable: String(f.recoverable) }, 1);
      },
    });
    const cacheGauge = (name: string, help: string, pick: (c: ReturnType<ProofDB['cacheStats']>[number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['cache'],
        registers,
        collect() {
          const cs = live(() => db.cacheStats());
          if (cs) for (const c of cs) this.set({ cache: c.cache }, pick(c));
        },
      });
    cacheGauge('proofkv_cache_bytes', 'Bytes held by each engine cache (block, table_memory, proof_block, block_tree, version_memo, leaf)', (c) => c.bytes);
    cacheGauge('proofkv_cache_capacity_bytes', 'Byte budget of each engine cache', (c) => c.capacity);
    const sampled = (name: string, help: string, value: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = value();
          if (v !== undefined) this.set(v);
        },
      });
    sampled('proofkv_connections', 'Open client connections', () => this.connections?.().open);
    sampled('proofkv_stream_connections', 'Open stream connections (proofkv-stream/1; also counted in proofkv_connections)', () => this.streamConnections?.());
    const budgets = () => this.streamBudgets?.();
    const budgetGauge = (name: string, help: string, pick: (b: StreamBudgetSample) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['budget'],
        registers,
        collect() {
          const bs = budgets();
          if (bs) for (const b of bs) this.set({ budget: b.budget }, pick(b));
        },
      });
    budgetGauge('proofkv_stream_budget_bytes', 'Bytes held in each node-wide stream budget (answers: reads being built and answers not yet handed to the kernel; requests: request frames in flight)', (b) => b.used);
    budgetGauge('proofkv_stream_budget_capacity_bytes', 'Capacity of each node-wide stream budget (maxStreamAnswerBytes, maxStreamRequestBytes, raised to their floor)', (b) => b.capacity);
    budgetGauge('proofkv_stream_budget_waiting', 'Stream connections waiting for bytes of each budget now', (b) => b.waiting);
    budgetGauge('proofkv_stream_budget_waits_total', 'Takes of each stream budget that had to wait since start (back-pressure; a steady rate: raise the budget or find the slow readers)', (b) => b.waits);
    budgetGauge('proofkv_stream_budget_evictions_total', 'Stream connections cut since start because their unsent answers stalled while others waited for the budget', (b) => b.evictions);
    sampled('proofkv_connections_limit', 'Connection limit (more are closed at accept)', () => this.connections?.().limit);
    sampled('proofkv_open_tables', 'Open table file descriptors (tables held in memory have none)', () => live(() => db.openTables())?.open);
    sampled('proofkv_open_tables_limit', 'Bound on open table files (maxOpenTables); past it the least recently read is closed', () => live(() => db.openTables())?.limit);
    sampled('proofkv_table_reopens_total', 'Table files reopened after the bound closed them (a high rate: raise maxOpenTables)', () => live(() => db.openTables())?.reopens);
    engine('proofkv_write_faults_total', 'Write faults entered since start', (s) => s.faults);
    engine('proofkv_write_fault_recoveries_total', 'Write faults the node left by itself', (s) => s.faultRecoveries);
    engine('proofkv_journal_syncs_total', 'Journal fdatasyncs that acknowledged writes waited for', (s) => s.journalSyncs);
    engine('proofkv_last_seq', 'Highest write sequence number', (s) => s.lastSeq);
    engine('proofkv_memtable_bytes', 'Approximate memtable size', (s) => s.memtableBytes);
    engine('proofkv_flushes_total', 'Memtable flushes since start', (s) => s.flushes);
    engine('proofkv_compactions_total', 'Compactions since start', (s) => s.compactions);
    engine('proofkv_compaction_leaves_reused_total', 'Entries compactions wrote whose Merkle leaf came from their input\'s kept leaves (the leaf cache) instead of being hashed again', (s) => s.compactionLeavesReused);
    engine('proofkv_trivial_moves_total', 'Compactions that only moved a table', (s) => s.trivialMoves);
    engine('proofkv_checkpoint_compactions_total', 'Compactions of level 0 checkpoints made to leave at most checkpointLevel0Tables level-0 tables: merges within level 0 and compactions into level 1 (also in proofkv_compactions_total)', (s) => s.checkpointCompactions);
    engine('proofkv_checkpoint_level0_merges_total', 'Of proofkv_checkpoint_compactions_total, the merges of level 0 into one level-0 table (level 0 under checkpointLevel0Bytes and smaller than level 1)', (s) => s.checkpointLevel0Merges);
    engine('proofkv_dropped_compactions_total', 'Compactions the policy picked and a checkpoint dropped unfinished, compacting level 0 instead (their work was lost)', (s) => s.droppedCompactions);
    engine('proofkv_write_stall_seconds_total', 'Time writers waited for a flush or compaction', (s) => s.stallMs / 1000);
    engine('proofkv_obsolete_tables_deleted_total', 'Table files no version needs any more, unlinked since start (off the event loop)', (s) => s.obsoleteTablesDeleted);
    engine('proofkv_obsolete_table_delete_errors_total', 'Unlinks of obsolete table files that failed since start (other than already gone); the next open removes the files', (s) => s.obsoleteTableDeleteErrors);
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'proofkv_process_' });
  }

  /**
   * `proofkv_raft_log_syncs_total`, sampled at scrape time: fdatasyncs of the Raft log, the
   * write-ahead log of the Raft path (its engine writes no journal, so `proofkv_journal_syncs_total`
   * stays 0 there). A counter in meaning; a gauge because the group counts.
   */
  trackRaftLog(syncs: () => number): void {
    const registers = [this.registry];
    new Gauge({ name: 'proofkv_raft_log_syncs_total', help: 'fdatasyncs of the Raft log (the write-ahead log) that acknowledged writes waited for', registers, collect() { this.set(syncs()); } });
  }

  /**
   * Gauges of the write path's idempotency table, sampled at scrape time:
   * `proofkv_idempotency_bytes` (estimated bytes, bounded by its budget) and
   * `proofkv_idempotency_clients`.
   */
  trackIdempotency(table: { readonly sessionBytes: number; readonly sessionCount: number }): void {
    const registers = [this.registry];
    new Gauge({ name: 'proofkv_idempotency_bytes', help: 'Estimated bytes of the idempotency (client session) table', registers, collect() { this.set(table.sessionBytes); } });
    new Gauge({ name: 'proofkv_idempotency_clients', help: 'Clients the idempotency table remembers', registers, collect() { this.set(table.sessionCount); } });
  }

  /**
   * Exports the Raft snapshots of a member (`RaftWritePath.snapshotStats`) as
   * `proofkv_raft_snapshots{event="recorded"|"installed"|"refused"}`, `proofkv_raft_snapshot_index`,
   * `proofkv_raft_snapshots_held` (snapshots held for members fetching them) and
   * `proofkv_raft_snapshot_installed_bytes{source="fetched"|"reused"}` (bytes of installed
   * snapshots fetched from a member, or found verified in the data directory).
   */
  trackSnapshots(source: { snapshotStats(): { recorded: number; installed: number; refused: number; index: number; held: number; fetchedBytes: number; reusedBytes: number } }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'proofkv_raft_snapshots',
      help: 'Raft snapshots recorded at certified checkpoints, installed from another member, and refused while installing, since start',
      labelNames: ['event'],
      registers,
      collect() {
        const s = source.snapshotStats();
        for (const event of ['recorded', 'installed', 'refused'] as const) this.set({ event }, s[event]);
      },
    });
    new Gauge({ name: 'proofkv_raft_snapshot_index', help: 'Log index of the latest Raft snapshot recorded or installed since start (0: none)', registers, collect() { this.set(source.snapshotStats().index); } });
    new Gauge({
      name: 'proofkv_raft_snapshot_installed_bytes',
      help: 'Bytes of the snapshots installed since start: fetched from another member, or reused (tables found in the data directory and verified, not fetched)',
      labelNames: ['source'],
      registers,
      collect() {
        const s = source.snapshotStats();
        this.set({ source: 'fetched' }, s.fetchedBytes);
        this.set({ source: 'reused' }, s.reusedBytes);
      },
    });
    new Gauge({ name: 'proofkv_raft_snapshots_held', help: 'Snapshots whose tables this member keeps on disk for members fetching them (at most 2; each let go 30 s after its last chunk read)', registers, collect() { this.set(source.snapshotStats().held); } });
  }

  /**
   * Exports a cluster member's peer transport (`HttpTransport.stats`), sampled at scrape time:
   * `proofkv_peer_refused_total{reason}` (peer requests and stream handshakes the peer listener
   * refused: `bad-mac` for a wrong cluster secret, `not-member`, `clock-skew`, …),
   * `proofkv_peer_accepted_by_other_secret_total` (authenticated by the second accepted secret:
   * peers that have not switched yet during a rotation), `proofkv_peer_admitted_unknown_total`
   * (senders outside the configuration admitted by their handshake), and per peer
   * `proofkv_peer_sent_messages_total{peer}`, `proofkv_peer_received_messages_total{peer}`,
   * `proofkv_peer_dropped_messages_total{peer}`, `proofkv_peer_failed_streams_total{peer}` and
   * `proofkv_peer_queued_bytes{peer}`.
   */
  trackPeerTransport(source: { stats(): PeerTransportStats }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'proofkv_peer_refused_total', help: 'Peer requests and stream handshakes refused by the peer listener since start, by reason', labelNames: ['reason'], registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(source.stats().refused)) this.set({ reason }, n ?? 0);
      },
    });
    new Gauge({ name: 'proofkv_peer_accepted_by_other_secret_total', help: "Peer requests authenticated by the member's second accepted secret since start (a rotation in progress)", registers, collect() { this.set(source.stats().acceptedByOtherSecret); } });
    new Gauge({ name: 'proofkv_peer_admitted_unknown_total', help: 'Stream handshakes from senders outside the configuration that were admitted (members added after the applied index) since start', registers, collect() { this.set(source.stats().admittedUnknown); } });
    const perPeer = (name: string, help: string, field: 'sentMessages' | 'receivedMessages' | 'droppedMessages' | 'failedStreams' | 'queuedBytes'): void => {
      new Gauge({
        name, help, labelNames: ['peer'], registers,
        collect() {
          this.reset();
          for (const p of source.stats().peers) this.set({ peer: String(p.id) }, p[field]);
        },
      });
    };
    perPeer('proofkv_peer_sent_messages_total', 'Raft messages written to the peer since start', 'sentMessages');
    perPeer('proofkv_peer_received_messages_total', 'Raft messages accepted from the peer since start', 'receivedMessages');
    perPeer('proofkv_peer_dropped_messages_total', 'Raft messages to the peer dropped (queue full, broken stream; Raft sends again) since start', 'droppedMessages');
    perPeer('proofkv_peer_failed_streams_total', 'Failed dials and broken streams to the peer since start', 'failedStreams');
    perPeer('proofkv_peer_queued_bytes', 'Encoded messages waiting for the peer, bytes (bounded by the queue limit)', 'queuedBytes');
  }

  /**
   * Records an HTTP request's latency in {@link httpDuration}. The label set of each (method,
   * route, status) is built once and reused ({@link StatusLabels}; methods are those of node's
   * HTTP parser, routes the route table's names).
   */
  observeHttp(method: string, route: string, status: number, seconds: number): void {
    let byRoute = this.httpLabels.get(method);
    if (byRoute === undefined) this.httpLabels.set(method, (byRoute = new Map()));
    let sets = byRoute.get(route);
    if (sets === undefined) byRoute.set(route, (sets = new StatusLabels({ method, route })));
    this.httpDuration.observe(sets.of(status), seconds);
  }

  /** Records a stream request's latency in {@link streamDuration}, as {@link observeHttp} does. */
  observeStream(route: string, status: number, seconds: number): void {
    let sets = this.streamLabels.get(route);
    if (sets === undefined) this.streamLabels.set(route, (sets = new StatusLabels({ route })));
    this.streamDuration.observe(sets.of(status), seconds);
  }

  private readonly httpLabels = new Map<string, Map<string, StatusLabels<{ method: string; route: string }>>>();
  private readonly streamLabels = new Map<string, StatusLabels<{ route: string }>>();

  /** Times `f` into {@link checkpointDuration} under `trigger`, counting failures. */
  async timeCheckpoint<T>(trigger: string, f: () => Promise<T>): Promise<T> {
    const end = this.checkpointDuration.startTimer({ trigger });
    try {
      const r = await f();
      end();
      return r;
    } catch (err) {
      this.checkpointFailures.inc({ trigger });
      throw err;
    }
  }
}
