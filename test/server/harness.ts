/**
 * Test harness for the HTTP server: starts a real `proofkv serve` process on a free port and
 * gives small verbs to talk to it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decode as cborDecode } from 'cbor-x';
import { pino } from 'pino';
import { ProofNode, type NodeOptions } from '../../server/node.js';
import type { DBOptions } from '../../src/index.js';
import { cliArgv } from '../support/cli_build.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A running server process. */
export interface ServerProc {
  url: string;
  dataDir: string;
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Sends `signal` and resolves with the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** A fresh temporary directory. */
export function tmpDir(prefix = 'proofkv-server-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Starts `proofkv serve --port 0` (test/support/cli_build.ts) on `dataDir` and waits for its URL. */
export async function startServer(
  opts: { dataDir?: string; args?: string[]; env?: Record<string, string>; logLevel?: string; /** Command prefix, e.g. `['prlimit', '--nofile=256']`. */ wrap?: string[] } = {},
): Promise<ServerProc> {
  const dataDir = opts.dataDir ?? path.join(tmpDir(), 'data');
  const args = [...cliArgv(), 'serve', '--data', dataDir, '--port', '0', '--log-level', opts.logLevel ?? 'silent', ...(opts.args ?? [])];
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (!opts.env?.PROOFKV_TOKENS) delete env.PROOFKV_TOKENS;
  delete env.PROOFKV_LOG_LEVEL;
  const [cmd, ...argv] = [...(opts.wrap ?? []), process.execPath, ...args];
  const proc = spawn(cmd, argv, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${out}\n${err}`)), 30_000);
    const check = () => {
      const m = /listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening:\n${out}\n${err}`));
    });
  });
  return {
    url,
    dataDir,
    proc,
    stdout: () => out,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/**
 * An in-process node (engine options `db`) on a fresh data directory, loopback, no tokens, no
 * automatic checkpoints, silent; `extra` adds node options (e.g. `notes`).
 */
export function startLocalNode(db?: DBOptions, dataDir = path.join(tmpDir(), 'data'), extra: Partial<NodeOptions> = {}): Promise<ProofNode> {
  return ProofNode.start({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    tokens: [],
    checkpointIntervalMs: 0,
    checkpointWrites: 0,
    logger: pino({ level: 'silent' }),
    ...(db ? { db } : {}),
    ...extra,
  });
}

/** A parsed response. */
export interface Reply {
  status: number;
  headers: Headers;
  /** Parsed JSON or CBOR body, or the raw bytes for other types. */
  body: any;
  raw: Uint8Array;
}

/** One request with a 20 s timeout; the body is parsed by content type. */
export async function call(
  url: string,
  method: string,
  p: string,
  init: { body?: Uint8Array | string; headers?: Record<string, string>; token?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const r = await fetch(url + p, { method, headers, body: init.body, signal: AbortSignal.timeout(20_000) });
  const raw = new Uint8Array(await r.arrayBuffer());
  const ct = r.headers.get('content-type') ?? '';
  let body: any = raw;
  if (ct.startsWith('application/json') || ct.startsWith('application/problem+json')) body = JSON.parse(new TextDecoder().decode(raw));
  else if (ct.startsWith('application/cbor')) body = cborDecode(raw);
  else if (ct.startsWith('text/')) body = new TextDecoder().decode(raw);
  return { status: r.status, headers: r.headers, body, raw };
}

/** JSON body helper. */
export const json = (v: unknown): { body: string; headers: Record<string, string> } => ({
  body: JSON.stringify(v),
  headers: { 'content-type': 'application/json' },
});

/** base64url helpers. */
export const b64 = (b: Uint8Array | string): string => Buffer.from(typeof b === 'string' ? new TextEncoder().encode(b) : b).toString('base64url');
export const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64url'));
/** Percent-encodes every byte. */
export const pct = (b: Uint8Array | string): string =>
  [...(typeof b === 'string' ? new TextEncoder().encode(b) : b)].map((x) => '%' + x.toString(16).padStart(2, '0').toUpperCase()).join('');
