/**
 * The CLI's key commands against a real `proofkv serve`: what `get` says about the checkpoint it
 * is verified against, `--out`, the empty key (CLI and server), keys that are not UTF-8, version
 * and value errors, `scan`, time windows of `history` and `scan` (`--since` / `--until`), and the
 * shape of errors with and without `--json`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { call, startServer, tmpDir, unb64, type ServerProc } from './harness.js';
import { cli, jsonError, jsonOf, type CliOptions } from './cli_helpers.js';

const td = new TextDecoder();

describe('proofkv CLI: keys, values and errors', () => {
  let s: ServerProc;
  let home: string;
  const run = (args: string[], opts: CliOptions = {}) => cli(args, { ...opts, env: { HOME: home, PROOFKV_ENDPOINT: s.url, ...opts.env } });

  beforeAll(async () => {
    // Checkpoints only when a test asks for one, so "as of checkpoint N" is under the test's control.
    s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    home = tmpDir('proofkv-cli-home-');
  });
  afterAll(async () => {
    await s?.stop('SIGKILL');
  });

  it('get right after put says the verified read is as of the last checkpoint and that a newer value exists', async () => {
    expect((await run(['put', 'greet', 'hello'])).code).toBe(0);
    const cp = jsonOf(await run(['checkpoint', '--create', '--json']));
    const put = await run(['put', 'greet', 'hi']);
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(/verified\s+not yet/);
    expect(put.stdout).toMatch(/time\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/);

    const text = await run(['get', 'greet']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/value\s+hello/);
    expect(text.stdout).toContain(`as of checkpoint ${cp.checkpoint.index} (seq ${cp.checkpoint.seq}`);
    expect(text.stdout).toMatch(/newer\s+version 2 \(seq \d+\) was written after that checkpoint/);
    // Write results print their commit time, as the HTTP write result has it; times never decrease.
    const put3 = jsonOf(await run(['put', 'stamp', 'hey', '--json']));
    expect(put3).toMatchObject({ version: 1, verified: false });
    expect(put3.timeIso).toBe(new Date(put3.time).toISOString());
    const stampDel = jsonOf(await run(['del', 'stamp', '--json']));
    expect(stampDel.version).toBe(2);
    expect(stampDel.time).toBeGreaterThanOrEqual(put3.time);
    expect(stampDel.timeIso).toBe(new Date(stampDel.time).toISOString());
    const j = jsonOf(await run(['get', 'greet', '--json']));
    expect(j).toMatchObject({ found: true, verified: true, asOf: 'checkpoint', checkpoint: { index: cp.checkpoint.index, seq: cp.checkpoint.seq }, entry: { version: 1, valueUtf8: 'hello' }, newer: { version: 2, kind: 'put' } });

    // --wait without checkpoints coming: a clear timeout, not a stale answer.
    const waited = await run(['get', 'greet', '--wait', '--wait-timeout', '0', '--json']);
    expect(waited.code).toBe(1);
    expect(jsonError(waited)).toMatchObject({ code: 'CHECKPOINT_TIMEOUT', status: null });

    // Once a checkpoint covers it, the new value is verified and nothing newer is reported.
    await run(['checkpoint', '--create']);
    const after = jsonOf(await run(['get', 'greet', '--json']));
    expect(after).toMatchObject({ entry: { version: 2, valueUtf8: 'hi' }, verified: true });
    expect(after.newer).toBeUndefined();
    // A delete after the checkpoint is reported as newer too.
    await run(['del', 'greet']);
    const del = jsonOf(await run(['get', 'greet', '--json']));
    expect(del).toMatchObject({ entry: { version: 2 }, newer: { version: 3, kind: 'delete' } });
  });

  it('get --out writes the exact bytes to the file and prints only a summary', async () => {
    const dir = tmpDir('proofkv-cli-out-');
    const value = new Uint8Array(1024 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 131 + 7) & 0xff;
    fs.writeFileSync(path.join(dir, 'in.bin'), value);
    expect((await run(['put', 'blob', '--file', path.join(dir, 'in.bin')])).code).toBe(0);
    await run(['checkpoint', '--create']);
    const out = path.join(dir, 'out.bin');
    const r = await run(['get', 'blob', '--out', out]);
    expect(r.code).toBe(0);
    expect(new Uint8Array(fs.readFileSync(out))).toEqual(value);
    expect(r.stdout.length).toBeLessThan(600);
    expect(r.stdout).toMatch(new RegExp(`^wrote +${value.length} B to ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    expect(r.stdout).not.toContain(Buffer.from(value.subarray(0, 16)).toString('hex'));
    const j = jsonOf(await run(['get', 'blob', '--out', out, '--json']));
    expect(j).toMatchObject({ found: true, file: out, bytes: value.length, verified: true, entry: { valueBytes: value.length } });
    expect(j.entry.value).toBeUndefined();
    // Plain reads too.
    const plain = await run(['get', 'blob', '--no-verify', '--out', out]);
    expect(plain.stdout.length).toBeLessThan(600);
  });

  it('refuses an empty key: the CLI with EMPTY_KEY, the server with 400 EMPTY_KEY on every key route', async () => {
    for (const args of [['get', ''], ['put', '', 'v'], ['del', ''], ['history', ''], ['proof', '']]) {
      const r = await run([...args, '--json']);
      expect(r.code, args.join(' ')).toBe(1);
      expect(jsonError(r)).toMatchObject({ code: 'EMPTY_KEY', status: null });
    }
    const plain = await run(['put', '', 'v']);
    expect(plain.stderr.trim().split('\n')).toHaveLength(1);
    expect(plain.stderr).toMatch(/^proofkv: EMPTY_KEY: /);
    for (const [method, p] of [
      ['GET', '/v1/kv/'],
      ['PUT', '/v1/kv/'],
      ['DELETE', '/v1/kv/'],
      ['GET', '/v1/kv//history'],
      ['GET', '/v1/kv//proof'],
      ['GET', '/v1/kv/?keyEncoding=base64url'],
    ]) {
      const r = await call(s.url, method, p, method === 'PUT' ? { body: 'x', headers: { 'content-type': 'application/octet-stream' } } : {});
      expect(r.status, `${method} ${p}`).toBe(400);
      expect(r.body.code, `${method} ${p}`).toBe('EMPTY_KEY');
    }
    // The scan is still `/v1/kv` without the slash.
    expect((await call(s.url, 'GET', '/v1/kv?limit=1')).status).toBe(200);
  });

  it('refuses a key that is not valid UTF-8 instead of storing U+FFFD, and stores it given as hex', async () => {
    const r = await run(['put', '--json'], { rawArg: `"$(printf 'bad\\377key')" v` });
    expect(r.code).toBe(1);
    const e = jsonError(r);
    expect(e.code).toBe('INVALID_ENCODING');
    expect(e.detail).toContain('U+FFFD');
    expect(e.detail).toContain('--key-encoding hex');
    const value = await run(['put', 'k-utf8', '--json'], { rawArg: `"$(printf 'v\\377')"` });
    expect(jsonError(value).code).toBe('INVALID_ENCODING');
    expect(jsonError(value).detail).toContain('--value-encoding hex');
    // Nothing with U+FFFD was stored.
    const scan = await run(['scan', '--no-verify', '--json']);
    for (const line of scan.stdout.trim().split('\n').filter(Boolean)) {
      expect(td.decode(unb64(JSON.parse(line).key))).not.toContain('\uFFFD');
    }
    const hex = await run(['put', '626164ff6b6579', 'v', '--key-encoding', 'hex', '--json']);
    expect(hex.code).toBe(0);
    const g = jsonOf(await run(['get', '626164ff6b6579', '--key-encoding', 'hex', '--no-verify', '--json']));
    expect(Buffer.from(unb64(g.entry.key)).toString('hex')).toBe('626164ff6b6579');
  });

  it('says what is wrong with versions and missing values', async () => {
    const big = await run(['get', 'x', '--version', String(2n ** 60n), '--json']);
    expect(jsonError(big)).toMatchObject({ code: 'INVALID_VERSION', status: null });
    expect(jsonError(big).detail).toContain('exceeds the largest version, 2^53-1');
    const bigPut = await run(['put', 'x', 'v', '--version', String(2n ** 60n)]);
    expect(bigPut.stderr).toContain('exceeds the largest version');
    expect(bigPut.stderr).not.toContain('>= ');
    expect(jsonError(await run(['put', 'x', 'v', '--version', '0', '--json'])).detail).toContain('must be >= 1');
    expect(jsonError(await run(['history', 'x', '--min', 'two', '--json'])).code).toBe('INVALID_VERSION');

    const missing = await run(['put', 'x']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('a value is missing');
    expect(missing.stderr).not.toContain('not both');
    expect(jsonError(await run(['put', 'x', '--json'])).code).toBe('MISSING_VALUE');
    const dir = tmpDir('proofkv-cli-v-');
    fs.writeFileSync(path.join(dir, 'v'), 'file');
    expect(jsonError(await run(['put', 'x', 'arg', '--file', path.join(dir, 'v'), '--json'])).code).toBe('USAGE');
    // --stdin reads the value, bytes as they are.
    const bytes = new Uint8Array([0, 0xff, 0x80, 10]);
    expect((await run(['put', 'from-stdin', '--stdin'], { input: bytes })).code).toBe(0);
    const g = jsonOf(await run(['get', 'from-stdin', '--no-verify', '--json']));
    expect(unb64(g.entry.value)).toEqual(bytes);
  });

  it('reports errors as one line on stderr, or as {error: {code, status, detail}} on stdout with --json', async () => {
    await run(['put', 'conflict', 'v', '--version', '5']);
    const http = await run(['put', 'conflict', 'w', '--version', '5', '--json']);
    expect(http.code).toBe(1);
    expect(jsonError(http)).toMatchObject({ code: 'VERSION_NOT_INCREASING', status: 409 });
    expect(http.stderr).toBe('');
    const plain = await run(['put', 'conflict', 'w', '--version', '5']);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toMatch(/^proofkv: VERSION_NOT_INCREASING \(409\): .+\n$/);
    expect(plain.stderr.split('\n')).toHaveLength(2);

    const down = await run(['get', 'k', '--json', '--timeout', '2000'], { env: { PROOFKV_ENDPOINT: 'http://127.0.0.1:1' } });
    expect(down.code).toBe(1);
    expect(jsonError(down)).toMatchObject({ code: 'NETWORK_ERROR', status: null });

    const usage = await run(['put', 'k', 'v', '--no-such-flag', '--json']);
    expect(usage.code).toBe(1);
    expect(jsonError(usage)).toMatchObject({ code: 'USAGE', status: null });
    expect(usage.stderr).toBe('');
    const usagePlain = await run(['put', 'k', 'v', '--no-such-flag']);
    expect(usagePlain.code).toBe(1);
    expect(usagePlain.stderr.trim().split('\n')).toHaveLength(1);

    const pk = await run(['get', 'k', '--public-key', 'not-a-key', '--json']);
    expect(jsonError(pk)).toMatchObject({ code: 'USAGE' });
    expect(jsonError(pk).detail).toContain('--public-key');
  });

  it('scans plainly with --no-verify and marks every result unverified', async () => {
    const ops = ['s/a', 's/b', 's/c', 't/a'];
    for (const k of ops) await run(['put', k, `v-${k}`]);
    await run(['del', 's/b']);
    const text = await run(['scan', '--prefix', 's/', '--no-verify']);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^s\/a {2}v-s\/a {2}\(version 1, seq \d+, \d{4}-\d{2}-\d{2}T[\d:.]+Z\)$/);
    expect(lines[1]).toMatch(/^s\/c {2}v-s\/c {2}\(version 1, seq \d+, \d{4}-\d{2}-\d{2}T[\d:.]+Z\)$/);
    // A window after every write keeps no key; a time that is not one is a usage error.
    const later = await run(['scan', '--prefix', 's/', '--no-verify', '--since', new Date(Date.now() + 3_600_000).toISOString()]);
    expect(later.code).toBe(0);
    expect(later.stdout.trim()).toBe('');
    expect((await run(['scan', '--prefix', 's/', '--no-verify', '--since', 'yesterday'])).code).not.toBe(0);
    expect(text.stderr).toMatch(/NOT verified \(--no-verify\)/);
    const j = await run(['scan', '--prefix', 's/', '--json', '--no-verify']);
    const items = j.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(items.map((i) => td.decode(unb64(i.key)))).toEqual(['s/a', 's/c']);
    expect(items.every((i) => i.verified === false)).toBe(true);
    const limited = await run(['scan', '--prefix', 's/', '--limit', '1', '--json', '--no-verify']);
    expect(limited.stdout.trim().split('\n')).toHaveLength(1);
    expect(jsonError(await run(['scan', '--include-tombstones', '--no-verify', '--json'])).code).toBe('USAGE');
  });

  it('scans verified by default, as of the latest checkpoint, page by page', async () => {
    for (const k of ['v/a', 'v/b', 'v/c', 'v/d', 'w/a']) await run(['put', k, `x-${k}`]);
    await run(['del', 'v/b']);
    const cp = jsonOf(await run(['checkpoint', '--create', '--json']));
    await run(['put', 'v/e', 'after the checkpoint']);
    const text = await run(['scan', '--prefix', 'v/']);
    expect(text.code).toBe(0);
    expect(text.stdout.trim().split('\n').map((l) => l.split('  ')[0])).toEqual(['v/a', 'v/c', 'v/d']);
    expect(text.stderr).toContain(`3 item(s), verified complete as of checkpoint ${cp.checkpoint.index} (seq ${cp.checkpoint.seq})`);
    const j = await run(['scan', '--start', 'v/', '--end', 'v/d', '--include-tombstones', '--json']);
    const items = j.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(items.map((i) => [td.decode(unb64(i.key)), i.kind])).toEqual([['v/a', 'put'], ['v/b', 'delete'], ['v/c', 'put']]);
    expect(items.every((i) => i.verified === true && i.checkpoint.index === cp.checkpoint.index)).toBe(true);
    const limited = await run(['scan', '--prefix', 'v/', '--limit', '2', '--json']);
    expect(limited.stdout.trim().split('\n').map((l) => td.decode(unb64(JSON.parse(l).key)))).toEqual(['v/a', 'v/c']);
    expect(jsonError(await run(['scan', '--prefix', 'v/', '--start', 'v/a', '--json'])).code).toBe('USAGE');
  });

  it('history --since/--until and scan --since, verified against the node; a bad time is USAGE', async () => {
    for (let v = 1; v <= 4; v++) await run(['put', 'tw', `t${v}`]);
    for (const k of ['tp/a', 'tp/b', 'tp/c']) await run(['put', k, `x-${k}`]);
    const cp = jsonOf(await run(['checkpoint', '--create', '--json']));
    // The commit times, as the verified (unfiltered) history and scan show them.
    const all = jsonOf(await run(['history', 'tw', '--json']));
    const t: number[] = all.entries.map((e: { time: number }) => e.time);
    expect(all.entries.map((e: { timeIso: string }) => e.timeIso)).toEqual(t.map((ms) => new Date(ms).toISOString()));
    expect(new Set(t).size).toBe(4);
    const scanned = (await run(['scan', '--prefix', 'tp/', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const pt: number[] = scanned.map((i: { time: number }) => i.time);
    expect(new Set(pt).size).toBe(3);
    const iso = (ms: number) => new Date(ms).toISOString();

    // History: the window [t2, t3] in ISO 8601, verified by default.
    const h = jsonOf(await run(['history', 'tw', '--since', iso(t[1]), '--until', iso(t[2]), '--json']));
    expect(h).toMatchObject({ verified: true, checkpoint: { index: cp.checkpoint.index } });
    expect(h.entries.map((e: { version: number; valueUtf8: string }) => [e.version, e.valueUtf8])).toEqual([[2, 't2'], [3, 't3']]);
    const text = await run(['history', 'tw', '--since', iso(t[1]), '--until', iso(t[2])]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(iso(t[1]));
    expect(text.stdout).not.toContain(iso(t[0]));
    expect(text.stdout).toContain(`verified complete as of checkpoint ${cp.checkpoint.index}`);
    // Only --since, as ms: the last two versions.
    expect(jsonOf(await run(['history', 'tw', '--since', String(t[2]), '--json'])).entries.map((e: { version: number }) => e.version)).toEqual([3, 4]);

    // Scan: the keys whose newest version was committed at or after tp/b's, verified.
    const s = await run(['scan', '--prefix', 'tp/', '--since', iso(pt[1]), '--json']);
    expect(s.code).toBe(0);
    const items = s.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(items.map((i) => td.decode(unb64(i.key)))).toEqual(['tp/b', 'tp/c']);
    expect(items.every((i) => i.verified === true && i.checkpoint.index === cp.checkpoint.index)).toBe(true);
    expect(s.stderr).toContain('2 item(s), verified complete');

    // Bad times: a usage error, exit 1 (and without --json nothing on stdout).
    for (const args of [
      ['history', 'tw', '--since', 'yesterday'],
      ['history', 'tw', '--until', '2026-13-01T00:00:00Z'],
      ['history', 'tw', '--since', iso(t[2]), '--until', iso(t[1])],
      ['scan', '--prefix', 'tp/', '--since', 'monday'],
      ['scan', '--prefix', 'tp/', '--since', iso(pt[2]), '--until', iso(pt[0])],
    ]) {
      const bad = await run([...args, '--json']);
      expect(bad.code, args.join(' ')).toBe(1);
      expect(jsonError(bad), args.join(' ')).toMatchObject({ code: 'USAGE', status: null });
    }
    const plain = await run(['history', 'tw', '--since', 'yesterday']);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toMatch(/^proofkv: USAGE: --since must be/);
  });

  it('put --if-absent / --if-version, del --if-version, append', async () => {
    expect(jsonOf(await run(['put', 'cond-k', 'one', '--if-absent', '--json']))).toMatchObject({ version: 1 });
    const failed = await run(['put', 'cond-k', 'two', '--if-absent', '--json']);
    expect(failed.code).toBe(1);
    expect(jsonError(failed)).toMatchObject({ code: 'CONDITION_FAILED', status: 409, currentVersion: 1, absent: false });
    const text = await run(['put', 'cond-k', 'two', '--if-version', '5']);
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/CONDITION_FAILED \(409\).*newest version is 1/);
    expect(jsonOf(await run(['put', 'cond-k', 'two', '--if-version', '1', '--json']))).toMatchObject({ version: 2 });
    expect(jsonError(await run(['del', 'cond-k', '--if-version', '1', '--json']))).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 2 });
    expect(jsonOf(await run(['del', 'cond-k', '--if-version', '2', '--json']))).toMatchObject({ version: 3 });
    expect(jsonOf(await run(['append', 'cond-k', 'a', '--if-absent', '--json']))).toMatchObject({ version: 4 });
    expect(jsonOf(await run(['append', 'cond-k', 'bc', '--json']))).toMatchObject({ version: 5 });
    expect(jsonOf(await run(['append', 'cond-k', '--stdin', '--json'], { input: 'd' }))).toMatchObject({ version: 6 });
    expect(jsonError(await run(['append', 'cond-k', 'x', '--if-version', '4', '--json']))).toMatchObject({ code: 'CONDITION_FAILED', currentVersion: 6 });
    expect(jsonOf(await run(['get', 'cond-k', '--no-verify', '--json']))).toMatchObject({ found: true, entry: { version: 6, value: Buffer.from('abcd').toString('base64url') } });
    expect(jsonError(await run(['put', 'cond-k', 'x', '--if-version', '1', '--if-absent', '--json']))).toMatchObject({ code: 'USAGE' });
  });
});
