/**
 * Snapshot chunk answers are authenticated (issue 10, item 2): member 1 reads chunks of member 2
 * through a hostile proxy that forwards each request to member 2 and then alters the answer. A
 * tampered body, another chunk's answer or an earlier answer to the same chunk (replayed), an
 * answer with its MAC stripped or forged,
 * and an answer that declares more bytes than asked are refused with `TRANSPORT_MALFORMED`; the
 * unauthenticated ones before their body is read (the proxy sends headers and never the body).
 * The honest answer through the same proxy is accepted.
 */
import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerHeader, TransportErrorCode } from '../../src/replication/transport/index.js';
import { closeAll, startCluster } from './transport_helpers.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

type Mode = 'pass' | 'tamper' | 'replay' | 'replay-same' | 'strip' | 'forge' | 'headers-only' | 'overlong'
  | 'forge-refusal' | 'strip-refusal' | 'replay-refusal' | 'retarget-refusal';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await closeAll();
});

/** A proxy in front of `target` that answers each request by `mode()` from member 2's real answer. */
async function hostileProxy(target: string, mode: () => Mode): Promise<{ url: string; answers: Answer[] }> {
  const answers: Answer[] = [];
  /** The last honest answer to each chunk (by query). */
  const byChunk = new Map<string, Answer>();
  const forward = (req: http.IncomingMessage): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const out = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers, agent: false });
      out.on('error', reject);
      out.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      out.end();
    });
  const server = http.createServer((req, res) => {
    void forward(req).then((real) => {
      const m = mode();
      let a: Answer = { ...real, headers: { ...real.headers } };
      if (m === 'tamper') a.body = Buffer.from(a.body.map((b, i) => (i === 0 ? b ^ 1 : b)));
      const chunk = new URL(req.url ?? '/', target).search;
      if (m === 'replay') a = answers[0];
      if (m === 'replay-same') a = byChunk.get(chunk) ?? a;
      if (m === 'strip') delete a.headers[PeerHeader.mac];
      if (m === 'forge') a.headers[PeerHeader.mac] = randomBytes(32).toString('hex');
      // Refusals: made up (a 404 without a MAC or with a random one), the last real refusal
      // replayed to another request, or that refusal with its reason changed.
      const lastRefusal = [...answers].reverse().find((x) => x.status !== 200);
      if (m === 'forge-refusal' || m === 'strip-refusal') {
        a = { status: 404, headers: { [PeerHeader.refusal]: 'not-found' }, body: Buffer.from('not-found\n') };
        if (m === 'forge-refusal') a.headers[PeerHeader.mac] = randomBytes(32).toString('hex');
      }
      if (m === 'replay-refusal' && lastRefusal) a = lastRefusal;
      if (m === 'retarget-refusal' && lastRefusal) a = { ...lastRefusal, status: 429, headers: { ...lastRefusal.headers, [PeerHeader.refusal]: 'busy' } };
      answers.push(real);
      byChunk.set(chunk, real);
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'content-length': String(a.body.length) };
      if (a.headers[PeerHeader.mac] !== undefined) headers[PeerHeader.mac] = a.headers[PeerHeader.mac];
      if (a.headers[PeerHeader.refusal] !== undefined) headers[PeerHeader.refusal] = a.headers[PeerHeader.refusal];
      if (m === 'headers-only') {
        // No MAC, a body announced and never sent: only a reader that waits for it would hang.
        delete headers[PeerHeader.mac];
        res.writeHead(200, headers);
        res.flushHeaders();
        return;
      }
      if (m === 'overlong') {
        // A valid-looking MAC header but more bytes announced than asked: refused before reading.
        headers['content-length'] = String(64 << 20);
        res.writeHead(200, headers);
        res.flushHeaders();
        return;
      }
      res.writeHead(a.status, headers);
      res.end(a.body);
    }, () => res.destroy());
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, answers };
}

const codeOf = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: string }) => e.code);

