/**
 * The fault proxy against an echo server on loopback: each mode does what it says (pass
 * forwards, cut refuses and severs, blackhole swallows, delay keeps order, drop closes), a mode
 * switch acts on open connections, and the delay queue stays within its byte bound.
 */
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from './proxy.js';

interface Echo {
  port: number;
  received: number;
  close(): Promise<void>;
}

async function echoServer(): Promise<Echo> {
  const sockets = new Set<net.Socket>();
  const e: Echo = { port: 0, received: 0, close: async () => undefined };
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => {
      e.received += d.length;
      s.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  e.port = (server.address() as net.AddressInfo).port;
  e.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return e;
}

function connect(p: FaultProxy): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(new URL(p.url).port), '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads from `s` until `n` bytes came (or the socket closed: then what came). */
function readN(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let got = 0;
    const done = () => {
      s.off('data', on);
      resolve(Buffer.concat(parts));
    };
    const on = (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= n) done();
    };
    s.on('data', on);
    s.once('close', done);
  });
}

const closed = (s: net.Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

describe('FaultProxy', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  async function setup(o: { maxBufferedBytes?: number } = {}) {
    const echo = await echoServer();
    const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: echo.port }, seed: 7, ...o });
    open.push(echo, proxy);
    return { echo, proxy };
  }

  it('pass forwards both ways', async () => {
    const { proxy, echo } = await setup();
    const s = await connect(proxy);
    s.on('error', () => undefined);
    const back = readN(s, 5);
    s.write('hello');
    expect((await back).toString()).toBe('hello');
    expect(echo.received).toBe(5);
    expect(proxy.stats.forwarded).toBe(10);
    s.destroy();
  });

  it('cut severs open connections and refuses new ones; pass again lets new ones through', async () => {
    const { proxy } = await setup();
    const s = await connect(proxy);
    s.on('error', () => undefined);
    const back = readN(s, 2);
    s.write('hi');
    await back;
    proxy.setMode({ kind: 'cut' });
    await closed(s);
    expect(proxy.stats.severed).toBe(1);
    const t = await connect(proxy).catch(() => undefined);
    if (t) {
      t.on('error', () => undefined);
      await closed(t);
    }
    expect(proxy.stats.refused).toBe(1);
    proxy.setMode({ kind: 'pass' });
    const u = await connect(proxy);
    const again = readN(u, 3);
    u.write('abc');
    expect((await again).toString()).toBe('abc');
    u.destroy();
  });

  it('blackhole accepts and never forwards, on new and on open connections', async () => {
    const { proxy, echo } = await setup();
    const before = await connect(proxy);
    before.on('error', () => undefined);
    proxy.setMode({ kind: 'blackhole' });
    const s = await connect(proxy);
    s.on('error', () => undefined);
    let answered = 0;
    s.on('data', (d) => (answered += d.length));
    before.on('data', (d) => (answered += d.length));
    s.write('x'.repeat(1000));
    before.write('y'.repeat(500));
    await until(() => proxy.stats.swallowed === 1500);
    // An answer would have to pass the proxy too: nothing reached the server, nothing came back.
    expect(echo.received).toBe(0);
    expect(answered).toBe(0);
    expect(s.destroyed).toBe(false);
    s.destroy();
    before.destroy();
  });

  it('delay keeps the order of chunks under jitter', async () => {
    const { proxy } = await setup();
    proxy.setMode({ kind: 'delay', ms: 5, jitterMs: 30 });
    const s = await connect(proxy);
    s.on('error', () => undefined);
    let expected = '';
    for (let i = 0; i < 60; i++) expected += `<${i}>`;
    const back = readN(s, expected.length);
    for (let i = 0; i < 60; i++) {
      s.write(`<${i}>`);
      await new Promise((r) => setImmediate(r));
    }
    expect((await back).toString()).toBe(expected);
    s.destroy();
  });

  it('delay holds at most its byte bound (plus a chunk) per direction', async () => {
    const bound = 64 * 1024;
    const { proxy } = await setup({ maxBufferedBytes: bound });
    proxy.setMode({ kind: 'delay', ms: 20, jitterMs: 0 });
    const s = await connect(proxy);
    s.on('error', () => undefined);
    const total = 4 * 1024 * 1024;
    const back = readN(s, total);
    const chunk = Buffer.alloc(16 * 1024, 1);
    for (let sent = 0; sent < total; sent += chunk.length) if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    expect((await back).length).toBe(total);
    expect(proxy.stats.peakHeld).toBeGreaterThan(0);
    expect(proxy.stats.peakHeld).toBeLessThanOrEqual(bound + 128 * 1024);
    s.destroy();
  });

  it('drop with p = 1 closes the connection at its first chunk; p = 0 forwards', async () => {
    const { proxy, echo } = await setup();
    proxy.setMode({ kind: 'drop', p: 1 });
    const s = await connect(proxy);
    s.on('error', () => undefined);
    s.write('doomed');
    await closed(s);
    expect(proxy.stats.dropped).toBe(1);
    expect(echo.received).toBe(0);
    proxy.setMode({ kind: 'drop', p: 0 });
    const t = await connect(proxy);
    const back = readN(t, 2);
    t.write('ok');
    expect((await back).toString()).toBe('ok');
    t.destroy();
  });

  it('refuses bad mode parameters', async () => {
    const { proxy } = await setup();
    expect(() => proxy.setMode({ kind: 'drop', p: 2 })).toThrow(RangeError);
    expect(() => proxy.setMode({ kind: 'delay', ms: -1, jitterMs: 0 })).toThrow(RangeError);
    expect(proxy.current.kind).toBe('pass');
  });
});
