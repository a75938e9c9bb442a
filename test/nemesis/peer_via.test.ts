/**
 * `--peer-via` is used, by real processes: three members, every peer link i→j through its own
 * proxy (NemesisCluster), and a fourth member added at runtime whose proxies every member was
 * told about at start. Each member's Raft traffic to the leader, and the leader's to every other
 * member (the runtime-added one included: only the group's peer resolution knows it), passes its
 * proxy; the member registry still holds the registered peer URLs; and cutting one member's
 * outbound proxies silences it for the others (so no message went around them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminRequest } from '../../server/cli/cluster.js';
import { readClusterConfig } from '../../server/cluster_config.js';
import { NemesisCluster } from './cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('--peer-via with real processes', () => {
  let c: NemesisCluster;
  beforeAll(async () => {
    c = await NemesisCluster.start({ nodes: 3, spares: 1, seed: 11 });
  }, 120_000);
  afterAll(async () => {
    await c?.close();
  });

  it('routes peer traffic through the override, for initial and runtime-added members', async () => {
    const leader = await c.leader(30_000);
    expect(leader).toBeDefined();
    const added = await c.addMember(60_000);
    expect(added?.done, added?.detail).toBe(true);
    const id = added!.id;
    expect(id).toBe(4);
    const l = (await c.leader(30_000))!;
    // Heartbeats flow every tick: wait (bounded) until each link below carried bytes.
    const links = [...c.members.filter((x) => x !== l).flatMap((x) => [[l, x], [x, l]])];
    for (let i = 0; i < 100 && links.some(([a, b]) => c.proxy(a, b).stats.forwarded === 0); i++) await sleep(100);
    for (const [a, b] of links) expect(c.proxy(a, b).stats.forwarded, `link ${a}>${b}`).toBeGreaterThan(0);

    // The registry keeps the registered URLs, not the proxies'.
    const file = readClusterConfig(`${c.pc.dir}/cluster.json`);
    const list = await adminRequest(c.pc.member(l).url, 'GET', '/v1/cluster/members', undefined);
    for (const m of list.members as Array<{ id: number; peerUrl: string }>) {
      expect(m.peerUrl).toBe(file.members.find((x) => x.id === m.id)!.peerUrl);
    }
  }, 180_000);

  it('a member whose outbound proxies are cut is not heard: the others elect a leader without it', async () => {
    const l = (await c.leader(30_000))!;
    const others = c.members.filter((x) => x !== l);
    c.setLinks([l], others, { kind: 'cut' });
    try {
      let next: number | undefined;
      for (let i = 0; i < 300; i++) {
        const st = await Promise.all(others.map((x) => c.status(x)));
        const leaders = st.filter((s) => s && s.role === 'leader').map((s) => s!.id);
        if (leaders.length > 0) {
          next = leaders[0];
          break;
        }
        await sleep(100);
      }
      expect(next).toBeDefined();
      expect(next).not.toBe(l);
    } finally {
      c.healLinks();
    }
  }, 120_000);
});
