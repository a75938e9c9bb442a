/**
 * Test doubles for the SDK's unit tests: a scripted `fetch` that records every call, and a fake
 * checkpoint log that signs real heads (Ed25519) and serves the checkpoint routes of
 * `docs/http-api.md` with real RFC 9162 inclusion and consistency proofs.
 */
import { checkpointHash, checkpointLeafHash, generateKeyPair, signHead, type Checkpoint, type KeyPair, type LogHead } from '../../proofs/checkpoint.js';
import { LogTree } from '../../proofs/log.js';
import { toBase64Url } from '../../client-sdk/bytes.js';

/** One recorded request. */
export interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body?: string;
}

/** What a handler returns: a response, or a thrown error (a network failure). */
export type Handler = (call: Call, signal: AbortSignal | undefined) => Promise<Response> | Response;

/** A `fetch` double: routes each call to `handler` and records it. */
export function recordingFetch(handler: Handler): { fetch: (input: string, init: RequestInit) => Promise<Response>; calls: Call[] } {
  const calls: Call[] = [];
  const fetch = async (input: string, init: RequestInit): Promise<Response> => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries((init.headers ?? {}) as Record<string, string>)) headers[k.toLowerCase()] = v;
    const call: Call = { url: input, method: init.method ?? 'GET', headers, body: typeof init.body === 'string' ? init.body : undefined };
    calls.push(call);
    return handler(call, init.signal ?? undefined);
  };
  return { fetch, calls };
}

/** The error `p` rejects with (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** A JSON response. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const type = status >= 400 ? 'application/problem+json' : 'application/json';
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': type, ...headers } });
}

/** A problem+json error response. */
export function problem(status: number, code: string, headers: Record<string, string> = {}): Response {
  return json(status, { type: `https://proofkv.dev/errors/${code.toLowerCase()}`, title: code, status, code, detail: `test ${code}` }, headers);
}

/** A promise that rejects like `fetch` does when `signal` aborts (and never resolves otherwise). */
export function hangUntilAborted(signal: AbortSignal | undefined): Promise<Response> {
  return new Promise((_, reject) => {
    signal?.addEventListener('abort', () => reject(new DOMException('The operation was aborted.', 'AbortError')));
  });
}

/** A checkpoint log signed by `keys`, serving `/v1/checkpoints/*` as JSON. */
export class FakeLog {
  readonly tree = new LogTree();
  readonly checkpoints: Checkpoint[] = [];
  /** Replaces the head served as latest (a replay or a fork), when set. */
  override?: { size: number };

  constructor(
    readonly keys: KeyPair[] = [generateKeyPair()],
    private readonly tag = 0,
  ) {}

  /** Appends `n` checkpoints (seq grows by 10 each). */
  grow(n: number): this {
    for (let i = 0; i < n; i++) {
      const index = this.checkpoints.length;
      const masterRoot = new Uint8Array(32).fill((index * 7 + this.tag * 13 + 1) & 0xff);
      const c: Checkpoint = { index, seq: index * 10, masterRoot };
      if (index > 0) c.prevCheckpointHash = checkpointHash(this.checkpoints[index - 1]);
      this.checkpoints.push(c);
      this.tree.append(checkpointLeafHash(c));
    }
    return this;
  }

  /** Appends `c` as is (a broken link, a lower seq: for chain tests). */
  append(c: Checkpoint): this {
    this.checkpoints.push(c);
    this.tree.append(checkpointLeafHash(c));
    return this;
  }

  /** The head at `size`. */
  head(size = this.tree.size): LogHead {
    return { size, root: this.tree.root(size) };
  }

  /** The JSON wire form of the signed checkpoint ending the head of `size`. */
  signedWire(size: number, signers: KeyPair[] = this.keys): Record<string, unknown> {
    const head = this.head(size);
    const c = this.checkpoints[size - 1];
    return {
      checkpoint: { index: c.index, seq: c.seq, masterRoot: toBase64Url(c.masterRoot), ...(c.prevCheckpointHash ? { prevCheckpointHash: toBase64Url(c.prevCheckpointHash) } : {}) },
      head: { size: head.size, root: toBase64Url(head.root) },
      signatures: signers.map((k) => {
        const s = signHead(k.privateKey, head);
        return { publicKey: toBase64Url(s.publicKey), signature: toBase64Url(s.signature) };
      }),
    };
  }

  /** Answers the checkpoint routes; `undefined` for anything else. */
  route(call: Call): Response | undefined {
    const u = new URL(call.url);
    const latest = this.override?.size ?? this.tree.size;
    if (u.pathname === '/v1/checkpoints/latest') return json(200, this.signedWire(latest));
    if (u.pathname === '/v1/checkpoints/consistency') {
      const from = Number(u.searchParams.get('from'));
      const to = Number(u.searchParams.get('to'));
      return json(200, { from, to, proof: this.tree.consistencyProof(from, to).map(toBase64Url) });
    }
    const m = /^\/v1\/checkpoints\/(\d+)$/.exec(u.pathname);
    if (m) {
      const index = Number(m[1]);
      const body = this.signedWire(latest);
      body.checkpoint = (this.signedWire(index + 1) as { checkpoint: unknown }).checkpoint;
      return json(200, { ...body, inclusion: this.tree.inclusionProof(index, latest).map(toBase64Url) });
    }
    return undefined;
  }
}
