/**
 * The scenarios of the MIT 6.5840 Raft lab (3A election, 3B agreement, 3C persistence,
 * 3D snapshots), rewritten over the deterministic simulator. Each runs on a few seeds.
 *
 * Deviation from the lab: a new leader appends an empty entry of its term (Raft thesis §6.4,
 * needed for ReadIndex), so command indexes are not 1, 2, 3…; tests check that indexes
 * increase and that each command lands at the index Start returned.
 */

import { describe, expect, test } from 'vitest';
import { ELECTION_TIMEOUT, LabTester } from './sim/lab.js';

const SEEDS = [1, 2, 3];

function rnd(t: LabTester): string {
  return String(t.c.rand.int(1_000_000_000));
}

describe('3A: leader election', () => {
  test.each(SEEDS)('initial election (seed %i)', (seed) => {
    const t = new LabTester(3, { seed });
    t.checkOneLeader();
    t.sleep(50);
    const term1 = t.checkTerms();
    expect(term1).toBeGreaterThanOrEqual(1);
    // With no failures the term stays put.
    t.sleep(2 * ELECTION_TIMEOUT);
    expect(t.checkTerms()).toBe(term1);
    t.checkOneLeader();
  });

  test.each(SEEDS)('re-election (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    const leader1 = t.checkOneLeader();
    t.disconnect(leader1);
    t.checkOneLeader();
    // The old leader rejoins: it must not disturb the new one.
    t.connect(leader1);
    const leader2 = t.checkOneLeader();
    // No quorum: no leader.
    t.disconnect(leader2);
    t.disconnect((leader2 % n) + 1);
    t.sleep(2 * ELECTION_TIMEOUT);
    t.checkNoLeader();
    t.connect((leader2 % n) + 1);
    t.checkOneLeader();
    t.connect(leader2);
    t.checkOneLeader();
  });

  test.each(SEEDS)('many elections (seed %i)', (seed) => {
    const n = 7;
    const t = new LabTester(n, { seed });
    t.checkOneLeader();
    for (let ii = 0; ii < 10; ii++) {
      const i1 = 1 + t.c.rand.int(n), i2 = 1 + t.c.rand.int(n), i3 = 1 + t.c.rand.int(n);
      t.disconnect(i1); t.disconnect(i2); t.disconnect(i3);
      t.checkOneLeader();
      t.connect(i1); t.connect(i2); t.connect(i3);
    }
    t.checkOneLeader();
  });
});

