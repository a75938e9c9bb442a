/**
 * `proofkv cluster add` (addClusterMember): lays out a member to add at runtime — its data
 * directory with the node key the file names — and refuses, changing nothing, an id already in
 * the file or a listener another member has.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addClusterMember, initCluster } from '../../server/cli/cluster.js';
import { CLUSTER_CONFIG_FILE, readClusterConfig } from '../../server/cluster_config.js';
import { openNodeKey } from '../../src/proof/node_key.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('cluster add', () => {
  it('adds a member with its own key and refuses conflicts without changing anything', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-cluster-add-'));
    dirs.push(dir);
    initCluster({ nodes: 3, dir, clientPort: 47001, peerPort: 47101 });
    const added = addClusterMember({ dir, id: 4 });
    const config = readClusterConfig(path.join(dir, CLUSTER_CONFIG_FILE));
    expect(config.members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
    const m4 = config.members[3];
    // Default ports: above the highest port in the file.
    expect(m4.clientUrl).toBe('http://127.0.0.1:47104');
    expect(m4.peerUrl).toBe('http://127.0.0.1:47105');
    // The key in the file is the key of the new data directory.
    expect(Buffer.from(openNodeKey(added.dataDir, { logSize: 0 }).key.publicKey).toString('hex')).toBe(Buffer.from(m4.publicKey).toString('hex'));

    const before = fs.readFileSync(path.join(dir, CLUSTER_CONFIG_FILE), 'utf8');
    expect(() => addClusterMember({ dir, id: 4 })).toThrow(/already/);
    expect(() => addClusterMember({ dir, id: 5, clientPort: 47002, peerPort: 47200 })).toThrow(/listens on/);
    expect(() => addClusterMember({ dir, id: 0 })).toThrow(/--id/);
    expect(fs.readFileSync(path.join(dir, CLUSTER_CONFIG_FILE), 'utf8')).toBe(before);
    expect(fs.existsSync(path.join(dir, 'node5'))).toBe(false);
  });
});
