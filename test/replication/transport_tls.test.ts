/**
 * HttpTransport over HTTPS with mutual TLS: two members with certificates of the cluster's CA
 * exchange messages and snapshot chunks; a client without a certificate, with a certificate of
 * another CA, or speaking plain HTTP never reaches the routes; the HMAC is still required inside
 * TLS; peer URLs must be https.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { MessageType, newMessage } from '../../src/raft/index.js';
import { MESSAGES_PATH, STREAM_PATH, STREAM_PROTOCOL, TransportErrorCode, encodeMessages, type TransportTls } from '../../src/replication/transport/index.js';
import { claims, closeAll, rawRequest, signedPostHeaders, startNode, waitFor } from './transport_helpers.js';

let dir = '';
const read = (n: string): Buffer => fs.readFileSync(path.join(dir, n));

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-transport-tls-'));
  const ossl = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  fs.writeFileSync(path.join(dir, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const ca of ['ca', 'other-ca']) ossl('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '1', '-subj', `/CN=${ca}`);
  for (const [name, ca] of [['node1', 'ca'], ['node2', 'ca'], ['outsider', 'other-ca']]) {
    ossl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ossl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', 'ext');
  }
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(closeAll);

const tls = (name: string): TransportTls => ({ cert: read(`${name}.pem`), key: read(`${name}.key`), ca: read('ca.pem') });

/** A GET/POST over HTTPS with the given client certificate (or none); resolves the status or the error code. */
function httpsStatus(url: string, client?: string, method = 'POST', headers: Record<string, string> = {}, body?: Uint8Array): Promise<number | string> {
  return new Promise((resolve) => {
    const r = https.request(url, {
      method, headers, agent: false, ca: read('ca.pem'),
      ...(client ? { cert: read(`${client}.pem`), key: read(`${client}.key`) } : {}),
    }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    r.end(body);
  });
}

describe('HttpTransport with mutual TLS', () => {
  it('members exchange messages and chunks; outsiders never reach a route; the HMAC is still checked', async () => {
    const a = await startNode(1, { tls: tls('node1') });
    const b = await startNode(2, { tls: tls('node2') });
    expect(a.t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const peers = [{ id: 1, peerUrl: a.t.url }, { id: 2, peerUrl: b.t.url }];
    a.t.setPeers(peers);
    b.t.setPeers(peers);
    const ms = [1, 2, 3].map((i) => newMessage({ type: MessageType.Heartbeat, from: 1, to: 2, term: 2, commit: i }));
    a.t.send(ms);
    await waitFor(() => b.received.length === 3, 'delivery over TLS');
    expect(b.received).toEqual(ms);
    expect(a.t.stats().peers[0].streamsOpened).toBe(1); // the messages went on a stream over TLS
    b.t.onSnapshotRead(async (_index, _name, offset, length) => new Uint8Array(length).fill(offset & 0xff));
    expect(await a.t.fetchSnapshotChunk(2, 1, 'CURRENT', 5, 4)).toEqual(Uint8Array.of(5, 5, 5, 5));

    const body = encodeMessages([ms[0]]);
    const url = b.t.url + MESSAGES_PATH;
    // no client certificate, another CA's certificate, plain HTTP: refused before any route
    for (const client of [undefined, 'outsider']) {
      expect(typeof await httpsStatus(url, client, 'POST', signedPostHeaders(claims(1, 2), body), body)).toBe('string');
    }
    expect((await rawRequest(url.replace('https:', 'http:'), 'POST', signedPostHeaders(claims(1, 2), body), body)).status).not.toBe(204);
    // a valid certificate does not replace the MAC
    expect(await httpsStatus(url, 'node1', 'POST', { 'content-type': 'application/octet-stream' }, body)).toBe(401);
    expect(await httpsStatus(url, 'node1', 'POST', { ...signedPostHeaders(claims(1, 2), body, new Uint8Array(32)) }, body)).toBe(401);
    // the stream route: no stream without a certificate of the CA, nor without the MAC inside TLS
    const upgrade = { connection: 'Upgrade', upgrade: STREAM_PROTOCOL };
    for (const client of [undefined, 'outsider']) {
      expect(typeof await httpsStatus(b.t.url + STREAM_PATH, client, 'GET', upgrade)).toBe('string');
    }
    expect(await httpsStatus(b.t.url + STREAM_PATH, 'node1', 'GET', upgrade)).toBe(401);
    expect(b.received.length).toBe(3);
    expect(b.t.stats().refused).toEqual({ 'missing-auth': 2, 'bad-mac': 1 });

    expect(() => a.t.setPeers([{ id: 2, peerUrl: 'http://127.0.0.1:1' }])).toThrow(expect.objectContaining({ code: TransportErrorCode.InvalidArgument }));
  });
});