describe('3B: agreement', () => {
  test.each(SEEDS)('basic agreement (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    let prev = 0;
    for (let i = 1; i <= 3; i++) {
      expect(t.nCommitted(prev + 1).count).toBe(0);
      const index = t.one(String(i * 100), n, false);
      expect(index).toBeGreaterThan(prev);
      expect(t.nCommitted(index)).toEqual({ count: n, cmd: String(i * 100) });
      prev = index;
    }
  });

  test.each(SEEDS)('RPC byte count: each command is sent once per follower (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    t.one('99', n, false);
    const bytes0 = t.c.bytesSent;
    let sent = 0;
    for (let i = 0; i < 10; i++) {
      const cmd = String(i).padStart(5000, 'x');
      t.one(cmd, n, false);
      sent += cmd.length;
    }
    expect(t.c.bytesSent - bytes0).toBe(sent * (n - 1));
  });

  test.each(SEEDS)('follower failure (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    t.one('101', n, false);
    const leader1 = t.checkOneLeader();
    t.disconnect((leader1 % n) + 1);
    t.one('102', n - 1, false);
    t.sleep(ELECTION_TIMEOUT);
    t.one('103', n - 1, false);
    const leader2 = t.checkOneLeader();
    t.disconnect((leader2 % n) + 1);
    t.disconnect(((leader2 + 1) % n) + 1);
    const r = t.start(leader2, '104');
    expect(r.isLeader).toBe(true);
    t.sleep(2 * ELECTION_TIMEOUT);
    expect(t.nCommitted(r.index).count).toBe(0);
  });

  test.each(SEEDS)('leader failure (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    t.one('101', n, false);
    const leader1 = t.checkOneLeader();
    t.disconnect(leader1);
    t.one('102', n - 1, false);
    t.sleep(ELECTION_TIMEOUT);
    t.one('103', n - 1, false);
    const leader2 = t.checkOneLeader();
    t.disconnect(leader2);
    let index = -1;
    for (let i = 1; i <= n; i++) {
      const r = t.start(i, '104');
      if (r.isLeader) index = r.index;
    }
    t.sleep(2 * ELECTION_TIMEOUT);
    if (index !== -1) expect(t.nCommitted(index).count).toBe(0);
    for (const log of t.logs.values()) expect([...log.values()]).not.toContain('104');
  });

  test.each(SEEDS)('agreement after a follower reconnects (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    t.one('101', n, false);
    const leader = t.checkOneLeader();
    t.disconnect((leader % n) + 1);
    for (const c of ['102', '103', '104', '105']) t.one(c, n - 1, false);
    t.sleep(ELECTION_TIMEOUT);
    t.one('106', n - 1, false);
    t.connect((leader % n) + 1);
    t.one('107', n, true);
    t.sleep(ELECTION_TIMEOUT);
    t.one('108', n, true);
  });

  test.each(SEEDS)('no agreement without a majority (seed %i)', (seed) => {
    const n = 5;
    const t = new LabTester(n, { seed });
    t.one('10', n, false);
    const leader = t.checkOneLeader();
    for (const d of [1, 2, 3]) t.disconnect(((leader + d - 1) % n) + 1);
    const r = t.start(leader, '20');
    expect(r.isLeader).toBe(true);
    t.sleep(2 * ELECTION_TIMEOUT);
    expect(t.nCommitted(r.index).count).toBe(0);
    for (const d of [1, 2, 3]) t.connect(((leader + d - 1) % n) + 1);
    const leader2 = t.checkOneLeader();
    const r2 = t.start(leader2, '30');
    expect(r2.isLeader).toBe(true);
    t.one('1000', n, true);
  });

  test.each(SEEDS)('concurrent starts (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    let ok = false;
    for (let attempt = 0; attempt < 5 && !ok; attempt++) {
      const leader = t.checkOneLeader();
      const r = t.start(leader, '1');
      if (!r.isLeader) continue;
      const indexes: number[] = [];
      for (let i = 0; i < 5; i++) {
        const ri = t.start(leader, String(100 + i));
        if (ri.term !== r.term || !ri.isLeader) break;
        indexes.push(ri.index);
      }
      if (indexes.length < 5) continue;
      const cmds = indexes.map((ix) => t.wait(ix, n, r.term));
      if (cmds.some((c) => c === undefined)) continue;
      expect(cmds.sort()).toEqual(['100', '101', '102', '103', '104']);
      ok = true;
    }
    expect(ok).toBe(true);
  });

  test.each(SEEDS)('rejoin of a partitioned leader (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    t.one('101', n, true);
    const leader1 = t.checkOneLeader();
    t.disconnect(leader1);
    // The old leader tries to agree on some entries it can never commit.
    t.start(leader1, '102'); t.start(leader1, '103'); t.start(leader1, '104');
    t.one('103', 2, true);
    const leader2 = t.checkOneLeader();
    t.disconnect(leader2);
    t.connect(leader1);
    t.one('104', 2, true);
    t.connect(leader2);
    t.one('105', n, true);
  });

  test.each(SEEDS)('backup: leader backs up quickly over incorrect follower logs (seed %i)', (seed) => {
    const n = 5;
    const t = new LabTester(n, { seed });
    t.one(rnd(t), n, true);
    // Put the leader and one follower in a partition.
    const leader1 = t.checkOneLeader();
    const f = (k: number): number => ((leader1 + k - 1) % n) + 1;
    t.disconnect(f(2)); t.disconnect(f(3)); t.disconnect(f(4));
    // Lots of commands that won't commit.
    for (let i = 0; i < 50; i++) t.start(leader1, rnd(t));
    t.sleep(ELECTION_TIMEOUT / 2);
    t.disconnect(leader1); t.disconnect(f(1));
    // Allow the other partition to recover and commit lots of commands.
    t.connect(f(2)); t.connect(f(3)); t.connect(f(4));
    for (let i = 0; i < 50; i++) t.one(rnd(t), 3, true);
    // Now another partitioned leader and one follower.
    const leader2 = t.checkOneLeader();
    let other = f(2);
    if (leader2 === other) other = f(3);
    t.disconnect(other);
    for (let i = 0; i < 50; i++) t.start(leader2, rnd(t));
    t.sleep(ELECTION_TIMEOUT / 2);
    // Bring the original leader back to life.
    for (let i = 1; i <= n; i++) t.disconnect(i);
    t.connect(leader1); t.connect(f(1)); t.connect(other);
    for (let i = 0; i < 50; i++) t.one(rnd(t), 3, true);
    for (let i = 1; i <= n; i++) t.connect(i);
    const msgs0 = t.rpcTotal();
    t.one(rnd(t), n, true);
    // Fast backtracking: catching up two long divergent suffixes takes few round trips.
    expect(t.rpcTotal() - msgs0).toBeLessThan(200);
  });

  test.each(SEEDS)('RPC counts are not too high (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    const leader = t.checkOneLeader();
    // checkOneLeader sleeps ~0.5 s: pre-vote + vote + ~10 heartbeat rounds.
    expect(t.rpcTotal()).toBeLessThan(40);
    const total1 = t.rpcTotal();
    const iters = 10;
    const r = t.start(leader, '1');
    expect(r.isLeader).toBe(true);
    const idx: number[] = [];
    for (let i = 1; i < iters + 2; i++) {
      const ri = t.start(leader, String(i + 1));
      expect(ri.term).toBe(r.term);
      idx.push(ri.index);
    }
    for (const ix of idx) expect(t.wait(ix, n, r.term)).toBeDefined();
    expect(t.rpcTotal() - total1).toBeLessThanOrEqual((iters + 1 + 3) * 3);
    const total2 = t.rpcTotal();
    t.sleep(ELECTION_TIMEOUT);
    // Idle: heartbeats only (10/s per follower).
    expect(t.rpcTotal() - total2).toBeLessThanOrEqual(3 * 20);
  });
});

