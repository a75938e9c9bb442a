/**
 * The client-side CLI commands, built on `proofkv/client`: `put`, `get`, `del`, `history`,
 * `proof`, `verify`, `checkpoint` and `import`. `server/cli.ts` calls
 * {@link registerClientCommands} once, after registering `serve`.
 *
 * ```
 * proofkv get greeting                      # verified read (proof against a signed checkpoint)
 * proofkv get greeting --no-verify          # plain read
 * proofkv put greeting hello [--verify]     # --verify waits until a checkpoint proves the write
 * proofkv history greeting --min 2
 * proofkv proof greeting --out p.json       # save a proof; `proofkv verify p.json` checks it offline
 * proofkv checkpoint [--create]
 * proofkv import data.jsonl|data.csv        # batches with a progress bar
 * ```
 * Every command takes `--endpoint` (repeatable; env `PROOFKV_ENDPOINT`, default
 * `http://127.0.0.1:7070`), `--token` (env `PROOFKV_TOKEN`), `--json`, and trust options:
 * `--public-key <hex|base64url>` (repeatable) with `--quorum`, or trust on first use; the trusted
 * state persists in `--state` (env `PROOFKV_STATE`, default `~/.proofkv/trust.json`).
 *
 * Exit codes: 0 success, 1 error (HTTP, network, usage), 3 verification failure, 4 not found.
 * @module
 */
import { readFile, writeFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { fromHex, toBytes, toHex } from '../proofs/bytes.js';
import {
  FileStateStore,
  fromBase64Url,
  getProofBundle,
  historyProofBundle,
  ProofKVClient,
  ProofKVHttpError,
  ProofKVNetworkError,
  toBase64Url,
  utf8OrUndefined,
  VerificationError,
  verifyProofBundle,
  type BatchOp,
  type Entry,
  type TrustConfig,
  type TrustedState,
} from '../client-sdk/index.js';
import type { LogHead } from '../proofs/checkpoint.js';

/** Exit codes of the client commands. */
export const CLIENT_EXIT = { ok: 0, error: 1, verification: 3, notFound: 4 } as const;

/** Options every client command takes. */
interface CommonOptions {
  endpoint?: string[];
  token?: string;
  json?: boolean;
  publicKey?: string[];
  quorum?: string;
  state?: string;
  timeout?: string;
  keyEncoding: Encoding;
  valueEncoding: Encoding;
}

type Encoding = 'utf8' | 'hex' | 'base64url';

/** The default trusted-state file. */
export const DEFAULT_STATE_FILE = '~/.proofkv/trust.json';
/** The default endpoint. */
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:7070';

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), ...v.split(',').filter((s) => s !== '')];

function withCommon(cmd: Command): Command {
  return cmd
    .option('--endpoint <url>', `node URL, repeatable or comma-separated (env PROOFKV_ENDPOINT, default ${DEFAULT_ENDPOINT})`, collect)
    .option('--token <token>', 'bearer token (env PROOFKV_TOKEN)')
    .option('--json', 'print JSON instead of text')
    .option('--public-key <key>', 'trusted node key, hex or base64url; repeatable (default: trust on first use)', collect)
    .option('--quorum <n>', 'signatures a checkpoint needs (default: a majority of --public-key)')
    .option('--state <file>', `trusted-state file (env PROOFKV_STATE, default ${DEFAULT_STATE_FILE})`)
    .option('--timeout <ms>', 'per-request timeout in ms', '10000')
    .addOption(new Option('--key-encoding <enc>', 'how keys are written on the command line').choices(['utf8', 'hex', 'base64url']).default('utf8'))
    .addOption(new Option('--value-encoding <enc>', 'how values are written and printed').choices(['utf8', 'hex', 'base64url']).default('utf8'));
}

/** Parses a public key given as 64 hex digits or 43 base64url characters. */
export function parsePublicKey(text: string): Uint8Array {
  const t = text.trim();
  const k = /^[0-9a-fA-F]{64}$/.test(t) ? fromHex(t) : /^[A-Za-z0-9_-]{43}$/.test(t) ? fromBase64Url(t) : undefined;
  if (!k || k.length !== 32) throw new UsageError(`public key ${JSON.stringify(text)} is neither 64 hex digits nor 43 base64url characters`);
  return k;
}

class UsageError extends Error {}

function decode(text: string, enc: Encoding, what: string): Uint8Array {
  try {
    if (enc === 'hex') return fromHex(text);
    if (enc === 'base64url') return fromBase64Url(text);
    return toBytes(text);
  } catch (err) {
    throw new UsageError(`${what} is not valid ${enc}: ${(err as Error).message}`);
  }
}

