/**
 * The cluster bench's load generator (`bench/loadgen/main.go`) has Go tests of its own: how it
 * follows a `ProofKV-Leader` hint over HTTP and over the stream, and how `--proofkv-routing
 * spread` ignores hints. The bench measures through that routing, so a regression there would
 * change what every figure in bench/README.md means. They are built as the bench builds the load
 * generator — GOPATH mode against Debian's etcd client sources (`golang-etcd-server-dev`, which
 * `.ci/run` installs), no module download — and run with `go test`; a missing Go toolchain or
 * package fails this file, it does not skip it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/** Debian's GOPATH for golang-*-dev source packages; override with PROOFKV_GOPATH. */
const GOPATH = process.env.PROOFKV_GOPATH ?? '/usr/share/gocode';
const loadgen = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/loadgen');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-go-loadgen-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('bench/loadgen (Go)', () => {
  it('passes its Go tests (routing to the leader a hint names, spread routing, the stream client)', () => {
    // GOPATH mode wants the package under <gopath>/src: copy the two files there, as bench/loadgen.ts does.
    const src = path.join(dir, 'gopath/src/loadgen');
    fs.mkdirSync(src, { recursive: true });
    for (const f of fs.readdirSync(loadgen).filter((n) => n.endsWith('.go'))) fs.copyFileSync(path.join(loadgen, f), path.join(src, f));
    expect(fs.existsSync(path.join(src, 'main_test.go'))).toBe(true);
    const r = spawnSync('go', ['test', '-count=1', '-v', '.'], {
      cwd: src,
      encoding: 'utf8',
      env: { ...process.env, GO111MODULE: 'off', GOPATH: `${path.join(dir, 'gopath')}:${GOPATH}`, GOFLAGS: '', GOCACHE: path.join(dir, 'cache') },
    });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
    expect(r.status, out).toBe(0);
    // Every test function of main_test.go ran and passed (none skipped or filtered out).
    const declared = [...fs.readFileSync(path.join(src, 'main_test.go'), 'utf8').matchAll(/^func (Test\w+)\(/gm)].map((m) => m[1]);
    expect(declared.length).toBeGreaterThanOrEqual(6);
    for (const name of declared) expect(out, name).toContain(`--- PASS: ${name} `);
  }, 300_000);
});
