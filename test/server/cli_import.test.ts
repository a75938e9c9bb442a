/**
 * `proofkv import` and `proofkv export` against real `proofkv serve` processes: a bad line
 * anywhere writes nothing and is named; a batch the server refuses says how many records landed
 * and where to resume, and `--resume-from` finishes the job; `--atomic` is all or nothing; what
 * `export` writes (binary keys and values, every version) `import` reads back into another node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServer, tmpDir, unb64, type ServerProc } from './harness.js';
import { cli, jsonError, jsonOf, type CliOptions } from './cli_helpers.js';

const td = new TextDecoder();

describe('proofkv import and export', () => {
  let a: ServerProc;
  let b: ServerProc;
  let home: string;
  let dir: string;
  const on = (s: ServerProc) => (args: string[], opts: CliOptions = {}) => cli(args, { ...opts, env: { HOME: home, PROOFKV_ENDPOINT: s.url, ...opts.env } });
  const file = (name: string, text: string | Uint8Array) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  /** Every key of the scan of `prefix`, as text. */
  const keys = async (s: ServerProc, prefix: string) => {
    const r = await on(s)(['scan', '--prefix', prefix, '--no-verify', '--json']);
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => td.decode(unb64(JSON.parse(l).key)));
  };
  const lines = (n: number, prefix: string, at: (i: number) => string | undefined = () => undefined) =>
    Array.from({ length: n }, (_, i) => at(i + 1) ?? JSON.stringify({ key: `${prefix}${String(i + 1).padStart(3, '0')}`, value: `v${i + 1}` })).join('\n') + '\n';

  beforeAll(async () => {
    [a, b] = await Promise.all([startServer(), startServer()]);
    home = tmpDir('proofkv-import-home-');
    dir = tmpDir('proofkv-import-');
  });
  afterAll(async () => {
    await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')]);
  });

  it('writes nothing when any line is bad, and names the line', async () => {
    const run = on(a);
    const cases: Array<[string, string, RegExp, string]> = [
      ['notjson.jsonl', lines(30, 'bad1/', (i) => (i === 27 ? '{"key": "x", "value": ' : undefined)), /^line 27: not JSON/, 'IMPORT_INVALID'],
      ['empty.jsonl', lines(30, 'bad2/', (i) => (i === 12 ? '{"key": "", "value": "v"}' : undefined)), /^line 12: the key is empty/, 'EMPTY_KEY'],
      ['field.jsonl', lines(30, 'bad3/', (i) => (i === 30 ? '{"key": "k", "valeu": "v"}' : undefined)), /^line 30: unknown field "valeu"/, 'IMPORT_INVALID'],
      ['version.jsonl', lines(30, 'bad4/', (i) => (i === 9 ? `{"key": "k", "value": "v", "version": ${2 ** 60}}` : undefined)), /^line 9: version .* exceeds the largest version/, 'INVALID_VERSION'],
      [
        'order.jsonl',
        lines(30, 'bad5/', (i) => (i === 4 ? '{"key": "k", "value": "v", "version": 7}' : i === 20 ? '{"key": "k", "value": "w", "version": 7}' : undefined)),
        /^line 20: version 7 does not exceed version 7 of the same key on an earlier line/,
        'VERSION_NOT_INCREASING',
      ],
      ['bad.csv', 'key,value\nbad6/a,1\nbad6/b,"unterminated\nbad6/c,3\n', /^line 3: unterminated quoted CSV field/, 'IMPORT_INVALID'],
      ['fields.csv', 'bad7/a,1\nbad7/b\n', /^line 2: want key,value\[,version\]/, 'IMPORT_INVALID'],
    ];
    for (const [name, text, detail, code] of cases) {
      const r = await run(['import', file(name, text), '--batch-size', '5', '--json']);
      expect(r.code, name).toBe(1);
      const e = jsonError(r);
      expect(e.code, name).toBe(code);
      expect(e.detail, name).toMatch(detail);
      expect(typeof e.line, name).toBe('number');
    }
    // Not UTF-8 on line 3: named too (a file is read strictly, never with U+FFFD).
    const bin = Buffer.concat([Buffer.from('{"key":"bad8/a","value":"1"}\n{"key":"bad8/b","value":"2"}\n{"key":"bad8/'), Buffer.from([0xff]), Buffer.from('","value":"3"}\n')]);
    const r = await run(['import', file('bin.jsonl', bin), '--json']);
    expect(jsonError(r).detail).toMatch(/^line 3: not valid UTF-8/);
    for (let i = 1; i <= 8; i++) expect(await keys(a, `bad${i}/`), `bad${i}/`).toEqual([]);
  });

  it('says how many records landed and where to resume when a later batch fails, and --resume-from finishes', async () => {
    const run = on(a);
    // Batches of 10: the record on line 25 conflicts with a version already on the server.
    expect((await run(['put', 'res/conflict', 'old', '--version', '100'])).code).toBe(0);
    const conflict = (v: number) => (i: number) => (i === 25 ? JSON.stringify({ key: 'res/conflict', value: 'new', version: v }) : undefined);
    const p = file('resume.jsonl', lines(35, 'res/', conflict(5)));
    const failed = await run(['import', p, '--batch-size', '10', '--json']);
    expect(failed.code).toBe(1);
    const e = jsonError(failed);
    expect(e).toMatchObject({ code: 'VERSION_NOT_INCREASING', status: 409, imported: 20, resumeFrom: 21, batch: { index: 3, of: 4, fromLine: 21, toLine: 30 } });
    expect(e.detail).toContain('20 record(s) landed, lines 1–20');
    expect(e.detail).toContain('--resume-from 21');
    const landed = await keys(a, 'res/');
    expect(landed).toEqual([...Array.from({ length: 20 }, (_, i) => `res/${String(i + 1).padStart(3, '0')}`), 'res/conflict']);

    // Resumed before the cause is fixed: the same batch fails again, and nothing more lands.
    const text = await run(['import', p, '--batch-size', '10', '--resume-from', '21', '--no-progress']);
    expect(text.code).toBe(1);
    expect(text.stderr.trim().split('\n')).toHaveLength(1);
    expect(text.stderr).toMatch(/^proofkv: VERSION_NOT_INCREASING \(409\): batch 1 of 2 \(lines 21–30\) failed: .*no record landed \(lines before 21 were skipped by --resume-from\).*--resume-from 21/);
    expect(await keys(a, 'res/')).toEqual(landed);

    // Fixed, and resumed where it said: every record exactly once.
    fs.writeFileSync(p, lines(35, 'res/', conflict(500)));
    const resumed = jsonOf(await run(['import', p, '--batch-size', '10', '--resume-from', '21', '--json']));
    expect(resumed).toMatchObject({ records: 15, batches: 2, skipped: 20 });
    const all = await keys(a, 'res/');
    expect(all).toHaveLength(35);
    const first = jsonOf(await run(['get', 'res/001', '--no-verify', '--json']));
    expect(first.entry.version).toBe(1);
    expect(jsonOf(await run(['get', 'res/conflict', '--no-verify', '--json'])).entry).toMatchObject({ version: 500, valueUtf8: 'new' });
    expect(jsonError(await run(['import', p, '--resume-from', '99', '--json'])).detail).toContain('no record on or after that line');
  });

  it('--atomic writes the whole file or nothing', async () => {
    const run = on(a);
    await run(['put', 'atom/conflict', 'old', '--version', '9']);
    const bad = file('atomic.jsonl', lines(50, 'atom/', (i) => (i === 49 ? JSON.stringify({ key: 'atom/conflict', value: 'x', version: 3 }) : undefined)));
    const r = await run(['import', bad, '--atomic', '--json']);
    expect(jsonError(r)).toMatchObject({ code: 'VERSION_NOT_INCREASING', imported: 0, resumeFrom: 1 });
    expect(await keys(a, 'atom/')).toEqual(['atom/conflict']);
    const good = file('atomic2.jsonl', lines(50, 'atom/'));
    expect(jsonOf(await run(['import', good, '--atomic', '--json']))).toMatchObject({ records: 50, batches: 1, atomic: true });
    expect(await keys(a, 'atom/')).toHaveLength(51);
    // More operations than one batch may hold: refused before writing.
    const huge = file('huge.jsonl', lines(10_001, 'huge/'));
    expect(jsonError(await run(['import', huge, '--atomic', '--json']))).toMatchObject({ code: 'IMPORT_TOO_LARGE' });
    expect(await keys(a, 'huge/')).toEqual([]);
  });

  it('export writes JSON lines that import reads back into another node, binary and every version', async () => {
    const ra = on(a);
    const rb = on(b);
    const bin = new Uint8Array([0x00, 0xff, 0x80, 0x0a]);
    await ra(['put', 'exp/text', 'one']);
    await ra(['put', 'exp/text', 'two']);
    await ra(['put', 'exp/text', 'ten', '--version', '10']);
    await ra(['put', Buffer.from('exp/bin\xff', 'latin1').toString('hex'), Buffer.from(bin).toString('hex'), '--key-encoding', 'hex', '--value-encoding', 'hex']);
    await ra(['put', 'exp/gone', 'x']);
    await ra(['del', 'exp/gone']);
    await ra(['put', 'exp/hole', 'a']);
    await ra(['del', 'exp/hole']);
    await ra(['put', 'exp/hole', 'b']);

    const latest = path.join(dir, 'latest.jsonl');
    const le = await ra(['export', '--prefix', 'exp/', '--out', latest, '--json']);
    expect(jsonOf(le)).toMatchObject({ file: latest, records: 3, keys: 3, verified: false });
    const rows = fs.readFileSync(latest, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toContainEqual({ key: 'exp/text', value: 'ten', version: 10 });
    expect(rows).toContainEqual({ keyBase64url: Buffer.from('exp/bin\xff', 'latin1').toString('base64url'), valueBase64url: Buffer.from(bin).toString('base64url'), version: 1 });

    const every = path.join(dir, 'all.jsonl');
    const ae = jsonOf(await ra(['export', '--prefix', 'exp/', '--all-versions', '--out', every, '--json']));
    expect(ae).toMatchObject({ records: 6, keys: 3, skippedDeletes: 1 });
    expect(jsonOf(await rb(['import', every, '--json']))).toMatchObject({ records: 6 });
    const back = path.join(dir, 'back.jsonl');
    await rb(['export', '--prefix', 'exp/', '--all-versions', '--out', back]);
    expect(fs.readFileSync(back, 'utf8')).toBe(fs.readFileSync(every, 'utf8'));
    const v2 = jsonOf(await rb(['get', 'exp/text', '--version', '2', '--no-verify', '--json']));
    expect(v2.entry).toMatchObject({ version: 2, valueUtf8: 'two' });
    const bb = jsonOf(await rb(['get', Buffer.from('exp/bin\xff', 'latin1').toString('hex'), '--key-encoding', 'hex', '--no-verify', '--json']));
    expect(unb64(bb.entry.value)).toEqual(bin);

    // To stdout: only the JSON lines (the summary goes to stderr), so it pipes.
    const out = await ra(['export', '--prefix', 'exp/text']);
    expect(out.stdout).toBe('{"key":"exp/text","value":"ten","version":10}\n');
    expect(out.stderr).toContain('exported 1 record(s)');
  });
});
