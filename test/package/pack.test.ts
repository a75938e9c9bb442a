/**
 * The published packages as a new user meets them. `npm pack` builds and packs `proofkv` (this
 * checkout) and `proofkv-client` (packages/client, the verify-only install built from client-sdk/
 * and proofs/); each tarball is installed into an empty project, and from there: the CLI (help of
 * every command, `npx proofkv serve` with a put and a verified get, SIGTERM to npx stopping the
 * server), an ESM import of each entry, the documented `require()` error, type-checks of a consumer
 * under node16 and bundler resolution, and a verifiedGet from the client-only install.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launch, leftoversAfterStop, ok, reap, ROOT, run, tmpDir, type Launched } from './helpers.js';

const CLIENT_PKG = path.join(ROOT, 'packages/client');
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');
/** Server-side packages that a verify-only install must not pull. */
const SERVER_ONLY = ['express', 'classic-level', 'pino', 'prom-client', 'commander', 'cli-progress'];

interface Manifest {
  name: string;
  version: string;
  dependencies: Record<string, string>;
}
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

let work = '';
let serverApp = '';
let clientApp = '';
let serverTgz = '';
let clientTgz = '';
let server: Launched | undefined;

/** `npm pack` in `dir` (its prepack builds), into `dest`; returns the tarball's path. */
async function pack(dir: string, dest: string): Promise<string> {
  fs.mkdirSync(dest);
  ok(await run('npm', ['pack', '--pack-destination', dest], dir), `npm pack in ${path.relative(ROOT, dir) || '.'}`);
  const tgz = fs.readdirSync(dest).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toHaveLength(1);
  return path.join(dest, tgz[0]!);
}

/** An empty ESM project with `tgz` installed. */
async function installInto(name: string, tgz: string): Promise<string> {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }, null, 2));
  ok(await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tgz], dir), `npm install ${path.basename(tgz)}`);
  return dir;
}

async function tarList(tgz: string): Promise<string[]> {
  return ok(await run('tar', ['-tzf', tgz], work), 'tar').stdout.split('\n').filter(Boolean);
}

async function kib(dir: string): Promise<number> {
  return Number.parseInt(ok(await run('du', ['-sk', dir], work), 'du').stdout, 10);
}

/**
 * Runs the repository's tsc on a consumer project; returns its output on failure. The shipped
 * declarations are checked too (skipLibCheck off) unless `compilerOptions` turns that off: once per
 * package is enough, the other resolution mode only has to resolve them.
 */
async function typeCheck(dir: string, config: string, compilerOptions: Record<string, unknown>, file: string): Promise<string> {
  const tsconfig = {
    compilerOptions: { target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, ...compilerOptions },
    files: [file],
  };
  fs.writeFileSync(path.join(dir, config), JSON.stringify(tsconfig, null, 2));
  const r = await run(process.execPath, [TSC, '-p', config], dir);
  return r.code === 0 ? '' : r.stdout + r.stderr;
}

/** `require()` of each entry, from a CommonJS script in `dir`, throws the ESM-only error naming `pkg`. */
async function expectRequireRefused(dir: string, pkg: string, entries: string[]): Promise<void> {
  for (const entry of entries) {
    const code = `try { require(${JSON.stringify(entry)}); console.log('{}') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`;
    const r = ok(await run(process.execPath, ['--input-type=commonjs', '-e', code], dir), `require ${entry}`);
    const err = JSON.parse(r.stdout) as { code?: string; message?: string };
    expect(err.code).toBe('ERR_REQUIRE_ESM');
    expect(err.message).toContain(`${pkg} is an ES module package`);
    expect(err.message).toContain(`await import('${pkg}')`);
  }
}

const NODE_TYPES = { types: ['node'], typeRoots: [path.join(ROOT, 'node_modules/@types')] };

