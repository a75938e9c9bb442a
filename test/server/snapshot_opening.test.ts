/**
 * The snapshot wiring while a Raft group opens (issue 10, item 4): checkpoint and cosign entries
 * applied again from the log at open (`RaftSnapshots.afterApply` without a `record`: the group is
 * not open yet) are not recorded and say so once (`deferred`), not as a `skipped` warning per
 * replayed entry; once open, a certified checkpoint is recorded, and a recording that fails is
 * still reported as `skipped` (the real case the node warns about).
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { ProofDB } from '../../src/index.js';
import { SessionStore } from '../../src/replication/index.js';
import { RaftSnapshots, type SnapshotEvent } from '../../server/raft_snapshot.js';
import { tmpDir } from './harness.js';

const te = new TextEncoder();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('RaftSnapshots while the group opens', () => {
  it('reports replayed checkpoints once as deferred, never as skipped; records once open; a failed recording is skipped', async () => {
    const dir = path.join(tmpDir(), 'data');
    const db = await ProofDB.open(dir, { compactionThread: 'inline', writeAheadLog: 'external' });
    cleanups.push(() => db.close());
    const sessions = await SessionStore.open(path.join(dir, 'raft', 'sessions'), { durableIndex: 0, maxBytes: 1 << 20 });
    cleanups.push(() => sessions.close());
    const events: SnapshotEvent[] = [];
    const snaps = new RaftSnapshots(db, sessions, { trust: () => ({ publicKeys: [db.publicKey()], quorum: 1 }), maxSessionBytes: 1 << 20, onEvent: (e) => events.push(e) });
    // Log: put at 1, checkpoint at 2, put at 3, checkpoint at 4, each applied while the group opens.
    let index = 0;
    const recorded: number[] = [];
    for (let i = 0; i < 2; i++) {
      await db.put(`k${i}`, te.encode(`v${i}`), { logIndex: ++index, time: 1_000 + index });
      await db.checkpoint({ logIndex: ++index, time: 1_000 + index });
      snaps.afterApply(index, { type: 'checkpoint', time: 1_000 + index }, undefined);
      snaps.afterApply(index, { type: 'cosign', size: i + 1, nodeId: 1, root: new Uint8Array(32), signature: new Uint8Array(64) } as never, undefined);
    }
    expect(events).toEqual([{ type: 'deferred', index: 2 }]);
    expect(snaps.stats()).toMatchObject({ recorded: 0, index: 0 });
    // Open: the next checkpoint is recorded (its session table captured as of its index).
    await db.put('k2', te.encode('v2'), { logIndex: ++index, time: 1_000 + index });
    await db.checkpoint({ logIndex: ++index, time: 1_000 + index });
    snaps.afterApply(index, { type: 'checkpoint', time: 1_000 + index }, async (i) => void recorded.push(i));
    await expect.poll(() => snaps.stats().recorded, { timeout: 10_000 }).toBe(1);
    expect(recorded).toEqual([index]);
    // A recording that fails is the real case: reported as skipped.
    await db.put('k3', te.encode('v3'), { logIndex: ++index, time: 1_000 + index });
    await db.checkpoint({ logIndex: ++index, time: 1_000 + index });
    snaps.afterApply(index, { type: 'checkpoint', time: 1_000 + index }, () => Promise.reject(new Error('disk full')));
    await expect.poll(() => events.filter((e) => e.type === 'skipped').length, { timeout: 10_000 }).toBe(1);
    expect(events.filter((e) => e.type === 'skipped')).toEqual([{ type: 'skipped', index, message: 'not recorded: disk full' }]);
    expect(events.filter((e) => e.type === 'deferred')).toHaveLength(1);
  });
});
