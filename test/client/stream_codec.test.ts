/**
 * The stream protocol's frames (client-sdk/stream_codec.ts), pure: request and answer round trips
 * (random fields, every byte split of the stream), the exact byte layout of the spec, and hostile
 * input — an over-long length, a length under the fixed fields, fields running past the frame,
 * malformed headers, a status a Response cannot carry, a stream cut inside a frame — each a
 * StreamProtocolError with its code, never a crash or a frame made up of the wrong bytes. The
 * request mapping of streamFetch (`translate`) is checked here too: what goes over the stream,
 * and what falls back to HTTP.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAnswer,
  decodeRequest,
  encodeAnswer,
  encodeRequest,
  FrameReader,
  StreamAccept,
  StreamOp,
  StreamProtocolError,
  type StreamRequest,
} from '../../client-sdk/stream_codec.js';
import { translate } from '../../client-sdk/stream_fetch.js';
import { toBase64Url } from '../../client-sdk/bytes.js';

const bytes = (s: string) => new TextEncoder().encode(s);

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(StreamProtocolError);
    return (err as StreamProtocolError).code;
  }
  return undefined;
}

/** Every frame payload `reader` yields after `data` is pushed in pieces cut at `cuts`. */
function frames(reader: FrameReader, data: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < data.length).sort((a, b) => a - b), data.length]) {
    reader.push(data.subarray(at, c));
    at = c;
    for (let p = reader.next(); p !== undefined; p = reader.next()) out.push(p.slice());
  }
  return out;
}

const headerName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,20}$/);
const headerValue = fc.stringMatching(/^[ -~]{0,40}$/).map((s) => s.trim());
const requestArb: fc.Arbitrary<StreamRequest> = fc.record({
  id: fc.integer({ min: 1, max: 0xffffffff }),
  op: fc.constantFrom(StreamOp.GET, StreamOp.PUT, StreamOp.DELETE, StreamOp.PROOF, StreamOp.PING),
  accept: fc.constantFrom(StreamAccept.CBOR, StreamAccept.JSON, StreamAccept.RAW),
  key: fc.uint8Array({ minLength: 1, maxLength: 300 }),
  query: fc.string({ maxLength: 60 }),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
  value: fc.uint8Array({ maxLength: 2000 }),
});

