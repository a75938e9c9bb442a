/**
 * `proofkv note`: prints a checkpoint as a C2SP signed note (`GET /v1/checkpoints/…/note`) and
 * verifies it. Fetched from every `--endpoint`, the notes' signature lines are merged (each node
 * signs with its own key; witnesses' cosignatures come along), so one note can carry a quorum.
 *
 * ```
 * proofkv note                                     # the latest head, printed
 * proofkv note --size 12 --verifier-key 'proofkv/ab12…+1f2e3d4c+AX…' --witness-key 'w.example+…' --witness-quorum 1
 * ```
 * With `--verifier-key` (repeatable: the nodes' note keys, `name+hash+base64`) the note must be
 * signed by `--quorum` of them (default all) and, with `--witness-key`, cosigned by
 * `--witness-quorum` witnesses (default all); failures exit 3. Also the `serve` options
 * `--origin` and `--witness`, parsed here.
 * @module
 */
import type { Command } from 'commander';
import { VerificationError } from '../../proofs/errors.js';
import {
  KEY_TYPE_COSIGNATURE,
  formatNote,
  formatVerifierKey,
  parseCheckpointNote,
  parseNote,
  parseVerifierKey,
  signatureLine,
  verifyCheckpointNote,
  type NoteSignature,
  type VerifierKey,
} from '../../proofs/note.js';
import type { NoteOptions } from '../notes.js';
import { CliError, endpointsOf, intOption, print, run, withCommon, type CommonOptions } from './common.js';

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function keyOption(text: string, flag: string): VerifierKey {
  try {
    return parseVerifierKey(text.trim());
  } catch (err) {
    throw new CliError('USAGE', `${flag} ${JSON.stringify(text)}: ${(err as Error).message}`);
  }
}

/** The serve options of notes and witnesses. */
export function addNoteServeOptions(cmd: Command): Command {
  return cmd
    .option('--origin <name>', 'checkpoint note origin and key name (default proofkv/<hex of the first 8 bytes of the node key>)')
    .option('--witness <url=key>', "a witness to push each new head to: its URL and cosignature verifier key ('http://w:7080=w.example+hash+key'); repeatable", collect);
}

/** {@link NoteOptions} of the serve flags. Throws `CliError` on a bad flag. */
export function noteOptionsOf(flags: { origin?: string; witness?: string[] }): NoteOptions {
  const out: NoteOptions = {};
  if (flags.origin !== undefined) out.origin = flags.origin;
  out.witnesses = (flags.witness ?? []).map((w) => {
    const at = w.indexOf('=');
    if (at < 0) throw new CliError('USAGE', `--witness ${JSON.stringify(w)} is not <url>=<verifier key>`);
    const key = keyOption(w.slice(at + 1), '--witness');
    if (key.type !== KEY_TYPE_COSIGNATURE) throw new CliError('USAGE', `--witness ${key.name}: not a cosignature/v1 key (type 0x04)`);
    return { url: w.slice(0, at), key };
  });
  return out;
}

async function fetchNote(endpoint: string, size: number | undefined, o: CommonOptions): Promise<string> {
  const url = `${endpoint.replace(/\/+$/, '')}/v1/checkpoints/${size === undefined ? 'latest' : size}/note`;
  const token = o.token ?? process.env.PROOFKV_TOKEN;
  const res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(intOption(o.timeout, '--timeout', 1) ?? 10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new CliError(res.status === 404 ? 'NOT_FOUND' : 'HTTP_ERROR', `${url}: ${res.status} ${text.slice(0, 200)}`, {}, res.status);
  return text;
}

type NoteFlags = CommonOptions & { size?: string; verifierKey?: string[]; witnessKey?: string[]; witnessQuorum?: string };

/** Registers `note`. */
export function registerNoteCommand(program: Command): void {
  withCommon(program.command('note').description('print a checkpoint as a C2SP signed note, merged from every endpoint, and verify it'))
    .option('--size <n>', 'log size of the head (default: the latest)')
    .option('--verifier-key <key>', "a node's note verifier key (name+hash+key); repeatable", collect)
    .option('--witness-key <key>', "a witness's cosignature verifier key; repeatable", collect)
    .option('--witness-quorum <k>', 'witnesses that must have cosigned (default: every --witness-key)')
    .action(
      run(async (o: NoteFlags) => {
        let size = intOption(o.size, '--size', 1);
        const notes: string[] = [];
        for (const e of endpointsOf(o)) {
          notes.push(await fetchNote(e, size, o));
          // Every endpoint must speak of the same head: pin the size the first one gave.
          size ??= parseCheckpointNote(parseNote(notes[0]).text).size;
        }
        const parsed = notes.map((n) => parseNote(n));
        const text = parsed[0].text;
        for (let i = 1; i < parsed.length; i++) {
          if (parsed[i].text !== text) throw new VerificationError('FORK', `endpoint ${endpointsOf(o)[i]} serves another checkpoint text at size ${size}`);
        }
        const seen = new Set<string>();
        const signatures: NoteSignature[] = [];
        for (const s of parsed.flatMap((p) => p.signatures)) {
          const line = signatureLine(s);
          if (!seen.has(line)) signatures.push(s);
          seen.add(line);
        }
        const note = formatNote({ text, signatures });
        const logKeys = (o.verifierKey ?? []).map((k) => keyOption(k, '--verifier-key'));
        const witnesses = (o.witnessKey ?? []).map((k) => keyOption(k, '--witness-key'));
        if (logKeys.length === 0) {
          if (witnesses.length > 0) throw new CliError('USAGE', '--witness-key needs --verifier-key');
          print(o, { note, verified: false }, [note.trimEnd()]);
          return;
        }
        const checkpoint = parseCheckpointNote(text);
        const quorum = intOption(o.quorum, '--quorum', 1) ?? logKeys.length;
        const witnessQuorum = intOption(o.witnessQuorum, '--witness-quorum', 0) ?? witnesses.length;
        const v = verifyCheckpointNote(note, { origin: checkpoint.origin, logKeys, quorum, witnesses, witnessQuorum });
        if (!v.ok) throw new VerificationError(v.reason, v.message);
        const cosigners = [...v.cosignedAt].map(([k, t]) => `${k.name} at ${new Date(t * 1000).toISOString()}`);
        print(o, { note, verified: true, signers: v.signers.map(formatVerifierKey), cosigners: [...v.cosignedAt].map(([k, t]) => ({ key: formatVerifierKey(k), time: t })) }, [
          note.trimEnd(),
          '',
          `verified: ${v.signers.length - v.cosignedAt.size} node signature(s), ${v.cosignedAt.size} witness cosignature(s)${cosigners.length ? `: ${cosigners.join(', ')}` : ''}`,
        ]);
      }),
    );
}
