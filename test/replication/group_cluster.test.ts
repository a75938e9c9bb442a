/**
 * ReplicationGroup with three members on the simulator's in-memory network and virtual clock:
 * election, a write on a follower answered by the follower once it applies it, a read barrier on a
 * follower, fast refusal without a leader, the timeout's indeterminate error, a minority partition
 * that commits no write and serves no read, leader isolation and re-election, a crash and reopen
 * from the same directory, and convergence after healing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, type Message, type Ready } from '../../src/raft/index.js';
import { ReplicationError } from '../../src/replication/index.js';
import { SimCluster } from './sim_cluster.js';

const te = new TextEncoder();
const put = (k: string, v: string) => te.encode(JSON.stringify({ k, v }));

const clusters: SimCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

async function cluster(seed: number, n = 3): Promise<SimCluster> {
  const c = new SimCluster({ seed, n });
  clusters.push(c);
  for (const id of c.ids()) await c.start(id);
  expect(await c.sim.runUntil(() => {
    const l = c.leader();
    return l !== undefined && c.up().every((id) => c.group(id).status().leader === l);
  }, 5000)).toBe(true);
  return c;
}

/** Runs the simulation until `p` settles (or `maxMs` of virtual time pass). */
async function settle<T>(c: SimCluster, p: Promise<T>, maxMs = 10_000): Promise<PromiseSettledResult<T>> {
  let out: PromiseSettledResult<T> | undefined;
  p.then((value) => { out = { status: 'fulfilled', value }; }, (reason: unknown) => { out = { status: 'rejected', reason }; });
  await c.sim.runUntil(() => out !== undefined, maxMs, 5);
  if (!out) throw new Error(`not settled after ${maxMs} ms of virtual time`);
  return out;
}

