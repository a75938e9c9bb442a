/**
 * Server hardening through a real `proofkv serve` process: resource exhaustion refused at the
 * edge (connection limit, silent and slow clients), transient engine faults (descriptor
 * exhaustion, a file-size limit standing in for a full disk) that pause writes visibly and clear
 * by themselves, durability setting, file modes, node key identity and rotation, and error bodies
 * free of data paths. Limits are changed on the running child with `prlimit --pid`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyKeyRotation, type KeyRotation } from '../../src/index.js';
import { call, startServer, tmpDir, unb64, type ServerProc } from './harness.js';

const servers: ServerProc[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop('SIGKILL');
});

async function start(opts: Parameters<typeof startServer>[0] = {}): Promise<ServerProc> {
  const s = await startServer({ logLevel: 'info', ...opts });
  servers.push(s);
  return s;
}

/** One request on `agent` (so a keep-alive connection opened earlier can be reused). */
function req(
  agent: http.Agent,
  url: string,
  method: string,
  p: string,
  body?: Uint8Array | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const u = new URL(p, url);
    const r = http.request({ agent, host: u.hostname, port: u.port, path: u.pathname, method, headers, timeout: 20_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text, headers: res.headers }));
    });
    r.on('timeout', () => r.destroy(new Error('request timed out')));
    r.on('error', reject);
    r.end(body);
  });
}

const put = (agent: http.Agent, url: string, key: string, value: Uint8Array | string) =>
  req(agent, url, 'PUT', `/v1/kv/${key}`, value, { 'content-type': 'application/octet-stream' });

/** Polls `check` (at most `tries` times, 100 ms apart) until it returns true. */
async function until(check: () => Promise<boolean>, tries = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('condition not reached');
}

const status = async (agent: http.Agent, url: string) => JSON.parse((await req(agent, url, 'GET', '/v1/status')).text);
const metric = async (agent: http.Agent, url: string, name: string): Promise<number> => {
  const text = (await req(agent, url, 'GET', '/metrics')).text;
  const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};
const openFds = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;
const prlimit = (pid: number, arg: string) => execFileSync('prlimit', ['--pid', String(pid), arg]);

describe('edge limits', () => {
  it('refuses connections over the limit, drops silent ones, and keeps writing and checkpointing', async () => {
    // 256 descriptors: the default connection limit is 3/4 of that less 64 = 128.
    const s = await start({ wrap: ['prlimit', '--nofile=256'], args: ['--headers-timeout', '1000'] });
    const u = new URL(s.url);
    const socks: net.Socket[] = [];
    let closed = 0;
    for (let i = 0; i < 300; i++) {
      const c = net.connect(Number(u.port), u.hostname);
      c.on('error', () => undefined);
      c.on('close', () => closed++);
      c.resume();
      socks.push(c);
    }
    // Every one is closed by the server: 172 at once (over the limit), the rest after the headers timeout.
    await until(async () => closed === 300, 200);
    await until(async () => openFds(s.proc.pid!) < 64);
    const agent = new http.Agent({ keepAlive: false });
    expect((await put(agent, s.url, 'k', 'v')).status).toBe(200);
    expect((await req(agent, s.url, 'POST', '/v1/checkpoints')).status).toBe(200);
    expect(await metric(agent, s.url, 'proofkv_refused_total{reason="connection_limit"}')).toBeGreaterThanOrEqual(172);
    expect(await metric(agent, s.url, 'proofkv_refused_total{reason="timeout"}')).toBeGreaterThanOrEqual(1);
    expect((await status(agent, s.url)).writes).toEqual({ state: 'ok' });
    expect(s.stderr()).toMatch(/"reason":"connection_limit"[^\n]*refused connection/);
  });

  it('answers a client that sends its head byte by byte with 408 and closes it, serving others meanwhile', async () => {
    const s = await start({ args: ['--headers-timeout', '1000'] });
    const u = new URL(s.url);
    const head = `GET /v1/status HTTP/1.1\r\nHost: x\r\n${'X-Pad: y\r\n'.repeat(40)}\r\n`;
    const c = net.connect(Number(u.port), u.hostname);
    let answer = '';
    let sent = 0;
    c.on('data', (d) => (answer += d.toString()));
    const done = new Promise<void>((resolve) => c.on('close', () => resolve()));
    c.on('error', () => undefined);
    const drip = setInterval(() => {
      if (sent < head.length && !c.destroyed) c.write(head[sent++]);
    }, 50);
    const agent = new http.Agent({ keepAlive: false });
    const others = await Promise.all([1, 2, 3].map(() => req(agent, s.url, 'GET', '/healthz')));
    await done;
    clearInterval(drip);
    expect(others.every((r) => r.status === 200)).toBe(true);
    expect(sent).toBeLessThan(head.length);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"code":"REQUEST_TIMEOUT"');
    expect(s.stderr()).toMatch(/"reason":"timeout"[^\n]*refused request/);
  });
});

