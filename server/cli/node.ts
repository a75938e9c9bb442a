/**
 * Node and trust commands: `status` (the node's identity, role, leader, last checkpoint, and the
 * local trusted state for it) and `trust show|reset` (the trusted-state file, by default
 * `~/.proofkv/trust.json`, where trust on first use pins a node's key).
 * @module
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { toHex } from '../../proofs/bytes.js';
import { fromBase64Url, type TrustedState } from '../../client-sdk/index.js';
import { CliError, clientOf, endpointsOf, print, readStates, run, stateFile, table, withCommon, writeFileAtomic, type CommonOptions } from './common.js';

/** The trusted state of the options' identity, with its id and file. */
async function trustStateOf(o: CommonOptions): Promise<{ id: string; file: string; state?: TrustedState }> {
  const id = clientOf(o).trust.id;
  const file = stateFile(o);
  return { id, file, state: (await readStates(file))[id] };
}

function stateJson(s: TrustedState | undefined): Record<string, unknown> | null {
  if (!s) return null;
  return { publicKeys: s.publicKeys, quorum: s.quorum, tofu: s.tofu === true, head: s.head ?? null, checkpoint: s.checkpoint ?? null, updatedAt: s.updatedAt ?? null };
}

function stateLines(id: string, s: TrustedState): Array<[string, string]> {
  return [
    ['identity', id],
    ['  keys', `${s.publicKeys.join(', ')} (quorum ${s.quorum}${s.tofu ? ', pinned on first use' : ''})`],
    ['  head', s.head ? `size ${s.head.size}, root ${s.head.root}` : 'none yet'],
    ['  updated', s.updatedAt ?? 'unknown'],
  ];
}

function registerStatus(program: Command): void {
  withCommon(program.command('status').description("the node's identity, role, leader and last checkpoint, and the local trusted state for it")).action(
    run(async (o: CommonOptions) => {
      const c = clientOf(o);
      const st = await c.status();
      const endpoint = c.transport.preferred;
      const pkText = typeof st.publicKey === 'string' ? st.publicKey : undefined;
      let pkHex: string | undefined;
      try {
        pkHex = pkText === undefined ? undefined : toHex(fromBase64Url(pkText));
      } catch {
        pkHex = undefined;
      }
      const role = typeof st.role === 'string' ? st.role : 'unknown';
      const leader = typeof st.leader === 'string' ? st.leader : role === 'leader' ? endpoint : 'unknown';
      const last = st.lastCheckpoint as { checkpoint?: { index?: number; seq?: number }; head?: { size?: number } } | undefined;
      const { id, file, state } = await trustStateOf(o);
      const trusted = state?.publicKeys ?? [];
      const match = pkHex === undefined ? 'unknown' : trusted.length === 0 ? 'no trusted key yet' : trusted.includes(pkHex) ? 'yes' : 'NO';
      const trustNote =
        match === 'NO'
          ? `the node's key is not the trusted one: verified reads follow a key rotation the trusted key signed (GET /v1/key-rotations), else fail with UNTRUSTED_KEY or KEY_ROTATION_REFUSED; if the node was reset on purpose, run \`proofkv trust reset\``
          : state
            ? 'verified reads check against this state'
            : o.publicKey && o.publicKey.length > 0
              ? 'no verified head yet (keys from --public-key)'
              : 'nothing pinned yet: the first verified read will trust this node on first use';
      print(
        o,
        {
          endpoint,
          nodeId: st.nodeId ?? null,
          role,
          leader,
          publicKey: pkHex ?? null,
          publicKeyBase64url: pkText ?? null,
          version: st.version ?? null,
          lastSeq: st.lastSeq ?? null,
          lastCheckpoint: last?.checkpoint ? { index: last.checkpoint.index, seq: last.checkpoint.seq, logSize: last.head?.size ?? null } : null,
          trust: { file, id, state: stateJson(state), nodeKeyTrusted: match === 'yes' ? true : match === 'NO' ? false : null },
        },
        table([
          ['endpoint', endpoint],
          ['node id', String(st.nodeId ?? 'unknown')],
          ['role', role],
          ['leader', leader],
          ['public key', pkHex ? `${pkHex} (hex)` : 'unknown'],
          ['software', String(st.version ?? 'unknown')],
          ['last seq', String(st.lastSeq ?? 'unknown')],
          ['checkpoint', last?.checkpoint ? `${last.checkpoint.index} (seq ${last.checkpoint.seq}, log size ${last.head?.size})` : 'none yet'],
          ['trust file', file],
          ...(state ? stateLines(id, state) : [['identity', `${id} (no state)`] as [string, string]]),
          ['key trusted', `${match}: ${trustNote}`],
        ]),
      );
    }),
  );
}

