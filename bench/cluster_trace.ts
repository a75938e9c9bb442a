/**
 * Where a write's time goes across the members of a cluster: reads the trace files the members
 * wrote with `PROOFKV_TRACE` set (src/replication/trace.ts; `bench/cluster.ts --trace` sets it)
 * and prints, for the writes proposed one at a time, the median time of each stage of a write's
 * way — the client's request arriving, the proposal, the leader's Ready and fsync, the append to
 * each follower over the transport, the followers' fsync and answer, the commit, the apply, the
 * answer's socket write (over HTTP or the stream protocol) — separately for writes sent to the
 * leader and to a follower (which relays them).
 *
 *   npx tsx bench/cluster_trace.ts [--reads N] <trace file>...
 *
 * It also prints each member's peer traffic ({@link printTrafficSummary}): ReadIndex requests,
 * messages sent by type, frames and socket writes, in all and per linearizable read.
 *
 * Stages are matched by log index and proposal id; all times are one machine's monotonic clock.
 * Not a test.
 * @module
 */
import fs from 'node:fs';
import { printTable } from './lib.js';

type Ev = [number, string, ...Array<number | string | boolean>];

/** One member's events, by kind, in time order. */
interface NodeTrace {
  id: number;
  byKind: Map<string, Ev[]>;
}

function load(file: string): NodeTrace | undefined {
  const byKind = new Map<string, Ev[]>();
  let id = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const e = JSON.parse(line) as Ev;
    if (e[1] === 'node') id = e[2] as number;
    let list = byKind.get(e[1]);
    if (!list) byKind.set(e[1], (list = []));
    list.push(e);
  }
  return id === 0 ? undefined : { id, byKind };
}

/** The first event of `kind` at or after time `t` that `ok` accepts. */
function first(n: NodeTrace, kind: string, t: number, ok: (e: Ev) => boolean = () => true): Ev | undefined {
  const list = n.byKind.get(kind) ?? [];
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid][0] < t) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < list.length; i++) if (ok(list[i])) return list[i];
  return undefined;
}

/** The last event of `kind` at or before time `t`. */
function lastBefore(n: NodeTrace, kind: string, t: number, ok: (e: Ev) => boolean = () => true): Ev | undefined {
  const list = n.byKind.get(kind) ?? [];
  for (let i = list.length - 1; i >= 0; i--) if (list[i][0] <= t && ok(list[i])) return list[i];
  return undefined;
}

const contains = (lo: number, hi: number, i: number) => lo > 0 && lo <= i && i <= hi;
// tx/rx fields: [t, kind, type, from, to, index, last entry index, commit]
const carries = (e: Ev, i: number) => e[2] === 'MsgApp' && (e[5] as number) < i && (e[6] as number) >= i;

