/**
 * The pure parts of the transport's authentication and queueing: the MAC covers every claim, the
 * route, the target and the body; headers parse only in canonical form; the replay guard's order
 * and bound; the per-peer queue's byte bound and batch sizes.
 */
import { describe, expect, it } from 'vitest';
import {
  PeerQueue, PeerRoute, ReplayGuard, authHeaders, bodyDigest, macEquals, parseAuthHeaders, requestMac, type PeerClaims,
} from '../../src/replication/transport/index.js';

const secret = new Uint8Array(32).fill(3);
const base: PeerClaims = { clusterId: 'pk-a', from: 1, to: 2, epoch: 1000, seq: 5, time: 1_700_000_000_000 };
const body = Uint8Array.of(1, 2, 3);

describe('request MAC', () => {
  it('changes with every claim, the route, the target, the body and the secret', () => {
    const mac = requestMac(secret, PeerRoute.Messages, base, '', bodyDigest(body));
    const variants = [
      requestMac(secret, PeerRoute.Snapshot, base, '', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, { ...base, clusterId: 'pk-b' }, '', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, { ...base, from: 3 }, '', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, { ...base, to: 3 }, '', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, { ...base, epoch: 1001 }, '', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, { ...base, seq: 6 }, '', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, { ...base, time: base.time + 1 }, '', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, base, 'x', bodyDigest(body)),
      requestMac(secret, PeerRoute.Messages, base, '', bodyDigest(Uint8Array.of(1, 2, 4))),
      requestMac(new Uint8Array(32).fill(4), PeerRoute.Messages, base, '', bodyDigest(body)),
      // a length-prefixed cluster id: moving a byte between fields changes the MAC
      requestMac(secret, PeerRoute.Messages, { ...base, clusterId: 'pk-' }, 'a', bodyDigest(body)),
    ];
    expect(mac.length).toBe(32);
    for (const v of variants) expect(macEquals(mac, v)).toBe(false);
    expect(macEquals(mac, requestMac(secret, PeerRoute.Messages, { ...base }, '', bodyDigest(body)))).toBe(true);
    expect(macEquals(mac, mac.subarray(0, 31))).toBe(false);
  });

  it('headers round-trip and parse only in canonical form', () => {
    const mac = requestMac(secret, PeerRoute.Messages, base, '', bodyDigest(body));
    const h = authHeaders(base, mac);
    expect(parseAuthHeaders(h)).toEqual({ claims: base, mac: Buffer.from(mac) });
    const bad: Array<Record<string, string | string[]>> = [
      { ...h, 'proofkv-peer-seq': '05' },
      { ...h, 'proofkv-peer-seq': '-5' },
      { ...h, 'proofkv-peer-seq': '9007199254740993' },
      { ...h, 'proofkv-peer-from': '0' },
      { ...h, 'proofkv-peer-to': '4294967296' },
      { ...h, 'proofkv-peer-mac': h['proofkv-peer-mac'].toUpperCase() },
      { ...h, 'proofkv-peer-mac': h['proofkv-peer-mac'].slice(2) },
      { ...h, 'proofkv-peer-cluster': 'has space' },
      { ...h, 'proofkv-peer-cluster': ['pk-a', 'pk-a'] },
    ];
    for (const b of bad) expect(parseAuthHeaders(b)).toBeUndefined();
    const { ['proofkv-peer-time']: _t, ...noTime } = h;
    expect(parseAuthHeaders(noTime)).toBeUndefined();
  });
});

describe('ReplayGuard', () => {
  it('accepts only rising (epoch, seq) per sender and tells the epoch to beat', () => {
    const g = new ReplayGuard();
    expect(g.admit(1, 10, 1)).toEqual({ ok: true });
    expect(g.admit(1, 10, 1)).toEqual({ ok: false, reason: 'replay', minEpoch: 10 });
    expect(g.admit(1, 10, 3)).toEqual({ ok: true });
    expect(g.admit(1, 10, 2)).toEqual({ ok: false, reason: 'replay', minEpoch: 10 });
    expect(g.admit(1, 9, 100)).toEqual({ ok: false, reason: 'stale-epoch', minEpoch: 10 });
    expect(g.admit(1, 11, 1)).toEqual({ ok: true });
    expect(g.admit(2, 10, 1)).toEqual({ ok: true }); // senders are independent
  });

  it('remembers at most maxSenders senders', () => {
    const g = new ReplayGuard(8);
    for (let id = 1; id <= 100; id++) g.admit(id, 1, 1);
    expect(g.size).toBe(8);
    expect(g.admit(100, 1, 1).ok).toBe(false);
  });
});

describe('PeerQueue', () => {
  it('never holds more than its bound and takes batches that fit', () => {
    const q = new PeerQueue(1000);
    let accepted = 0;
    for (let i = 0; i < 50; i++) {
      if (q.push(new Uint8Array(90))) accepted++;
      expect(q.bytes).toBeLessThanOrEqual(1000);
    }
    expect(accepted).toBe(11);
    expect(q.length).toBe(11);
    const batch = q.take(4 + 3 * 91);
    expect(batch.length).toBe(3);
    expect(q.bytes).toBe(8 * 90);
    expect(q.take(10).length).toBe(1); // always at least one
    expect(q.clear()).toBe(7);
    expect([q.bytes, q.length]).toEqual([0, 0]);
    expect(q.take(1000)).toEqual([]);
  });
});
