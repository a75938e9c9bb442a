/**
 * Proof commands: `proof` (fetch and save a proof bundle), `verify` (check a saved bundle offline)
 * and `checkpoint` (verify and trust the latest checkpoint, or create one).
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { fromHex, toHex } from '../../proofs/bytes.js';
import { fromBase64Url, getProofBundle, historyProofBundle, verifyProofBundle } from '../../client-sdk/index.js';
import type { LogHead } from '../../proofs/checkpoint.js';
import {
  CliError,
  clientOf,
  entryJson,
  headJson,
  intOption,
  keyArg,
  print,
  readStates,
  run,
  show,
  stateFile,
  table,
  trustOf,
  versionOption,
  withCommon,
  writeFileAtomic,
  type CommonOptions,
} from './common.js';

/** Registers `proof`, `verify` and `checkpoint`. */
export function registerProofCommands(program: Command): void {
  withCommon(program.command('proof <key>').description('fetch a get (or --history) proof; save it with --out or print it'))
    .option('--version <n>', 'get proof at or below this version')
    .option('--history', 'a history proof instead')
    .option('--min <n>', 'history: lowest version')
    .option('--max <n>', 'history: highest version')
    .option('--limit <n>', 'history: most entries (server maximum 1000)')
    .option('--out <file>', 'write the proof bundle (JSON) to this file')
    .option('--no-edges', 'fetch the proof without edge proofs (docs/proofs.md §8.12); the bundle says so')
    .action(
      run(async (key: string, o: CommonOptions & { version?: string; history?: boolean; min?: string; max?: string; limit?: string; out?: string; edges: boolean }) => {
        const k = keyArg(key, o.keyEncoding);
        const edges = o.edges;
        const c = clientOf(o);
        const endpoint = c.transport.preferred;
        let bundle;
        if (o.history) {
          const minVersion = versionOption(o.min, '--min');
          const maxVersion = versionOption(o.max, '--max');
          const limit = intOption(o.limit, '--limit', 1) ?? 1000;
          const r = await c.historyProof(k, { minVersion, maxVersion, limit, edges });
          bundle = historyProofBundle(k, r.proof, { minVersion, maxVersion, limit, edges, endpoint });
        } else {
          const version = versionOption(o.version, '--version', 0);
          const r = await c.getProof(k, { version, edges });
          bundle = getProofBundle(k, r.proof, { version, edges, endpoint });
        }
        const text = `${JSON.stringify(bundle, null, 2)}\n`;
        if (o.out === undefined) {
          process.stdout.write(text);
          return;
        }
        await writeFileAtomic(o.out, text);
        const size = fromBase64Url(bundle.proof).length;
        print(o, { file: o.out, type: bundle.type, proofBytes: size, edges }, [`wrote ${bundle.type} proof (${size} B, ${edges ? 'with' : 'without'} edge proofs) to ${o.out}`]);
      }),
    );

  withCommon(program.command('verify <file>').description('check a saved proof offline against --public-key or the trusted state'))
    .option('--require-edges', 'refuse a bundle made without edge proofs (docs/proofs.md §8.12)')
    .action(
      run(async (file: string, o: CommonOptions & { requireEdges?: boolean }) => {
        let bundle: unknown;
        try {
          bundle = JSON.parse(await readFile(file, 'utf8'));
        } catch (err) {
          throw new CliError('USAGE', `cannot read proof bundle ${file}: ${(err as Error).message}`);
        }
        if (o.requireEdges && (typeof bundle !== 'object' || bundle === null || (bundle as { edges?: unknown }).edges !== true)) {
          throw new CliError('EDGES_REQUIRED', `${file} was made without edge proofs (no "edges": true) and --require-edges is set; fetch it again with proofkv proof`);
        }
        const candidates: Array<{ policy: { publicKeys: Uint8Array[]; quorum: number }; head?: LogHead; source: string }> = [];
        const trust = trustOf(o);
        if (!('tofu' in trust)) candidates.push({ policy: { publicKeys: trust.publicKeys as Uint8Array[], quorum: trust.quorum }, source: '--public-key' });
        else {
          for (const [id, s] of Object.entries(await readStates(stateFile(o)))) {
            candidates.push({
              policy: { publicKeys: s.publicKeys.map(fromHex), quorum: s.quorum },
              head: s.head ? { size: s.head.size, root: fromHex(s.head.root) } : undefined,
              source: `trusted state ${id}`,
            });
          }
          if (candidates.length === 0) throw new CliError('USAGE', `no --public-key and no trusted state in ${stateFile(o)}`);
        }
        let last: unknown;
        for (const cand of candidates) {
          try {
            const f = verifyProofBundle(bundle, cand.policy, cand.head);
            const key = (bundle as { key: string }).key;
            const facts =
              f.type === 'get'
                ? { entry: f.entry ? entryJson(f.entry) : null }
                : { entries: f.entries.map((e) => entryJson(e)), bound: f.bound, ...(f.nextMinVersion !== undefined ? { nextMinVersion: f.nextMinVersion } : {}) };
            const what =
              f.type === 'get'
                ? f.entry
                  ? `${f.entry.kind === 'delete' ? 'deleted' : show(f.entry.value, o.valueEncoding)} at version ${f.entry.version} (seq ${f.entry.seq})`
                  : 'absent'
                : `${f.entries.length} version(s) up to ${f.bound}, complete`;
            print(
              o,
              { valid: true, type: f.type, key, ...facts, checkpoint: { index: f.checkpoint.index, seq: f.checkpoint.seq }, head: headJson(f.head), trust: cand.source, relation: f.relation, edges: f.edges },
              [
                `valid ${f.type} proof: ${show(fromBase64Url(key), o.keyEncoding)} ${what}`,
                `checkpoint ${f.checkpoint.index} (seq ${f.checkpoint.seq}), log size ${f.head.size}, trusted by ${cand.source}` +
                  (f.relation === 'none' ? '' : f.relation === 'same' ? '; the trusted head itself' : `; ${f.relation} than the trusted head`),
                f.edges ? 'edge proofs checked' : 'edge proofs NOT checked (the bundle was made without them; a shrunk table range would go unnoticed, docs/proofs.md §8.12)',
              ],
            );
            return;
          } catch (err) {
            last = err;
          }
        }
        throw last;
      }),
    );

  withCommon(program.command('checkpoint').description('fetch, verify and trust the latest checkpoint (or --create one)'))
    .option('--create', 'ask the server to checkpoint now (admin token)')
    .action(
      run(async (o: CommonOptions & { create?: boolean }) => {
        const c = clientOf(o);
        const r = o.create ? await c.createCheckpoint() : await c.checkpoint();
        print(
          o,
          {
            checkpoint: { index: r.checkpoint.index, seq: r.checkpoint.seq, masterRoot: toHex(r.checkpoint.masterRoot) },
            head: headJson(r.head),
            previous: r.previous ? headJson(r.previous) : null,
            signers: r.signers.map(toHex),
          },
          table([
            ['checkpoint', `${r.checkpoint.index} (seq ${r.checkpoint.seq})`],
            ['masterRoot', toHex(r.checkpoint.masterRoot)],
            ['log head', `size ${r.head.size}, root ${toHex(r.head.root)}`],
            ['extends', r.previous ? `trusted size ${r.previous.size} (consistency verified)` : 'nothing (first trusted head)'],
            ['signers', r.signers.map(toHex).join(', ')],
          ]),
        );
      }),
    );
}