describe('3C: persistence', () => {
  test.each(SEEDS)('basic persistence (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    t.one('11', n, true);
    for (let i = 1; i <= n; i++) t.crash1(i);
    for (let i = 1; i <= n; i++) t.start1(i);
    t.one('12', n, true);
    const leader1 = t.checkOneLeader();
    t.crash1(leader1); t.start1(leader1);
    t.one('13', n, true);
    const leader2 = t.checkOneLeader();
    t.crash1(leader2);
    t.one('14', n - 1, true);
    t.start1(leader2);
    const index = t.one('15', n - 1, true);
    t.wait(index, n, -1);
    const i3 = (t.checkOneLeader() % n) + 1;
    t.crash1(i3);
    t.one('16', n - 1, true);
    t.start1(i3);
    t.one('17', n, true);
  });

  test.each(SEEDS)('more persistence (seed %i)', (seed) => {
    const n = 5;
    const t = new LabTester(n, { seed });
    let index = 1;
    for (let iters = 0; iters < 5; iters++) {
      t.one(String(10 + index++), n, true);
      const leader1 = t.checkOneLeader();
      const f = (k: number): number => ((leader1 + k - 1) % n) + 1;
      t.disconnect(f(1)); t.disconnect(f(2));
      t.one(String(10 + index++), n - 2, true);
      t.disconnect(leader1); t.disconnect(f(3)); t.disconnect(f(4));
      t.crash1(leader1); t.crash1(f(3)); t.crash1(f(4));
      for (const x of [f(1), f(2)]) { t.crash1(x); t.start1(x); t.connect(x); }
      t.sleep(ELECTION_TIMEOUT);
      t.start1(f(3)); t.connect(f(3));
      t.one(String(10 + index++), n - 2, true);
      t.start1(f(4)); t.connect(f(4));
      t.start1(leader1); t.connect(leader1);
    }
    t.one('1000', n, true);
  });

  test.each(SEEDS)('partitioned leader and one follower crash, leader restarts (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed });
    t.one('101', 3, true);
    const leader = t.checkOneLeader();
    t.disconnect((leader + 1) % n + 1);
    t.one('102', 2, true);
    t.crash1(leader % n + 1);
    t.crash1((leader + 1) % n + 1);
    t.connect((leader + 1) % n + 1);
    t.start1((leader + 1) % n + 1);
    t.start1(leader % n + 1);
    t.one('103', 2, true);
    t.start1(leader % n + 1);
    t.one('104', n, true);
  });

  function figure8(seed: number, unreliable: boolean, iterations: number): void {
    const n = 5;
    const t = new LabTester(n, { seed, unreliable, tickMs: 30 });
    let failures = 0;
    t.one(rnd(t), 1, true);
    let nup = n;
    for (let iters = 0; iters < iterations; iters++) {
      if (unreliable && iters === 200) t.setLongReordering(true);
      let leader = -1;
      for (let i = 1; i <= n; i++) {
        if (t.start(i, rnd(t)).isLeader && (unreliable ? t.isConnected(i) : t.c.get(i).up)) leader = i;
      }
      if (t.c.rand.int(1000) < 100) t.sleep(t.c.rand.int(ELECTION_TIMEOUT / 2));
      else t.sleep(t.c.rand.int(13));
      if (leader !== -1 && (unreliable ? t.c.rand.int(1000) < ELECTION_TIMEOUT / 2 : true)) {
        if (unreliable) t.disconnect(leader);
        else t.crash1(leader);
        nup--;
        failures++;
      }
      if (nup < 3) {
        const s = 1 + t.c.rand.int(n);
        if (unreliable ? !t.isConnected(s) : !t.c.get(s).up) {
          if (unreliable) t.connect(s);
          else t.start1(s);
          nup++;
        }
      }
    }
    for (let i = 1; i <= n; i++) {
      if (unreliable) t.connect(i);
      else if (!t.c.get(i).up) t.start1(i);
    }
    if (unreliable) t.setLongReordering(false);
    t.setUnreliable(false);
    t.one(rnd(t), n, true);
    t.c.checkConverged();
    // The scenario really churned leaders.
    expect(failures).toBeGreaterThanOrEqual(5);
  }

  test.each(SEEDS)('Figure 8 (seed %i)', (seed) => figure8(seed, false, 1000));
  test.each(SEEDS)('Figure 8 unreliable (seed %i)', (seed) => figure8(seed, true, 1000));

  test.each(SEEDS)('unreliable agreement (seed %i)', (seed) => {
    const n = 5;
    const t = new LabTester(n, { seed, unreliable: true });
    for (let iters = 1; iters < 50; iters++) {
      for (let j = 0; j < 4; j++) t.one(String(100 * iters + j), 1, true);
      t.one(String(iters), 1, true);
    }
    t.setUnreliable(false);
    t.one('100', n, true);
  });

  function churn(seed: number, unreliable: boolean): void {
    const n = 5;
    const t = new LabTester(n, { seed, unreliable });
    const committed: Array<{ index: number; cmd: string }> = [];
    for (let iters = 0; iters < 20; iters++) {
      const act = t.c.rand.int(1000);
      const i = 1 + t.c.rand.int(n);
      if (act < 200) t.disconnect(i);
      else if (act < 500) { if (!t.c.get(i).up) t.start1(i); t.connect(i); }
      else if (act < 700) t.crash1(i);
      // Clients: keep proposing at whoever leads while the churn goes on.
      for (let c = 0; c < 7; c++) {
        for (let j = 1; j <= n; j++) {
          const cmd = rnd(t);
          const r = t.start(j, cmd);
          if (r.isLeader) committed.push({ index: r.index, cmd });
        }
        t.sleep(ELECTION_TIMEOUT / 10);
      }
    }
    t.sleep(ELECTION_TIMEOUT);
    t.setUnreliable(false);
    for (let i = 1; i <= n; i++) { if (!t.c.get(i).up) t.start1(i); t.connect(i); }
    const last = t.one(rnd(t), n, true);
    // Every proposal either committed at its index everywhere or was overwritten; the logs agree.
    let agreed = 0;
    for (const { index, cmd } of committed) {
      if (index > last) continue;
      const { cmd: got } = t.nCommitted(index);
      if (got === cmd) agreed++;
    }
    expect(agreed).toBeGreaterThan(0);
    t.c.checkConverged();
  }
  test.each(SEEDS)('reliable churn (seed %i)', (seed) => churn(seed, false));
  test.each(SEEDS)('unreliable churn (seed %i)', (seed) => churn(seed, true));
});