describe('transient faults', () => {
  it('descriptor exhaustion inside the engine pauses writes visibly, and they resume by themselves', async () => {
    const s = await start({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    const pid = s.proc.pid!;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const acked: string[] = [];
    for (let i = 0; i < 5; i++) {
      expect((await put(agent, s.url, `a${i}`, `v${i}`)).status).toBe(200);
      acked.push(`a${i}`);
    }
    // The keep-alive connection stays; nothing new can be opened.
    prlimit(pid, `--nofile=${openFds(pid)}:`);
    const cp = await req(agent, s.url, 'POST', '/v1/checkpoints');
    expect(cp.status).toBe(503);
    expect(cp.headers['retry-after']).toBe('1');
    const problem = JSON.parse(cp.text);
    expect(problem.code).toBe('UNAVAILABLE');
    expect(problem.detail).toMatch(/EMFILE/);
    expect(cp.text).not.toContain(s.dataDir);
    const st = await status(agent, s.url);
    expect(st.writes.state).toBe('paused');
    expect(st.writes.fault).toMatchObject({ component: 'flush', code: 'EMFILE' });
    expect(await metric(agent, s.url, 'proofkv_write_fault{component="flush",recoverable="true"}')).toBe(1);
    const refused = await put(agent, s.url, 'during', 'x');
    expect(refused.status).toBe(503);
    expect((await req(agent, s.url, 'GET', '/readyz')).status).toBe(503);
    // Reads go on.
    expect((await req(agent, s.url, 'GET', '/v1/kv/a0')).status).toBe(200);

    prlimit(pid, '--nofile=20000:');
    await until(async () => (await status(agent, s.url)).writes.state === 'ok');
    expect(await metric(agent, s.url, 'proofkv_write_fault_recoveries_total')).toBe(1);
    expect((await put(agent, s.url, 'after', 'y')).status).toBe(200);
    acked.push('after');
    expect((await req(agent, s.url, 'POST', '/v1/checkpoints')).status).toBe(200);
    expect((await req(agent, s.url, 'GET', '/readyz')).status).toBe(200);
    expect(s.stderr()).toContain('write fault cleared');
    agent.destroy();

    // Nothing acknowledged was lost, nothing refused appeared, across a restart.
    await s.stop('SIGKILL');
    const again = await start({ dataDir: s.dataDir });
    const a2 = new http.Agent({ keepAlive: false });
    for (const k of acked) expect((await req(a2, again.url, 'GET', `/v1/kv/${k}`)).status).toBe(200);
    expect((await req(a2, again.url, 'GET', '/v1/kv/during')).status).toBe(404);
  });

  it('a full disk (file-size limit) fails the journal write; the node cuts the failed group off and resumes', async () => {
    // RLIMIT_FSIZE stands in for ENOSPC (a tmpfs mount needs privileges CI may lack): a write past
    // it fails with EFBIG (Node ignores SIGXFSZ), through the same journal fault path.
    const s = await start({ wrap: ['prlimit', '--fsize=262144:'], args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    const pid = s.proc.pid!;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const value = new Uint8Array(40_000).fill(7);
    const acked: string[] = [];
    let refusedKey = '';
    for (let i = 0; i < 20 && !refusedKey; i++) {
      const r = await put(agent, s.url, `k${i}`, value);
      if (r.status === 200) acked.push(`k${i}`);
      else {
        expect(r.status).toBe(503);
        expect(JSON.parse(r.text).detail).toMatch(/journal failed \(EFBIG\)/);
        expect(r.text).not.toContain(s.dataDir);
        refusedKey = `k${i}`;
      }
    }
    expect(refusedKey).not.toBe('');
    const st = await status(agent, s.url);
    expect(st.writes).toMatchObject({ state: 'paused', fault: { component: 'journal', code: 'EFBIG' } });
    expect(JSON.stringify(st)).not.toContain(s.dataDir);

    prlimit(pid, '--fsize=unlimited:');
    await until(async () => (await status(agent, s.url)).writes.state === 'ok');
    expect((await put(agent, s.url, 'after', value)).status).toBe(200);
    acked.push('after');
    agent.destroy();

    await s.stop('SIGKILL');
    const again = await start({ dataDir: s.dataDir });
    const a2 = new http.Agent({ keepAlive: false });
    for (const k of acked) expect((await req(a2, again.url, 'GET', `/v1/kv/${k}`)).status).toBe(200);
    // The refused write was cut off the journal before writes resumed.
    expect((await req(a2, again.url, 'GET', `/v1/kv/${refusedKey}`)).status).toBe(404);
  });
});