describe('HttpTransport: snapshot chunk answers carry a MAC', () => {
  it('refuses tampered, replayed, stripped, forged and overlong answers; accepts the honest one', async () => {
    const file = new Uint8Array(randomBytes(4096));
    // A long request timeout: a refusal below comes from the answer's headers, not from a timeout.
    const [a, b] = await startCluster(2, { requestTimeoutMs: 60_000 });
    b.t.onSnapshotRead(async (_index, _name, offset, length) => file.subarray(offset, offset + length));
    let mode: Mode = 'pass';
    const proxy = await hostileProxy(b.t.url, () => mode);
    a.t.setPeers([{ id: 2, peerUrl: proxy.url }]);

    const first = await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, 100);
    expect(Buffer.from(first).equals(Buffer.from(file.subarray(0, 100)))).toBe(true);
    expect(proxy.answers[0].headers[PeerHeader.mac]).toMatch(/^[0-9a-f]{64}$/);

    // An honest answer to the chunk at 100, kept by the proxy for 'replay-same'.
    await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 100, 100);
    const refused: Array<[Mode, number]> = [['tamper', 100], ['replay', 100], ['replay-same', 100], ['strip', 100], ['forge', 100], ['headers-only', 100], ['overlong', 100]];
    for (const [m, offset] of refused) {
      mode = m;
      expect([m, await codeOf(a.t.fetchSnapshotChunk(2, 7, '000012.sst', offset, 100))]).toEqual([m, TransportErrorCode.Malformed]);
    }
    mode = 'pass';
    const again = await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 100, 100);
    expect(Buffer.from(again).equals(Buffer.from(file.subarray(100, 200)))).toBe(true);
    // The same chunk asked twice gets two MACs: each answer is bound to its own request.
    await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 100, 100);
    const macs = proxy.answers.slice(-2).map((x) => x.headers[PeerHeader.mac]);
    expect(macs[0]).not.toBe(macs[1]);
  });

  it('refusals carry a MAC bound to their request: forged, stripped, replayed and altered refusals are refused', async () => {
    const file = new Uint8Array(randomBytes(4096));
    const [a, b] = await startCluster(2, { requestTimeoutMs: 60_000 });
    b.t.onSnapshotRead(async (_index, name, offset, length) => {
      if (name !== '000012.sst') throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      return file.subarray(offset, offset + length);
    });
    let mode: Mode = 'pass';
    const proxy = await hostileProxy(b.t.url, () => mode);
    a.t.setPeers([{ id: 2, peerUrl: proxy.url }]);

    // A real refusal, through the proxy: authenticated, so the reader reports what it says.
    expect(await codeOf(a.t.fetchSnapshotChunk(2, 7, '000099.sst', 0, 100))).toBe(TransportErrorCode.NotFound);
    const real = proxy.answers[proxy.answers.length - 1];
    expect(real.status).toBe(404);
    expect(real.headers[PeerHeader.mac]).toMatch(/^[0-9a-f]{64}$/);

    // Refusals of a chunk that member 2 would serve: none of them is taken for member 2's word.
    for (const m of ['forge-refusal', 'strip-refusal', 'replay-refusal', 'retarget-refusal'] as const) {
      mode = m;
      expect([m, await codeOf(a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, 100))]).toEqual([m, TransportErrorCode.Malformed]);
    }
    // The same missing file asked again: the recorded refusal does not answer the new request either.
    mode = 'replay-refusal';
    expect(await codeOf(a.t.fetchSnapshotChunk(2, 7, '000099.sst', 0, 100))).toBe(TransportErrorCode.Malformed);
    mode = 'pass';
    expect(await codeOf(a.t.fetchSnapshotChunk(2, 7, '000099.sst', 0, 100))).toBe(TransportErrorCode.NotFound);
    expect(Buffer.from(await a.t.fetchSnapshotChunk(2, 7, '000012.sst', 0, 100)).equals(Buffer.from(file.subarray(0, 100)))).toBe(true);
  });
});
