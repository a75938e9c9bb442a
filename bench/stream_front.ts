/**
 * The stream front's CPU per request without the kernel: one in-process node (a one-member group,
 * `--no-sync`), its stream routes driven by one `StreamConnection` over an in-memory socket, so
 * that the socket syscalls, the loopback's wake-ups and the client cost nothing and what is
 * measured is the JavaScript of one request end to end (frame decoding, checks, the route's core,
 * the engine's read or the write path, metrics, answer encoding, the turn's one buffer). Requests
 * go `--window` at a time (all in one chunk, as a socket read hands them over); the next window
 * goes when every answer of this one has been written. Prints the process's CPU (user + system)
 * per request of each phase, and the load average. Compare two commits by running it in each.
 * Not a test.
 *
 *   npx tsx bench/stream_front.ts [--n 50000] [--window 32] [--value 100] [--rounds 3]
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { StreamRoutes } from '../server/app.js';
import type { ProofNode } from '../server/node.js';
import { StreamConnection } from '../server/stream/connection.js';
import { startLocalNode } from '../test/server/harness.js';
import { ACCEPT, OP, encodeRequest } from '../test/server/stream_client.js';
import { fmtNum, loadAvg, numArg, parseArgs, printTable } from './lib.js';

const args = parseArgs(process.argv.slice(2));
const N = numArg(args, 'n', 50_000);
const WINDOW = numArg(args, 'window', 32);
const VALUE = Buffer.alloc(numArg(args, 'value', 100), 0x61);
const ROUNDS = numArg(args, 'rounds', 3);

/** A socket that keeps nothing: it counts the answer frames written and wakes the driver. */
class CountingSocket extends EventEmitter {
  answers = 0;
  writes = 0;
  writableLength = 0;
  writableEnded = false;
  destroyed = false;
  remoteAddress = '127.0.0.1';
  onAnswers: (() => void) | null = null;
  setNoDelay(): void {}
  pause(): void {}
  resume(): void {}
  write(b: Buffer): boolean {
    this.writes++;
    for (let p = 0; p + 4 <= b.length; p += 4 + b.readUInt32BE(p)) this.answers++;
    this.onAnswers?.();
    return true;
  }
  end(): void {
    this.writableEnded = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

/** Sends `n` requests `WINDOW` at a time; resolves with the CPU µs per request. */
async function phase(socket: CountingSocket, n: number, frame: (i: number, id: number) => Buffer): Promise<{ cpuUs: number; rate: number }> {
  let sent = 0;
  let id = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (sent < n) {
    const k = Math.min(WINDOW, n - sent);
    const chunk = Buffer.concat(Array.from({ length: k }, () => frame(sent++, ++id)));
    const want = socket.answers + k;
    const done = new Promise<void>((resolve) => {
      socket.onAnswers = () => {
        if (socket.answers >= want) resolve();
      };
    });
    socket.emit('data', chunk);
    await done;
  }
  const cpu = process.cpuUsage(cpu0);
  return { cpuUs: (cpu.user + cpu.system) / n, rate: (n * 1000) / (performance.now() - t0) };
}

const before = loadAvg();
const node: ProofNode = await startLocalNode({ sync: false });
try {
  const routes = (node.stream as unknown as { o: { routes: StreamRoutes } }).o.routes;
  const socket = new CountingSocket();
  new StreamConnection(socket as unknown as Socket, 'admin', routes, { maxFrameBytes: 1 << 21, maxInFlight: 4096, maxBufferedBytes: 1 << 26, maxInFlightBytes: 1 << 26 });
  const put = (i: number, id: number) => encodeRequest({ id, op: OP.PUT, key: `k${i}`, value: VALUE, accept: ACCEPT.JSON });
  const get = (i: number, id: number) => encodeRequest({ id, op: OP.GET, key: `k${i % N}`, accept: ACCEPT.RAW });
  // Warm-up (JIT), not measured.
  await phase(socket, 5000, put);
  await phase(socket, 5000, get);
  const rows: string[][] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const p = await phase(socket, N, put);
    const g = await phase(socket, N, get);
    rows.push([String(r), fmtNum(p.rate), `${p.cpuUs.toFixed(1)} µs`, fmtNum(g.rate), `${g.cpuUs.toFixed(1)} µs`]);
  }
  console.log(`in-process stream front, one-member group (no sync), ${N} PUTs of ${VALUE.length} B then ${N} linearizable raw GETs per round, ${WINDOW} per window; load average ${before}`);
  printTable(['round', 'PUT/s', 'CPU per PUT', 'GET/s', 'CPU per GET'], rows);
  console.log(`answers per socket write: ${(socket.answers / socket.writes).toFixed(1)}; load average after ${loadAvg()}`);
} finally {
  await node.shutdown('bench');
}
