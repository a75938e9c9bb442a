/**
 * A hostile server, as real HTTP listeners on 127.0.0.1 (no scripted fetch): huge and endless
 * bodies are cut at the request's byte cap; leader hints and redirects to a foreign origin are not
 * followed and the foreign listener never sees a request, let alone the token; undecodable bodies
 * are `MalformedResponse` for plain calls and `VerificationError(MALFORMED_ENCODING)` for
 * verified ones.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTROL_RESPONSE_BYTES,
  MalformedResponse,
  MemoryStateStore,
  ProofKVClient,
  ProofKVClientError,
  ProofKVHttpError,
  ProofKVResponseTooLargeError,
  responseLimits,
  VerificationError,
} from '../../client-sdk/index.js';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { rejection } from './fake_node.js';

type Handle = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

interface Listener {
  url: string;
  server: Server;
  /** Requests seen: method, path, authorization header. */
  seen: { method: string; url: string; authorization?: string }[];
  handle: Handle;
}

async function listen(): Promise<Listener> {
  const l = { seen: [], handle: (_q: IncomingMessage, r: ServerResponse) => r.end() } as unknown as Listener;
  l.server = createServer((req, res) => {
    l.seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    void Promise.resolve(l.handle(req, res)).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => l.server.listen(0, '127.0.0.1', resolve));
  l.url = `http://127.0.0.1:${(l.server.address() as AddressInfo).port}`;
  return l;
}

async function close(l: Listener): Promise<void> {
  l.server.closeAllConnections();
  await new Promise<void>((resolve) => l.server.close(() => resolve()));
}

let hostile: Listener;
let foreign: Listener;
const TOKEN = 'sekret-token-never-elsewhere';

function client(extra: Partial<ConstructorParameters<typeof ProofKVClient>[0]> = {}): ProofKVClient {
  return new ProofKVClient({
    endpoints: [hostile.url],
    token: TOKEN,
    trust: { publicKeys: [generateKeyPair().publicKey], quorum: 1 },
    stateStore: new MemoryStateStore(),
    retries: 0,
    retryDelayMs: 0,
    ...extra,
  });
}

/** Writes 64 KiB chunks (with backpressure) until the client goes away or `bound` bytes are written; reports the bytes written. */
function endless(bound: number, report: (n: number) => void, headers: Record<string, string> = {}): Handle {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let written = 0;
    let gone = false;
    const closed = new Promise<void>((resolve) => res.once('close', () => ((gone = true), resolve())));
    res.write('{"pad":"');
    while (!gone && written < bound) {
      written += chunk.length;
      if (!res.write(chunk)) await Promise.race([new Promise<void>((resolve) => res.once('drain', resolve)), closed]);
    }
    report(written);
    res.destroy();
  };
}

beforeAll(async () => {
  hostile = await listen();
  foreign = await listen();
  foreign.handle = (_q, r) => {
    r.writeHead(200, { 'content-type': 'application/json' });
    r.end('{"version":1,"seq":1}');
  };
});

afterAll(async () => {
  await close(hostile);
  await close(foreign);
});

describe('response size caps', () => {
  it('derives caps from the server limits and lowers them to maxResponseBytes', () => {
    const d = responseLimits();
    expect(d.control).toBe(CONTROL_RESPONSE_BYTES);
    expect(d.entry).toBe(9 * 1024 * 1024 + CONTROL_RESPONSE_BYTES);
    expect(d.page).toBe(9 * 5 * 1024 * 1024 + CONTROL_RESPONSE_BYTES);
    expect(responseLimits({ serverLimits: { maxValueSize: 1000 } }).entry).toBe(9000 + CONTROL_RESPONSE_BYTES);
    expect(responseLimits({ maxResponseBytes: 4096 })).toEqual({ control: 4096, entry: 4096, page: 4096 });
    expect(() => responseLimits({ maxResponseBytes: 0 })).toThrow(RangeError);
  });

  it('refuses a declared Content-Length above the cap before reading the body', async () => {
    hostile.handle = (_req, res) => {
      // 200 MB announced; only a little is ever sent.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(200_000_000) });
      res.write('{"role":"');
    };
    const err = await rejection(client().status());
    expect(err).toBeInstanceOf(ProofKVResponseTooLargeError);
    expect((err as ProofKVResponseTooLargeError).declared).toBe(200_000_000);
    expect((err as ProofKVResponseTooLargeError).limit).toBe(CONTROL_RESPONSE_BYTES);
  });

  it('stops reading an endless body at the cap (plain call, control cap)', async () => {
    let written = -1;
    const bound = 256 * 1024 * 1024;
    hostile.handle = endless(bound, (n) => (written = n));
    const err = await rejection(client().status());
    expect(err).toBeInstanceOf(ProofKVResponseTooLargeError);
    expect((err as ProofKVResponseTooLargeError).declared).toBeUndefined();
    await new Promise<void>((resolve) => {
      const t = setInterval(() => written >= 0 && (clearInterval(t), resolve()), 10);
    });
    // The server stopped because the client went away, far below its own bound.
    expect(written).toBeLessThan(32 * 1024 * 1024);
  });

  it('caps a verified call at maxResponseBytes and does not retry it', async () => {
    let written = -1;
    hostile.handle = endless(256 * 1024 * 1024, (n) => (written = n));
    const before = hostile.seen.length;
    const err = await rejection(client({ maxResponseBytes: 256 * 1024, retries: 3 }).verifiedGet('k'));
    expect(err).toBeInstanceOf(ProofKVResponseTooLargeError);
    expect((err as ProofKVResponseTooLargeError).limit).toBe(256 * 1024);
    expect(hostile.seen.length - before).toBe(1);
    await new Promise<void>((resolve) => {
      const t = setInterval(() => written >= 0 && (clearInterval(t), resolve()), 10);
    });
    expect(written).toBeLessThan(32 * 1024 * 1024);
  });
});

