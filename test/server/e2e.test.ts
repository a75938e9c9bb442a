/**
 * End to end: a real `proofkv serve` process, every route exercised over HTTP, proofs verified
 * with the isomorphic verifiers against the node key from `/v1/status`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import {
  getProofCodec,
  historyProofCodec,
  verifyCheckpoint,
  verifyCheckpointInclusion,
  verifyGetProof,
  verifyHeadExtends,
  verifyHistoryProof,
  type Checkpoint,
  type LogHead,
  type TrustPolicy,
} from '../../proofs/index.js';
import { b64, call, json, pct, startServer, tmpDir, unb64, type Reply, type ServerProc } from './harness.js';

const cbor = new Encoder({ mapsAsObjects: true, useRecords: false, tagUint8Array: false } as ConstructorParameters<typeof Encoder>[0]);
const te = new TextEncoder();
const td = new TextDecoder();

function expectProblem(r: Reply, status: number, code: string): void {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, code, title: expect.any(String), type: expect.stringMatching(/^https:\/\/proofkv\.dev\/errors\//) });
  expect(Object.keys(r.body).sort()).toEqual(expect.arrayContaining(['code', 'status', 'title', 'type']));
  expect(td.decode(r.raw)).not.toMatch(/\bat .*\.(ts|js):\d+/);
}

const checkpointOf = (w: any): Checkpoint => ({
  index: w.checkpoint.index,
  seq: w.checkpoint.seq,
  masterRoot: unb64(w.checkpoint.masterRoot),
  ...(w.checkpoint.prevCheckpointHash ? { prevCheckpointHash: unb64(w.checkpoint.prevCheckpointHash) } : {}),
  ...(w.checkpoint.signerSetHash ? { time: w.checkpoint.time, signerSetHash: unb64(w.checkpoint.signerSetHash) } : {}),
});
const headOf = (w: any): LogHead => ({ size: w.head.size, root: unb64(w.head.root) });
const sigsOf = (w: any) => w.signatures.map((s: any) => ({ publicKey: unb64(s.publicKey), signature: unb64(s.signature) }));

describe('server end to end (tokenless)', () => {
  let s: ServerProc;
  let trust: TrustPolicy;
  const req = (method: string, p: string, init: Parameters<typeof call>[3] = {}) => call(s.url, method, p, init);

  beforeAll(async () => {
    s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    const st = await req('GET', '/v1/status');
    trust = { publicKeys: [unb64(st.body.publicKey)], quorum: 1 };
  });
  afterAll(async () => {
    await s?.stop('SIGKILL');
  });

  it('prints its identity and serves status, health and the node id header', async () => {
    const st = await req('GET', '/v1/status');
    expect(st.status).toBe(200);
    expect(st.body).toMatchObject({ role: 'leader', lastSeq: 0, tables: 0, version: '0.1.0' });
    expect(st.body.lastCheckpoint).toBeUndefined();
    const pkHex = Buffer.from(unb64(st.body.publicKey)).toString('hex');
    expect(st.body.nodeId).toBe(pkHex.slice(0, 16));
    expect(s.stdout()).toContain(pkHex);
    expect(s.stdout()).toContain(st.body.publicKey);
    expect(s.stdout()).toContain(`node id     ${st.body.nodeId}`);
    expect(st.headers.get('proofkv-node-id')).toBe(st.body.nodeId);
    const h = await req('GET', '/healthz');
    expect(h).toMatchObject({ status: 200, body: { ok: true } });
    expect(h.headers.get('proofkv-node-id')).toBe(st.body.nodeId);
  });

  it('writes and reads values as octet-stream, JSON and CBOR', async () => {
    let r = await req('PUT', '/v1/kv/user%3A1', { body: 'alice', headers: { 'content-type': 'application/octet-stream' } });
    expect(r).toMatchObject({ status: 200, body: { version: 1, seq: 1 } });
    r = await req('PUT', '/v1/kv/user%3A1', json({ value: b64('bob') }));
    expect(r.body).toMatchObject({ version: 2, seq: 2 });
    r = await req('PUT', '/v1/kv/user%3A1', json({ valueUtf8: 'carol ✓' }));
    expect(r.body).toMatchObject({ version: 3, seq: 3 });
    r = await req('PUT', '/v1/kv/user%3A1', { body: cbor.encode({ value: te.encode('dave') }), headers: { 'content-type': 'application/cbor', accept: 'application/cbor' } });
    expect(r.headers.get('content-type')).toBe('application/cbor');
    expect(r.body).toMatchObject({ version: 4, seq: 4 });

    const j = await req('GET', '/v1/kv/user:1');
    expect(j.body).toMatchObject({ key: b64('user:1'), version: 4, seq: 4, kind: 'put', value: b64('dave'), valueUtf8: 'dave' });
    expect(new Date(j.body.timeIso).getTime()).toBe(j.body.time);
    const c = await req('GET', '/v1/kv/user:1', { headers: { accept: 'application/cbor' } });
    expect(td.decode(c.body.value)).toBe('dave');
    expect(td.decode(c.body.key)).toBe('user:1');
    expect(c.body.version).toBe(4);
    const o = await req('GET', '/v1/kv/user:1?version=3', { headers: { accept: 'application/octet-stream' } });
    expect(o.status).toBe(200);
    expect(td.decode(o.raw)).toBe('carol ✓');
    expect(o.headers.get('proofkv-version')).toBe('3');
    expect(o.headers.get('proofkv-seq')).toBe('3');
    expect(o.headers.get('proofkv-kind')).toBe('put');

    // Binary values: no valueUtf8.
    await req('PUT', '/v1/kv/bin', { body: new Uint8Array([0xff, 0xfe, 0]), headers: { 'content-type': 'application/octet-stream' } });
    const b = await req('GET', '/v1/kv/bin');
    expect(b.body.value).toBe(b64(new Uint8Array([0xff, 0xfe, 0])));
    expect(b.body.valueUtf8).toBeUndefined();
    // Empty value.
    await req('PUT', '/v1/kv/empty', { body: new Uint8Array(0), headers: { 'content-type': 'application/octet-stream' } });
    expect((await req('GET', '/v1/kv/empty')).body).toMatchObject({ value: '', valueUtf8: '' });
  });

  it('addresses binary keys by percent-escapes and by base64url', async () => {
    const key = new Uint8Array([0x00, 0xff, 0x2f, 0x25, 0x20]);
    let r = await req('PUT', `/v1/kv/${pct(key)}`, json({ valueUtf8: 'raw' }));
    expect(r.status).toBe(200);
    r = await req('GET', `/v1/kv/${b64(key)}?keyEncoding=base64url`);
    expect(r.body).toMatchObject({ key: b64(key), valueUtf8: 'raw', version: 1 });
    r = await req('PUT', `/v1/kv/${b64(key)}?keyEncoding=base64url`, json({ valueUtf8: 'again' }));
    expect(r.body.version).toBe(2);
    expect((await req('GET', `/v1/kv/${pct(key)}`)).body.valueUtf8).toBe('again');
    // a%2Fb is one key with a slash in it; a/b is no route.
    await req('PUT', '/v1/kv/a%2Fb', { body: 'slash', headers: { 'content-type': 'application/octet-stream' } });
    expect((await req('GET', '/v1/kv/a%2fb')).body.key).toBe(b64('a/b'));
    expectProblem(await req('GET', '/v1/kv/a/b'), 404, 'NOT_FOUND');
    // Non-ASCII UTF-8 straight in the path is its UTF-8 bytes.
    await req('PUT', `/v1/kv/${encodeURIComponent('ключ')}`, { body: 'k', headers: { 'content-type': 'application/octet-stream' } });
    expect((await req('GET', `/v1/kv/${b64('ключ')}?keyEncoding=base64url`)).status).toBe(200);
  });

  it('honours explicit versions and rejects versions that do not increase', async () => {
    let r = await req('PUT', '/v1/kv/ver?version=10', { body: 'ten', headers: { 'content-type': 'application/octet-stream' } });
    expect(r.body.version).toBe(10);
    r = await req('PUT', '/v1/kv/ver', json({ valueUtf8: 'eleven' }));
    expect(r.body.version).toBe(11);
    r = await req('PUT', '/v1/kv/ver', json({ valueUtf8: 'big', version: 2 ** 40 }));
    expect(r.body.version).toBe(2 ** 40);
    expectProblem(await req('PUT', '/v1/kv/ver?version=12', json({ valueUtf8: 'x' })), 409, 'VERSION_NOT_INCREASING');
    expectProblem(await req('PUT', '/v1/kv/ver?version=13', json({ valueUtf8: 'x', version: 14 })), 400, 'INVALID_VERSION');
    expectProblem(await req('PUT', '/v1/kv/ver?version=0', json({ valueUtf8: 'x' })), 400, 'INVALID_VERSION');
    expect((await req('GET', '/v1/kv/ver?version=10')).body.valueUtf8).toBe('ten');
    expect((await req('GET', '/v1/kv/ver?version=12')).body.valueUtf8).toBe('eleven');
    expectProblem(await req('GET', '/v1/kv/ver?version=9'), 404, 'NOT_FOUND');
    // CBOR: a version above 2^32 round-trips as an integer.
    const c = await req('GET', '/v1/kv/ver', { headers: { accept: 'application/cbor' } });
    expect(Number(c.body.version)).toBe(2 ** 40);
  });

  it('deletes with a tombstone that history and versioned reads keep', async () => {
    await req('PUT', '/v1/kv/gone', { body: 'here', headers: { 'content-type': 'application/octet-stream' } });
    const d = await req('DELETE', '/v1/kv/gone');
    expect(d.body).toMatchObject({ version: 2 });
    expectProblem(await req('GET', '/v1/kv/gone'), 404, 'NOT_FOUND');
    const t = await req('GET', '/v1/kv/gone?version=2');
    expect(t.body).toMatchObject({ kind: 'delete', version: 2, value: '' });
    const o = await req('GET', '/v1/kv/gone?version=2', { headers: { accept: 'application/octet-stream' } });
    expect(o.headers.get('proofkv-kind')).toBe('delete');
    expect(o.raw.length).toBe(0);
    const h = await req('GET', '/v1/kv/gone/history');
    expect(h.body.entries.map((e: any) => e.kind)).toEqual(['put', 'delete']);
  });

  it('applies batches atomically (JSON and CBOR)', async () => {
    let r = await req('POST', '/v1/batch', json({ ops: [{ op: 'put', key: b64('b1'), value: b64('one') }, { op: 'put', key: b64('b1'), valueUtf8: 'two' }, { op: 'delete', key: b64('b2') }] }));
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: any) => x.version)).toEqual([1, 2, 1]);
    expect(r.body.results[1].seq).toBe(r.body.results[0].seq + 1);
    // The second op conflicts: nothing applies.
    await req('PUT', '/v1/kv/b3?version=5', { body: 'five', headers: { 'content-type': 'application/octet-stream' } });
    r = await req('POST', '/v1/batch', json({ ops: [{ op: 'put', key: b64('b4'), value: b64('x') }, { op: 'put', key: b64('b3'), value: b64('x'), version: 3 }] }));
    expectProblem(r, 409, 'VERSION_NOT_INCREASING');
    expectProblem(await req('GET', '/v1/kv/b4'), 404, 'NOT_FOUND');
    // An invalid op anywhere: nothing applies either.
    r = await req('POST', '/v1/batch', json({ ops: [{ op: 'put', key: b64('b4'), value: b64('x') }, { op: 'put', key: '', value: b64('x') }] }));
    expectProblem(r, 400, 'EMPTY_KEY');
    expectProblem(await req('GET', '/v1/kv/b4'), 404, 'NOT_FOUND');
    r = await req('POST', '/v1/batch', {
      body: cbor.encode({ ops: [{ op: 'put', key: te.encode('b5'), value: new Uint8Array([1, 2, 3]) }] }),
      headers: { 'content-type': 'application/cbor', accept: 'application/cbor' },
    });
    expect(r.body.results[0].version).toBe(1);
    expect((await req('GET', '/v1/kv/b5')).body.value).toBe(b64(new Uint8Array([1, 2, 3])));
  });

  it('scans latest live values with prefix, bounds and a cursor', async () => {
    const ops = [];
    for (let i = 0; i < 25; i++) ops.push({ op: 'put', key: b64(`p/${String(i).padStart(2, '0')}`), valueUtf8: `v${i}` });
    expect((await req('POST', '/v1/batch', json({ ops }))).status).toBe(200);
    await req('DELETE', '/v1/kv/p%2F07');
    await req('PUT', '/v1/kv/p%2F03', json({ valueUtf8: 'v3b' }));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = await req('GET', `/v1/kv?prefix=p%2F&limit=10${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      for (const it of r.body.items) seen.push(td.decode(unb64(it.key)));
      cursor = r.body.cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `p/${String(i).padStart(2, '0')}`).filter((k) => k !== 'p/07'));
    const one = await req('GET', '/v1/kv?prefix=p%2F03');
    expect(one.body.items).toHaveLength(1);
    expect(one.body.items[0]).toMatchObject({ valueUtf8: 'v3b', version: 2 });
    expect(one.body.cursor).toBeUndefined();
    const range = await req('GET', `/v1/kv?start=${b64('p/10')}&end=${b64('p/13')}&keyEncoding=base64url`);
    expect(range.body.items.map((x: any) => x.valueUtf8)).toEqual(['v10', 'v11', 'v12']);
    const cb = await req('GET', '/v1/kv?prefix=p%2F2&limit=2', { headers: { accept: 'application/cbor' } });
    expect(cb.body.items.map((x: any) => td.decode(x.key))).toEqual(['p/20', 'p/21']);
    expect(typeof cb.body.cursor).toBe('string');
  });

  it('pages history with a cursor, with and without proofs', async () => {
    for (let i = 1; i <= 7; i++) await req('PUT', '/v1/kv/hist', json({ valueUtf8: `h${i}` }));
    let r = await req('GET', '/v1/kv/hist/history?limit=3');
    expect(r.body.entries.map((e: any) => e.version)).toEqual([1, 2, 3]);
    r = await req('GET', `/v1/kv/hist/history?limit=3&cursor=${r.body.nextCursor}`);
    expect(r.body.entries.map((e: any) => e.version)).toEqual([4, 5, 6]);
    r = await req('GET', `/v1/kv/hist/history?limit=3&cursor=${r.body.nextCursor}`);
    expect(r.body.entries.map((e: any) => e.version)).toEqual([7]);
    expect(r.body.nextCursor).toBeUndefined();
    r = await req('GET', '/v1/kv/hist/history?min=2&max=4');
    expect(r.body.entries.map((e: any) => e.valueUtf8)).toEqual(['h2', 'h3', 'h4']);
    expectProblem(await req('GET', '/v1/kv/hist/history?proof=true'), 404, 'CHECKPOINT_UNAVAILABLE');
  });

  it('takes consistency=linearizable|serializable on plain reads and refuses it elsewhere', async () => {
    for (const c of ['linearizable', 'serializable']) {
      expect((await req('GET', `/v1/kv/hist?consistency=${c}`)).body.valueUtf8).toBe('h7');
      expect((await req('GET', `/v1/kv/hist/history?min=7&consistency=${c}`)).body.entries.map((e: any) => e.valueUtf8)).toEqual(['h7']);
      expect((await req('GET', `/v1/kv?prefix=hi&consistency=${c}`)).body.items.map((x: any) => x.valueUtf8)).toEqual(['h7']);
    }
    expectProblem(await req('GET', '/v1/kv/hist?consistency=strong'), 400, 'INVALID_ARGUMENT');
    expectProblem(await req('GET', '/v1/kv?consistency=eventual'), 400, 'INVALID_ARGUMENT');
    expectProblem(await req('GET', '/v1/kv/hist/history?proof=true&consistency=linearizable'), 400, 'INVALID_ARGUMENT');
    expectProblem(await req('GET', '/v1/kv?proof=true&consistency=serializable'), 400, 'INVALID_ARGUMENT');
    expectProblem(await req('PUT', '/v1/kv/hist?consistency=linearizable', json({ valueUtf8: 'x' })), 400, 'INVALID_ARGUMENT');
  });

  let firstHead: { head: LogHead; checkpoint: Checkpoint } | undefined;

  it('takes checkpoints and serves verified get proofs (present, absent, deleted, versioned)', async () => {
    expectProblem(await req('GET', '/v1/checkpoints/latest'), 404, 'CHECKPOINT_UNAVAILABLE');
    expectProblem(await req('GET', '/v1/kv/user:1/proof'), 404, 'CHECKPOINT_UNAVAILABLE');
    const c = await req('POST', '/v1/checkpoints');
    expect(c.status).toBe(200);
    expect(c.body.checkpoint.index).toBe(0);
    const st = await req('GET', '/v1/status');
    expect(c.body.checkpoint.seq).toBe(st.body.lastSeq);
    expect(st.body.lastCheckpoint).toEqual(c.body);
    expect(st.body.tables).toBeGreaterThan(0);
    expect(st.body.bytesOnDisk).toBeGreaterThan(0);
    firstHead = { head: headOf(c.body), checkpoint: checkpointOf(c.body) };
    expect(verifyCheckpoint(headOf(c.body), sigsOf(c.body), trust).ok).toBe(true);
    expect((await req('GET', '/v1/checkpoints/latest')).body).toEqual(c.body);

    const key = te.encode('user:1');
    let r = await req('GET', '/v1/kv/user:1/proof');
    expect(r.body.entry).toMatchObject({ version: 4, valueUtf8: 'dave' });
    let v = verifyGetProof(getProofCodec.decode(unb64(r.body.proof)), { key }, { trust });
    expect(v.ok).toBe(true);
    if (v.ok) expect(td.decode(v.entry!.value)).toBe('dave');
    r = await req('GET', '/v1/kv/user:1/proof?version=2', { headers: { accept: 'application/cbor' } });
    v = verifyGetProof(getProofCodec.decode(r.body.proof), { key, version: 2 }, { trust });
    expect(v.ok && v.entry?.version).toBe(2);
    expect(v.ok && td.decode(v.entry!.value)).toBe('bob');
    r = await req('GET', '/v1/kv/nobody/proof');
    expect(r.body.entry).toBeUndefined();
    v = verifyGetProof(getProofCodec.decode(unb64(r.body.proof)), { key: te.encode('nobody') }, { trust });
    expect(v.ok && v.entry).toBeUndefined();
    expect(v.ok).toBe(true);
    r = await req('GET', '/v1/kv/gone/proof');
    v = verifyGetProof(getProofCodec.decode(unb64(r.body.proof)), { key: te.encode('gone') }, { trust });
    expect(v.ok && v.entry?.kind).toBe('delete');
    // A proof checked against another key fails.
    expect(verifyGetProof(getProofCodec.decode(unb64(r.body.proof)), { key: te.encode('user:1') }, { trust }).ok).toBe(false);
  });

  it('serves verified history proofs, paged', async () => {
    const key = te.encode('hist');
    let r = await req('GET', '/v1/kv/hist/history?proof=true');
    expect(r.body.entries).toHaveLength(7);
    let v = verifyHistoryProof(historyProofCodec.decode(unb64(r.body.proof)), { key, minVersion: r.body.minVersion, maxVersion: r.body.maxVersion, limit: r.body.limit }, { trust });
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.entries.map((e) => td.decode(e.value))).toEqual(['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7']);
    const versions: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      r = await req('GET', `/v1/kv/hist/history?proof=true&limit=3&max=6${cursor ? `&cursor=${cursor}` : ''}`);
      const q = { key, minVersion: r.body.minVersion, maxVersion: r.body.maxVersion, limit: r.body.limit };
      v = verifyHistoryProof(historyProofCodec.decode(unb64(r.body.proof)), q, { trust });
      expect(v.ok, JSON.stringify(v)).toBe(true);
      if (v.ok) versions.push(...v.entries.map((e) => e.version));
      cursor = r.body.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(versions).toEqual([1, 2, 3, 4, 5, 6]);
    expect(pages).toBe(2);
  });

  it('serves checkpoints by index with inclusion, and consistency proofs', async () => {
    await req('PUT', '/v1/kv/late', json({ valueUtf8: 'after the first checkpoint' }));
    const c1 = await req('POST', '/v1/checkpoints', { headers: { accept: 'application/cbor' } });
    expect(c1.body.checkpoint.index).toBe(1);
    expect(c1.body.checkpoint.prevCheckpointHash).toBeInstanceOf(Uint8Array);
    await req('POST', '/v1/checkpoints');
    const latest = (await req('GET', '/v1/checkpoints/latest')).body;
    expect(latest.head.size).toBe(3);
    for (const i of [0, 1, 2]) {
      const r = await req('GET', `/v1/checkpoints/${i}`);
      expect(r.body.checkpoint.index).toBe(i);
      const ok = verifyCheckpointInclusion(checkpointOf(r.body), r.body.inclusion.map(unb64), headOf(r.body));
      expect(ok.ok, JSON.stringify(ok)).toBe(true);
      expect(verifyCheckpoint(headOf(r.body), sigsOf(r.body), trust).ok).toBe(true);
    }
    // ProofKV-Min-Head: at or below the certified size passes; above it waits, then 503 (a member
    // catching up tells the client to ask another); malformed is 400.
    expect((await req('GET', '/v1/checkpoints/latest', { headers: { 'proofkv-min-head': '3' } })).status).toBe(200);
    const behind = await req('GET', '/v1/kv/late/proof', { headers: { 'proofkv-min-head': '4' } });
    expectProblem(behind, 503, 'UNAVAILABLE');
    expect(behind.body.detail).toMatch(/certified log size 3 is below the 4/);
    expectProblem(await req('GET', '/v1/checkpoints/latest', { headers: { 'proofkv-min-head': '-1' } }), 400, 'INVALID_ARGUMENT');
    const late = await req('GET', '/v1/kv/late/proof');
    const lv = verifyGetProof(getProofCodec.decode(unb64(late.body.proof)), { key: te.encode('late') }, { trust });
    expect(lv.ok && td.decode(lv.entry!.value)).toBe('after the first checkpoint');
    const first = (await req('GET', '/v1/checkpoints/0')).body;
    expect(checkpointOf(first)).toEqual(firstHead!.checkpoint);
    const cons = await req('GET', '/v1/checkpoints/consistency?from=1&to=3');
    expect(cons.body).toMatchObject({ from: 1, to: 3 });
    expect(verifyHeadExtends(firstHead!.head, headOf(latest), cons.body.proof.map(unb64)).ok).toBe(true);
    const dflt = await req('GET', '/v1/checkpoints/consistency?from=1');
    expect(dflt.body.to).toBe(3);
    expectProblem(await req('GET', '/v1/checkpoints/3'), 404, 'NOT_FOUND');
    expectProblem(await req('GET', '/v1/checkpoints/consistency?from=1&to=4'), 404, 'NOT_FOUND');
    expectProblem(await req('GET', '/v1/checkpoints/consistency?from=3&to=2'), 400, 'INVALID_ARGUMENT');
    expectProblem(await req('GET', '/v1/kv/user:1/proof?checkpoint=0'), 404, 'CHECKPOINT_UNAVAILABLE');
    expect((await req('GET', '/v1/kv/user:1/proof?checkpoint=2')).status).toBe(200);
  });

  it('makes retried writes idempotent with client sessions', async () => {
    const h = { 'content-type': 'application/octet-stream', 'proofkv-client-id': 'client-A', 'proofkv-request-seq': '1' };
    const a = await req('PUT', '/v1/kv/idem', { body: 'once', headers: h });
    const b = await req('PUT', '/v1/kv/idem', { body: 'once', headers: h });
    expect(b.body).toEqual(a.body);
    expect(b.headers.get('proofkv-replayed')).toBe('true');
    expect(a.headers.get('proofkv-replayed')).toBeNull();
    const c = await req('PUT', '/v1/kv/idem', { body: 'twice', headers: { ...h, 'proofkv-request-seq': '2' } });
    expect(c.body.version).toBe(2);
    // A remembered failure replays as the same failure.
    const bad = { ...h, 'proofkv-request-seq': '3' };
    expectProblem(await req('PUT', '/v1/kv/idem?version=1', { body: 'x', headers: bad }), 409, 'VERSION_NOT_INCREASING');
    expectProblem(await req('PUT', '/v1/kv/idem?version=1', { body: 'x', headers: bad }), 409, 'VERSION_NOT_INCREASING');
    const hist = await req('GET', '/v1/kv/idem/history');
    expect(hist.body.entries.map((e: any) => e.version)).toEqual([1, 2]);
    expectProblem(await req('PUT', '/v1/kv/idem', { body: 'x', headers: { 'content-type': 'application/octet-stream', 'proofkv-client-id': 'only-id' } }), 400, 'INVALID_ARGUMENT');
  });

  it('serves Prometheus metrics and the OpenAPI document', async () => {
    const m = await req('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    for (const name of [
      'proofkv_http_request_duration_seconds_bucket',
      'proofkv_writes_total',
      'proofkv_reads_total',
      'proofkv_checkpoint_duration_seconds',
      'proofkv_tables',
      'proofkv_disk_bytes',
      'proofkv_compactions_total',
    ]) {
      expect(m.body).toContain(name);
    }
    expect(m.body).toMatch(/proofkv_http_request_duration_seconds_count\{method="PUT",route="kv_put",status="200"\} \d+/);
    const o = await req('GET', '/openapi.json');
    expect(o.body.openapi).toBe('3.1.0');
    expect(Object.keys(o.body.paths)).toContain('/v1/kv/{key}/proof');
  });

  it('answers malformed requests with problem+json and CORS preflights with 204', async () => {
    expectProblem(await req('GET', '/v1/kv/%ZZ'), 400, 'BAD_REQUEST');
    expectProblem(await req('GET', `/v1/kv/${'k'.repeat(65537)}`), 413, 'KEY_TOO_LARGE');
    expectProblem(await req('PUT', '/v1/kv/x', { body: 'v', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectProblem(await req('PUT', '/v1/kv/x', { body: '{', headers: { 'content-type': 'application/json' } }), 400, 'BAD_REQUEST');
    expectProblem(await req('PUT', '/v1/kv/x', { body: new Uint8Array(1024 * 1024 + 1), headers: { 'content-type': 'application/octet-stream' } }), 413, 'VALUE_TOO_LARGE');
    expectProblem(await req('PUT', '/v1/kv/x', { body: new Uint8Array(2 * 1024 * 1024), headers: { 'content-type': 'application/octet-stream' } }), 413, 'PAYLOAD_TOO_LARGE');
    expectProblem(await req('GET', '/v1/kv?limit=1001'), 400, 'INVALID_ARGUMENT');
    expectProblem(await req('GET', '/v1/kv?bogus=1'), 400, 'INVALID_ARGUMENT');
    const m = await req('PATCH', '/v1/kv/x');
    expectProblem(m, 405, 'METHOD_NOT_ALLOWED');
    expect(m.headers.get('allow')).toContain('PUT');
    expectProblem(await req('GET', '/nowhere'), 404, 'NOT_FOUND');
    const pre = await req('OPTIONS', '/v1/kv/x', { headers: { origin: 'http://example.test', 'access-control-request-method': 'PUT' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-headers')).toContain('Authorization');
  });

  it('takes automatic checkpoints by interval and by write count', async () => {
    for (const args of [['--checkpoint-interval', '50', '--checkpoint-writes', '0'], ['--checkpoint-interval', '0', '--checkpoint-writes', '5']]) {
      const n = await startServer({ args });
      try {
        let seq = 0;
        for (let i = 0; i < 5; i++) seq = (await call(n.url, 'PUT', `/v1/kv/auto${i}`, json({ valueUtf8: 'x' }))).body.seq;
        let covered = false;
        for (let i = 0; i < 400 && !covered; i++) {
          const st = await call(n.url, 'GET', '/v1/status');
          covered = (st.body.lastCheckpoint?.checkpoint.seq ?? 0) >= seq;
          if (!covered) await new Promise((r) => setTimeout(r, 25));
        }
        expect(covered, args.join(' ')).toBe(true);
        const idx = (await call(n.url, 'GET', '/v1/checkpoints/latest')).body.checkpoint.index;
        // No new writes: the interval does not add checkpoints.
        for (let i = 0; i < 5; i++) await call(n.url, 'GET', '/healthz');
        const st = await call(n.url, 'GET', '/v1/status');
        expect(st.body.lastCheckpoint.checkpoint.seq).toBe(st.body.lastSeq);
        expect(idx).toBeGreaterThanOrEqual(0);
      } finally {
        expect(await n.stop()).toBe(0);
      }
    }
  });

  it('shuts down gracefully on SIGTERM with a final checkpoint; the data is there after a restart', async () => {
    await req('PUT', '/v1/kv/final', json({ valueUtf8: 'written last' }));
    const before = (await req('GET', '/v1/status')).body;
    expect(before.lastCheckpoint.checkpoint.seq).toBeLessThan(before.lastSeq);
    expect(await s.stop('SIGTERM')).toBe(0);
    s = await startServer({ dataDir: s.dataDir, args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    const after = (await req('GET', '/v1/status')).body;
    expect(after.publicKey).toBe(before.publicKey);
    expect(after.lastSeq).toBe(before.lastSeq);
    expect(after.lastCheckpoint.checkpoint.seq).toBe(before.lastSeq);
    expect((await req('GET', '/v1/kv/final')).body.valueUtf8).toBe('written last');
    expect((await req('GET', '/v1/kv/user:1')).body.valueUtf8).toBe('dave');
    const p = await req('GET', '/v1/kv/final/proof');
    const v = verifyGetProof(getProofCodec.decode(unb64(p.body.proof)), { key: te.encode('final') }, { trust });
    expect(v.ok && td.decode(v.entry!.value)).toBe('written last');
    expect(fs.existsSync(path.join(s.dataDir, 'NODE_KEY'))).toBe(true);
  });
});

describe('server shutdown with writes in flight', () => {
  it('acknowledges only durable writes: every 200 is there after SIGINT and a restart', async () => {
    let s = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
    try {
      const pending = Array.from({ length: 40 }, (_, i) =>
        call(s.url, 'PUT', `/v1/kv/inflight${i}`, json({ valueUtf8: `v${i}` })).then(
          (r) => ({ i, status: r.status }),
          () => ({ i, status: 0 }),
        ),
      );
      // Wait for the first acknowledgement, then signal while the rest are in flight or queued.
      await Promise.race(pending);
      const exit = s.stop('SIGINT');
      const results = await Promise.all(pending);
      expect(await exit).toBe(0);
      expect(results.every((r) => r.status === 200 || r.status === 503 || r.status === 0)).toBe(true);
      const acked = results.filter((r) => r.status === 200).map((r) => r.i);
      expect(acked.length).toBeGreaterThan(0);
      s = await startServer({ dataDir: s.dataDir, args: ['--checkpoint-interval', '0', '--checkpoint-writes', '0'] });
      for (const i of acked) expect((await call(s.url, 'GET', `/v1/kv/inflight${i}`)).body.valueUtf8).toBe(`v${i}`);
      const st = (await call(s.url, 'GET', '/v1/status')).body;
      expect(st.lastCheckpoint.checkpoint.seq).toBe(st.lastSeq);
    } finally {
      await s.stop('SIGKILL');
    }
  });
});

describe('server auth', () => {
  let s: ServerProc;
  const tokens = { admin: 'adm-token-0123456789', write: 'wrt-token-0123456789', read: 'rd-token-0123456789', file: 'file-token-0123456789' };

  beforeAll(async () => {
    const dir = tmpDir();
    const cfg = path.join(dir, 'proofkv.json');
    fs.writeFileSync(cfg, JSON.stringify({ tokens: [{ token: tokens.file, role: 'write' }] }));
    s = await startServer({
      dataDir: path.join(dir, 'data'),
      args: ['--config', cfg],
      env: { PROOFKV_TOKENS: `${tokens.admin}:admin,${tokens.write}:write,${tokens.read}:read` },
    });
  });
  afterAll(async () => {
    await s?.stop('SIGKILL');
  });

  it('lets health and the OpenAPI document through without a token', async () => {
    expect((await call(s.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(s.url, 'GET', '/openapi.json')).status).toBe(200);
  });

  it('answers 401 without a token or with an unknown one', async () => {
    const r = await call(s.url, 'GET', '/v1/status');
    expectProblem(r, 401, 'UNAUTHENTICATED');
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expectProblem(await call(s.url, 'GET', '/v1/status', { token: 'nope' }), 401, 'UNAUTHENTICATED');
    expectProblem(await call(s.url, 'GET', '/v1/status', { headers: { authorization: `Basic ${tokens.admin}` } }), 401, 'UNAUTHENTICATED');
    expectProblem(await call(s.url, 'PUT', '/v1/kv/k', { body: 'v', headers: { 'content-type': 'application/octet-stream' } }), 401, 'UNAUTHENTICATED');
    // ProofKV-Min-Head is looked at only after auth: a request without a token is refused at once,
    // never held for the head (nor told this member's certified size), even with a malformed value.
    for (const head of ['999999', 'x']) {
      const gated = await call(s.url, 'GET', '/v1/checkpoints/latest', { headers: { 'proofkv-min-head': head } });
      expectProblem(gated, 401, 'UNAUTHENTICATED');
      expect(gated.body.detail).not.toMatch(/certified log size/);
    }
    expectProblem(await call(s.url, 'GET', '/v1/checkpoints/latest', { token: tokens.read, headers: { 'proofkv-min-head': 'x' } }), 400, 'INVALID_ARGUMENT');
  });

  it('enforces read < write < admin', async () => {
    const put = (token: string) => call(s.url, 'PUT', '/v1/kv/k', { token, body: 'v', headers: { 'content-type': 'application/octet-stream' } });
    expect((await call(s.url, 'GET', '/v1/status', { token: tokens.read })).status).toBe(200);
    expectProblem(await put(tokens.read), 403, 'FORBIDDEN');
    expect((await put(tokens.write)).status).toBe(200);
    expect((await put(tokens.file)).status).toBe(200);
    expect((await put(tokens.admin)).status).toBe(200);
    expectProblem(await call(s.url, 'DELETE', '/v1/kv/k', { token: tokens.read }), 403, 'FORBIDDEN');
    expectProblem(await call(s.url, 'POST', '/v1/batch', { token: tokens.read, ...json({ ops: [] }) }), 403, 'FORBIDDEN');
    expectProblem(await call(s.url, 'POST', '/v1/checkpoints', { token: tokens.write }), 403, 'FORBIDDEN');
    expect((await call(s.url, 'POST', '/v1/checkpoints', { token: tokens.admin })).status).toBe(200);
    expectProblem(await call(s.url, 'GET', '/metrics', { token: tokens.write }), 403, 'FORBIDDEN');
    expect((await call(s.url, 'GET', '/metrics', { token: tokens.admin })).status).toBe(200);
    for (const p of ['/v1/kv/k', '/v1/kv/k/proof', '/v1/kv/k/history', '/v1/kv', '/v1/checkpoints/latest', '/v1/checkpoints/0', '/v1/checkpoints/consistency?from=1']) {
      expect((await call(s.url, 'GET', p, { token: tokens.read })).status, p).toBe(200);
      expectProblem(await call(s.url, 'GET', p), 401, 'UNAUTHENTICATED');
    }
  });

  it('refuses a non-loopback host without tokens, and bad settings, at start-up', async () => {
    await expect(startServer({ args: ['--host', '0.0.0.0'] })).rejects.toThrow(/exited \(2\)[\s\S]*refusing to listen on 0\.0\.0\.0/);
    await expect(startServer({ env: { PROOFKV_TOKENS: 'tok:superuser' } })).rejects.toThrow(/exited \(2\)[\s\S]*unknown role/);
    await expect(startServer({ args: ['--port', 'seventy'] })).rejects.toThrow(/exited \(2\)[\s\S]*port/);
  });
});
