/**
 * `proofkv witness`: runs a C2SP tlog-witness (witness/) that follows one or more ProofKV logs.
 *
 * ```
 * proofkv witness --dir ./witness --name witness.example/w1 --port 7080 \
 *   --log-key 'proofkv/ab12…+1f2e3d4c+AX…' [--log-key …] [--quorum 1] [--audit-url http://node:7070]
 * ```
 * Each `--log-key` is a node's note verifier key; keys are grouped into logs by their name (the
 * log's origin), and each log needs `--quorum` of its keys on a checkpoint (default 1). The
 * witness key lives in `<dir>/NODE_KEY` (created on first start, mode 0600), its state in
 * `<dir>/logs/`, evidence of forks in `<dir>/evidence/`. It prints its cosignature verifier key,
 * which nodes (`serve --witness`) and clients (`trust.witnesses`) configure.
 * @module
 */
import type { Command } from 'commander';
import { formatVerifierKey, parseVerifierKey, type VerifierKey } from '../../proofs/note.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import { serveWitness } from '../../witness/http.js';
import { WitnessStore } from '../../witness/state.js';
import { Witness, type FollowedLog } from '../../witness/witness.js';
import { CliError, intOption, run } from './common.js';

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** The logs of `--log-key` flags, grouped by key name, each with `quorum`. */
export function followedLogs(keys: readonly string[], quorum: number): FollowedLog[] {
  const byOrigin = new Map<string, VerifierKey[]>();
  for (const text of keys) {
    let k: VerifierKey;
    try {
      k = parseVerifierKey(text.trim());
    } catch (err) {
      throw new CliError('USAGE', `--log-key ${JSON.stringify(text)}: ${(err as Error).message}`);
    }
    byOrigin.set(k.name, [...(byOrigin.get(k.name) ?? []), k]);
  }
  return [...byOrigin].map(([origin, ks]) => {
    if (quorum > ks.length) throw new CliError('USAGE', `--quorum ${quorum} exceeds the ${ks.length} key(s) of log ${origin}`);
    return { origin, keys: ks, quorum };
  });
}

/** Registers `witness`. */
export function registerWitnessCommand(program: Command): void {
  program
    .command('witness')
    .description('run a C2SP tlog-witness that cosigns checkpoints of ProofKV logs (docs/witness.md)')
    .requiredOption('--name <name>', 'the witness key name (a schema-less URL is recommended)')
    .option('--dir <dir>', 'state directory (key, cosigned heads, evidence)', './witness')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'listen port; 0 picks a free one', '7080')
    .option('--log-key <key>', "a followed log's note verifier key (name+hash+key); repeatable", collect)
    .option('--quorum <n>', 'log keys that must sign a checkpoint', '1')
    .option('--audit-url <url>', 'audit: check the table set behind each head at this node before co-signing (every followed log)')
    .action(
      run(async (o: { name: string; dir: string; host: string; port: string; logKey?: string[]; quorum: string; auditUrl?: string }) => {
        const logs = followedLogs(o.logKey ?? [], intOption(o.quorum, '--quorum', 1) ?? 1).map((l) => (o.auditUrl ? { ...l, auditUrl: o.auditUrl } : l));
        if (logs.length === 0) throw new CliError('USAGE', 'give at least one --log-key');
        const witness = new Witness(new WitnessStore(o.dir), {
          name: o.name,
          key: openNodeKey(o.dir, { logSize: 0 }).key,
          logs,
          onRefusal: (code, message, evidence) => process.stderr.write(`proofkv witness: refused ${code}: ${message}${evidence ? ` (evidence ${evidence})` : ''}\n`),
        });
        const srv = await serveWitness(witness, o.host, intOption(o.port, '--port', 0) ?? 7080, logs.map((l) => l.origin));
        process.stdout.write(
          [`ProofKV witness listening on ${srv.url}`, `  verifier key  ${formatVerifierKey(witness.verifierKey())}`, ...logs.map((l) => `  follows       ${l.origin} (${l.keys.length} key(s), quorum ${l.quorum})`), ''].join('\n'),
        );
        await new Promise<void>((resolve) => {
          const stop = () => void srv.close().then(resolve);
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
      }),
    );
}
