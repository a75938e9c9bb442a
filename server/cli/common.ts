/**
 * What every client command of the CLI shares: the common options, parsing of keys, values and
 * numbers typed on the command line, the client and its trusted-state file, output (text or
 * `--json`), and the mapping of every failure to one error report.
 *
 * An error is one line on stderr (`proofkv: CODE: detail`), or with `--json` one JSON object on
 * stdout, `{"error": {"code", "status", "detail", …}}`: `status` is the HTTP status when the server
 * answered with an error, `null` when the CLI itself, the network or a verification failed.
 * @module
 */
import { parseTimeText } from '../../client-sdk/time.js';
import { homedir } from 'node:os';
import { createWriteStream } from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { toHex } from '../../proofs/bytes.js';
import {
  decodeText,
  encodeText,
  FileStateStore,
  MAX_VERSION,
  parsePublicKey,
  ProofKVClient,
  ProofKVClientError,
  ProofKVHttpError,
  ProofKVNetworkError,
  ProofKVResponseTooLargeError,
  toBase64Url,
  VerificationError,
  type Entry,
  type TextEncoding,
  type TrustConfig,
  type TrustedState,
} from '../../client-sdk/index.js';
import type { LogHead } from '../../proofs/checkpoint.js';

/** Exit codes of the client commands. */
export const CLIENT_EXIT = { ok: 0, error: 1, verification: 3, notFound: 4 } as const;

/** The default trusted-state file. */
export const DEFAULT_STATE_FILE = '~/.proofkv/trust.json';
/** The default endpoint. */
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:7070';
/** Largest key the server accepts, bytes. */
export const MAX_KEY_BYTES = 65536;
/** Largest value the CLI reads from a file or stdin, bytes (the server's own limit may be lower). */
export const MAX_INPUT_VALUE_BYTES = 64 * 1024 * 1024;

/** How keys and values are written on the command line. */
export type Encoding = TextEncoding;

/** Options every client command takes. */
export interface CommonOptions {
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

/**
 * A failure the CLI detects itself, with a stable `code` (`USAGE`, `EMPTY_KEY`,
 * `INVALID_VERSION`, `INVALID_ENCODING`, `MISSING_VALUE`, …) and extra fields for `--json`.
 */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** Extra fields of the `--json` error object. */
    readonly extra: Record<string, unknown> = {},
    /** The HTTP status, when the failure is the server's answer. */
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), ...v.split(',').filter((s) => s !== '')];
const encodings = ['utf8', 'hex', 'base64url', 'base64'];

/** Adds the common options to `cmd`. */
export function withCommon(cmd: Command): Command {
  return cmd
    .option('--endpoint <url>', `node URL, repeatable or comma-separated (env PROOFKV_ENDPOINT, default ${DEFAULT_ENDPOINT})`, collect)
    .option('--token <token>', 'bearer token (env PROOFKV_TOKEN)')
    .option('--json', 'print JSON instead of text (errors too: {"error": {code, status, detail}})')
    .option('--public-key <key>', 'trusted node key, hex, base64url or base64; repeatable (default: trust on first use)', collect)
    .option('--quorum <n>', 'signatures a checkpoint needs (default: a majority of --public-key)')
    .option('--state <file>', `trusted-state file (env PROOFKV_STATE, default ${DEFAULT_STATE_FILE})`)
    .option('--timeout <ms>', 'per-request timeout in ms', '10000')
    .addOption(new Option('--key-encoding <enc>', 'how keys are written on the command line').choices(encodings).default('utf8'))
    .addOption(new Option('--value-encoding <enc>', 'how values are written and printed').choices(encodings).default('utf8'));
}

/**
 * The bytes of a key or value typed as `enc`. A UTF-8 argument holding U+FFFD is refused: Node
 * turns bytes of the command line that are not valid UTF-8 into U+FFFD, so the bytes the user
 * meant are already lost.
 */
export function decode(text: string, enc: Encoding, what: string, flag = what.endsWith('value') ? '--value-encoding' : '--key-encoding'): Uint8Array {
  let b: Uint8Array;
  try {
    b = decodeText(text, enc);
  } catch (err) {
    const hint = enc === 'utf8' ? `; give the bytes with ${flag} hex (or base64url)` : '';
    throw new CliError('INVALID_ENCODING', `${what} ${(err as Error).message}${hint}`);
  }
  return b;
}