describe('ReplicationGroup, three members', () => {
  it('elects one leader; a write on a follower is forwarded and answered when the follower applies it', async () => {
    const c = await cluster(1);
    const leader = c.leader()!;
    const follower = c.ids().find((id) => id !== leader)!;
    const st = c.group(follower).status();
    expect(st).toMatchObject({ id: follower, role: 'follower', leader, voters: [1, 2, 3], learners: [] });
    const r = await settle(c, c.group(follower).propose(put('a', '1')));
    expect(r.status).toBe('fulfilled');
    const index = Number((r as PromiseFulfilledResult<string>).value.split('@')[1]);
    expect(c.members.get(follower)!.sm!.kv.get('a')).toBe('1');
    expect(c.group(follower).status().applied).toBeGreaterThanOrEqual(index);
    // A read barrier on another follower returns an index it has applied, which covers the write.
    const other = c.ids().find((id) => id !== leader && id !== follower)!;
    const rd = await settle(c, c.group(other).readIndex());
    expect(rd.status).toBe('fulfilled');
    expect((rd as PromiseFulfilledResult<number>).value).toBeGreaterThanOrEqual(index);
    expect(c.members.get(other)!.sm!.kv.get('a')).toBe('1');
    await c.sim.runUntil(() => c.converged(), 2000);
    expect(c.converged()).toBe(true);
    c.check();
  });

  it('a minority commits no write and serves no read; the majority elects a leader and goes on; after healing all converge', async () => {
    const c = await cluster(2);
    const old = c.leader()!;
    const rest = c.ids().filter((id) => id !== old);
    c.sim.net.partition(c.ids(), [old], rest);
    const commitBefore = c.group(old).status().commit;
    const w = c.group(old).propose(put('x', 'minority'));
    const r = c.group(old).readIndex();
    const [ws, rs] = await Promise.all([settle(c, w), settle(c, r)]);
    expect(ws.status).toBe('rejected');
    expect((ws as PromiseRejectedResult).reason).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: true, message: /outcome is unknown/ });
    expect(rs.status).toBe('rejected');
    expect(c.group(old).status().commit).toBe(commitBefore);
    expect(c.members.get(old)!.sm!.kv.has('x')).toBe(false);
    // The majority side elected a new leader, which takes writes.
    const nl = c.leader();
    expect(nl).toBeDefined();
    expect(rest).toContain(nl);
    expect((await settle(c, c.group(rest[0]).propose(put('y', 'majority')))).status).toBe('fulfilled');
    // The deposed leader knows no leader (check quorum): it refuses at once, without appending.
    const fast = await settle(c, c.group(old).propose(put('z', 'no')));
    expect((fast as PromiseRejectedResult).reason).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: false });
    c.sim.net.heal();
    expect(await c.sim.runUntil(() => c.converged(), 5000)).toBe(true);
    for (const id of c.ids()) {
      expect(c.members.get(id)!.sm!.kv.get('y')).toBe('majority');
      expect(c.members.get(id)!.sm!.kv.has('x')).toBe(false);
    }
    c.check();
  });

  it('onLeaderChange reports each new leader (and 0 when none is known) on every member', async () => {
    const c = await cluster(5);
    const seen = new Map<number, number[]>();
    for (const id of c.ids()) {
      seen.set(id, []);
      c.group(id).onLeaderChange((l) => seen.get(id)!.push(l));
    }
    const old = c.leader()!;
    c.sim.net.isolate(old, c.ids());
    expect(await c.sim.runUntil(() => {
      const l = c.leader();
      return l !== undefined && l !== old && c.ids().filter((id) => id !== old).every((id) => c.group(id).status().leader === l);
    }, 5000)).toBe(true);
    const nl = c.leader()!;
    for (const id of c.ids().filter((x) => x !== old)) expect(seen.get(id)!.at(-1)).toBe(nl);
    // The isolated old leader steps down (check quorum) and knows no leader.
    expect(await c.sim.runUntil(() => c.group(old).status().role !== 'leader', 5000)).toBe(true);
    expect(seen.get(old)).toEqual([0]);
    c.sim.net.heal();
    expect(await c.sim.runUntil(() => c.group(old).status().leader === nl, 5000)).toBe(true);
    expect(seen.get(old)!.at(-1)).toBe(nl);
  });

  it('a crashed member reopens from its directory, replays its log and catches up', async () => {
    const c = await cluster(3);
    const leader = c.leader()!;
    const victim = c.ids().find((id) => id !== leader)!;
    await c.crash(victim);
    for (let i = 0; i < 5; i++) expect((await settle(c, c.group(leader).propose(put(`k${i}`, `v${i}`)))).status).toBe('fulfilled');
    await c.start(victim);
    expect(await c.sim.runUntil(() => c.converged(), 5000)).toBe(true);
    expect(c.members.get(victim)!.sm!.kv.get('k4')).toBe('v4');
    // The whole cluster down and up again: everything is re-applied from the logs.
    for (const id of c.ids()) await c.crash(id);
    for (const id of c.ids()) await c.start(id);
    expect(await c.sim.runUntil(() => c.converged() && c.members.get(c.leader()!)!.sm!.kv.get('k4') === 'v4', 5000)).toBe(true);
    c.check();
  });

  it('refuses at once without a leader and rejects bad arguments with typed errors', async () => {
    const c = new SimCluster({ seed: 4, n: 3 });
    clusters.push(c);
    await c.start(1);
    await expect(c.group(1).propose(put('a', 'b'))).rejects.toMatchObject({ code: 'REPLICATION_UNAVAILABLE', indeterminate: false, message: /no leader/ });
    await expect(c.group(1).readIndex()).rejects.toBeInstanceOf(ReplicationError);
    await expect(c.group(1).proposeConfChange({ type: 'AddNode', nodeId: 0 } as never)).rejects.toMatchObject({ code: 'REPLICATION_BAD_STATE' });
    expect(c.group(1).status()).toMatchObject({ role: 'follower', leader: 0, voters: [1, 2, 3] });
  });

  it('a follower relays a proposal to the leader without waiting for its own log write', async () => {
    const c = await cluster(7);
    const leader = c.leader()!;
    const follower = c.ids().find((id) => id !== leader)!;
    // A relayed proposal states nothing about the follower's log: it goes out before the write of
    // the Ready that carries it resolves (acknowledgements and votes wait for theirs).
    const g = c.group(follower) as unknown as {
      storage: { save(rd: Ready, o?: unknown): Promise<boolean> };
      transport: { send(ms: readonly Message[]): void };
    };
    const written = new WeakSet<Message>();
    const save = g.storage.save.bind(g.storage);
    g.storage.save = async (rd, o) => {
      const synced = await save(rd, o);
      for (const m of rd.messages) written.add(m);
      return synced;
    };
    const relayedAfterWrite: boolean[] = [];
    const acksAfterWrite: boolean[] = [];
    const send = g.transport.send.bind(g.transport);
    g.transport.send = (ms) => {
      for (const m of ms) {
        if (m.type === MessageType.Prop) relayedAfterWrite.push(written.has(m));
        if (m.type === MessageType.AppResp) acksAfterWrite.push(written.has(m));
      }
      send(ms);
    };
    const r = await settle(c, c.group(follower).propose(put('relayed', 'yes')));
    expect(r.status).toBe('fulfilled');
    expect(c.members.get(follower)!.sm!.kv.get('relayed')).toBe('yes');
    expect(relayedAfterWrite.length).toBeGreaterThan(0);
    expect(relayedAfterWrite.every((after) => !after)).toBe(true);
    expect(acksAfterWrite.length).toBeGreaterThan(0);
    expect(acksAfterWrite.every((after) => after)).toBe(true);
    c.check();
  });

  it('a member has one ReadIndex request in flight; the reads made meanwhile share the next one', async () => {
    const c = await cluster(8);
    const leader = c.leader()!;
    const follower = c.ids().find((id) => id !== leader)!;
    const g = c.group(follower);
    const t = (g as unknown as { transport: { send(ms: readonly Message[]): void } }).transport;
    let requests = 0;
    const send = t.send.bind(t);
    t.send = (ms) => {
      for (const m of ms) if (m.type === MessageType.ReadIndex) requests++;
      send(ms);
    };
    const w = await settle(c, c.group(leader).propose(put('k', 'v')));
    expect(w.status).toBe('fulfilled');
    const written = Number((w as PromiseFulfilledResult<string>).value.split('@')[1]);
    // Five reads, each in a turn of its own, while no message is delivered.
    const reads: Array<Promise<number>> = [];
    for (let i = 0; i < 5; i++) {
      reads.push(g.readIndex());
      await g.settled();
    }
    expect(requests).toBe(1);
    const all = await settle(c, Promise.all(reads));
    expect(all.status).toBe('fulfilled');
    for (const index of (all as PromiseFulfilledResult<number[]>).value) expect(index).toBeGreaterThanOrEqual(written);
    expect(requests).toBe(2);
    expect(c.members.get(follower)!.sm!.kv.get('k')).toBe('v');
  });

  it('a lost ReadIndex request does not hold back the reads queued behind it', async () => {
    const c = await cluster(9);
    const leader = c.leader()!;
    const follower = c.ids().find((id) => id !== leader)!;
    const g = c.group(follower);
    const t = (g as unknown as { transport: { send(ms: readonly Message[]): void } }).transport;
    let dropped = 0;
    const send = t.send.bind(t);
    t.send = (ms) => {
      // The first request is lost on the way.
      send(ms.filter((m) => (m.type === MessageType.ReadIndex && dropped === 0 ? (dropped++, false) : true)));
    };
    const lost = g.readIndex({ timeoutMs: 5000 });
    lost.catch(() => undefined);
    await g.settled();
    expect(dropped).toBe(1);
    // Well within the lost one's timeout: the next request goes after two heartbeat intervals.
    const next = await settle(c, g.readIndex({ timeoutMs: 5000 }), 1000);
    expect(next.status).toBe('fulfilled');
    const r = await settle(c, lost, 10_000);
    expect(r.status).toBe('rejected');
    expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', message: /timed out/ });
  });

  it('the proposals of one turn travel together: one relayed message, one append per follower, split by bytes', async () => {
    const c = await cluster(10);
    const leader = c.leader()!;
    const follower = c.ids().find((id) => id !== leader)!;
    const wrap = (id: number, each: (m: Message) => void) => {
      const t = (c.group(id) as unknown as { transport: { send(ms: readonly Message[]): void } }).transport;
      const send = t.send.bind(t);
      t.send = (ms) => {
        for (const m of ms) each(m);
        send(ms);
      };
    };
    const relayed: number[] = [];
    wrap(follower, (m) => m.type === MessageType.Prop && relayed.push(m.entries.length));
    const appends: number[] = [];
    wrap(leader, (m) => m.type === MessageType.App && m.entries.length > 0 && appends.push(m.entries.length));
    // Ten small proposals in one turn, then three of 400 KiB (over MAX_PROPOSAL_BATCH_BYTES together).
    const small = Array.from({ length: 10 }, (_, i) => c.group(follower).propose(put(`k${i}`, String(i))));
    await c.group(follower).settled();
    const big = 'x'.repeat(400 * 1024);
    const large = Array.from({ length: 3 }, (_, i) => c.group(follower).propose(put(`big${i}`, big)));
    const all = await settle(c, Promise.all([...small, ...large]));
    expect(all.status).toBe('fulfilled');
    expect(relayed).toEqual([10, 2, 1]);
    // The leader appended each relayed message as one, and sent it to each follower in one append.
    expect(appends.filter((n) => n === 10)).toHaveLength(2);
    for (let i = 0; i < 10; i++) expect(c.members.get(follower)!.sm!.kv.get(`k${i}`)).toBe(String(i));
    expect(c.members.get(follower)!.sm!.kv.get('big2')).toBe(big);
    c.check();
  });
});
