/**
 * The SDK over streamFetch against a real node (`proofkv serve`, with tokens): put, get,
 * verifiedGet, delete, conditional writes and their 409, binary and dot keys, explicit versions,
 * a raw GET and a CBOR proof — every key-value request goes over the stream (counted), every
 * other one over HTTP, and every answer equals what the same calls give over HTTP. A read token
 * is refused a write over the stream as over HTTP; a bad token falls back to HTTP, which refuses it.
 * Over TLS: the stream reaches an HTTPS node with the CA given in `tls`, and fails like fetch without it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, ProofKVHttpError } from '../../client-sdk/index.js';
import { streamFetch, type StreamFetch } from '../../client-sdk/stream_fetch.js';
import { startServer, tmpDir, type ServerProc } from './helpers.js';
import { startLocalNode } from '../server/harness.js';
import { StreamProtocolError } from '../../client-sdk/stream_codec.js';

let server: ServerProc;
let publicKey: Uint8Array;
let sf: StreamFetch;
const ADMIN = 'stream-admin-token';
const READER = 'stream-read-token';

function client(f: StreamFetch | undefined, token = ADMIN): ProofKVClient {
  return new ProofKVClient({
    endpoints: [server.url],
    token,
    trust: { publicKeys: [publicKey], quorum: 1 },
    stateStore: new MemoryStateStore(),
    retries: 0,
    ...(f ? { fetch: f } : {}),
  });
}

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0'], env: { PROOFKV_TOKENS: `${ADMIN}:admin,${READER}:read` } });
  const direct = new ProofKVClient({ endpoints: [server.url], token: ADMIN, trust: { tofu: true }, onWarning: () => {} });
  publicKey = fromBase64Url((await direct.status()).publicKey as string);
  sf = streamFetch();
});

afterAll(async () => {
  sf?.close();
  await server?.stop();
});

describe('the SDK over streamFetch, one node', () => {
  it('put, get, verifiedGet, delete: the key-value requests go over the stream, the rest over HTTP', async () => {
    const c = client(sf);
    const before = sf.stats();
    const w1 = await c.put('s/a', 'one');
    const w2 = await c.put('s/a', 'two');
    expect(w2.version).toBe(w1.version + 1);
    const e = await c.get('s/a');
    expect(new TextDecoder().decode(e!.value)).toBe('two');
    expect(e!.version).toBe(w2.version);
    await c.createCheckpoint();
    const g = await c.verifiedGet('s/a');
    expect(new TextDecoder().decode(g.value)).toBe('two');
    expect(g.version).toBe(w2.version);
    const d = await c.delete('s/a');
    expect(d.version).toBe(w2.version + 1);
    expect(await c.get('s/a')).toBeUndefined();
    const after = sf.stats();
    // put, put, get, getWithProof, delete, get: six over the stream; the checkpoints over HTTP.
    expect(after.streamed - before.streamed).toBe(6);
    expect(after.http - before.http).toBeGreaterThanOrEqual(2);
    expect(after.open).toBe(1);
  });

  it('answers equal HTTP answers: entries, versions, conditions, binary and dot keys', async () => {
    const s = client(sf);
    const h = client(undefined);
    const bin = Uint8Array.of(0, 0x2f, 0x25, 0xff, 0x3f, 0x26);
    for (const key of [bin, '..', '.', 'sp ace/é?&=#']) {
      const w = await s.put(key, 'v1');
      expect(await h.get(key)).toEqual(await s.get(key));
      expect(await s.get(key, { version: w.version })).toEqual(await h.get(key, { version: w.version }));
    }
    const explicit = await s.put('s/explicit', 'x', { version: 40 });
    expect(explicit.version).toBe(40);
    expect((await h.get('s/explicit'))!.version).toBe(40);
    // A condition that fails: the same typed 409 over both.
    const viaStream = await s.put('s/explicit', 'y', { ifVersion: 39 }).catch((e: unknown) => e);
    const viaHttp = await h.put('s/explicit', 'y', { ifVersion: 39 }).catch((e: unknown) => e);
    expect(viaStream).toBeInstanceOf(ProofKVHttpError);
    expect({ ...(viaStream as ProofKVHttpError).problem }).toEqual({ ...(viaHttp as ProofKVHttpError).problem });
    expect((viaStream as ProofKVHttpError).currentVersion).toBe(40);
    // A version that does not increase: the same error code.
    const low = await s.put('s/explicit', 'z', { version: 5 }).catch((e: unknown) => e);
    expect((low as ProofKVHttpError).code).toBe(((await h.put('s/explicit', 'z', { version: 5 }).catch((e: unknown) => e)) as ProofKVHttpError).code);
    await s.createCheckpoint();
    for (const key of [bin, '..']) expect((await s.verifiedGet(key)).value).toEqual(new TextEncoder().encode('v1'));
  });

  it('a raw GET and a CBOR proof over the stream are the HTTP bodies', async () => {
    const auth = { authorization: `Bearer ${ADMIN}` };
    await client(sf).put('s/raw', 'raw-value');
    await client(sf).createCheckpoint();
    for (const [path, accept] of [['/v1/kv/s%2Fraw?consistency=linearizable', 'application/octet-stream'], ['/v1/kv/s%2Fraw/proof', 'application/cbor']]) {
      const n = sf.stats().streamed;
      const a = await sf(server.url + path, { method: 'GET', headers: { ...auth, accept } });
      expect(sf.stats().streamed).toBe(n + 1);
      const b = await fetch(server.url + path, { headers: { ...auth, accept } });
      expect(a.status).toBe(200);
      expect(a.headers.get('content-type')).toBe(b.headers.get('content-type'));
      expect(Buffer.from(await a.arrayBuffer())).toEqual(Buffer.from(await b.arrayBuffer()));
      if (accept === 'application/octet-stream') expect(a.headers.get('proofkv-version')).toBe(b.headers.get('proofkv-version'));
    }
  });

  it('a read token is refused a write over the stream with the HTTP 403; a bad token falls back to HTTP and its 401', async () => {
    const rf = streamFetch();
    try {
      const reader = client(rf, READER);
      const err = await reader.put('s/ro', 'x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProofKVHttpError);
      expect((err as ProofKVHttpError).status).toBe(403);
      expect(rf.stats()).toMatchObject({ streamed: 1, opened: 1 });
      const bad = client(rf, 'no-such-token');
      const e401 = await bad.get('s/ro').catch((e: unknown) => e);
      expect((e401 as ProofKVHttpError).status).toBe(401);
      // The refused upgrade sent that request over HTTP.
      expect(rf.stats().http).toBe(1);
    } finally {
      rf.close();
    }
  });

  it('100 requests in flight share one connection and each gets its own answer', async () => {
    const c = client(sf);
    const keys = Array.from({ length: 100 }, (_, i) => `s/many/${i}`);
    await Promise.all(keys.map((k, i) => c.put(k, `value-${i}`)));
    const got = await Promise.all(keys.map((k) => c.get(k)));
    got.forEach((e, i) => expect(new TextDecoder().decode(e!.value)).toBe(`value-${i}`));
    expect(sf.stats().opened).toBe(1);
  });
});

describe('streamFetch over TLS', () => {
  it('upgrades an HTTPS connection with the CA it is given; without it the connection fails like fetch', async () => {
    const dir = tmpDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
    const cert = fs.readFileSync(path.join(dir, 'c.pem'));
    const node = await startLocalNode(undefined, undefined, { tls: { cert, key: fs.readFileSync(path.join(dir, 'k.pem')) } });
    const tls = streamFetch({ tls: { ca: cert } });
    const untrusting = streamFetch();
    try {
      expect(node.url).toMatch(/^https:/);
      const put = await tls(`${node.url}/v1/kv/t`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: 'over tls' });
      expect(put.status).toBe(200);
      const get = await tls(`${node.url}/v1/kv/t`, { headers: { accept: 'application/octet-stream' } });
      expect(await get.text()).toBe('over tls');
      expect(tls.stats()).toMatchObject({ streamed: 2, http: 0, opened: 1 });
      const err = await untrusting(`${node.url}/v1/kv/t`, { headers: { accept: 'application/octet-stream' } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TypeError);
      expect((err as TypeError).cause).not.toBeInstanceOf(StreamProtocolError); // the TLS error itself
      expect(untrusting.stats().streamed).toBe(0);
    } finally {
      tls.close();
      untrusting.close();
      await node.shutdown('test');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