/** A key from the command line: decoded, and refused when empty or larger than 64 KiB. */
export function keyArg(text: string, enc: Encoding, what = 'key'): Uint8Array {
  const k = decode(text, enc, what, '--key-encoding');
  if (k.length === 0) throw new CliError('EMPTY_KEY', `${what} is empty; keys are 1 B .. 64 KiB`);
  if (k.length > MAX_KEY_BYTES) throw new CliError('KEY_TOO_LARGE', `${what} is ${k.length} bytes, limit ${MAX_KEY_BYTES}`);
  return k;
}

/** `bytes` as text for a person: in `enc`, and for `utf8` that is not valid UTF-8, `hex:…`. */
export function show(bytes: Uint8Array, enc: Encoding): string {
  return encodeText(bytes, enc) ?? `hex:${toHex(bytes)}`;
}

/**
 * A non-negative integer option: decimal digits only, at most 2^53-1. `code` is the error code
 * (`INVALID_VERSION` for versions).
 */
export function intOption(v: string | undefined, name: string, min = 0, code = 'USAGE'): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v)) throw new CliError(code, `${name} must be a decimal integer >= ${min}, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    throw new CliError(code, `${name} ${v} exceeds the largest ${code === 'INVALID_VERSION' ? 'version' : 'value'}, 2^53-1 (${MAX_VERSION})`);
  }
  if (n < min) throw new CliError(code, `${name} must be >= ${min}, got ${v}`);
  return n;
}

/** A version option (`--version`, `--min`, `--max`): {@link intOption} with code `INVALID_VERSION`. */
export function versionOption(v: string | undefined, name: string, min = 0): number | undefined {
  return intOption(v, name, min, 'INVALID_VERSION');
}

/** The trust configuration of the options: `--public-key` and `--quorum`, or TOFU. */
export function trustOf(o: CommonOptions): TrustConfig {
  if (!o.publicKey || o.publicKey.length === 0) return { tofu: true };
  const publicKeys = o.publicKey.map((k) => {
    try {
      return parsePublicKey(k);
    } catch (err) {
      throw new CliError('USAGE', `--public-key: ${(err as Error).message}`);
    }
  });
  const quorum = intOption(o.quorum, '--quorum', 1) ?? Math.floor(publicKeys.length / 2) + 1;
  if (quorum > publicKeys.length) throw new CliError('USAGE', `--quorum ${quorum} exceeds the ${publicKeys.length} --public-key(s)`);
  return { publicKeys, quorum };
}

/** The trusted-state file as given (`--state`, env `PROOFKV_STATE`, or the default). */
export function statePath(o: CommonOptions): string {
  return o.state ?? process.env.PROOFKV_STATE ?? DEFAULT_STATE_FILE;
}

/** {@link statePath} with `~/` expanded (as `FileStateStore` expands it: `HOME`). */
export function stateFile(o: CommonOptions): string {
  const p = statePath(o);
  if (!p.startsWith('~/')) return p;
  const home = process.env.HOME ?? process.env.USERPROFILE ?? homedir();
  return `${home.replace(/[\\/]+$/, '')}/${p.slice(2)}`;
}

/** The endpoints of the options (`--endpoint`, env `PROOFKV_ENDPOINT`, or the default). */
export function endpointsOf(o: CommonOptions): string[] {
  return o.endpoint && o.endpoint.length > 0 ? o.endpoint : (process.env.PROOFKV_ENDPOINT ?? DEFAULT_ENDPOINT).split(',');
}

/** A client for the options. */
export function clientOf(o: CommonOptions): ProofKVClient {
  try {
    return new ProofKVClient({
      endpoints: endpointsOf(o),
      token: o.token ?? process.env.PROOFKV_TOKEN,
      trust: trustOf(o),
      stateStore: new FileStateStore(statePath(o)),
      timeoutMs: intOption(o.timeout, '--timeout', 1),
      onWarning: (m) => process.stderr.write(`${oneLine(m)}\n`),
    });
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('USAGE', (err as Error).message);
  }
}

/** The `proofkv-trust-v1` document of the trusted-state file; `{}` when there is none. */
export async function readStates(file: string): Promise<Record<string, TrustedState>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return {};
    throw new CliError('STATE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: { format?: string; states?: Record<string, TrustedState> };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw new CliError('STATE_UNREADABLE', `${file} is not JSON`);
  }
  if (doc.format !== 'proofkv-trust-v1' || typeof doc.states !== 'object' || doc.states === null) throw new CliError('STATE_UNREADABLE', `${file} is not a proofkv-trust-v1 file`);
  return doc.states;
}

/** Writes `bytes` to `file` through a temporary file in the same directory and a rename. */
export async function writeFileAtomic(file: string, bytes: Uint8Array | string, mode = 0o644): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await new Promise<void>((resolve, reject) => {
      const s = createWriteStream(tmp, { mode });
      s.on('error', reject);
      s.end(bytes, () => resolve());
    });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new CliError('IO_ERROR', `cannot write ${file}: ${(err as Error).message}`);
  }
}

/** An entry as `--json` prints it: bytes base64url, plus `valueUtf8` when the value is text. */
export function entryJson(e: Entry, withValue = true): Record<string, unknown> {
  const out: Record<string, unknown> = { key: toBase64Url(e.key), version: e.version, seq: e.seq, time: e.time, timeIso: isoTime(e.time), kind: e.kind };
  if (!withValue) return { ...out, valueBytes: e.value.length };
  out.value = toBase64Url(e.value);
  const text = e.kind === 'put' ? encodeText(e.value, 'utf8') : undefined;
  if (text !== undefined) out.valueUtf8 = text;
  return out;
}

/** A commit time (ms) as ISO 8601 UTC; the ms as text when the date is out of JavaScript's range. */
export function isoTime(ms: number): string {
  return ms <= 8.64e15 ? new Date(ms).toISOString() : `${ms} ms`;
}

/** `--since` / `--until`: ms since the epoch or ISO 8601; `USAGE` otherwise. */
export function timeOption(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const ms = parseTimeText(v);
  if (ms === undefined) throw new CliError('USAGE', `${flag} must be ms since the epoch or an ISO 8601 date-time (e.g. 2026-11-29T10:00:00Z)`);
  return ms;
}

/** A log head as `--json` prints it. */
export function headJson(h: LogHead): Record<string, unknown> {
  return { size: h.size, root: toHex(h.root) };
}

/** Prints `json` with `--json`, else `lines`. */
export function print(o: { json?: boolean }, json: unknown, lines: string[]): void {
  process.stdout.write(o.json ? `${JSON.stringify(json)}\n` : `${lines.join('\n')}\n`);
}

/** Two aligned columns. */
export function table(rows: Array<[string, string]>): string[] {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
}

/** `s` on one line. */
export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** What a failure reports: its code, HTTP status (or null), detail, extra JSON fields, exit code. */
export interface ErrorReport {
  code: string;
  status: number | null;
  detail: string;
  extra: Record<string, unknown>;
  exit: number;
}

/** Maps any thrown value to an {@link ErrorReport}. */
export function reportOf(err: unknown): ErrorReport {
  if (err instanceof CliError) return { code: err.code, status: err.status, detail: err.message, extra: err.extra, exit: CLIENT_EXIT.error };
  if (err instanceof VerificationError) {
    return { code: 'VERIFICATION_FAILED', status: null, detail: `${err.reason}: ${err.message}`, extra: { reason: err.reason }, exit: CLIENT_EXIT.verification };
  }
  if (err instanceof ProofKVHttpError) {
    let detail = err.detail ?? err.message;
    if (err.code === 'CHECKPOINT_UNAVAILABLE') detail += '; verified reads need a checkpoint: the server takes one after writes (every --checkpoint-interval ms), `proofkv checkpoint --create` takes one now';
    const extra = err.code === 'CONDITION_FAILED' ? { currentVersion: err.currentVersion, absent: err.absent } : {};
    return { code: err.code, status: err.status, detail, extra, exit: err.code === 'NOT_FOUND' ? CLIENT_EXIT.notFound : CLIENT_EXIT.error };
  }
  if (err instanceof ProofKVNetworkError) return { code: 'NETWORK_ERROR', status: null, detail: err.message, extra: { endpoint: err.endpoint, timedOut: err.timedOut }, exit: CLIENT_EXIT.error };
  if (err instanceof ProofKVResponseTooLargeError) return { code: 'RESPONSE_TOO_LARGE', status: null, detail: err.message, extra: { endpoint: err.endpoint, limit: err.limit }, exit: CLIENT_EXIT.error };
  if (err instanceof ProofKVClientError) return { code: 'CLIENT_ERROR', status: null, detail: err.message, extra: {}, exit: CLIENT_EXIT.error };
  if (err instanceof TypeError || err instanceof RangeError) return { code: 'INVALID_ARGUMENT', status: null, detail: err.message, extra: {}, exit: CLIENT_EXIT.error };
  return { code: 'ERROR', status: null, detail: (err as Error)?.message ?? String(err), extra: {}, exit: CLIENT_EXIT.error };
}

/** Writes `r` as one line on stderr, or with `json` as `{"error": …}` on stdout; sets the exit code. */
export function reportError(r: ErrorReport, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ error: { code: r.code, status: r.status, detail: oneLine(r.detail), ...r.extra } })}\n`);
  } else {
    const detail = oneLine(r.detail);
    process.stderr.write(`proofkv: ${r.code === 'VERIFICATION_FAILED' ? 'verification failed' : r.code}${r.status !== null ? ` (${r.status})` : ''}: ${detail}\n`);
  }
  process.exitCode = r.exit;
}