function show(bytes: Uint8Array, enc: Encoding): string {
  if (enc === 'hex') return toHex(bytes);
  if (enc === 'base64url') return toBase64Url(bytes);
  const text = utf8OrUndefined(bytes);
  return text ?? `hex:${toHex(bytes)}`;
}

function intOption(v: string | undefined, name: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) throw new UsageError(`${name} must be an integer >= ${min}, got ${v}`);
  return Number(v);
}

function trustOf(o: CommonOptions): TrustConfig {
  if (!o.publicKey || o.publicKey.length === 0) return { tofu: true };
  const publicKeys = o.publicKey.map(parsePublicKey);
  const quorum = intOption(o.quorum, '--quorum', 1) ?? Math.floor(publicKeys.length / 2) + 1;
  return { publicKeys, quorum };
}

function statePath(o: CommonOptions): string {
  return o.state ?? process.env.PROOFKV_STATE ?? DEFAULT_STATE_FILE;
}

function clientOf(o: CommonOptions): ProofKVClient {
  const endpoints = o.endpoint && o.endpoint.length > 0 ? o.endpoint : (process.env.PROOFKV_ENDPOINT ?? DEFAULT_ENDPOINT).split(',');
  return new ProofKVClient({
    endpoints,
    token: o.token ?? process.env.PROOFKV_TOKEN,
    trust: trustOf(o),
    stateStore: new FileStateStore(statePath(o)),
    timeoutMs: intOption(o.timeout, '--timeout', 1),
    onWarning: (m) => process.stderr.write(`${m}\n`),
  });
}

function entryJson(e: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = { key: toBase64Url(e.key), version: e.version, seq: e.seq, kind: e.kind, value: toBase64Url(e.value) };
  const text = e.kind === 'put' ? utf8OrUndefined(e.value) : undefined;
  if (text !== undefined) out.valueUtf8 = text;
  return out;
}

function headJson(h: LogHead): Record<string, unknown> {
  return { size: h.size, root: toHex(h.root) };
}

function print(o: CommonOptions, json: unknown, lines: string[]): void {
  process.stdout.write(o.json ? `${JSON.stringify(json)}\n` : `${lines.join('\n')}\n`);
}

function table(rows: Array<[string, string]>): string[] {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
}

/** Runs an action, mapping errors to messages on stderr and exit codes. */
function run<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      let code: number = CLIENT_EXIT.error;
      let msg: string;
      if (err instanceof VerificationError) {
        code = CLIENT_EXIT.verification;
        msg = `verification failed (${err.reason}): ${err.message}`;
      } else if (err instanceof ProofKVHttpError) {
        msg = `${err.code} (${err.status}): ${err.detail ?? err.message}`;
        if (err.code === 'NOT_FOUND') code = CLIENT_EXIT.notFound;
      } else if (err instanceof ProofKVNetworkError || err instanceof UsageError) {
        msg = err.message;
      } else {
        msg = (err as Error)?.message ?? String(err);
      }
      process.stderr.write(`proofkv: ${msg}\n`);
      process.exitCode = code;
    }
  };
}

// ---- commands ---------------------------------------------------------------------------------

