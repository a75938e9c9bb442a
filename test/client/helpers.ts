/**
 * Helpers for the SDK's end-to-end, tampering and browser tests: a real node (the server
 * harness's `startServer`), a rewriting HTTP proxy in front of it, and a CLI runner.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { toBase64Url } from '../../client-sdk/index.js';
import { checkpointHash, checkpointLeafHash, type Checkpoint, type LogHead } from '../../proofs/checkpoint.js';
import { LogTree } from '../../proofs/log.js';
import { cliArgv } from '../support/cli_build.js';

export { startServer, tmpDir, type ServerProc } from '../server/harness.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A response as the proxy sees it; a rewrite may change `status`, `body` and `headers`. */
export interface ProxiedResponse {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON when the upstream sent JSON, else undefined. */
  body: unknown;
  /** When set, sent as the body as is (instead of `body` as JSON): truncated or garbage answers. */
  raw?: Buffer;
}

/** A request as the proxy forwards it; a request hook may change `headers` and `body`. */
export interface ProxiedRequest {
  headers: Record<string, string>;
  body: Buffer | undefined;
}

/** Hooks of a {@link RewritingProxy}: change the upstream path, or the response. */
export interface ProxyHooks {
  /** The upstream path for a request path (default: unchanged). */
  path?: (method: string, path: string) => string;
  /** Rewrites the request's headers or body before it is forwarded. */
  request?: (method: string, path: string, req: ProxiedRequest) => void;
  /** Rewrites a JSON response in place, or returns a replacement. */
  response?: (method: string, path: string, res: ProxiedResponse) => ProxiedResponse | void | Promise<ProxiedResponse | void>;
}

/** A node:http proxy on 127.0.0.1 that forwards to `upstream` and lets a test rewrite answers. */
export class RewritingProxy {
  hooks: ProxyHooks = {};
  /** Every JSON response body seen, by request path, newest last (for replays). */
  readonly seen = new Map<string, unknown[]>();
  private server!: Server;
  url = '';

  constructor(readonly upstream: string) {}

  /** Starts listening on a free port. */
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 502;
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Stops listening. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const method = req.method ?? 'GET';
    const reqPath = req.url ?? '/';
    const upstreamPath = this.hooks.path ? this.hooks.path(method, reqPath) : reqPath;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length' && k !== 'connection') headers[k] = v;
    const fwd: ProxiedRequest = { headers, body: chunks.length ? Buffer.concat(chunks) : undefined };
    this.hooks.request?.(method, reqPath, fwd);
    const up = await fetch(this.upstream + upstreamPath, { method, headers: fwd.headers, body: fwd.body });
    const raw = Buffer.from(await up.arrayBuffer());
    const outHeaders: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection' && k !== 'keep-alive' && k !== 'content-encoding') outHeaders[k] = v;
    });
    const isJson = (up.headers.get('content-type') ?? '').includes('json');
    let out: ProxiedResponse = { status: up.status, headers: outHeaders, body: isJson ? JSON.parse(raw.toString('utf8')) : undefined };
    if (isJson && up.status === 200) {
      const key = reqPath.split('?')[0];
      const list = this.seen.get(key) ?? [];
      list.push(JSON.parse(raw.toString('utf8')));
      this.seen.set(key, list);
    }
    if (this.hooks.response) out = (await this.hooks.response(method, reqPath, out)) ?? out;
    const payload = out.raw ?? (out.body === undefined ? raw : Buffer.from(JSON.stringify(out.body)));
    res.writeHead(out.status, { ...out.headers, 'content-length': String(payload.length) });
    res.end(payload);
  }
}

/** A checkpoint that follows `prev` correctly (index, seq, link, time, signer set) over a random MasterRoot, with `f` changed. */
export function forgedSuccessor(prev: Checkpoint, f: Partial<Checkpoint> = {}): Checkpoint {
  return {
    index: prev.index + 1,
    seq: prev.seq + 1,
    masterRoot: new Uint8Array(randomBytes(32)),
    prevCheckpointHash: checkpointHash(prev),
    time: prev.time,
    signerSetHash: prev.signerSetHash,
    ...f,
  };
}

/**
 * Hooks that make a {@link RewritingProxy} serve the checkpoint log `cps` in the node's place on
 * the checkpoint routes (latest, by index below its size, consistency), each answer carrying the
 * fields `signed(head)` gives for its head (`signatures`, `signers`; wire form). The node itself is
 * asked `/v1/checkpoints/latest` instead, without the client's `ProofKV-Min-Head` (it would wait
 * for a head it does not have), and its answer replaced. Every other route goes through as is.
 */
export function servedLogHooks(cps: Checkpoint[], signed: (head: LogHead) => Record<string, unknown>): ProxyHooks {
  const tree = new LogTree();
  for (const c of cps) tree.append(checkpointLeafHash(c));
  const size = cps.length;
  const wire = (c: Checkpoint) => ({
    index: c.index,
    seq: c.seq,
    masterRoot: toBase64Url(c.masterRoot),
    ...(c.prevCheckpointHash ? { prevCheckpointHash: toBase64Url(c.prevCheckpointHash) } : {}),
    ...(c.signerSetHash ? { time: c.time, signerSetHash: toBase64Url(c.signerSetHash) } : {}),
  });
  const head = { size, root: tree.root(size) };
  const headFields = { head: { size, root: toBase64Url(head.root) }, ...signed(head) };
  const indexOf = (p: string) => {
    const m = /^\/v1\/checkpoints\/(\d+)$/.exec(new URL(p, 'http://x').pathname);
    return m && Number(m[1]) < size ? Number(m[1]) : undefined;
  };
  const served = (p: string) => {
    const route = new URL(p, 'http://x').pathname;
    return route === '/v1/checkpoints/latest' || route === '/v1/checkpoints/consistency' || indexOf(p) !== undefined;
  };
  return {
    path: (_m, p) => (served(p) ? '/v1/checkpoints/latest' : p),
    request: (_m, p, r) => {
      if (served(p)) delete r.headers['proofkv-min-head'];
    },
    response: (_m, p, res): ProxiedResponse | undefined => {
      const u = new URL(p, 'http://x');
      if (u.pathname === '/v1/checkpoints/latest') return { ...res, status: 200, body: { checkpoint: wire(cps[size - 1]), ...headFields } };
      if (u.pathname === '/v1/checkpoints/consistency') {
        const from = Number(u.searchParams.get('from'));
        const to = Number(u.searchParams.get('to'));
        return { ...res, status: 200, body: { from, to, proof: tree.consistencyProof(from, to).map(toBase64Url) } };
      }
      const i = indexOf(p);
      if (i !== undefined) return { ...res, status: 200, body: { checkpoint: wire(cps[i]), ...headFields, inclusion: tree.inclusionProof(i, size).map(toBase64Url) } };
      return undefined;
    },
  };
}

/** The result of one CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `proofkv` command (test/support/cli_build.ts) with `args` and collects its output. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...cliArgv(), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * Runs `op` once with `hooks` on `proxy` (restoring no hooks after) and returns what it threw;
 * throws when it resolved instead — a tampered answer that was accepted.
 */
export async function thrownThrough(proxy: RewritingProxy, hooks: ProxyHooks, op: () => Promise<unknown>): Promise<unknown> {
  proxy.hooks = hooks;
  let result: unknown;
  try {
    result = await op();
  } catch (err) {
    return err;
  } finally {
    proxy.hooks = {};
  }
  throw new Error(`the tampered call was accepted: ${String(result)}`);
}