/**
 * Adds a hint to a failed verification against a trusted state: `UNTRUSTED_KEY` against a pinned
 * (TOFU) or configured key means the node now signs with another key — a reset or re-keyed node,
 * or an impostor; `ROLLBACK` and `FORK` mean its log is not the one trusted before — a node
 * restored from an older backup or reset, or a lying one; `KEY_ROTATION_REFUSED` means the node
 * rotated its key in a way the client cannot follow (the old key did not sign it, or a forged
 * statement). All say how to reset the trust.
 */
export async function explainVerification(r: ErrorReport, o: CommonOptions): Promise<ErrorReport> {
  const reason = r.extra.reason;
  if (reason !== 'UNTRUSTED_KEY' && reason !== 'ROLLBACK' && reason !== 'FORK' && reason !== 'KEY_ROTATION_REFUSED') return r;
  const file = stateFile(o);
  if (reason === 'KEY_ROTATION_REFUSED' && o.publicKey && o.publicKey.length > 0) {
    return { ...r, detail: `${r.detail}; once the node's new key is confirmed out of band (its banner or \`proofkv status\`), pass it with --public-key` };
  }
  if (reason === 'UNTRUSTED_KEY' && o.publicKey && o.publicKey.length > 0) {
    return { ...r, detail: `${r.detail}; the node signs with a key that is not among --public-key (compare with its banner or \`proofkv status\`)` };
  }
  let pinned: TrustedState | undefined;
  let id: string | undefined;
  try {
    id = clientOf(o).trust.id;
    pinned = (await readStates(file))[id];
  } catch {
    return r;
  }
  if (!pinned) return r;
  const reset = `proofkv trust reset${o.endpoint && o.endpoint.length > 0 ? ` --endpoint ${o.endpoint.join(',')}` : ''}${o.state !== undefined ? ` --state ${o.state}` : ''}`;
  const since = pinned.updatedAt ? `, last verified ${pinned.updatedAt}` : '';
  const detail =
    reason === 'KEY_ROTATION_REFUSED'
      ? `${r.detail}. ${file} ${pinned.tofu ? 'pins' : 'trusts'} ${pinned.publicKeys.join(',')} for ${id}${since}; once the node's new key is confirmed out of band, run \`${reset}\`; otherwise do not trust this node`
      : reason === 'UNTRUSTED_KEY'
      ? `UNTRUSTED_KEY: the node's key changed: ${file} ${pinned.tofu ? 'pins' : 'trusts'} ${pinned.publicKeys.join(',')} for ${id}${pinned.tofu ? ' (trust on first use)' : ''}${since}, ` +
        `but the node now signs with another key. If the server was reset or re-keyed on purpose, compare its new key (\`proofkv status\`) out of band and run \`${reset}\`; otherwise do not trust this node`
      : `${r.detail}; the node's log does not extend the head trusted in ${file} for ${id}${since}. If the server was reset or restored from a backup on purpose, run \`${reset}\`; otherwise do not trust this node`;
  return { ...r, detail, extra: { ...r.extra, stateFile: file, trustId: id, trustedKeys: pinned.publicKeys, hint: reset } };
}

/** Runs an action, mapping every failure to an error report (stderr, or JSON with `--json`). */
export function run<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    const o = (typeof cmd?.opts === 'function' ? cmd.opts() : {}) as CommonOptions;
    try {
      await fn(...args);
    } catch (err) {
      let r = reportOf(err);
      // `verify` checks a saved bundle offline against every trusted identity, not this endpoint's.
      if (r.code === 'VERIFICATION_FAILED' && cmd?.name?.() !== 'verify') r = await explainVerification(r, o);
      reportError(r, o.json === true);
    }
  };
}