describe('3D: snapshots', () => {
  function snapcommon(seed: number, disconnect: boolean, reliable: boolean, crash: boolean): void {
    const iters = 12;
    const n = 3;
    const t = new LabTester(n, { seed, snapshot: true, unreliable: !reliable });
    t.one(rnd(t), n, true);
    let leader1 = t.checkOneLeader();
    const snaps0 = t.c.sent.get('MsgSnap') ?? 0;
    for (let i = 0; i < iters; i++) {
      let victim = (leader1 % n) + 1;
      let sender = leader1;
      if (i % 3 === 1) { sender = (leader1 % n) + 1; victim = leader1; }
      if (disconnect) { t.disconnect(victim); t.one(rnd(t), n - 1, true); }
      if (crash) { t.crash1(victim); t.one(rnd(t), n - 1, true); }
      // Send enough to force a snapshot (the lab's SnapShotInterval is 10).
      const nn = 10 + 1;
      for (let j = 0; j < nn; j++) t.start(sender, rnd(t));
      t.one(rnd(t), n - 1, true);
      expect(t.maxLogSize()).toBeLessThanOrEqual(40);
      if (disconnect) { t.connect(victim); t.one(rnd(t), n, true); leader1 = t.checkOneLeader(); }
      if (crash) { t.start1(victim); t.connect(victim); t.one(rnd(t), n, true); leader1 = t.checkOneLeader(); }
    }
    if (disconnect || crash) expect(t.c.sent.get('MsgSnap') ?? 0).toBeGreaterThan(snaps0);
    t.c.checkConverged();
  }

  test.each(SEEDS)('snapshots basic (seed %i)', (seed) => snapcommon(seed, false, true, false));
  test.each(SEEDS)('install snapshots, disconnect (seed %i)', (seed) => snapcommon(seed, true, true, false));
  test.each(SEEDS)('install snapshots, disconnect, unreliable (seed %i)', (seed) => snapcommon(seed, true, false, false));
  test.each(SEEDS)('install snapshots, crash (seed %i)', (seed) => snapcommon(seed, false, true, true));
  test.each(SEEDS)('install snapshots, unreliable crash (seed %i)', (seed) => snapcommon(seed, false, false, true));

  test.each(SEEDS)('crash and restart all servers (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed, snapshot: true });
    t.one(rnd(t), n, true);
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 11; j++) t.one(rnd(t), n, true);
      const index1 = t.one(rnd(t), n, true);
      for (let k = 1; k <= n; k++) t.crash1(k);
      for (let k = 1; k <= n; k++) { t.start1(k); t.connect(k); }
      const index2 = t.one(rnd(t), n, true);
      expect(index2).toBeGreaterThan(index1);
    }
  });

  test.each(SEEDS)('snapshot initialization after crash (seed %i)', (seed) => {
    const n = 3;
    const t = new LabTester(n, { seed, snapshot: true });
    t.one(rnd(t), n, true);
    for (let i = 0; i < 11; i++) t.one(rnd(t), n, true);
    // Crash and restart all: each must come up from its snapshot without re-applying.
    for (let k = 1; k <= n; k++) t.crash1(k);
    for (let k = 1; k <= n; k++) { t.start1(k); t.connect(k); }
    t.one(rnd(t), n, true);
    for (let k = 1; k <= n; k++) t.crash1(k);
    for (let k = 1; k <= n; k++) { t.start1(k); t.connect(k); }
    t.one(rnd(t), n, true);
    t.c.checkConverged();
  });
});
