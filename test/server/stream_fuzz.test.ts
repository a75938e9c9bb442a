/**
 * Seeded hostile traffic on the stream (docs/stream-protocol.md): valid frames with random bytes
 * flipped, cut or spliced, and plain random bytes, on a node whose only token reads (so no frame,
 * however mangled, may write). Every answer must be well-formed — a request's own answer, or the
 * id-0 connection error after which the connection closes — the node must keep serving a clean
 * connection, and nothing may be written. A failure names its seed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProofNode } from '../../server/node.js';
import { mulberry32, randomBytes } from '../support/prng.js';
import { startLocalNode } from './harness.js';
import { ACCEPT, OP, encodeRequest, isClient, openStream, type StreamClient } from './stream_client.js';

const STATUSES = new Set([200, 204, 400, 403, 404, 413, 503]);

describe('stream fuzz', () => {
  let node: ProofNode;
  let writer: StreamClient;
  beforeAll(async () => {
    node = await startLocalNode({ maxValueSize: 4096 }, undefined, {
      tokens: [
        { token: 'fuzz-reader', role: 'read' },
        { token: 'fuzz-writer', role: 'write' },
      ],
    });
    const w = await openStream(node.url, { token: 'fuzz-writer' });
    if (!isClient(w)) throw new Error('handshake refused');
    writer = w;
    expect((await writer.request({ id: 1, op: OP.PUT, key: 'k', value: 'v' })).status).toBe(200);
  });
  afterAll(async () => {
    writer?.close();
    await node?.shutdown('test');
  });

  it('40 seeds of mangled frames: well-formed answers, the node serves on, nothing written', async () => {
    const before = node.db.stats().lastSeq;
    for (let seed = 1; seed <= 40; seed++) {
      const r = mulberry32(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
      const c = await openStream(node.url, { token: 'fuzz-reader' });
      if (!isClient(c)) throw new Error('handshake refused');
      const parts: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        const valid = encodeRequest({
          id: 1 + Math.floor(r() * 50),
          op: pick([OP.GET, OP.PUT, OP.DELETE, OP.PROOF, OP.PING]),
          accept: pick([ACCEPT.CBOR, ACCEPT.JSON, ACCEPT.RAW]),
          key: pick(['k', 'absent', '']),
          query: pick(['', 'version=1', 'consistency=serializable', 'ifVersion=1', 'x=%zz']),
          headers: pick<Record<string, string>>([{}, { 'ProofKV-Client-Id': 'c', 'ProofKV-Request-Seq': '1' }]),
          value: pick(['', 'some value']),
        });
        const kind = r();
        if (kind < 0.5) {
          for (let f = 0; f < 3; f++) valid[Math.floor(r() * valid.length)] = Math.floor(r() * 256);
          parts.push(valid);
        } else if (kind < 0.7) parts.push(valid.subarray(0, Math.floor(r() * valid.length)));
        else if (kind < 0.8) parts.push(Buffer.from(randomBytes(r, 1 + Math.floor(r() * 64))));
        else parts.push(valid);
      }
      // Everything, then the client's end: the server answers what it read and closes.
      c.write(Buffer.concat(parts));
      c.socket.end();
      await c.whenClosed();
      for (const a of c.received) {
        expect(STATUSES.has(a.status), `seed ${seed}: status ${a.status}`).toBe(true);
        if (a.status !== 204) expect(a.headers.some(([k]) => k === 'Content-Type'), `seed ${seed}: answer ${a.id} has a Content-Type`).toBe(true);
        if (a.id === 0) expect([a.status, JSON.parse(a.body.toString()).code], `seed ${seed}`).toEqual([400, 'STREAM_PROTOCOL']);
      }
      // At most one connection error (answers in flight may still follow it).
      const zero = c.received.findIndex((a) => a.id === 0);
      if (zero >= 0) expect(c.received.slice(zero + 1).filter((a) => a.id === 0), `seed ${seed}`).toEqual([]);
      expect((await writer.request({ id: 1000 + seed, op: OP.PING })).status, `seed ${seed}`).toBe(204);
    }
    expect(node.db.stats().lastSeq).toBe(before);
  }, 120_000);
});