/** Rewrites the trusted-state file without the states `drop` selects (temporary file + rename). */
async function dropStates(file: string, drop: (id: string) => boolean): Promise<string[]> {
  const states = await readStates(file);
  const removed = Object.keys(states).filter(drop);
  if (removed.length === 0) return removed;
  for (const id of removed) delete states[id];
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    text = undefined;
  }
  const doc = text === undefined ? { format: 'proofkv-trust-v1' } : (JSON.parse(text) as Record<string, unknown>);
  doc.states = states;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CliError('IO_ERROR', `cannot create the directory of ${file}: ${(err as Error).message}`);
  }
  await writeFileAtomic(file, `${JSON.stringify(doc, null, 2)}\n`, 0o600);
  return removed;
}

function registerTrust(program: Command): void {
  const trust = program.command('trust').description('show or reset the trusted state (TOFU pins and verified heads) in the trusted-state file');
  withCommon(trust.command('show').description('every identity in the trusted-state file, or with --endpoint/--public-key only that one'))
    .option('--all', 'every identity (the default unless --endpoint or --public-key is given)')
    .action(
      run(async (o: CommonOptions & { all?: boolean }) => {
        const file = stateFile(o);
        const states = await readStates(file);
        const only = !o.all && ((o.endpoint?.length ?? 0) > 0 || (o.publicKey?.length ?? 0) > 0) ? clientOf(o).trust.id : undefined;
        const ids = Object.keys(states).filter((id) => only === undefined || id === only);
        const lines = ids.flatMap((id) => table(stateLines(id, states[id])));
        if (ids.length === 0) lines.push(only ? `no trusted state for ${only} in ${file}` : `no trusted state in ${file}`);
        print(o, { file, states: Object.fromEntries(ids.map((id) => [id, stateJson(states[id])])) }, [`trust file  ${file}`, ...lines]);
      }),
    );
  withCommon(trust.command('reset').description('forget the trusted state of the endpoint (TOFU pin and head), or of --id, or --all'))
    .option('--id <id>', 'the identity to forget, as `trust show` prints it')
    .option('--all', 'forget every identity in the file')
    .action(
      run(async (o: CommonOptions & { id?: string; all?: boolean }) => {
        if (o.all && o.id !== undefined) throw new CliError('USAGE', '--all and --id exclude each other');
        const file = stateFile(o);
        const target = o.all ? undefined : (o.id ?? clientOf(o).trust.id);
        const removed = await dropStates(file, (id) => target === undefined || id === target);
        const what = target === undefined ? 'every identity' : target;
        const next = target?.startsWith('tofu:')
          ? `; the next verified call to ${endpointsOf(o).join(',')} pins the key it sees (compare it with the node's banner or \`proofkv status\`)`
          : '';
        print(
          o,
          { file, removed },
          [removed.length === 0 ? `nothing to reset: no trusted state for ${what} in ${file}` : `forgot ${removed.join(', ')} in ${file}${next}`],
        );
      }),
    );
}

/** Registers `status` and `trust show|reset`. */
export function registerNodeCommands(program: Command): void {
  registerStatus(program);
  registerTrust(program);
}
