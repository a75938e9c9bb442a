/**
 * An old `cluster.json` without `initialSignerSet` (issue 10, item 4): the set a joiner trusts is
 * then a guess (`initialSignerSetOf` marks it), and `proofkv cluster initial-set` fills the field
 * from checkpoint 0 as a member shows it, verified (`verifiedInitialSignerSet`): its certificate,
 * its set, and keys the file already lists. On a hand-made log with real Ed25519 keys, and the
 * command's core against a member that answers the set-changes route.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { toBase64Url } from '../../client-sdk/bytes.js';
import { toHex } from '../../proofs/bytes.js';
import type { SetChange } from '../../proofs/set_changes.js';
import { signerSetHash } from '../../proofs/signer_set.js';
import { fillInitialSignerSet, verifiedInitialSignerSet } from '../../server/cli/cluster.js';
import { formatClusterConfig, initialSignerSetOf, readClusterConfig, type ClusterConfig } from '../../server/cluster_config.js';
import { GuessedInitialSignerSet } from '../../src/replication/snapshot.js';
import { A, keys, Log, set, X } from '../proofs/set_change_log.js';
import { thrownCode } from '../support/thrown_code.js';

/** A cluster file listing `ids` with the test keys (another key for the ids in `otherKey`). */
function config(ids: number[], otherKey: number[] = [], initial?: Uint8Array): ClusterConfig {
  return {
    clusterId: 'pk-test',
    members: ids.map((id) => ({ id, clientUrl: `http://127.0.0.1:${7000 + id}`, peerUrl: `http://127.0.0.1:${7100 + id}`, publicKey: keys[otherKey.includes(id) ? 9 - id : id].publicKey })),
    ...(initial ? { initialSignerSet: initial } : {}),
  };
}

const codeOf = thrownCode;

// Checkpoint 0 commits to A = {1, 2, 3} (quorum 2), signed by 1 and 2; then B at checkpoint 3.
const honest = () => new Log().add(A, [1, 2], 3).add(set(2, [2, 3, 4]), [2, 3, 4], 2);

describe('initialSignerSetOf: the field, or a marked guess', () => {
  it('marks the guess made from a file without the field; the field itself is not a guess', () => {
    const old = config([1, 2, 3, 4]);
    const g = initialSignerSetOf(old, 4);
    expect(g).toBeInstanceOf(GuessedInitialSignerSet);
    expect((g as GuessedInitialSignerSet).memberIds).toEqual([1, 2, 3]);
    expect(toHex(g)).toBe(toHex(signerSetHash(A)));
    const filled = initialSignerSetOf(config([1, 2, 3, 4], [], signerSetHash(A)), 4);
    expect(filled).not.toBeInstanceOf(GuessedInitialSignerSet);
    expect(toHex(filled)).toBe(toHex(signerSetHash(A)));
  });
});

describe('verifiedInitialSignerSet: checkpoint 0 as a member shows it', () => {
  it('takes the honest checkpoint 0 of a file that lists its members (and others)', () => {
    expect(toHex(verifiedInitialSignerSet(config([1, 2, 3, 4, 5]), honest().change(0)))).toBe(toHex(signerSetHash(A)));
  });

  it('refuses another checkpoint, a certificate short of a quorum, a tampered set or head, keys the file does not list, and none', () => {
    const l = honest();
    const c0 = l.change(0);
    const bad = (c: SetChange | undefined, cfg = config([1, 2, 3, 4, 5])) => codeOf(() => verifiedInitialSignerSet(cfg, c));
    expect(bad(l.change(3))).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
    expect(bad({ ...c0, signatures: c0.signatures.slice(0, 1) })).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
    expect(bad({ ...c0, signers: X })).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
    expect(bad({ ...c0, inclusion: [new Uint8Array(32)] })).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
    // A made-up log whose checkpoint 0 commits to X = {7, 8}, certified by X itself: the file does not list those keys.
    expect(bad(new Log().add(X, [7, 8], 1).change(0))).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
    expect(bad(c0, config([1, 2, 4]))).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
    expect(bad(c0, config([1, 2, 3], [3]))).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
    expect(bad(undefined)).toBe('CLUSTER_INITIAL_SET_UNVERIFIED');
  });
});

describe('fillInitialSignerSet (proofkv cluster initial-set)', () => {
  const servers: http.Server[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  /** A member's client listener that lists `changes` on the set-changes route, in its wire form. */
  async function member(changes: SetChange[]): Promise<{ url: string; paths: string[] }> {
    const b = toBase64Url;
    const wire = (c: SetChange) => ({
      checkpoint: { index: c.checkpoint.index, seq: c.checkpoint.seq, masterRoot: b(c.checkpoint.masterRoot), time: c.checkpoint.time, signerSetHash: b(c.checkpoint.signerSetHash!), ...(c.checkpoint.prevCheckpointHash ? { prevCheckpointHash: b(c.checkpoint.prevCheckpointHash) } : {}) },
      head: { size: c.head.size, root: b(c.head.root) },
      signatures: c.signatures.map((s) => ({ publicKey: b(s.publicKey), signature: b(s.signature) })),
      inclusion: c.inclusion.map(b),
      signers: { quorum: c.signers.quorum, members: c.signers.members.map((m) => ({ id: m.id, publicKey: b(m.publicKey) })) },
      consistency: c.consistency.map(b),
    });
    const paths: string[] = [];
    const server = http.createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ from: 0, size: 5, changes: changes.map(wire) }));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths };
  }

  function clusterDir(cfg: ClusterConfig): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-initial-set-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'cluster.json'), formatClusterConfig(cfg));
    return dir;
  }

  it('fills the field of an old file from the verified checkpoint 0, once; refuses a conflict and a forged set, changing nothing', async () => {
    const m = await member(honest().list());
    const dir = clusterDir(config([1, 2, 3, 4, 5]));
    const r = await fillInitialSignerSet({ dir, endpoint: m.url });
    expect(r.changed).toBe(true);
    expect(m.paths[0]).toBe('/v1/checkpoints/set-changes?from=0&limit=1');
    const after = readClusterConfig(path.join(dir, 'cluster.json'));
    expect(toHex(after.initialSignerSet!)).toBe(toHex(signerSetHash(A)));
    expect(initialSignerSetOf(after, 5)).not.toBeInstanceOf(GuessedInitialSignerSet);
    expect((await fillInitialSignerSet({ dir, endpoint: m.url })).changed).toBe(false);

    const other = clusterDir(config([1, 2, 3, 4, 5], [], signerSetHash(set(3, [1, 2, 3, 4]))));
    const before = fs.readFileSync(path.join(other, 'cluster.json'), 'utf8');
    await expect(fillInitialSignerSet({ dir: other, endpoint: m.url })).rejects.toMatchObject({ code: 'CLUSTER_INITIAL_SET_CONFLICT' });
    expect(fs.readFileSync(path.join(other, 'cluster.json'), 'utf8')).toBe(before);

    const forged = await member(new Log().add(X, [7, 8], 2).list());
    const old = clusterDir(config([1, 2, 3, 4, 5]));
    const oldText = fs.readFileSync(path.join(old, 'cluster.json'), 'utf8');
    await expect(fillInitialSignerSet({ dir: old, endpoint: forged.url })).rejects.toMatchObject({ code: 'CLUSTER_INITIAL_SET_UNVERIFIED' });
    expect(fs.readFileSync(path.join(old, 'cluster.json'), 'utf8')).toBe(oldText);
  });
});
