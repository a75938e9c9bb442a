/**
 * The witness's HTTP face: `POST /add-checkpoint` (C2SP tlog-witness) and `GET /status` (its
 * name, verifier key and the last cosigned size of each log). Bodies are read up to
 * {@link MAX_ADD_CHECKPOINT_BYTES} (413 beyond); a request head must arrive within 10 s and the
 * whole request within 30 s (16 KiB of headers at most). Listens where it is told; no
 * authentication, as the spec has none beyond the checkpoint's own signatures.
 * @module
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatVerifierKey } from '../proofs/note.js';
import { MAX_ADD_CHECKPOINT_BYTES } from './protocol.js';
import type { Witness } from './witness.js';

/** A running witness server. */
export interface WitnessServer {
  /** `http://host:port`. */
  url: string;
  close(): Promise<void>;
}

function reply(res: http.ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Serves `witness` on `host:port` (0: a free port). */
export async function serveWitness(witness: Witness, host: string, port: number, origins: readonly string[]): Promise<WitnessServer> {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (url === '/status' && req.method === 'GET') {
      const logs = origins.map((origin) => ({ origin, cosigned: witness.cosigned(origin) ?? null }));
      reply(res, 200, 'application/json', `${JSON.stringify({ name: witness.name, verifierKey: formatVerifierKey(witness.verifierKey()), logs })}\n`);
      return;
    }
    if (url !== '/add-checkpoint') return reply(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    if (req.method !== 'POST') return reply(res, 405, 'text/plain; charset=utf-8', 'POST only\n');
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_ADD_CHECKPOINT_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) return reply(res, 413, 'text/plain; charset=utf-8', `body above ${MAX_ADD_CHECKPOINT_BYTES} bytes\n`);
      let body: string;
      try {
        body = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
      } catch {
        return reply(res, 400, 'text/plain; charset=utf-8', 'body is not UTF-8\n');
      }
      witness.addCheckpoint(body).then(
        (a) => reply(res, a.status, a.contentType, a.body),
        (err: Error) => reply(res, 500, 'text/plain; charset=utf-8', `internal error: ${err.message}\n`),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${h}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