/** The named times of one write, in order of its way; undefined when a stage is missing. */
function timeline(nodes: Map<number, NodeTrace>, proposer: NodeTrace, answer: Ev): Array<[string, number]> | undefined {
  const id = answer[2] as string;
  const prop = lastBefore(proposer, 'propose', answer[0], (e) => e[2] === id);
  if (!prop) return undefined;
  const apply = lastBefore(proposer, 'apply', answer[0], (e) => e[3] === id);
  const front = frontOf(proposer, prop[0], answer[0]);
  if (!apply || !front) return undefined;
  const i = apply[2] as number;
  // The leader: the member that sent the entry in an append.
  let leader: NodeTrace | undefined;
  let txApp: Ev | undefined;
  for (const n of nodes.values()) {
    const tx = first(n, 'tx', prop[0], (e) => carries(e, i));
    if (tx && (!txApp || tx[0] < txApp[0])) [leader, txApp] = [n, tx];
  }
  if (!leader || !txApp) return undefined;
  const L = leader;
  const t: Array<[string, number]> = [...front.in, ['propose', prop[0]]];
  if (proposer !== L) {
    const txProp = first(proposer, 'tx', prop[0], (e) => e[2] === 'MsgProp');
    const frameProp = txProp && first(proposer, 'frame', txProp[0], (e) => e[2] === L.id);
    const rxProp = txProp && first(L, 'rx', txProp[0], (e) => e[2] === 'MsgProp' && e[3] === proposer.id);
    if (!txProp || !frameProp || !rxProp) return undefined;
    t.push(['follower sends MsgProp', txProp[0]], ['follower writes the MsgProp frame', frameProp[0]], ['leader receives MsgProp', rxProp[0]]);
  }
  const readyL = lastBefore(L, 'ready', txApp[0], (e) => contains(e[2] as number, e[3] as number, i));
  if (!readyL) return undefined;
  const savedL = first(L, 'saved', readyL[0]);
  t.push(['leader Ready with the entry', readyL[0]], ['leader sends MsgApp', txApp[0]]);
  // The follower whose answer arrived first makes the quorum.
  let best: Array<[string, number]> | undefined;
  let bestRx = Infinity;
  for (const f of nodes.values()) {
    if (f === L) continue;
    const tx = first(L, 'tx', readyL[0], (e) => carries(e, i) && e[4] === f.id);
    if (!tx) continue;
    const frame = first(L, 'frame', tx[0], (e) => e[2] === f.id);
    const rx = first(f, 'rx', tx[0], (e) => carries(e, i));
    const readyF = rx && first(f, 'ready', rx[0], (e) => contains(e[2] as number, e[3] as number, i));
    const savedF = readyF && first(f, 'saved', readyF[0]);
    const txResp = savedF && first(f, 'tx', savedF[0], (e) => e[2] === 'MsgAppResp' && (e[5] as number) >= i);
    const frameResp = txResp && first(f, 'frame', txResp[0], (e) => e[2] === L.id);
    const rxResp = txResp && first(L, 'rx', txResp[0], (e) => e[2] === 'MsgAppResp' && e[3] === f.id && (e[5] as number) >= i);
    if (!frame || !rx || !readyF || !savedF || !txResp || !frameResp || !rxResp) continue;
    if (rxResp[0] < bestRx) {
      bestRx = rxResp[0];
      best = [
        ['leader writes the frame to the follower', frame[0]],
        ['follower receives MsgApp', rx[0]],
        ['follower Ready with the entry', readyF[0]],
        ['follower log saved (fsync)', savedF[0]],
        ['follower sends MsgAppResp', txResp[0]],
        ['follower writes its frame', frameResp[0]],
        ['leader receives MsgAppResp', rxResp[0]],
      ];
    }
  }
  if (!best || !savedL) return undefined;
  t.push(...best);
  // The leader's own fsync runs in parallel with the follower's round: the entry is held by a
  // quorum once both are done.
  t.push(['quorum holds it (leader fsync and a follower ack)', Math.max(savedL[0], bestRx)]);
  const commitL = first(L, 'ready', readyL[0] + 1, (e) => contains(e[4] as number, e[5] as number, i));
  if (!commitL) return undefined;
  t.push(['leader Ready that commits it', commitL[0]]);
  if (proposer !== L) {
    const rxCommit = first(proposer, 'rx', commitL[0], (e) => (e[2] === 'MsgApp' || e[2] === 'MsgHeartbeat') && (e[7] as number) >= i && e[3] === L.id);
    if (!rxCommit) return undefined;
    t.push(['follower learns the commit', rxCommit[0]]);
  }
  // The follower applies it from the Ready that commits it, or from a commit it learnt while it
  // synced a later Ready (group.ts, duringSync): whichever came last before the apply.
  const readyC = lastBefore(proposer, 'ready', apply[0], (e) => contains(e[4] as number, e[5] as number, i));
  const duringSync = lastBefore(proposer, 'commit-during-sync', apply[0], (e) => contains(e[2] as number, e[3] as number, i));
  const committing = [readyC, duringSync].filter((e): e is Ev => e !== undefined).sort((a, b) => b[0] - a[0])[0];
  if (committing && proposer !== L) t.push(['follower Ready that commits it (or the commit learnt during a sync)', committing[0]]);
  t.push(['apply starts (proposer)', apply[0]], ['proposer answered', answer[0]], ...front.out);
  return t;
}

/**
 * The client front's stages of the write proposed at `propose` and answered at `answer` on member
 * `n`: over HTTP (server/app.ts) the request's arrival and the answer's end; over the stream
 * (server/stream/connection.ts) the frame decoded, handed to the core, the answer queued and the
 * socket write that carried it. Whichever front's request came last before the proposal.
 */
