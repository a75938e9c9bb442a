/**
 * Key commands: `put`, `append`, `get`, `del`, `history` and `scan`. `put`, `append` and `del`
 * take `--if-version N` (and `put`/`append` `--if-absent`): a failed condition is `CONDITION_FAILED`
 * with the key's current version.
 *
 * `get` is verified by default, and a verified read is **as of the latest checkpoint**: it says
 * which one (index and seq), and when a plain read shows a newer entry written since, it says so
 * (`--wait` waits for a checkpoint that covers it and verifies that instead). `scan` is verified
 * the same way, page by page with scan proofs (as of the latest checkpoint); `--no-verify` gives the
 * plain scan of the latest values, marked unverified.
 * @module
 */
import { readFile, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { MAX_VERSION, ProofKVClient, type Entry, type VerifiedGetResult, type WriteCondition } from '../../client-sdk/index.js';
import { inTimeWindow } from '../../proofs/lsm_time.js';
import type { LogHead } from '../../proofs/checkpoint.js';
import {
  CLIENT_EXIT,
  CliError,
  clientOf,
  decode,
  entryJson,
  isoTime,
  timeOption,
  headJson,
  intOption,
  keyArg,
  MAX_INPUT_VALUE_BYTES,
  print,
  run,
  show,
  table,
  versionOption,
  withCommon,
  writeFileAtomic,
  type CommonOptions,
} from './common.js';

/** Reads at most `limit` bytes of stdin; more is an error. */
async function readStdin(limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new CliError('VALUE_TOO_LARGE', `stdin holds more than ${limit} bytes`);
    chunks.push(c);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Reads a value file of at most `limit` bytes. */
async function readValueFile(file: string, limit: number): Promise<Uint8Array> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (err) {
    throw new CliError('USAGE', `cannot read --file ${file}: ${(err as Error).message}`);
  }
  if (size > limit) throw new CliError('VALUE_TOO_LARGE', `--file ${file} is ${size} bytes, the CLI reads at most ${limit}`);
  return new Uint8Array(await readFile(file));
}

/** The value of `put`: the argument, `--file` or `--stdin`, exactly one of them. */
async function putValue(value: string | undefined, o: CommonOptions & { file?: string; stdin?: boolean }): Promise<Uint8Array> {
  const given = [value !== undefined, o.file !== undefined, o.stdin === true].filter(Boolean).length;
  if (given === 0) throw new CliError('MISSING_VALUE', 'a value is missing: give it after the key, or use --file FILE or --stdin');
  if (given > 1) throw new CliError('USAGE', 'give the value one way only: as an argument, with --file or with --stdin');
  if (o.file !== undefined) return readValueFile(o.file, MAX_INPUT_VALUE_BYTES);
  if (o.stdin) return readStdin(MAX_INPUT_VALUE_BYTES);
  return decode(value!, o.valueEncoding, 'value', '--value-encoding');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls the latest checkpoint until one covers `seq`, for at most `ms`. */
async function waitForCheckpoint(c: ProofKVClient, seq: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    let at = -1;
    try {
      at = (await c.checkpoint()).checkpoint.seq;
    } catch (err) {
      if (!(err instanceof Error && 'code' in err && err.code === 'CHECKPOINT_UNAVAILABLE')) throw err;
    }
    if (at >= seq) return;
    if (Date.now() >= deadline) {
      throw new CliError(
        'CHECKPOINT_TIMEOUT',
        `no checkpoint covered seq ${seq} within ${ms} ms (latest covers seq ${at < 0 ? 'none' : at}); the server checkpoints every --checkpoint-interval ms when there were writes, \`proofkv checkpoint --create\` makes one now`,
      );
    }
    await sleep(200);
  }
}

/** A verified read and, when a plain read shows a newer entry, that entry. */
async function verifiedRead(c: ProofKVClient, k: Uint8Array, version: number | undefined): Promise<{ r: VerifiedGetResult; newer?: Entry }> {
  const r = await c.verifiedGet(k, { version });
  const plain = await c.get(k, { version: version ?? MAX_VERSION });
  const newer = plain && (!r.entry || plain.seq > r.entry.seq) ? plain : undefined;
  return { r, newer };
}

/** `--if-version` / `--if-absent` as a write condition (at most one; `--if-absent` only where `absent`). */
function conditionOptions(o: { ifVersion?: string; ifAbsent?: boolean }): WriteCondition {
  const ifVersion = versionOption(o.ifVersion, '--if-version', 0);
  if (ifVersion !== undefined && o.ifAbsent) throw new CliError('USAGE', 'give --if-version or --if-absent, not both');
  return ifVersion !== undefined ? { ifVersion } : o.ifAbsent ? { ifAbsent: true } : {};
}

const IF_VERSION_OPTION = ['--if-version <n>', "write only if the key's newest version is n (a deletion's version counts; 0: never written)"] as const;
const IF_ABSENT_OPTION = ['--if-absent', 'write only if the key has no live value (never written, or deleted)'] as const;

type ConditionFlags = { ifVersion?: string; ifAbsent?: boolean };

function registerPut(program: Command): void {
  withCommon(program.command('put <key> [value]').description('write a value (next version, or --version)'))
    .option('--version <n>', 'explicit version (must exceed the latest; at most 2^53-1)')
    .option(...IF_VERSION_OPTION)
    .option(...IF_ABSENT_OPTION)
    .option('--file <path>', 'read the value from a file')
    .option('--stdin', 'read the value from stdin')
    .option('--verify', 'wait for a checkpoint that includes the write and verify it')
    .action(
      run(async (key: string, value: string | undefined, o: CommonOptions & ConditionFlags & { version?: string; file?: string; stdin?: boolean; verify?: boolean }) => {
        const k = keyArg(key, o.keyEncoding);
        const version = versionOption(o.version, '--version', 1);
        const condition = conditionOptions(o);
        const v = await putValue(value, o);
        const c = clientOf(o);
        if (o.verify) {
          const r = await c.verifiedPut(k, v, { version, ...condition });
          const newest = r.newest ? 'yes' : `no: version ${r.newer!.version} (seq ${r.newer!.seq}, ${r.newer!.kind}) is newer`;
          print(
            o,
            { version: r.version, seq: r.seq, time: r.time, timeIso: isoTime(r.time), verified: true, newest: r.newest, ...(r.newer ? { newer: r.newer } : {}), checkpoint: { index: r.checkpoint.index, seq: r.checkpoint.seq }, head: headJson(r.head) },
            [
              ...table([
                ['version', String(r.version)],
                ['seq', String(r.seq)],
                ['time', isoTime(r.time)],
                ['verified', `in checkpoint ${r.checkpoint.index} (seq ${r.checkpoint.seq}, log size ${r.head.size})`],
                ['newest', newest],
              ]),
            ],
          );
        } else {
          const r = await c.put(k, v, { version, ...condition });
          print(o, { version: r.version, seq: r.seq, time: r.time, timeIso: isoTime(r.time), verified: false }, [
            ...table([
              ['version', String(r.version)],
              ['seq', String(r.seq)],
              ['time', isoTime(r.time)],
              ['verified', 'not yet: a verified read sees this write once a checkpoint covers seq ' + r.seq + ' (or use --verify)'],
            ]),
          ]);
        }
      }),
    );
}

function registerAppend(program: Command): void {
  withCommon(program.command('append <key> [value]').description("append bytes to a key's value as a new version (computed by the server)"))
    .option('--file <path>', 'read the bytes to append from a file')
    .option('--stdin', 'read the bytes to append from stdin')
    .option(...IF_VERSION_OPTION)
    .option(...IF_ABSENT_OPTION)
    .action(
      run(async (key: string, value: string | undefined, o: CommonOptions & ConditionFlags & { file?: string; stdin?: boolean }) => {
        const k = keyArg(key, o.keyEncoding);
        const condition = conditionOptions(o);
        const r = await clientOf(o).append(k, await putValue(value, o), condition);
        print(o, { version: r.version, seq: r.seq, time: r.time, timeIso: isoTime(r.time), verified: false }, table([['version', String(r.version)], ['seq', String(r.seq)], ['time', isoTime(r.time)]]));
      }),
    );
}

function registerGet(program: Command): void {
  withCommon(program.command('get <key>').description('read a value, verified (as of the latest checkpoint) by default'))
    .option('--version <n>', 'newest entry at or below this version')
    .option('--no-verify', 'plain read without a proof')
    .option('--wait', 'when a newer entry than the checkpoint exists, wait for a checkpoint that covers it and verify that')
    .option('--wait-timeout <ms>', 'how long --wait waits', '30000')
    .option('--out <file>', 'write the raw value to a file and print only a summary')
    .action(
      run(async (key: string, o: CommonOptions & { version?: string; verify: boolean; wait?: boolean; waitTimeout: string; out?: string }) => {
        const k = keyArg(key, o.keyEncoding);
        const version = versionOption(o.version, '--version', 0);
        const waitMs = intOption(o.waitTimeout, '--wait-timeout', 0)!;
        if (o.wait && !o.verify) throw new CliError('USAGE', '--wait applies to verified reads; drop --no-verify');
        const c = clientOf(o);
        let entry: Entry | undefined;
        let proven: { checkpoint: { index: number; seq: number }; head: LogHead } | undefined;
        let newer: Entry | undefined;
        if (o.verify) {
          let read = await verifiedRead(c, k, version);
          if (read.newer && o.wait) {
            process.stderr.write(`proofkv: waiting up to ${waitMs} ms for a checkpoint that covers seq ${read.newer.seq}\n`);
            await waitForCheckpoint(c, read.newer.seq, waitMs);
            read = await verifiedRead(c, k, version);
          }
          entry = read.r.entry;
          proven = { checkpoint: read.r.checkpoint, head: read.r.head };
          newer = read.newer;
        } else {
          entry = await c.get(k, { version });
        }
        const verifiedJson = proven
          ? {
              verified: true,
              asOf: 'checkpoint',
              checkpoint: { index: proven.checkpoint.index, seq: proven.checkpoint.seq },
              head: headJson(proven.head),
              ...(newer ? { newer: { version: newer.version, seq: newer.seq, kind: newer.kind } } : {}),
            }
          : { verified: false };
        const proofLines: Array<[string, string]> = proven
          ? [['verified', `as of checkpoint ${proven.checkpoint.index} (seq ${proven.checkpoint.seq}, log size ${proven.head.size})`]]
          : [['verified', 'no (--no-verify)']];
        if (newer) {
          proofLines.push([
            'newer',
            `${newer.kind === 'delete' ? 'a delete' : 'version ' + newer.version} (seq ${newer.seq}) was written after that checkpoint and is not proven yet; ` +
              'read again after the next checkpoint, or use --wait',
          ]);
        }
        if (!entry || (entry.kind === 'delete' && version === undefined)) {
          const lines = entry ? [`${show(k, o.keyEncoding)}: deleted at version ${entry.version}`] : [`${show(k, o.keyEncoding)}: not found`];
          lines.push(...table(proofLines));
          print(o, { found: false, ...(entry ? { entry: entryJson(entry) } : {}), ...verifiedJson }, lines);
          process.exitCode = CLIENT_EXIT.notFound;
          return;
        }
        const meta: Array<[string, string]> = [
          ['version', String(entry.version)],
          ['seq', String(entry.seq)],
          ['committed', `${isoTime(entry.time)} (${entry.time} ms)`],
        ];
        if (o.out !== undefined) {
          if (entry.kind === 'delete') throw new CliError('NOT_FOUND', `version ${entry.version} is a delete: no value to write to ${o.out}`);
          await writeFileAtomic(o.out, entry.value);
          print(o, { found: true, file: o.out, bytes: entry.value.length, entry: entryJson(entry, false), ...verifiedJson }, [
            ...table([['wrote', `${entry.value.length} B to ${o.out}`], ...meta, ...proofLines]),
          ]);
          return;
        }
        print(o, { found: true, entry: entryJson(entry), ...verifiedJson }, [
          ...table([['value', entry.kind === 'delete' ? '(deleted)' : show(entry.value, o.valueEncoding)], ...meta, ...proofLines]),
        ]);
      }),
    );
}

function registerDelHistory(program: Command): void {
  withCommon(program.command('del <key>').description('delete a key (writes a tombstone at a new version)'))
    .option(...IF_VERSION_OPTION)
    .action(
      run(async (key: string, o: CommonOptions & { ifVersion?: string }) => {
        const r = await clientOf(o).delete(keyArg(key, o.keyEncoding), conditionOptions(o));
        print(o, { version: r.version, seq: r.seq, time: r.time, timeIso: isoTime(r.time) }, table([['deleted at version', String(r.version)], ['seq', String(r.seq)], ['time', isoTime(r.time)]]));
      }),
    );

  withCommon(program.command('history <key>').description('versions of a key, oldest first, proven complete by default'))
    .option('--min <n>', 'lowest version (inclusive)')
    .option('--max <n>', 'highest version (inclusive)')
    .option('--since <time>', 'only versions committed at or after this time (ms since the epoch or ISO 8601)')
    .option('--until <time>', 'only versions committed at or before this time (ms since the epoch or ISO 8601)')
    .option('--no-verify', 'plain history without proofs')
    .action(
      run(async (key: string, o: CommonOptions & { min?: string; max?: string; since?: string; until?: string; verify: boolean }) => {
        const k = keyArg(key, o.keyEncoding);
        const minVersion = versionOption(o.min, '--min');
        const maxVersion = versionOption(o.max, '--max');
        const since = timeOption(o.since, '--since');
        const until = timeOption(o.until, '--until');
        if (since !== undefined && until !== undefined && since > until) throw new CliError('USAGE', '--since is after --until');
        const c = clientOf(o);
        let entries: Entry[];
        let proven: { checkpoint: { index: number; seq: number }; head: LogHead } | undefined;
        if (o.verify) {
          const r = await c.verifiedHistory(k, { minVersion, maxVersion, since, until });
          entries = r.entries;
          proven = r;
        } else {
          entries = [];
          let cursor: string | undefined;
          do {
            const page = await c.history(k, { minVersion, maxVersion, limit: 1000, cursor, since, until });
            entries.push(...page.entries);
            cursor = page.cursor;
          } while (cursor !== undefined);
        }
        const lines = entries.map(
          (e) => `${String(e.version).padStart(6)}  seq ${String(e.seq).padEnd(8)} ${isoTime(e.time)}  ${e.kind === 'delete' ? '(deleted)' : show(e.value, o.valueEncoding)}`,
        );
        if (entries.length === 0) lines.push(`${show(k, o.keyEncoding)}: no versions in range`);
        lines.push(proven ? `verified complete as of checkpoint ${proven.checkpoint.index} (seq ${proven.checkpoint.seq}, log size ${proven.head.size})` : 'not verified (--no-verify)');
        print(
          o,
          {
            entries: entries.map((e) => entryJson(e)),
            verified: proven !== undefined,
            ...(proven ? { checkpoint: { index: proven.checkpoint.index, seq: proven.checkpoint.seq }, head: headJson(proven.head) } : {}),
          },
          lines,
        );
      }),
    );
}

/** The notice a plain (`--no-verify`) scan prints on stderr. */
export const SCAN_NOTICE = 'proofkv: scan results are NOT verified (--no-verify): the server\'s answer is taken as is; drop --no-verify for a proven scan';

function registerScan(program: Command): void {
  withCommon(program.command('scan').description('list latest live values in key order, proven complete (as of the latest checkpoint) by default'))
    .option('--prefix <p>', 'only keys with this prefix (in --key-encoding)')
    .option('--start <key>', 'lower bound, inclusive')
    .option('--end <key>', 'upper bound, exclusive')
    .option('--limit <n>', 'at most this many items (default: all)')
    .option('--include-tombstones', 'also list keys whose newest version is a delete (verified scans only)')
    .option('--since <time>', 'only keys whose newest version was committed at or after this time (ms or ISO 8601)')
    .option('--until <time>', 'only keys whose newest version was committed at or before this time (ms or ISO 8601)')
    .option('--no-verify', 'plain scan of the latest values without proofs')
    .action(
      run(async (o: CommonOptions & { prefix?: string; start?: string; end?: string; limit?: string; includeTombstones?: boolean; since?: string; until?: string; verify: boolean }) => {
        const window = { since: timeOption(o.since, '--since'), until: timeOption(o.until, '--until') };
        if (window.since !== undefined && window.until !== undefined && window.since > window.until) throw new CliError('USAGE', '--since is after --until');
        const bound = (v: string | undefined, what: string) => (v === undefined ? undefined : decode(v, o.keyEncoding, what, '--key-encoding'));
        const prefix = bound(o.prefix, '--prefix');
        const start = bound(o.start, '--start');
        const end = bound(o.end, '--end');
        const limit = intOption(o.limit, '--limit', 1);
        if (o.includeTombstones && !o.verify) throw new CliError('USAGE', '--include-tombstones applies to verified scans; drop --no-verify');
        if (prefix !== undefined && o.verify && (start !== undefined || end !== undefined)) throw new CliError('USAGE', 'give --prefix, or --start and --end, not both');
        const c = clientOf(o);
        let n = 0;
        const emit = (items: Entry[], verified: { index: number; seq: number } | false) => {
          const out: string[] = [];
          for (const e of items) {
            if (limit !== undefined && n >= limit) break;
            // The window applies to each key's newest version (a proven page shows every key's, so this stays complete).
            if (!inTimeWindow(e.time, window)) continue;
            n++;
            const value = e.kind === 'delete' ? '(deleted)' : show(e.value, o.valueEncoding);
            out.push(
              o.json
                ? JSON.stringify({ ...entryJson(e), verified: verified !== false, ...(verified ? { checkpoint: verified } : {}) })
                : `${show(e.key, o.keyEncoding)}  ${value}  (version ${e.version}, seq ${e.seq}, ${isoTime(e.time)})`,
            );
          }
          if (out.length > 0) process.stdout.write(`${out.join('\n')}\n`);
        };
        if (!o.verify) {
          process.stderr.write(`${SCAN_NOTICE}\n`);
          let cursor: string | undefined;
          do {
            const page = await c.scan({ prefix, start, end, cursor, limit: Math.min(1000, limit === undefined ? 1000 : limit - n) });
            emit(page.items, false);
            cursor = page.cursor;
          } while (cursor !== undefined && (limit === undefined || n < limit));
          process.stderr.write(`proofkv: ${n} item(s), unverified\n`);
          return;
        }
        const range = prefix !== undefined ? { prefix } : { start, end };
        const checkpoints = new Set<number>();
        let last: { index: number; seq: number } | undefined;
        for await (const page of c.verifiedScan(range, { limit: Math.min(1000, limit ?? 1000), includeTombstones: o.includeTombstones === true })) {
          last = { index: page.checkpoint.index, seq: page.checkpoint.seq };
          checkpoints.add(last.index);
          emit(page.entries, last);
          if (limit !== undefined && n >= limit) break;
        }
        const asOf = checkpoints.size > 1 ? `checkpoints ${[...checkpoints].join(', ')} (pages may span checkpoints)` : last ? `checkpoint ${last.index} (seq ${last.seq})` : 'the latest checkpoint';
        process.stderr.write(`proofkv: ${n} item(s), verified complete as of ${asOf}; writes after it are not included\n`);
      }),
    );
}

/** Registers `put`, `append`, `get`, `del`, `history` and `scan`. */
export function registerKeyCommands(program: Command): void {
  registerPut(program);
  registerAppend(program);
  registerGet(program);
  registerDelHistory(program);
  registerScan(program);
}
