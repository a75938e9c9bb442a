/**
 * A state machine that proposes from inside `apply`, synchronously — as `RaftWritePath`'s session
 * store does when its pending inputs pass `maxPendingSessionBytes` (it proposes a checkpoint).
 * The full-stack simulation found that such a proposal, made during the first turn of a driver
 * loop (a follower's loop kicked by a heartbeat that carries a new commit index, applying entries
 * it had already persisted), started a second driver loop beside the first: the two stepped the
 * same Raft node and the group failed with `raft invariant violated: applied(83) is out of range
 * [prevApplied(86), committed(86)]`. Three members on the simulator; every applied `ping` makes
 * the member propose a `pong` at once; no member may fail and all must apply the same log.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReplicationGroup, type StateMachine } from '../../src/replication/index.js';
import { Simulation } from '../../src/replication/sim/index.js';
import { simTmpRoot } from './sim_cluster.js';

const te = new TextEncoder();
const td = new TextDecoder();

describe('a proposal made synchronously from apply', () => {
  it('is queued for the running loop: no second loop, no group failure, one log everywhere', async () => {
    const sim = new Simulation(7);
    const root = fs.mkdtempSync(path.join(simTmpRoot(), 'proofkv-reentry-'));
    const groups = new Map<number, ReplicationGroup<string>>();
    const logs = new Map<number, string[]>();
    try {
      const peers = [1, 2, 3].map((id) => ({ id, peerUrl: `sim://${id}` }));
      for (const id of [1, 2, 3]) {
        logs.set(id, []);
        const sm: StateMachine<string> = {
          apply: (index, command) => {
            const c = td.decode(command);
            logs.get(id)!.push(`${index}:${c}`);
            // Synchronously, before apply returns (fire and forget, as the session store does).
            if (c.startsWith('ping')) void groups.get(id)?.propose(te.encode(`pong ${c} from ${id}`)).catch(() => undefined);
            return Promise.resolve(c);
          },
          isFatal: () => false,
        };
        const g = await ReplicationGroup.open<string>(path.join(root, `m${id}`), {
          stateMachine: sm, appliedIndex: 0, id, peers, transport: sim.net.transport(id),
          tickMs: 10, electionTick: 10, heartbeatTick: 1, seed: sim.rand.u32(), clock: sim.clock,
        });
        groups.set(id, g);
        sim.members.set(id, g);
      }
      const leader = (): ReplicationGroup<string> | undefined => [...groups.values()].find((g) => g.status().role === 'leader');
      expect(await sim.runUntil(() => leader() !== undefined, 5000)).toBe(true);
      let acked = 0;
      for (let i = 0; i < 20; i++) {
        sim.schedule(5 * i, () => void leader()?.propose(te.encode(`ping ${i}`)).then(() => acked++, () => undefined));
      }
      // 20 pings, each answered by a pong from every member: 80 commands.
      const done = (): boolean => [...groups.values()].every((g) => logs.get(g.status().id)!.filter((l) => l.includes('pong')).length === 60);
      expect(await sim.runUntil(done, 20_000), JSON.stringify([...groups.values()].map((g) => g.status()))).toBe(true);
      expect(acked).toBe(20);
      // Every member can still take a proposal (none failed), and all applied one log.
      const last: string[] = [];
      for (const g of groups.values()) void g.propose(te.encode(`last ${g.status().id}`)).then((o) => last.push(o), (err: Error) => last.push(err.message));
      expect(await sim.runUntil(() => last.length === 3, 5000)).toBe(true);
      expect(last.sort()).toEqual(['last 1', 'last 2', 'last 3']);
      expect(await sim.runUntil(() => new Set([...logs.values()].map((l) => l.join('|'))).size === 1, 5000)).toBe(true);
    } finally {
      for (const g of groups.values()) await g.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);
});