function frontOf(n: NodeTrace, propose: number, answer: number): { in: Array<[string, number]>; out: Array<[string, number]> } | undefined {
  const http = lastBefore(n, 'http', propose);
  const core = lastBefore(n, 'stream-core', propose);
  if (core && (!http || core[0] > http[0])) {
    const id = core[2];
    const decoded = lastBefore(n, 'stream-in', core[0], (e) => e[2] === id);
    const queued = first(n, 'stream-queued', answer, (e) => e[2] === id);
    const written = queued && first(n, 'stream-write', queued[0]);
    if (!decoded || !queued || !written) return undefined;
    return {
      in: [['client request decoded (stream)', decoded[0]], ['handed to the core (stream)', core[0]]],
      out: [['answer queued (stream)', queued[0]], ['answer written (stream)', written[0]]],
    };
  }
  const end = first(n, 'http-end', answer);
  if (!http || !end) return undefined;
  return { in: [['client request arrives (http)', http[0]]], out: [['HTTP answer written', end[0]]] };
}

/** The `q` quantile of `v` (0.5: the median). */
const quantile = (v: number[], q: number) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(s.length * q))];
};

/** Prints, from the trace files, one table per kind of write (to the leader, to a follower). */
export function printTraceSummary(files: string[]): void {
  const nodes = new Map<number, NodeTrace>();
  for (const f of files) {
    const n = load(f);
    if (n) nodes.set(n.id, n);
  }
  const groups = new Map<string, Array<Array<[string, number]>>>();
  for (const p of nodes.values()) {
    for (const a of p.byKind.get('answer') ?? []) {
      const tl = timeline(nodes, p, a);
      if (!tl) continue;
      const key = tl.some(([s]) => s === 'follower sends MsgProp') ? 'written to a follower (forwarded to the leader)' : 'written to the leader';
      groups.set(key, [...(groups.get(key) ?? []), tl]);
    }
  }
  if (groups.size === 0) console.log('(no write could be followed through the trace)');
  for (const [key, tls] of groups) {
    // Only writes with every stage of their kind (a commit learnt from a heartbeat has one less, for instance).
    const n = Math.max(...tls.map((t) => t.length));
    const full = tls.filter((t) => t.length === n);
    const rows = full[0].map(([name], k) => {
      const step = full.map((t) => t[k][1] - t[k - 1]?.[1]);
      return [
        name,
        String(Math.round(quantile(full.map((t) => t[k][1] - t[0][1]), 0.5))),
        k === 0 ? '' : String(Math.round(quantile(step, 0.5))),
        k === 0 ? '' : String(Math.round(quantile(step, 0.9))),
      ];
    });
    console.log(`${key}: ${full.length} writes (of ${tls.length} followed)`);
    printTable(['stage', 'µs since the request arrived (median)', 'µs since the previous stage (median)', '(p90)'], rows);
    console.log('');
  }
}

/** Message types counted one by one in {@link printTrafficSummary} (the others are summed). */
const READ_TYPES = ['MsgHeartbeat', 'MsgHeartbeatResp', 'MsgReadIndex', 'MsgReadIndexResp'] as const;

/**
 * Prints, from the trace files, the peer traffic of each member — ReadIndex requests and the
 * reads they carried, messages sent by type, frames and socket writes — in all and per read
 * (`reads`: the reads of the run, when the members did not trace their read requests).
 */
export function printTrafficSummary(files: string[], reads?: number): void {
  const nodes = files.map(load).filter((n): n is NodeTrace => n !== undefined).sort((a, b) => a.id - b.id);
  const rows: Array<{ name: string; v: number[] }> = [];
  const total = new Array<number>(9).fill(0);
  for (const n of nodes) {
    const list = (kind: string) => n.byKind.get(kind) ?? [];
    const tx = list('tx');
    const byType = READ_TYPES.map((t) => tx.filter((e) => e[2] === t).length);
    const frames = list('frame');
    const v = [
      list('read-request').reduce((a, e) => a + (e[2] as number), 0), list('read-request').length,
      ...byType, tx.length - byType.reduce((a, b) => a + b, 0), frames.length, list('write').length,
    ];
    v.forEach((x, i) => (total[i] += x));
    rows.push({ name: `member ${n.id}`, v });
  }
  const served = reads ?? total[0];
  rows.push({ name: 'all members', v: total });
  const cell = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(3));
  const table = rows.map((r) => [r.name, ...r.v.map(cell)]);
  if (served > 0) table.push([`per read (${served} reads)`, ...total.map((x) => cell(x / served))]);
  console.log('peer traffic (sent by each member):');
  printTable(['', 'reads', 'ReadIndex requests', ...READ_TYPES, 'other messages', 'frames', 'socket writes'], table);
  console.log('');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--reads');
  const reads = at >= 0 ? Number(argv.splice(at, 2)[1]) : undefined;
  printTraceSummary(argv);
  printTrafficSummary(argv, reads);
}