function registerKeyCommands(program: Command): void {
  withCommon(program.command('put <key> [value]').description('write a value (next version, or --version)'))
    .option('--version <n>', 'explicit version (must exceed the latest)')
    .option('--file <path>', 'read the value from a file')
    .option('--verify', 'wait for a checkpoint that includes the write and verify it')
    .action(
      run(async (key: string, value: string | undefined, o: CommonOptions & { version?: string; file?: string; verify?: boolean }) => {
        if ((value === undefined) === (o.file === undefined)) throw new UsageError('give the value as an argument or with --file, not both');
        const k = decode(key, o.keyEncoding, 'key');
        const v = o.file !== undefined ? new Uint8Array(await readFile(o.file)) : decode(value!, o.valueEncoding, 'value');
        const version = intOption(o.version, '--version', 1);
        const c = clientOf(o);
        if (o.verify) {
          const r = await c.verifiedPut(k, v, { version });
          const newest = r.newest ? 'yes' : `no: version ${r.newer!.version} (seq ${r.newer!.seq}, ${r.newer!.kind}) is newer`;
          print(o, { version: r.version, seq: r.seq, verified: true, newest: r.newest, ...(r.newer ? { newer: r.newer } : {}), checkpoint: { index: r.checkpoint.index, seq: r.checkpoint.seq }, head: headJson(r.head) }, [
            ...table([
              ['version', String(r.version)],
              ['seq', String(r.seq)],
              ['verified', `in checkpoint ${r.checkpoint.index} (log size ${r.head.size})`],
              ['newest', newest],
            ]),
          ]);
        } else {
          const r = await c.put(k, v, { version });
          print(o, { version: r.version, seq: r.seq, verified: false }, table([['version', String(r.version)], ['seq', String(r.seq)]]));
        }
      }),
    );

  withCommon(program.command('get <key>').description('read a value, verified by default'))
    .option('--version <n>', 'newest entry at or below this version')
    .option('--no-verify', 'plain read without a proof')
    .option('--out <file>', 'write the raw value to a file')
    .action(
      run(async (key: string, o: CommonOptions & { version?: string; verify: boolean; out?: string }) => {
        const k = decode(key, o.keyEncoding, 'key');
        const version = intOption(o.version, '--version', 0);
        const c = clientOf(o);
        let entry: Entry | undefined;
        let proven: { checkpoint: { index: number; seq: number }; head: LogHead } | undefined;
        if (o.verify) {
          const r = await c.verifiedGet(k, { version });
          entry = r.entry;
          proven = { checkpoint: r.checkpoint, head: r.head };
        } else {
          entry = await c.get(k, { version });
        }
        const verifiedJson = proven ? { verified: true, checkpoint: { index: proven.checkpoint.index, seq: proven.checkpoint.seq }, head: headJson(proven.head) } : { verified: false };
        const proofLine: Array<[string, string]> = proven
          ? [['verified', `checkpoint ${proven.checkpoint.index} (seq ${proven.checkpoint.seq}, log size ${proven.head.size})`]]
          : [['verified', 'no (--no-verify)']];
        if (!entry || (entry.kind === 'delete' && version === undefined)) {
          const lines = entry ? [`${key}: deleted at version ${entry.version}`] : [`${key}: not found`];
          if (proven) lines.push(...table(proofLine));
          print(o, { found: false, ...(entry ? { entry: entryJson(entry) } : {}), ...verifiedJson }, lines);
          process.exitCode = CLIENT_EXIT.notFound;
          return;
        }
        if (o.out !== undefined) await writeFile(o.out, entry.value);
        print(o, { found: true, entry: entryJson(entry), ...verifiedJson }, [
          ...table([
            ['value', entry.kind === 'delete' ? '(deleted)' : show(entry.value, o.valueEncoding)],
            ['version', String(entry.version)],
            ['seq', String(entry.seq)],
            ...proofLine,
          ]),
        ]);
      }),
    );

  withCommon(program.command('del <key>').description('delete a key (writes a tombstone at a new version)')).action(
    run(async (key: string, o: CommonOptions) => {
      const r = await clientOf(o).delete(decode(key, o.keyEncoding, 'key'));
      print(o, { version: r.version, seq: r.seq }, table([['deleted at version', String(r.version)], ['seq', String(r.seq)]]));
    }),
  );

  withCommon(program.command('history <key>').description('versions of a key, oldest first, proven complete by default'))
    .option('--min <n>', 'lowest version (inclusive)')
    .option('--max <n>', 'highest version (inclusive)')
    .option('--no-verify', 'plain history without proofs')
    .action(
      run(async (key: string, o: CommonOptions & { min?: string; max?: string; verify: boolean }) => {
        const k = decode(key, o.keyEncoding, 'key');
        const minVersion = intOption(o.min, '--min');
        const maxVersion = intOption(o.max, '--max');
        const c = clientOf(o);
        let entries: Entry[];
        let proven: { checkpoint: { index: number; seq: number }; head: LogHead } | undefined;
        if (o.verify) {
          const r = await c.verifiedHistory(k, { minVersion, maxVersion });
          entries = r.entries;
          proven = r;
        } else {
          entries = [];
          let cursor: string | undefined;
          do {
            const page = await c.history(k, { minVersion, maxVersion, limit: 1000, cursor });
            entries.push(...page.entries);
            cursor = page.cursor;
          } while (cursor !== undefined);
        }
        const lines = entries.map((e) => `${String(e.version).padStart(6)}  seq ${String(e.seq).padEnd(8)} ${e.kind === 'delete' ? '(deleted)' : show(e.value, o.valueEncoding)}`);
        if (entries.length === 0) lines.push(`${key}: no versions in range`);
        lines.push(proven ? `verified complete at checkpoint ${proven.checkpoint.index} (log size ${proven.head.size})` : 'not verified (--no-verify)');
        print(
          o,
          {
            entries: entries.map(entryJson),
            verified: proven !== undefined,
            ...(proven ? { checkpoint: { index: proven.checkpoint.index, seq: proven.checkpoint.seq }, head: headJson(proven.head) } : {}),
          },
          lines,
        );
      }),
    );
}

