/**
 * One node's CPU per request, HTTP vs the stream (docs/stream-protocol.md): one `proofkv serve`
 * process, 100 requests in flight, first PUTs then linearizable GETs, from an HTTP/1.1 keep-alive
 * client (100 connections, one request in flight on each, as a pool of 100 clients does) and from
 * a stream client (one connection, 100 requests in flight). The server's CPU (user + system) comes
 * from `/proc/PID/stat` before and after each phase; the client's CPU is not counted. Prints each
 * phase's throughput and server CPU per request for both fronts, the ratio, and the load average.
 * Not a test.
 *
 *   npx tsx bench/stream_node.ts [--n 20000] [--inflight 100] [--value 100] [--no-sync] [--fronts both|http|stream] [--cpu-prof DIR]
 *
 * `--fronts` runs one front only (default both; the ratio column needs both).
 * With `--cpu-prof DIR` each server writes a V8 CPU profile into DIR (summarise it with
 * `bench/profile-summary.ts` or `bench/http.ts`).
 * @module
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ACCEPT, OP, encodeRequest, isClient, openStream, type StreamClient } from '../test/server/stream_client.js';
import { fmtNum, loadAvg, numArg, parseArgs, printTable, tempDir } from './lib.js';
import { processCpuUs } from './loadgen.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = parseArgs(process.argv.slice(2));
const N = numArg(args, 'n', 20_000);
const INFLIGHT = numArg(args, 'inflight', 100);
const VALUE = Buffer.alloc(numArg(args, 'value', 100), 0x61);
const SYNC = !args.has('no-sync');
const PROF = args.get('cpu-prof');
const FRONTS = String(args.get('fronts') ?? 'both');
if (!['both', 'http', 'stream'].includes(FRONTS)) throw new Error(`--fronts must be both, http or stream, not ${FRONTS}`);

/** A `proofkv serve` process on a fresh directory. */
async function startServe(): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const dir = tempDir('proofkv-stream-bench-');
  const prof = typeof PROF === 'string' ? ['--cpu-prof', '--cpu-prof-dir', PROF] : [];
  const argv = [...prof, '--import', 'tsx', path.join(ROOT, 'server/cli.ts'), 'serve', '--data', path.join(dir, 'data'), '--port', '0', '--log-level', 'error', ...(SYNC ? [] : ['--no-sync'])];
  const env = { ...process.env };
  delete env.PROOFKV_TOKENS;
  const proc = spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start in 60 s: ${out}`)), 60_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited (${code}): ${out}`)));
  });
  return {
    url,
    pid: proc.pid!,
    stop: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `one(i)` for i in 0..n-1 with `inflight` at a time; resolves when all are done. */
async function window(n: number, inflight: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: Math.min(inflight, n) }, worker));
}

/** An HTTP/1.1 request on a keep-alive agent; rejects on a status other than `want`. */
function httpCall(agent: http.Agent, url: URL, method: string, p: string, body: Buffer | undefined, want: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = body ? { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } : {};
    if (method === 'GET') headers.accept = 'application/octet-stream';
    const req = http.request({ host: url.hostname, port: url.port, method, path: p, agent, headers }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === want ? resolve() : reject(new Error(`${method} ${p}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A phase's server CPU and wall time. */
interface Phase {
  rate: number;
  cpuUsPerReq: number;
}

async function measure(pid: number, n: number, run: () => Promise<void>): Promise<Phase> {
  const cpu0 = processCpuUs(pid)!;
  const t0 = performance.now();
  await run();
  const ms = performance.now() - t0;
  const cpu1 = processCpuUs(pid)!;
  return { rate: (n * 1000) / ms, cpuUsPerReq: (cpu1 - cpu0) / n };
}

async function httpPhases(): Promise<{ put: Phase; get: Phase }> {
  const s = await startServe();
  try {
    const url = new URL(s.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: INFLIGHT });
    // Warm-up (JIT, connections), not measured.
    await window(2000, INFLIGHT, (i) => httpCall(agent, url, 'PUT', `/v1/kv/w${i}`, VALUE, 200));
    const put = await measure(s.pid, N, () => window(N, INFLIGHT, (i) => httpCall(agent, url, 'PUT', `/v1/kv/k${i}`, VALUE, 200)));
    const get = await measure(s.pid, N, () => window(N, INFLIGHT, (i) => httpCall(agent, url, 'GET', `/v1/kv/k${i}`, undefined, 200)));
    agent.destroy();
    return { put, get };
  } finally {
    await s.stop();
  }
}

/** Sends requests over one stream connection, `inflight` at a time (the next goes out as an answer arrives). */
function streamWindow(c: StreamClient, n: number, inflight: number, frame: (i: number) => { op: number; key: string; value?: Buffer; accept: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let done = 0;
    let id = 0;
    const send = () => {
      const f = frame(sent++);
      c.write(encodeRequest({ id: ++id, ...f }));
    };
    const prev = c.socket.listeners('data');
    c.socket.removeAllListeners('data');
    c.socket.on('data', (d: Buffer) => {
      for (const a of c.decoder.push(d)) {
        if (a.status !== 200) return reject(new Error(`stream answer ${a.id}: ${a.status} ${a.body.toString()}`));
        done++;
        if (sent < n) send();
      }
      if (done === n) {
        c.socket.removeAllListeners('data');
        for (const l of prev) c.socket.on('data', l as (d: Buffer) => void);
        resolve();
      }
    });
    for (let i = 0; i < Math.min(inflight, n); i++) send();
  });
}

async function streamPhases(): Promise<{ put: Phase; get: Phase }> {
  const s = await startServe();
  try {
    const c = await openStream(s.url);
    if (!isClient(c)) throw new Error(`handshake refused: ${c.status}`);
    await streamWindow(c, 2000, INFLIGHT, (i) => ({ op: OP.PUT, key: `w${i}`, value: VALUE, accept: ACCEPT.JSON }));
    const put = await measure(s.pid, N, () => streamWindow(c, N, INFLIGHT, (i) => ({ op: OP.PUT, key: `k${i}`, value: VALUE, accept: ACCEPT.JSON })));
    const get = await measure(s.pid, N, () => streamWindow(c, N, INFLIGHT, (i) => ({ op: OP.GET, key: `k${i}`, accept: ACCEPT.RAW })));
    c.close();
    return { put, get };
  } finally {
    await s.stop();
  }
}

const before = loadAvg();
console.log(`one proofkv serve (${SYNC ? 'sync' : '--no-sync'}), ${N} PUTs of ${VALUE.length} B then ${N} linearizable GETs, ${INFLIGHT} in flight; load average ${before}`);
const h = FRONTS === 'stream' ? undefined : await httpPhases();
const st = FRONTS === 'http' ? undefined : await streamPhases();
const cells = (p: Phase | undefined) => (p === undefined ? ['-', '-'] : [fmtNum(p.rate), `${p.cpuUsPerReq.toFixed(0)} µs`]);
const row = (name: string, a: Phase | undefined, b: Phase | undefined) => [
  name,
  ...cells(a),
  ...cells(b),
  a && b ? `${(a.cpuUsPerReq / b.cpuUsPerReq).toFixed(2)}x` : '-',
];
printTable(['phase', 'HTTP req/s', 'HTTP server CPU/req', 'stream req/s', 'stream server CPU/req', 'CPU ratio HTTP/stream'], [row('PUT', h?.put, st?.put), row('GET', h?.get, st?.get)]);
console.log(`load average before ${before}, after ${loadAvg()}`);