beforeAll(async () => {
  work = tmpDir('proofkv-pack-');
  serverTgz = await pack(ROOT, path.join(work, 'server-tgz'));
  clientTgz = await pack(CLIENT_PKG, path.join(work, 'client-tgz'));
  serverApp = await installInto('server-app', serverTgz);
  clientApp = await installInto('client-app', clientTgz);
}, 300_000);

afterAll(() => {
  reap(server);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('proofkv tarball', () => {
  it('ships dist/, bin/, cjs/, docs and the manifest: no sources, tests, bench, source maps or stray files', async () => {
    const files = (await tarList(serverTgz)).map((f) => f.replace(/^package\//, ''));
    const allowed = /^(dist\/.+\.(js|d\.ts)|dist\/ui\/(index\.html|explorer\.css)|bin\/proofkv\.js|cjs\/esm-only\.cjs|docs\/[a-z-]+\.md|package\.json|README\.md|LICENSE)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    for (const entry of ['dist/server/cli.js', 'dist/src/compaction/worker.js', 'dist/src/index.d.ts', 'dist/client-sdk/index.d.ts', 'dist/proofs/index.d.ts', 'dist/ui/index.html', 'dist/ui/explorer.js', 'dist/ui/explorer.css']) {
      expect(files).toContain(entry);
    }
    expect(files.some((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.startsWith('dist/examples/'))).toBe(false);
  });

  it('installed: every command of the CLI runs from dist/ (--help of each)', async () => {
    const bin = path.join(serverApp, 'node_modules/.bin/proofkv');
    const help = ok(await run(bin, ['--help'], serverApp), 'proofkv --help').stdout;
    const commands = [...help.split('Commands:')[1]!.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toContain('serve');
    expect(commands).toContain('get');
    for (const c of commands) {
      const r = ok(await run(bin, [c, '--help'], serverApp), `proofkv ${c} --help`);
      expect(r.stdout).toContain(`Usage: proofkv ${c}`);
    }
  });

  it('installed: an ESM import of each entry works, and the engine runs from dist/ (flush through the worker)', async () => {
    const script = `
      import * as fs from 'node:fs';
      const proofs = await import('proofkv/proofs');
      // The node condition of proofkv/proofs installs node:crypto's SHA-256 on import.
      const nodeSha256 = proofs.defaultHasher() !== proofs.nobleHasher;
      const engine = await import('proofkv');
      const client = await import('proofkv/client');
      const dir = fs.mkdtempSync(process.argv[2]);
      const db = await engine.ProofDB.open(dir);
      await db.put('k', 'v');
      await db.checkpoint();
      const got = await db.get('k');
      const value = got === undefined ? null : new TextDecoder().decode(got);
      await db.close();
      const tables = fs.readdirSync(dir).filter((f) => f.endsWith('.sst')).length;
      console.log(JSON.stringify({
        ProofDB: typeof engine.ProofDB, ProofKVClient: typeof client.ProofKVClient,
        verifyInclusion: typeof proofs.verifyInclusion, got: value, tables, nodeSha256,
      }));`;
    fs.writeFileSync(path.join(serverApp, 'esm.mjs'), script);
    const r = ok(await run(process.execPath, ['esm.mjs', path.join(work, 'engine-')], serverApp), 'esm import');
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ ProofDB: 'function', ProofKVClient: 'function', verifyInclusion: 'function', got: 'v', nodeSha256: true });
    expect(out.tables).toBeGreaterThan(0);
  });

  it('installed: require() of each entry fails with the documented message (ES modules only)', async () => {
    await expectRequireRefused(serverApp, 'proofkv', ['proofkv', 'proofkv/client', 'proofkv/proofs']);
  });

  it('installed: a consumer type-checks against the shipped declarations under node16 and bundler resolution', async () => {
    fs.writeFileSync(
      path.join(serverApp, 'consumer.ts'),
      `import { ProofDB, type ProofKVError } from 'proofkv';
import { ProofKVClient, VerificationError } from 'proofkv/client';
import { logLeafHash, toHex } from 'proofkv/proofs';
export const hex: string = toHex(logLeafHash(new Uint8Array([1])));
export type Opened = Awaited<ReturnType<typeof ProofDB.open>>;
export type Failure = ProofKVError | VerificationError;
export const client = new ProofKVClient({ endpoints: ['http://127.0.0.1:1'], trust: { tofu: true } });
// @ts-expect-error toHex takes bytes: this line is an error only when the types are real
toHex(42);
`,
    );
    expect(await typeCheck(serverApp, 'tsconfig.node16.json', { module: 'node16', moduleResolution: 'node16', ...NODE_TYPES }, 'consumer.ts')).toBe('');
    const bundler = { module: 'esnext', moduleResolution: 'bundler', skipLibCheck: true, ...NODE_TYPES };
    expect(await typeCheck(serverApp, 'tsconfig.bundler.json', bundler, 'consumer.ts')).toBe('');
  });
});

describe('proofkv-client tarball (verify-only install)', () => {
  it('ships the SDK and the verifiers only', async () => {
    const files = (await tarList(clientTgz)).map((f) => f.replace(/^package\//, ''));
    const allowed = /^(dist\/(client-sdk|proofs|node-entry)\/[a-z_0-9]+\.(js|d\.ts)|dist\/esm-only\.cjs|package\.json|README\.md)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    expect(files).toContain('dist/client-sdk/index.js');
    expect(files).toContain('dist/proofs/index.js');
  });

  it('depends on exactly the packages its code imports, at the ranges of proofkv, and has its version', () => {
    const root = readJson<Manifest>(path.join(ROOT, 'package.json'));
    const client = readJson<Manifest>(path.join(CLIENT_PKG, 'package.json'));
    expect(client.version).toBe(root.version);
    const installed = path.join(clientApp, 'node_modules/proofkv-client/dist');
    const imported = new Set<string>();
    for (const sub of ['client-sdk', 'proofs', 'node-entry']) {
      for (const f of fs.readdirSync(path.join(installed, sub)).filter((n) => n.endsWith('.js'))) {
        const text = fs.readFileSync(path.join(installed, sub, f), 'utf8');
        for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
          if (spec.startsWith('.') || spec.startsWith('node:')) continue;
          imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
        }
      }
    }
    expect([...imported].sort()).toEqual(Object.keys(client.dependencies).sort());
    for (const [name, range] of Object.entries(client.dependencies)) expect(range).toBe(root.dependencies[name]);
  });

  it('installed: require() of each entry fails with the documented message (ES modules only)', async () => {
    await expectRequireRefused(clientApp, 'proofkv-client', ['proofkv-client', 'proofkv-client/proofs']);
  });

  it('installs without any server dependency, and smaller than proofkv', async () => {
    for (const name of SERVER_ONLY) {
      expect(fs.existsSync(path.join(clientApp, 'node_modules', name))).toBe(false);
      expect(fs.existsSync(path.join(serverApp, 'node_modules', name))).toBe(true);
    }
    const serverKib = await kib(path.join(serverApp, 'node_modules'));
    const clientKib = await kib(path.join(clientApp, 'node_modules'));
    console.log(`install sizes (du -sk node_modules): proofkv ${serverKib} KiB, proofkv-client ${clientKib} KiB`);
    expect(clientKib).toBeLessThan(serverKib);
  });

  it('a consumer type-checks under bundler resolution without node types (browser) and under node16', async () => {
    fs.writeFileSync(
      path.join(clientApp, 'consumer.ts'),
      `import { ProofKVClient, VerificationError } from 'proofkv-client';
import { fromHex, logLeafHash, toHex } from 'proofkv-client/proofs';
export const hex: string = toHex(logLeafHash(fromHex('01')));
export const client = new ProofKVClient({ endpoints: ['http://127.0.0.1:1'], trust: { publicKeys: [fromHex('00'.repeat(32))], quorum: 1 } });
export const isVerificationError = (e: unknown): boolean => e instanceof VerificationError;
// @ts-expect-error toHex takes bytes: this line is an error only when the types are real
toHex(42);
`,
    );
    const browser = { module: 'esnext', moduleResolution: 'bundler', lib: ['ES2022', 'DOM'], types: [] };
    expect(await typeCheck(clientApp, 'tsconfig.browser.json', browser, 'consumer.ts')).toBe('');
    const node16 = { module: 'node16', moduleResolution: 'node16', skipLibCheck: true, ...NODE_TYPES };
    expect(await typeCheck(clientApp, 'tsconfig.node16.json', node16, 'consumer.ts')).toBe('');
  });
});

describe('npx proofkv serve from the install', () => {
  it('serves a put and a verified get (CLI and proofkv-client), and SIGTERM to npx stops the server and frees port and lock', async () => {
    const dataDir = path.join(work, 'data');
    server = await launch('npx', ['proofkv', 'serve', '--data', dataDir, '--port', '0', '--log-level', 'warn'], serverApp, dataDir);
    const s = server;
    // The server is not the process we signal: npx runs it under its script shell.
    expect(s.serverPid).not.toBe(s.launcher.pid);

    const bin = path.join(serverApp, 'node_modules/.bin/proofkv');
    const common = ['--endpoint', s.url, '--public-key', s.publicKeyHex, '--state', path.join(work, 'trust.json'), '--json'];
    ok(await run(bin, ['put', 'greeting', 'hello', ...common], serverApp), 'proofkv put');
    ok(await run(bin, ['checkpoint', '--create', ...common], serverApp), 'proofkv checkpoint --create');
    const got = JSON.parse(ok(await run(bin, ['get', 'greeting', ...common], serverApp), 'proofkv get').stdout) as { verified: boolean };
    expect(got.verified).toBe(true);
    expect(JSON.stringify(got)).toContain('hello');
    // The explorer is served from the installed dist/ui (no sources, no esbuild at run time).
    const ui = await fetch(`${s.url}/ui/explorer.js`, { signal: AbortSignal.timeout(10_000) });
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(Buffer.from(await ui.arrayBuffer()).equals(fs.readFileSync(path.join(serverApp, 'node_modules/proofkv/dist/ui/explorer.js')))).toBe(true);

    fs.writeFileSync(
      path.join(clientApp, 'verify.mjs'),
      `import { ProofKVClient, VerificationError } from 'proofkv-client';
import { defaultHasher, fromHex, nobleHasher, toHex } from 'proofkv-client/proofs';
const [url, pk] = process.argv.slice(2);
// The node condition of proofkv-client installs node:crypto's SHA-256 on import.
const nodeSha256 = defaultHasher() !== nobleHasher;
const get = (key) => new ProofKVClient({ endpoints: [url], trust: { publicKeys: [key], quorum: 1 } }).verifiedGet('greeting');
const r = await get(fromHex(pk));
const other = fromHex(pk);
other[0] ^= 1;
let refused;
try {
  await get(other);
  refused = { verificationError: false };
} catch (e) {
  refused = { verificationError: e instanceof VerificationError, reason: e.reason };
}
console.log(JSON.stringify({ value: new TextDecoder().decode(r.value), version: r.version, refused, nodeSha256 }));
`,
    );
    const v = JSON.parse(ok(await run(process.execPath, ['verify.mjs', s.url, s.publicKeyHex], clientApp), 'verifiedGet from proofkv-client').stdout) as {
      value: string;
      version: number;
      refused: { verificationError: boolean; reason?: string };
      nodeSha256: boolean;
    };
    expect(v.value).toBe('hello');
    expect(v.nodeSha256).toBe(true);
    expect(v.version).toBe(1);
    // Under a key that did not sign, the same answer is refused.
    expect(v.refused.verificationError).toBe(true);
    expect(typeof v.refused.reason).toBe('string');

    s.launcher.kill('SIGTERM');
    const left = await leftoversAfterStop(s);
    expect(left, s.output()).toEqual({ serverAlive: false, portFree: true, lockPresent: false });
    expect(await s.exited).not.toBe(-1);
  });
});

