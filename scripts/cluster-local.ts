/**
 * Three ProofKV nodes on one machine (docs/cluster.md):
 *
 *   npm run cluster:local                       # cluster in .tmp/cluster, ports 7001-7003 / 7101-7103
 *   npm run cluster:local -- --dir /tmp/c --nodes 5 --client-port 8001 --peer-port 8101
 *
 * Creates the cluster with `proofkv cluster init` when the directory holds none (else starts the
 * cluster that is there again, with its data), starts one `proofkv serve --cluster …` process per
 * member, prints the endpoints and the SDK trust set-up (the members' public keys, a majority
 * quorum), and forwards the members' output prefixed with `[node i]`. Ctrl-C (or SIGTERM) stops
 * every member; a member that exits by itself stops the others too.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { toHex } from '../proofs/bytes.js';
import { CLUSTER_CONFIG_FILE, readClusterConfig, type ClusterConfig } from '../server/cluster_config.js';
import { initCluster, majority, sdkSnippet } from '../server/cli/cluster.js';
import { startMembers } from './local_cluster.js';

const { values: o } = parseArgs({
  options: {
    dir: { type: 'string', default: '.tmp/cluster' },
    nodes: { type: 'string', default: '3' },
    host: { type: 'string', default: '127.0.0.1' },
    'client-port': { type: 'string', default: '7001' },
    'peer-port': { type: 'string', default: '7101' },
    'log-level': { type: 'string', default: 'warn' },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  console.log('usage: npm run cluster:local -- [--dir .tmp/cluster] [--nodes 3] [--host 127.0.0.1] [--client-port 7001] [--peer-port 7101] [--log-level warn]');
  process.exit(0);
}

const dir = path.resolve(o.dir!);
let config: ClusterConfig;
try {
  if (fs.existsSync(path.join(dir, CLUSTER_CONFIG_FILE))) {
    config = readClusterConfig(path.join(dir, CLUSTER_CONFIG_FILE));
    console.log(`starting the existing cluster ${config.clusterId} in ${dir}`);
  } else {
    config = initCluster({ nodes: Number(o.nodes), dir, host: o.host, clientPort: Number(o['client-port']), peerPort: Number(o['peer-port']) }).config;
    console.log(`created cluster ${config.clusterId} in ${dir}`);
  }
} catch (err) {
  console.error(`cluster-local: ${(err as Error).message}`);
  process.exit(1);
}

const keys = config.members.map((m) => toHex(m.publicKey));
const endpoints = config.members.map((m) => m.clientUrl).join(',');
const quorum = majority(config.members.length);
console.log(`starting ${config.members.length} members (serve --log-level ${o['log-level']})…`);
let stopping = false;
const cluster = await startMembers(dir, config, {
  serveArgs: ['--log-level', o['log-level']!],
  onOutput: (id, chunk) => {
    for (const line of chunk.split('\n')) if (line.trim() !== '') process.stdout.write(`[node ${id}] ${line}\n`);
  },
}).catch((err: Error) => {
  console.error(`cluster-local: ${err.message}`);
  process.exit(1);
});

console.log(
  [
    '',
    `cluster ${config.clusterId}: ${config.members.length} members, quorum ${quorum}`,
    ...config.members.map((m, i) => `  node ${m.id}  ${cluster.members[i]?.url ?? m.clientUrl}  (peer ${m.peerUrl})  key ${keys[i]}`),
    '',
    'SDK:',
    ...sdkSnippet(config).map((l) => `  ${l}`),
    '',
    'CLI:',
    `  proofkv put greeting hello --endpoint ${endpoints}`,
    `  proofkv get greeting --endpoint ${endpoints} ${keys.map((k) => `--public-key ${k}`).join(' ')} --quorum ${quorum}`,
    '',
    'Ctrl-C stops all members.',
    '',
  ].join('\n'),
);

async function shutdown(why: string, code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`\n${why}: stopping the members…`);
  await cluster.stop();
  console.log('stopped.');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown('interrupted', 0));
process.on('SIGTERM', () => void shutdown('terminated', 0));
for (const m of cluster.members) {
  m.proc.on('exit', (code, signal) => {
    if (!stopping) void shutdown(`node ${m.id} exited (${signal ?? `code ${code}`})`, 1);
  });
}