function registerProofCommands(program: Command): void {
  withCommon(program.command('proof <key>').description('fetch a get (or --history) proof; save it with --out or print it'))
    .option('--version <n>', 'get proof at or below this version')
    .option('--history', 'a history proof instead')
    .option('--min <n>', 'history: lowest version')
    .option('--max <n>', 'history: highest version')
    .option('--limit <n>', 'history: most entries (server maximum 1000)')
    .option('--out <file>', 'write the proof bundle (JSON) to this file')
    .action(
      run(async (key: string, o: CommonOptions & { version?: string; history?: boolean; min?: string; max?: string; limit?: string; out?: string }) => {
        const k = decode(key, o.keyEncoding, 'key');
        const c = clientOf(o);
        const endpoint = c.transport.preferred;
        let bundle;
        if (o.history) {
          const minVersion = intOption(o.min, '--min');
          const maxVersion = intOption(o.max, '--max');
          const limit = intOption(o.limit, '--limit', 1) ?? 1000;
          const r = await c.historyProof(k, { minVersion, maxVersion, limit });
          bundle = historyProofBundle(k, r.proof, { minVersion, maxVersion, limit, endpoint });
        } else {
          const version = intOption(o.version, '--version', 0);
          const r = await c.getProof(k, { version });
          bundle = getProofBundle(k, r.proof, { version, endpoint });
        }
        const text = `${JSON.stringify(bundle, null, 2)}\n`;
        if (o.out === undefined) {
          process.stdout.write(text);
          return;
        }
        await writeFile(o.out, text);
        const size = fromBase64Url(bundle.proof).length;
        print(o, { file: o.out, type: bundle.type, proofBytes: size }, [`wrote ${bundle.type} proof (${size} B) to ${o.out}`]);
      }),
    );

  withCommon(program.command('verify <file>').description('check a saved proof offline against --public-key or the trusted state')).action(
    run(async (file: string, o: CommonOptions) => {
      let bundle: unknown;
      try {
        bundle = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        throw new UsageError(`cannot read proof bundle ${file}: ${(err as Error).message}`);
      }
      const candidates: Array<{ policy: { publicKeys: Uint8Array[]; quorum: number }; head?: LogHead; source: string }> = [];
      const trust = trustOf(o);
      if (!('tofu' in trust)) candidates.push({ policy: trust, source: '--public-key' });
      else {
        for (const [id, s] of Object.entries(await readStates(statePath(o)))) {
          candidates.push({
            policy: { publicKeys: s.publicKeys.map(fromHex), quorum: s.quorum },
            head: s.head ? { size: s.head.size, root: fromHex(s.head.root) } : undefined,
            source: `trusted state ${id}`,
          });
        }
        if (candidates.length === 0) throw new UsageError(`no --public-key and no trusted state in ${statePath(o)}`);
      }
      let last: unknown;
      for (const cand of candidates) {
        try {
          const f = verifyProofBundle(bundle, cand.policy, cand.head);
          const key = (bundle as { key: string }).key;
          const facts =
            f.type === 'get'
              ? { entry: f.entry ? entryJson(f.entry) : null }
              : { entries: f.entries.map(entryJson), bound: f.bound, ...(f.nextMinVersion !== undefined ? { nextMinVersion: f.nextMinVersion } : {}) };
          const what =
            f.type === 'get'
              ? f.entry
                ? `${f.entry.kind === 'delete' ? 'deleted' : show(f.entry.value, o.valueEncoding)} at version ${f.entry.version} (seq ${f.entry.seq})`
                : 'absent'
              : `${f.entries.length} version(s) up to ${f.bound}, complete`;
          print(
            o,
            { valid: true, type: f.type, key, ...facts, checkpoint: { index: f.checkpoint.index, seq: f.checkpoint.seq }, head: headJson(f.head), trust: cand.source, relation: f.relation },
            [
              `valid ${f.type} proof: ${show(fromBase64Url(key), o.keyEncoding)} ${what}`,
              `checkpoint ${f.checkpoint.index} (seq ${f.checkpoint.seq}), log size ${f.head.size}, trusted by ${cand.source}` +
                (f.relation === 'none' ? '' : f.relation === 'same' ? '; the trusted head itself' : `; ${f.relation} than the trusted head`),
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

async function readStates(path: string): Promise<Record<string, TrustedState>> {
  const file = path.startsWith('~/') ? `${(await import('node:os')).homedir()}/${path.slice(2)}` : path;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return {};
  }
  const doc = JSON.parse(text) as { format?: string; states?: Record<string, TrustedState> };
  if (doc.format !== 'proofkv-trust-v1' || typeof doc.states !== 'object' || doc.states === null) throw new UsageError(`${file} is not a trusted-state file`);
  return doc.states;
}

/** One record to import. */
interface ImportRecord {
  key: Uint8Array;
  value: Uint8Array;
  version?: number;
}

/** Parses one CSV line (RFC 4180 quoting, no embedded newlines). */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new UsageError('unterminated quoted CSV field');
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += line[i++];
      }
      if (i < line.length && line[i] !== ',') throw new UsageError('text after a quoted CSV field');
    } else {
      const j = line.indexOf(',', i);
      field = j === -1 ? line.slice(i) : line.slice(i, j);
      i = j === -1 ? line.length : j;
    }
    out.push(field);
    if (i >= line.length) return out;
    i++; // the comma
  }
}

function parseImport(text: string, format: 'jsonl' | 'csv', o: CommonOptions): ImportRecord[] {
  const lines = text.split(/\r?\n/);
  const records: ImportRecord[] = [];
  lines.forEach((line, n) => {
    if (line.trim() === '') return;
    const where = `line ${n + 1}`;
    if (format === 'jsonl') {
      let r: { key?: unknown; value?: unknown; version?: unknown };
      try {
        r = JSON.parse(line) as typeof r;
      } catch {
        throw new UsageError(`${where}: not JSON`);
      }
      if (typeof r.key !== 'string' || typeof r.value !== 'string') throw new UsageError(`${where}: want {"key": string, "value": string, "version"?: number}`);
      if (r.version !== undefined && (typeof r.version !== 'number' || !Number.isSafeInteger(r.version) || r.version < 1)) throw new UsageError(`${where}: bad version`);
      records.push({ key: decode(r.key, o.keyEncoding, `${where} key`), value: decode(r.value, o.valueEncoding, `${where} value`), version: r.version as number | undefined });
    } else {
      const f = parseCsvLine(line);
      if (n === 0 && f[0] === 'key' && f[1] === 'value') return;
      if (f.length < 2 || f.length > 3) throw new UsageError(`${where}: want key,value[,version]`);
      const version = f[2] === undefined || f[2] === '' ? undefined : intOption(f[2], `${where} version`, 1);
      records.push({ key: decode(f[0], o.keyEncoding, `${where} key`), value: decode(f[1], o.valueEncoding, `${where} value`), version });
    }
  });
  return records;
}

function registerImport(program: Command): void {
  withCommon(program.command('import <file>').description('import JSON lines ({"key","value","version"?}) or CSV (key,value[,version]) in batches'))
    .addOption(new Option('--format <format>', 'input format (default: by extension, .csv is CSV)').choices(['jsonl', 'csv']))
    .option('--batch-size <n>', 'records per atomic batch', '500')
    .option('--no-progress', 'no progress bar')
    .action(
      run(async (file: string, o: CommonOptions & { format?: 'jsonl' | 'csv'; batchSize: string; progress: boolean }) => {
        const format = o.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl');
        const batchSize = intOption(o.batchSize, '--batch-size', 1)!;
        const records = parseImport(await readFile(file, 'utf8'), format, o);
        const c = clientOf(o);
        const bar = o.progress && !o.json ? new cliProgress.SingleBar({ format: 'import [{bar}] {value}/{total} records | {eta_formatted} left', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
        bar?.start(records.length, 0);
        let batches = 0;
        let lastSeq = 0;
        try {
          for (let i = 0; i < records.length; i += batchSize) {
            const chunk = records.slice(i, i + batchSize);
            const ops: BatchOp[] = chunk.map((r) => ({ op: 'put', key: r.key, value: r.value, ...(r.version !== undefined ? { version: r.version } : {}) }));
            const res = await c.batch(ops);
            lastSeq = Math.max(lastSeq, ...res.map((x) => x.seq));
            batches++;
            bar?.increment(chunk.length);
          }
        } finally {
          bar?.stop();
        }
        print(o, { records: records.length, batches, lastSeq }, [`imported ${records.length} record(s) in ${batches} batch(es), last seq ${lastSeq}`]);
      }),
    );
}

/**
 * Registers the client-side subcommands (`put`, `get`, `del`, `history`, `proof`, `verify`,
 * `checkpoint`, `import`) on `program`.
 */
export function registerClientCommands(program: Command): void {
  // `--version <n>` of put/get must reach the subcommand, not the program's `-V, --version`.
  program.enablePositionalOptions();
  registerKeyCommands(program);
  registerProofCommands(program);
  registerImport(program);
}
