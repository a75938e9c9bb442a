/**
 * Where an HTTP request's time goes in a server: a V8 CPU profile of `proofkv serve` (from
 * `npm run bench:http -- --cpu-prof DIR`) summarised by area of the request path instead of by
 * function (`bench/profile-summary.ts` gives the functions).
 *
 *   npx tsx bench/http.ts DIR/CPU.*.cpuprofile [--top 8]
 *
 * Each sample is charged to the innermost frame on its stack that belongs to an area: a sample in
 * `JSON.stringify` called from `server/codec.ts` is encoding, one in the engine called from a route
 * handler is the engine, one in express's router is express, one in node's HTTP, socket or stream
 * code (`res.end` called from the codec included: writing the answer) is node's. Frames without a
 * script (V8 builtins, native code such as `writev`) are charged to their caller's area. Samples
 * with no area frame at all go by V8's own label (`(garbage collector)`, `(idle)`, `(program)`). Only samples from the first one inside node's HTTP server
 * on are counted: start-up (module loading, opening the database) is not a request's cost.
 * Shares are of the busy time (idle excluded). Not a test.
 * @module
 */
import fs from 'node:fs';
import { profileTree, tallyAreas, type Profile } from './cpuprofile.js';
import { numArg, parseArgs } from './lib.js';

/** Areas of a request, first match wins (most specific first). */
const AREAS: ReadonlyArray<readonly [string, RegExp]> = [
  ['HTTP front (server/http_front.ts)', /\/server\/http_front\.ts$/],
  ['auth (server/auth.ts, SHA-256 of the token)', /\/server\/auth\.ts$/],
  ['metrics (server/metrics.ts, prom-client)', /\/server\/metrics\.ts$|\/node_modules\/prom-client\//],
  ['encoding (server/codec.ts, cbor-x, JSON)', /\/server\/codec\.ts$|\/node_modules\/cbor-x\//],
  ['keys and query (server/keys.ts)', /\/server\/keys\.ts$/],
  ['logging (pino)', /\/node_modules\/(pino|pino-std-serializers|sonic-boom|thread-stream)\//],
  ['express (routing, middleware, req/res helpers)', /\/node_modules\/(express|router|body-parser|raw-body|accepts|negotiator|type-is|mime-types|mime-db|content-type|on-finished|finalhandler|parseurl|path-to-regexp|depd|send|serve-static|iconv-lite|bytes|qs|vary|statuses|http-errors|media-typer|content-disposition|cookie|fresh|range-parser|utils-merge|merge-descriptors|methods|encodeurl|escape-html|etag|destroy|ee-first|unpipe|setprototypeof|inherits|safe-buffer|debug|ms|proxy-addr|forwarded|ipaddr\.js)\//],
  ['write path (server/raft_write_path.ts, write_path.ts, src/raft, src/replication)', /\/server\/(raft_write_path|write_path|raft_snapshot)\.ts$|\/src\/(raft|replication)\//],
  ['routes and app (server/routes, app.ts, route_table.ts, errors.ts, context.ts)', /\/server\/(routes\/[^/]+|app|route_table|errors|context|node|openapi)\.ts$/],
  ['engine and proofs (src/, proofs/)', /\/src\/|\/proofs\//],
  ['module loading (tsx, esbuild)', /\/node_modules\/(tsx|esbuild|get-tsconfig)\/|^node:internal\/modules\//],
  ['other node_modules', /\/node_modules\//],
];
const NODE_HTTP = 'node: http/net (parser, sockets, streams)';
const NODE_HTTP_RE = /^node:(_http_|http|net|stream|internal\/(streams|http|stream_base_commons|js_stream_socket|net)|events)/;

/** Busy time of a profile by area, in microseconds, and the idle time. */
export function areasOf(prof: Profile): { byArea: Map<string, number>; idle: number; all: number } {
  const { byId, parent, inHttpServer } = profileTree(prof);
  const areaOfNode = new Map<number, string>();
  const areaOf = (leaf: number): string => {
    const cached = areaOfNode.get(leaf);
    if (cached !== undefined) return cached;
    let found: string | undefined;
    for (let id: number | undefined = leaf; id !== undefined && found === undefined; id = parent.get(id)) {
      const url = byId.get(id)!.callFrame.url.replace(/^file:\/\//, '');
      if (url === '') continue;
      found = NODE_HTTP_RE.test(url) ? NODE_HTTP : AREAS.find(([, re]) => re.test(url))?.[0];
    }
    const leafName = byId.get(leaf)!.callFrame.functionName;
    const area = found ?? (leafName.startsWith('(') ? leafName : 'other (node internals, timers)');
    areaOfNode.set(leaf, area);
    return area;
  };
  return tallyAreas(prof, inHttpServer, areaOf);
}

function main(): void {
  const argv = process.argv.slice(2);
  const files = argv.filter((a) => a.endsWith('.cpuprofile'));
  if (files.length === 0) {
    console.error('usage: tsx bench/http.ts FILE.cpuprofile... [--top 12]');
    process.exit(2);
  }
  const top = numArg(parseArgs(argv.filter((a) => !a.endsWith('.cpuprofile'))), 'top', 12);
  for (const file of files) {
    const { byArea, idle, all } = areasOf(JSON.parse(fs.readFileSync(file, 'utf8')) as Profile);
    const busy = all - idle;
    console.log(`\n${file}: ${(all / 1e6).toFixed(2)} s sampled, busy ${(busy / 1e6).toFixed(2)} s (${((busy / all) * 100).toFixed(0)} %), idle ${(idle / 1e6).toFixed(2)} s`);
    const rows = [...byArea].sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [area, us] of rows) console.log(`${((us / busy) * 100).toFixed(1).padStart(6)} % of busy  ${(us / 1000).toFixed(0).padStart(6)} ms  ${area}`);
  }
}

main();
