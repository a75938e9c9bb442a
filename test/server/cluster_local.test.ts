/**
 * The quick start's member starter (`scripts/local_cluster.ts`): the `serve` command line of each
 * member points into the layout `cluster init` made, and a member that cannot start is reported
 * with its output, and nothing is left listening.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLUSTER_CONFIG_FILE, CLUSTER_SECRET_FILE } from '../../server/cluster_config.js';
import { initCluster } from '../../server/cli/cluster.js';
import { ephemeralLow, freePortRange, serveArgs, startMembers } from '../../scripts/local_cluster.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('local cluster starter', () => {
  it('gives each member the cluster file, its id, its own data directory and the secret', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-local-'));
    dirs.push(dir);
    const layout = initCluster({ nodes: 3, dir, clientPort: 17201, peerPort: 17301 });
    for (const id of [1, 2, 3]) {
      const a = serveArgs(dir, id);
      const flag = (f: string) => a[a.indexOf(f) + 1];
      expect(a[0]).toBe('serve');
      expect(flag('--cluster')).toBe(path.join(dir, CLUSTER_CONFIG_FILE));
      expect(flag('--node-id')).toBe(String(id));
      expect(flag('--data')).toBe(layout.dataDirs.get(id));
      expect(flag('--cluster-secret-file')).toBe(path.join(dir, CLUSTER_SECRET_FILE));
    }
  });

  it('rejects with the output of a member that exits before it listens, leaving no member listening', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-local-'));
    dirs.push(dir);
    const base = await freePortRange(4);
    const { config } = initCluster({ nodes: 2, dir, clientPort: base, peerPort: base + 2 });
    // A log level serve refuses: every member exits at once, whatever else it supports.
    const err = await startMembers(dir, config, { serveArgs: ['--log-level', 'loud'], startTimeoutMs: 60_000 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/node [12] exited \(code [1-9]\d*\) before it listened/);
    expect(err!.message).toMatch(/loud/);
    // Nothing listens on the members' client ports afterwards.
    for (const port of [base, base + 1]) {
      const open = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      expect(open, `port ${port}`).toBe(false);
    }
  }, 90_000);

  it('finds consecutive free ports', async () => {
    // Twenty draws: every range lies in 10000 .. below the ephemeral range (a restarted member
    // binds its ports again, and an ephemeral port may by then be some outgoing connection's),
    // and every port of it can be listened on.
    for (let i = 0; i < 20; i++) {
      const base = await freePortRange(6);
      expect(base).toBeGreaterThanOrEqual(10000);
      expect(base + 5).toBeLessThan(ephemeralLow());
      for (let p = base; p < base + 6; p++) {
        const bound = await new Promise<boolean>((resolve) => {
          const s = net.createServer();
          s.once('error', () => resolve(false));
          s.listen({ host: '127.0.0.1', port: p, exclusive: true }, () => s.close(() => resolve(true)));
        });
        expect(bound, `port ${p}`).toBe(true);
      }
    }
  });
});