describe('leader hints and redirects never leave the configured endpoints', () => {
  it('a 421 hint to a foreign URL is not followed, and the foreign listener sees nothing', async () => {
    hostile.handle = (_req, res) => {
      res.writeHead(421, { 'content-type': 'application/problem+json', 'proofkv-leader': foreign.url });
      res.end(JSON.stringify({ status: 421, code: 'NOT_LEADER', title: 'Not the leader' }));
    };
    const before = foreign.seen.length;
    const err = await rejection(client().put('k', 'v'));
    expect(err).toBeInstanceOf(ProofKVHttpError);
    expect((err as ProofKVHttpError).status).toBe(421);
    expect(foreign.seen.length).toBe(before);
    expect(hostile.seen.at(-1)?.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('a hint to a foreign URL falls over to the next configured endpoint, which gets the write', async () => {
    const second = await listen();
    try {
      second.handle = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"version":3,"seq":9,"time":1000}');
      };
      hostile.handle = (_req, res) => {
        res.writeHead(421, { 'content-type': 'application/problem+json', 'proofkv-leader': `${foreign.url}/` });
        res.end('{"status":421,"code":"NOT_LEADER"}');
      };
      const before = foreign.seen.length;
      const c = client({ endpoints: [hostile.url, second.url] });
      expect(await c.put('k', 'v')).toMatchObject({ version: 3, seq: 9 });
      expect(c.transport.endpoints).toEqual([hostile.url, second.url]);
      expect(foreign.seen.length).toBe(before);
    } finally {
      await close(second);
    }
  });

  for (const status of [301, 302, 303, 307, 308]) {
    it(`a ${status} redirect to another origin is refused, not followed with (or without) the token`, async () => {
      hostile.handle = (_req, res) => {
        res.writeHead(status, { location: `${foreign.url}/v1/kv/k` });
        res.end();
      };
      const before = foreign.seen.length;
      const err = await rejection(client().put('k', 'v'));
      expect(err).toBeInstanceOf(ProofKVHttpError);
      expect((err as ProofKVHttpError).code).toBe('REDIRECT_REFUSED');
      expect((err as ProofKVHttpError).status).toBe(status);
      expect(foreign.seen.length).toBe(before);
    });
  }
});

describe('undecodable answers', () => {
  const bodies: [string, string][] = [
    ['truncated JSON', '{"checkpoint":{"index":0,"seq":1,"masterRoot":"AAAA'],
    ['not JSON', '<html>proxy error</html>'],
    ['JSON of the wrong shape', '{"checkpoint":7,"head":[],"signatures":"x"}'],
  ];
  for (const [name, text] of bodies) {
    it(`${name}: MALFORMED_ENCODING for verified calls, MalformedResponse for plain ones`, async () => {
      hostile.handle = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(text);
      };
      const c = client();
      for (const op of [() => c.checkpoint(), () => c.verifiedGet('k'), () => c.verifiedHistory('k'), () => c.verifiedPut('k', 'v')]) {
        const err = await rejection(op());
        expect(err).toBeInstanceOf(VerificationError);
        expect((err as VerificationError<string>).reason).toBe('MALFORMED_ENCODING');
      }
      expect(await c.trust.trustedHead()).toBeUndefined();
      // Any JSON object is a status document, so status() only fails on the first two.
      const plain = [() => c.get('k'), () => c.put('k', 'v'), () => c.history('k'), ...(text.startsWith('{"checkpoint":7') ? [] : [() => c.status()])];
      for (const op of plain) {
        const err = await rejection(op());
        expect(err).toBeInstanceOf(MalformedResponse);
        expect(err).toBeInstanceOf(ProofKVClientError);
        expect(err).not.toBeInstanceOf(VerificationError);
      }
    });
  }
});
