/**
 * Where a cluster member's CPU goes per write: the V8 CPU profiles of the members (from
 * `npm run bench:cluster -- --systems proofkv --cpu-prof DIR`) summarised by area of the
 * replication path, in microseconds per PUT.
 *
 *   npx tsx bench/cluster_profile.ts DIR/CPU.*.cpuprofile --puts 8200 [--detail 'client HTTP']
 *
 * Each sample is charged to the innermost frame on its stack that belongs to an area. Frames
 * that are nobody's own work are passed through to their caller: V8 builtins and native code
 * (`fdatasync`, `writev`, `Hmac`), `node:fs`, `node:buffer`, `node:crypto`, cbor-x. Node's socket
 * and HTTP code is the client's HTTP unless a peer-transport frame is further out (then it is the
 * transport's socket work). Samples with no area frame at all go by V8's own label (`(garbage
 * collector)`, `(idle)`, `(program)`). Only samples from the first one inside node's HTTP server
 * on are counted (start-up excluded). `--puts` divides each area's time by the PUTs of the run
 * (the bench's warm-up included); a profile of a worker thread (its file name's second number is
 * not 0) is shown apart. `--detail PREFIX` lists, for the areas whose name starts with it, the
 * functions their time is spent in (leaf, and its nearest caller with a script). `--from S --to S`
 * keep only the samples taken from S to S seconds after the profile's start (compare the early
 * and the late part of a long run; `--puts` is then the PUTs of that window). Not a test.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { profileTree, tallyAreas, type Profile } from './cpuprofile.js';
import { numArg, parseArgs } from './lib.js';

/** Areas, first match wins (most specific first); matched against a frame's path. */
export const CLUSTER_AREAS: ReadonlyArray<readonly [string, RegExp]> = [
  ['Raft core (step, Ready, log, progress)', /\/src\/raft\/(raft|rawnode|log|progress|types|storage|rand|codec|index)\.[jt]s$/],
  ['WAL (encode, write, fdatasync)', /\/src\/raft\/(wal_storage|wal_format|wal_upgrade|level_storage|mirrored_storage)\.[jt]s$/],
  ['peer transport (codec, MAC, queue, stream, socket)', /\/src\/replication\/transport(\.[jt]s$|\/)/],
  ['group loop (src/replication/group.ts, trace)', /\/src\/replication\/(group|trace|clock|members|index)\.[jt]s$/],
  ['sessions table', /\/src\/replication\/sessions\.[jt]s$/],
  ['checkpoints and co-signing (cosign, checkpointer, checkpoint log, Ed25519, Merkle)', /\/src\/replication\/cosign\.[jt]s$|\/src\/proof\/|\/src\/merkle\/|\/node_modules\/@noble\//],
  ['write path (server/raft_write_path.ts, write_path.ts)', /\/server\/(raft_write_path|write_path)\.[jt]s$/],
  ['logging (pino)', /\/node_modules\/(pino|pino-std-serializers|sonic-boom|thread-stream)\//],
  ['client HTTP (node http, express, front, routes, codec, metrics)', /\/server\/|\/node_modules\/(express|router|body-parser|raw-body|accepts|negotiator|type-is|mime-types|content-type|on-finished|finalhandler|parseurl|path-to-regexp|depd|statuses|http-errors|media-typer|vary|prom-client|debug|ms|proxy-addr|forwarded|ipaddr\.js|setprototypeof|inherits|safe-buffer|iconv-lite|bytes|ee-first|unpipe|destroy)\//],
  ['engine apply and flush (src/db, memtable, tables, version, compaction)', /\/src\//],
  ['module loading (tsx, esbuild)', /\/node_modules\/(tsx|esbuild|get-tsconfig)\/|^node:internal\/modules\//],
  ['other node_modules', /\/node_modules\//],
];
const TRANSPORT = CLUSTER_AREAS[2][0];
const CLIENT_HTTP = CLUSTER_AREAS[8][0];
/** Node's socket, HTTP and stream code: the client's HTTP, or the transport's when it is further out. */
const NODE_NET_RE = /^node:(_http_|http|net|stream|tls|_tls|internal\/(streams|http|stream_base_commons|js_stream_socket|net|tls))/;
/** Frames charged to their caller. */
const PASS_RE = /^$|^node:(fs|buffer|crypto|internal\/(fs|crypto|buffer|util|process\/task_queues|timers|async_hooks))|\/node_modules\/cbor-x\//;

/** Busy time of a profile by area, and the `fdatasync`/`fsync` time within each area (µs). */
export function clusterAreas(prof: Profile, detail?: string): { byArea: Map<string, number>; syncs: Map<string, number>; idle: number; all: number; frames: Map<string, number> } {
  const { byId, parent, inHttpServer } = profileTree(prof);
  const cache = new Map<number, string>();
  const areaOf = (leaf: number): string => {
    const hit = cache.get(leaf);
    if (hit !== undefined) return hit;
    let found: string | undefined;
    let net = false;
    for (let id: number | undefined = leaf; id !== undefined && found === undefined; id = parent.get(id)) {
      const url = byId.get(id)!.callFrame.url.replace(/^file:\/\//, '');
      if (PASS_RE.test(url)) continue;
      if (NODE_NET_RE.test(url)) {
        net = true;
        continue;
      }
      const a = CLUSTER_AREAS.find(([, re]) => re.test(url))?.[0];
      if (a === undefined) continue;
      // Node's socket code under the transport is the transport's; under anything else the client's.
      found = net && a !== TRANSPORT ? CLIENT_HTTP : a;
    }
    const name = byId.get(leaf)!.callFrame.functionName;
    const area = found ?? (net ? CLIENT_HTTP : name.startsWith('(') ? name : 'other (node internals, timers)');
    cache.set(leaf, area);
    return area;
  };
  const syncs = new Map<string, number>();
  const frames = new Map<string, number>();
  const { byArea, idle, all } = tallyAreas(prof, inHttpServer, areaOf, (leafId, a, dt) => {
    if (detail !== undefined && a.startsWith(detail)) {
      // The leaf and its nearest caller with a script: what the area spends its time in.
      let id: number | undefined = leafId;
      const leaf = byId.get(leafId)!.callFrame;
      while (id !== undefined && PASS_RE.test(byId.get(id)!.callFrame.url)) id = parent.get(id);
      const at = id === undefined ? undefined : byId.get(id)!.callFrame;
      const short = (f: { functionName: string; url: string }) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(src|server|node_modules)\//, '$1/')}`;
      const key = `${short(leaf)}${at && at !== leaf ? ` ← ${short(at)}` : ''}`;
      frames.set(key, (frames.get(key) ?? 0) + dt);
    }
    const leafName = byId.get(leafId)!.callFrame.functionName;
    if (leafName === 'fdatasync' || leafName === 'fsync') syncs.set(a, (syncs.get(a) ?? 0) + dt);
  });
  return { byArea, syncs, idle, all, frames };
}

/** The samples of `prof` taken from `fromS` to `toS` seconds after its first sample. */
export function profileWindow(prof: Profile, fromS: number, toS: number): Profile {
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  let t = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    if (t >= fromS * 1e6 && t < toS * 1e6) {
      samples.push(prof.samples[i]);
      timeDeltas.push(prof.timeDeltas[i] ?? 0);
    }
  }
  return { nodes: prof.nodes, samples, timeDeltas };
}

function main(): void {
  const argv = process.argv.slice(2);
  const files = argv.filter((a) => a.endsWith('.cpuprofile'));
  if (files.length === 0) {
    console.error('usage: tsx bench/cluster_profile.ts FILE.cpuprofile... [--puts N]');
    process.exit(2);
  }
  const args = parseArgs(argv.filter((a) => !a.endsWith('.cpuprofile')));
  const puts = numArg(args, 'puts', 0);
  const detail = typeof args.get('detail') === 'string' ? String(args.get('detail')) : undefined;
  const from = numArg(args, 'from', 0);
  const to = numArg(args, 'to', Infinity);
  const per = (us: number) => (puts > 0 ? `${(us / puts).toFixed(1).padStart(7)} µs/PUT` : '');
  const totals = new Map<string, number>();
  let busyAll = 0;
  for (const file of files) {
    const thread = /\.\d+\.(\d+)\.\d+\.cpuprofile$/.exec(path.basename(file))?.[1] ?? '0';
    const { byArea, syncs, idle, all, frames } = clusterAreas(profileWindow(JSON.parse(fs.readFileSync(file, 'utf8')) as Profile, from, to), detail);
    const busy = all - idle;
    console.log(`\n${path.basename(file)}${thread === '0' ? '' : ' (worker thread)'}: ${(all / 1e6).toFixed(2)} s sampled, busy ${(busy / 1e6).toFixed(2)} s (${((busy / Math.max(all, 1)) * 100).toFixed(0)} %) ${per(busy)}`);
    for (const [area, us] of [...byArea].sort((a, b) => b[1] - a[1])) {
      const s = syncs.get(area);
      console.log(`${((us / busy) * 100).toFixed(1).padStart(6)} %  ${(us / 1000).toFixed(0).padStart(6)} ms ${per(us)}  ${area}${s ? ` (fdatasync/fsync ${(s / 1000).toFixed(0)} ms)` : ''}`);
      totals.set(area, (totals.get(area) ?? 0) + us);
    }
    if (detail !== undefined) for (const [f, us] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`      ${(us / 1000).toFixed(0).padStart(6)} ms  ${f}`);
    busyAll += busy;
  }
  if (files.length > 1) {
    console.log(`\nall profiles: busy ${(busyAll / 1e6).toFixed(2)} s ${per(busyAll)}`);
    for (const [area, us] of [...totals].sort((a, b) => b[1] - a[1])) console.log(`${((us / busyAll) * 100).toFixed(1).padStart(6)} %  ${(us / 1000).toFixed(0).padStart(6)} ms ${per(us)}  ${area}`);
  }
}

main();