describe('stream frames', () => {
  it('a request has the layout of the spec, byte for byte', () => {
    const f = encodeRequest({ id: 0x01020304, op: StreamOp.PUT, accept: StreamAccept.JSON, key: bytes('k'), query: 'a=1', headers: [['ProofKV-Request-Seq', '7']], value: bytes('vv') });
    const headers = bytes('ProofKV-Request-Seq: 7\n');
    const expected = [
      ...[0, 0, 0, 4 + 1 + 1 + 2 + 1 + 2 + 3 + 2 + headers.length + 2],
      ...[1, 2, 3, 4],
      2,
      1,
      ...[0, 1],
      ...bytes('k'),
      ...[0, 3],
      ...bytes('a=1'),
      ...[0, headers.length],
      ...headers,
      ...bytes('vv'),
    ];
    expect([...f]).toEqual(expected);
  });

  it('an answer has the layout of the spec, byte for byte, and decodes back', () => {
    const f = encodeAnswer({ id: 9, status: 404, headers: [['Content-Type', 'application/problem+json']], body: bytes('{}') });
    const h = bytes('Content-Type: application/problem+json\n');
    expect([...f]).toEqual([0, 0, 0, 4 + 2 + 2 + h.length + 2, 0, 0, 0, 9, 0x01, 0x94, 0, h.length, ...h, ...bytes('{}')]);
    const r = new FrameReader(1 << 20);
    const [p] = frames(r, f, []);
    expect(decodeAnswer(p)).toEqual({ id: 9, status: 404, headers: [['Content-Type', 'application/problem+json']], body: bytes('{}') });
  });

  it('requests round-trip through any split of the byte stream', () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(20_000), { maxLength: 12 }), (reqs, cuts) => {
        const all = reqs.map(encodeRequest);
        const stream = new Uint8Array(all.reduce((n, f) => n + f.length, 0));
        let at = 0;
        for (const f of all) {
          stream.set(f, at);
          at += f.length;
        }
        const got = frames(new FrameReader(1 << 20, 10), stream, cuts).map(decodeRequest);
        expect(got.length).toBe(reqs.length);
        got.forEach((g, i) => {
          const r = reqs[i];
          expect(g.id).toBe(r.id);
          expect(g.op).toBe(r.op);
          expect(g.accept).toBe(r.accept);
          expect([...g.key]).toEqual([...r.key]);
          expect(g.query).toBe(r.query);
          expect(g.headers).toEqual(r.headers.map(([n, v]) => [n, v]));
          expect([...g.value!]).toEqual([...r.value!]);
        });
      }),
      { numRuns: 200 },
    );
  });

  it('answers round-trip through any split of the byte stream', () => {
    const answerArb = fc.record({
      id: fc.integer({ min: 0, max: 0xffffffff }),
      status: fc.integer({ min: 200, max: 599 }),
      headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
      body: fc.uint8Array({ maxLength: 3000 }),
    });
    fc.assert(
      fc.property(fc.array(answerArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(20_000), { maxLength: 12 }), (answers, cuts) => {
        const all = answers.map(encodeAnswer);
        const stream = Uint8Array.from(all.flatMap((f) => [...f]));
        const got = frames(new FrameReader(1 << 20), stream, cuts).map(decodeAnswer);
        expect(got).toEqual(answers.map((a) => ({ ...a, headers: a.headers.map(([n, v]) => [n, v]) })));
      }),
      { numRuns: 200 },
    );
  });

  it('a length over the bound is FRAME_TOO_LONG before any of the frame is kept', () => {
    const r = new FrameReader(1000);
    r.push(Uint8Array.of(0, 0, 0x03, 0xe9)); // 1001
    expect(codeOf(() => r.next())).toBe('FRAME_TOO_LONG');
    const huge = new FrameReader(1 << 20);
    huge.push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3));
    expect(codeOf(() => huge.next())).toBe('FRAME_TOO_LONG');
  });

  it('a length under the fixed fields is MALFORMED_FRAME', () => {
    const r = new FrameReader(1000);
    r.push(Uint8Array.of(0, 0, 0, 3, 1, 2, 3));
    expect(codeOf(() => r.next())).toBe('MALFORMED_FRAME');
  });

  it('a stream cut inside a frame is TRUNCATED_FRAME at its end, and not before', () => {
    const f = encodeAnswer({ id: 1, status: 200, body: bytes('hello') });
    for (const cut of [1, 3, 4, 8, f.length - 1]) {
      const r = new FrameReader(1000);
      r.push(f.subarray(0, cut));
      expect(r.next()).toBeUndefined();
      expect(codeOf(() => r.end())).toBe('TRUNCATED_FRAME');
    }
    const whole = new FrameReader(1000);
    whole.push(f);
    expect(whole.next()).toBeDefined();
    expect(() => whole.end()).not.toThrow();
  });

  it('answer fields that run past the frame, bad headers or a status out of 200..599 are MALFORMED_FRAME', () => {
    const good = encodeAnswer({ id: 1, status: 200, headers: [['A', 'b']], body: bytes('x') }).slice(4);
    const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const long = good.slice();
    dv(long).setUint16(6, 500); // headersLength past the end
    expect(codeOf(() => decodeAnswer(long))).toBe('MALFORMED_FRAME');
    for (const status of [0, 101, 199, 600, 65535]) {
      const s = good.slice();
      dv(s).setUint16(4, status);
      expect(codeOf(() => decodeAnswer(s))).toBe('MALFORMED_FRAME');
    }
    for (const h of ['no colon\n', ': empty name\n', 'Bad Name: x\n', 'A: b\rc\n']) {
      const hb = bytes(h);
      const f = new Uint8Array(8 + hb.length);
      dv(f).setUint32(0, 1);
      dv(f).setUint16(4, 200);
      dv(f).setUint16(6, hb.length);
      f.set(hb, 8);
      expect(codeOf(() => decodeAnswer(f)), h).toBe('MALFORMED_FRAME');
    }
    const notUtf8 = new Uint8Array(10);
    dv(notUtf8).setUint16(4, 200);
    dv(notUtf8).setUint16(6, 2);
    notUtf8.set([0xc3, 0x28], 8);
    expect(codeOf(() => decodeAnswer(notUtf8))).toBe('MALFORMED_FRAME');
    expect(codeOf(() => decodeAnswer(new Uint8Array(7)))).toBe('MALFORMED_FRAME');
  });

  it('random bytes never crash the reader or the decoder: frames, or typed errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (data) => {
        const r = new FrameReader(300);
        r.push(data);
        try {
          for (let p = r.next(); p !== undefined; p = r.next()) decodeAnswer(p);
          r.end();
        } catch (err) {
          expect(err).toBeInstanceOf(StreamProtocolError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('requests that cannot be framed are INVALID_REQUEST', () => {
    const base = { op: StreamOp.GET, accept: StreamAccept.JSON, key: bytes('k'), query: '', headers: [] };
    expect(codeOf(() => encodeRequest({ ...base, id: 0 }))).toBe('INVALID_REQUEST');
    expect(codeOf(() => encodeRequest({ ...base, id: 2 ** 32 }))).toBe('INVALID_REQUEST');
    expect(codeOf(() => encodeRequest({ ...base, id: 1, key: new Uint8Array(65536) }))).toBe('INVALID_REQUEST');
    expect(codeOf(() => encodeRequest({ ...base, id: 1, headers: [['a b', 'x']] }))).toBe('INVALID_REQUEST');
    expect(codeOf(() => encodeRequest({ ...base, id: 1, headers: [['a', 'x\ny: z']] }))).toBe('INVALID_REQUEST');
  });
});

describe('streamFetch: what goes over the stream', () => {
  const E = 'http://127.0.0.1:7070';
  const json = { accept: 'application/json' };

  it('the SDK key-value requests translate exactly', () => {
    const g = translate(`${E}/v1/kv/a%2Fb%00?version=3`, { method: 'GET', headers: { ...json, authorization: 'Bearer t' } })!;
    expect(g.origin).toBe(E);
    expect(g.authorization).toBe('Bearer t');
    expect(g.request).toMatchObject({ op: StreamOp.GET, accept: StreamAccept.JSON, query: 'version=3', headers: [] });
    expect([...g.request.key]).toEqual([...bytes('a/b'), 0]);

    const p = translate(`${E}/v1/kv/${toBase64Url(bytes('..'))}/proof?edges=true&keyEncoding=base64url`, { method: 'GET', headers: { ...json, 'proofkv-min-head': '5' } })!;
    expect(p.request).toMatchObject({ op: StreamOp.PROOF, accept: StreamAccept.JSON, query: 'edges=true', headers: [['proofkv-min-head', '5']] });
    expect([...p.request.key]).toEqual([...bytes('..')]);

    const w = translate(`${E}/v1/kv/k?ifVersion=2`, {
      method: 'PUT',
      headers: { ...json, 'content-type': 'application/json', 'proofkv-client-id': 'c', 'proofkv-request-seq': '4' },
      body: JSON.stringify({ value: toBase64Url(bytes('val')), version: 9 }),
    })!;
    expect(w.request).toMatchObject({ op: StreamOp.PUT, query: 'ifVersion=2&version=9', headers: [['proofkv-client-id', 'c'], ['proofkv-request-seq', '4']] });
    expect([...w.request.value!]).toEqual([...bytes('val')]);

    const raw = translate(`${E}/v1/kv/k`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes('rawval') })!;
    expect([...raw.request.value!]).toEqual([...bytes('rawval')]);
    expect(translate(`${E}/v1/kv/k`, { method: 'DELETE', headers: json })!.request.op).toBe(StreamOp.DELETE);
    expect(translate(`${E}/v1/kv/k`, { method: 'GET', headers: { accept: 'application/octet-stream' } })!.request.accept).toBe(StreamAccept.RAW);
    expect(translate(`${E}/v1/kv/k/proof`, { method: 'GET', headers: { accept: 'application/cbor' } })!.request.accept).toBe(StreamAccept.CBOR);
    // Raw is GET's only: HTTP's negotiation gives JSON elsewhere, and so does the stream.
    expect(translate(`${E}/v1/kv/k/proof`, { method: 'GET', headers: { accept: 'application/octet-stream' } })!.request.accept).toBe(StreamAccept.JSON);
  });

  it('anything it cannot carry exactly goes over HTTP', () => {
    const put = (body: unknown, q = '') => translate(`${E}/v1/kv/k${q}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const cases: [string, RequestInit & { url?: string }][] = [
      ['other route', { url: `${E}/v1/status` }],
      ['history', { url: `${E}/v1/kv/k/history` }],
      ['append', { url: `${E}/v1/kv/k/append`, method: 'POST' }],
      ['scan', { url: `${E}/v1/kv?prefix=a` }],
      ['trailing slash', { url: `${E}/v1/kv/k/` }],
      ['POST on a key', { method: 'POST' }],
      ['PUT on a proof', { url: `${E}/v1/kv/k/proof`, method: 'PUT' }],
      ['bad escape', { url: `${E}/v1/kv/a%zz` }],
      ['bad base64url key', { url: `${E}/v1/kv/a+b?keyEncoding=base64url` }],
      ['unknown keyEncoding', { url: `${E}/v1/kv/k?keyEncoding=hex` }],
      ['two keyEncodings', { url: `${E}/v1/kv/k?keyEncoding=percent&keyEncoding=percent` }],
      ['text accept', { headers: { accept: 'text/plain' } }],
      ['weighted accept', { headers: { accept: 'application/cbor;q=0.5, application/json' } }],
      ['body on GET', { body: 'x' }],
      ['key over 65535 bytes', { url: `${E}/v1/kv/${'a'.repeat(65536)}` }],
      ['user info', { url: 'http://u:p@127.0.0.1:7070/v1/kv/k' }],
    ];
    for (const [name, c] of cases) expect(translate(c.url ?? `${E}/v1/kv/k`, c), name).toBeUndefined();
    expect(put({ valueUtf8: 'x' })).toBeUndefined();
    expect(put({ value: 'AA', extra: 1 })).toBeUndefined();
    expect(put({ value: 'A' })).toBeUndefined(); // not base64url
    expect(put({ value: 'AA', version: 0 })).toBeUndefined();
    expect(put({ value: 'AA', version: 2 ** 53 })).toBeUndefined();
    expect(put({ value: 'AA', version: 3 }, '?version=3')).toBeUndefined();
    expect(translate(`${E}/v1/kv/k`, { method: 'PUT', headers: { 'content-type': 'application/cbor' }, body: new Uint8Array(2) })).toBeUndefined();
    expect(translate(`${E}/v1/kv/k`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{not json' })).toBeUndefined();
    expect(translate(`${E}/v1/kv/k`, { method: 'PUT', headers: {}, body: 'x' })).toBeUndefined();
  });
});

describe('the stream client is Node-only', () => {
  it('the browser bundle of proofkv/client has no stream client and no node:http; the Node entry exports streamFetch', async () => {
    const { build } = await import('esbuild');
    const root = new URL('../../', import.meta.url).pathname;
    const out = await build({ entryPoints: [`${root}client-sdk/index.ts`], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', metafile: true });
    const inputs = Object.keys(out.metafile!.inputs);
    expect(inputs.some((f) => f.includes('stream_'))).toBe(false);
    expect(out.outputFiles[0].text).not.toMatch(/node:http|streamFetch/);
    const node = await import('../../node-entry/client.js');
    expect(typeof node.streamFetch).toBe('function');
    expect(typeof node.ProofKVClient).toBe('function');
    expect('streamFetch' in (await import('../../client-sdk/index.js'))).toBe(false);
  });
});
