/**
 * `proofkv status`, `proofkv trust show|reset` and what a reset server looks like to a client
 * that pinned its key, against real `proofkv serve` processes; and `serve` failing to start: a
 * port in use leaves no data directory behind, and no start-up failure prints a stack trace.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { startServer, tmpDir, type ServerProc } from './harness.js';
import { cli, jsonError, jsonOf, type CliOptions } from './cli_helpers.js';

const STACK = /\n\s+at .+[:(]\d+/;

describe('proofkv status and trust', () => {
  const servers: ServerProc[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
  });
  const start = async (opts: Parameters<typeof startServer>[0] = {}) => {
    const s = await startServer(opts);
    servers.push(s);
    return s;
  };

  it('status shows node, leader, last checkpoint and the trusted state; trust show|reset manage ~/.proofkv/trust.json', async () => {
    const s = await start({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    const home = tmpDir('proofkv-trust-home-');
    const run = (args: string[], opts: CliOptions = {}) => cli(args, { ...opts, env: { HOME: home, PROOFKV_ENDPOINT: s.url, ...opts.env } });
    const hex = /public key\s+([0-9a-f]{64}) \(hex\)/.exec(s.stdout())![1];
    const nodeId = /node id\s+(\S+)/.exec(s.stdout())![1];

    const before = jsonOf(await run(['status', '--json']));
    expect(before).toMatchObject({ endpoint: s.url, nodeId, role: 'leader', leader: s.url, publicKey: hex, lastCheckpoint: null });
    expect(before.trust).toMatchObject({ file: path.join(home, '.proofkv/trust.json'), id: `tofu:${s.url}`, state: null, nodeKeyTrusted: null });

    await run(['put', 'a', '1']);
    const cp = jsonOf(await run(['checkpoint', '--create', '--json']));
    const after = jsonOf(await run(['status', '--json']));
    expect(after.lastCheckpoint).toMatchObject({ index: cp.checkpoint.index, seq: cp.checkpoint.seq, logSize: cp.head.size });
    expect(after.trust).toMatchObject({ state: { publicKeys: [hex], quorum: 1, tofu: true, head: { size: cp.head.size } }, nodeKeyTrusted: true });
    const text = await run(['status']);
    expect(text.stdout).toMatch(/^checkpoint\s+\d+ \(seq \d+, log size \d+\)$/m);
    expect(text.stdout).toMatch(/^key trusted\s+yes/m);
    expect(fs.existsSync(path.join(home, '.proofkv/trust.json'))).toBe(true);

    const shown = jsonOf(await run(['trust', 'show', '--json']));
    expect(Object.keys(shown.states)).toEqual([`tofu:${s.url}`]);
    expect((await run(['trust', 'show'])).stdout).toContain(hex);

    // --state and PROOFKV_STATE move the file.
    const elsewhere = path.join(tmpDir('proofkv-trust-elsewhere-'), 'sub', 't.json');
    await run(['checkpoint', '--state', elsewhere]);
    expect(Object.keys(jsonOf(await run(['trust', 'show', '--json'], { env: { PROOFKV_STATE: elsewhere } })).states)).toEqual([`tofu:${s.url}`]);

    const reset = jsonOf(await run(['trust', 'reset', '--json']));
    expect(reset).toMatchObject({ removed: [`tofu:${s.url}`] });
    expect(jsonOf(await run(['trust', 'show', '--json'])).states).toEqual({});
    expect(jsonOf(await run(['trust', 'reset', '--json'])).removed).toEqual([]);
    expect(Object.keys(jsonOf(await run(['trust', 'show', '--json', '--state', elsewhere])).states)).toHaveLength(1);
    expect(jsonOf(await run(['trust', 'reset', '--id', 'tofu:http://elsewhere', '--json', '--state', elsewhere])).removed).toEqual([]);
    expect(jsonOf(await run(['trust', 'reset', '--all', '--json', '--state', elsewhere])).removed).toEqual([`tofu:${s.url}`]);
    expect(jsonOf(await run(['trust', 'show', '--json', '--state', elsewhere])).states).toEqual({});
  });

  it('a server reset under a pinned key fails verification with UNTRUSTED_KEY that says the key changed and how to reset', async () => {
    const first = await start({ args: ['--checkpoint-interval', '0'] });
    const home = tmpDir('proofkv-trust-reset-');
    const url = first.url;
    const run = (args: string[]) => cli(args, { env: { HOME: home, PROOFKV_ENDPOINT: url } });
    expect((await run(['put', 'k', 'v', '--verify'])).code).toBe(0);
    const pinned = /public key\s+([0-9a-f]{64}) \(hex\)/.exec(first.stdout())![1];
    await first.stop('SIGTERM');
    // The same address, a fresh data directory: a new node key.
    const second = await start({ args: ['--port', url.split(':')[2], '--checkpoint-interval', '0'] });
    expect(second.url).toBe(url);
    await cli(['put', 'k', 'v2'], { env: { HOME: home, PROOFKV_ENDPOINT: url } });
    await cli(['checkpoint', '--create', '--state', path.join(home, 'other.json')], { env: { HOME: home, PROOFKV_ENDPOINT: url } });

    const plain = await run(['get', 'k']);
    expect(plain.code).toBe(3);
    expect(plain.stderr.trim().split('\n')).toHaveLength(1);
    expect(plain.stderr).toContain("UNTRUSTED_KEY: the node's key changed");
    expect(plain.stderr).toContain(pinned);
    expect(plain.stderr).toContain('proofkv trust reset');
    const j = await run(['get', 'k', '--json']);
    expect(jsonError(j)).toMatchObject({ code: 'VERIFICATION_FAILED', status: null, reason: 'UNTRUSTED_KEY', trustId: `tofu:${url}`, trustedKeys: [pinned], hint: 'proofkv trust reset' });
    expect((await run(['status'])).stdout).toMatch(/^key trusted\s+NO: .*UNTRUSTED_KEY/m);

    expect((await run(['trust', 'reset'])).code).toBe(0);
    const again = jsonOf(await run(['get', 'k', '--json']));
    expect(again).toMatchObject({ found: true, verified: true, entry: { valueUtf8: 'v2' } });
  });
});

describe('proofkv get --wait', () => {
  let s: ServerProc | undefined;
  afterAll(async () => {
    await s?.stop('SIGKILL');
  });

  it('waits for the checkpoint that covers the newer entry and verifies that one', async () => {
    // Checkpoints every 2 writes only: the test decides when the next one comes.
    s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '2'] });
    const env = { HOME: tmpDir('proofkv-wait-'), PROOFKV_ENDPOINT: s.url };
    await cli(['put', 'k', 'v1'], { env });
    await cli(['put', 'other', 'o1'], { env }); // checkpoint 0 covers seq 2, taken in the background
    for (let i = 0; i < 20 && (await cli(['checkpoint'], { env })).code !== 0; i++);
    await cli(['put', 'k', 'v2'], { env }); // seq 3: not covered yet
    let waiting!: () => void;
    const isWaiting = new Promise<void>((resolve) => (waiting = resolve));
    const get = cli(['get', 'k', '--wait', '--json'], { env, onStderr: (c) => c.includes('waiting up to') && waiting() });
    await isWaiting; // it saw v1 at checkpoint 0 and v2 newer
    await cli(['put', 'other', 'o2'], { env }); // the second write: checkpoint 1 covers seq 4
    const r = await get;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('covers seq 3');
    expect(jsonOf(r)).toMatchObject({ found: true, verified: true, entry: { version: 2, valueUtf8: 'v2' }, checkpoint: { index: 1, seq: 4 } });
    expect(jsonOf(r).newer).toBeUndefined();
  });
});

describe('proofkv serve start-up failures', () => {
  it('detects a port in use before creating the data directory or the node key, in one line without a stack', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const data = path.join(tmpDir('proofkv-busy-'), 'data');
      const r = await cli(['serve', '--data', data, '--port', String(port), '--log-level', 'info']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`127.0.0.1:${port} is already in use`);
      expect(r.stderr).not.toMatch(STACK);
      expect(fs.existsSync(data)).toBe(false);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('reports a data directory it cannot open without a stack trace', async () => {
    const dir = tmpDir('proofkv-notdir-');
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'not a directory');
    const r = await cli(['serve', '--data', file, '--port', '0', '--log-level', 'info']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^proofkv: could not start: .+$/m);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stderr).not.toContain('"stack"');
  });
});
