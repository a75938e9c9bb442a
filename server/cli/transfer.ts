/**
 * `import` and `export`: JSON lines (and CSV for import).
 *
 * A JSON line is `{"key": …, "value": …, "version"?: N}` with `key` and `value` in
 * `--key-encoding` / `--value-encoding` (default UTF-8 text), or `keyBase64url` / `valueBase64url`
 * for bytes that are not text. `export` writes exactly this form (falling back to the base64url
 * fields for keys and values that are not valid UTF-8), so `import` reads back what `export` wrote
 * with the same encoding options.
 *
 * `import` validates the whole file first — every line parses, keys are 1 B .. the server's key
 * limit, values within its value limit, explicit versions of a key increase — and writes nothing
 * when any line is bad (the error names the line). It then writes atomic batches in file order.
 * A batch the server refuses writes nothing, and the error says how many records landed and the
 * line to resume from (`--resume-from LINE`). `--atomic` writes the whole file as one batch, or
 * refuses before writing when it does not fit in one.
 * @module
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import { toHex } from '../../proofs/bytes.js';
import { encodeText, toBase64Url, type BatchOp, type ProofKVClient } from '../../client-sdk/index.js';
import {
  CliError,
  clientOf,
  decode,
  intOption,
  print,
  reportOf,
  run,
  versionOption,
  withCommon,
  type CommonOptions,
  type Encoding,
} from './common.js';

/** Largest file `import` reads, bytes: it validates the whole file in memory before writing. */
export const IMPORT_MAX_FILE_BYTES = 256 * 1024 * 1024;

/** One record to import, with the line it came from (1-based). */
export interface ImportRecord {
  line: number;
  key: Uint8Array;
  value: Uint8Array;
  version?: number;
}

/** Parses one CSV line (RFC 4180 quoting, no embedded newlines); errors are `CliError`s without the line. */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new CliError('IMPORT_INVALID', 'unterminated quoted CSV field');
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
      if (i < line.length && line[i] !== ',') throw new CliError('IMPORT_INVALID', 'text after a quoted CSV field');
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

/** Server limits an import is validated against (from `GET /v1/status`). */
export interface ImportLimits {
  maxKeySize: number;
  maxValueSize: number;
  maxBatchOps: number;
  maxBatchBodyBytes: number;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const JSONL_FIELDS = new Set(['key', 'keyBase64url', 'value', 'valueBase64url', 'version']);

/** The bytes of `name` or `nameBase64url` of a JSON record: exactly one of them. */
function jsonBytes(r: Record<string, unknown>, name: 'key' | 'value', enc: Encoding, where: string): Uint8Array {
  const text = r[name];
  const b64 = r[`${name}Base64url`];
  if ((text === undefined) === (b64 === undefined)) throw new CliError('IMPORT_INVALID', `${where}: give exactly one of "${name}" and "${name}Base64url"`);
  if (text !== undefined) {
    if (typeof text !== 'string') throw new CliError('IMPORT_INVALID', `${where}: "${name}" must be a string`);
    return decode(text, enc, `${where}: ${name}`, `--${name}-encoding`);
  }
  if (typeof b64 !== 'string') throw new CliError('IMPORT_INVALID', `${where}: "${name}Base64url" must be a string`);
  return decode(b64, 'base64url', `${where}: ${name}Base64url`);
}

/**
 * Parses and validates a whole import file. Throws a `CliError` naming the first bad line; returns
 * every record otherwise.
 */
export function parseImport(bytes: Uint8Array, format: 'jsonl' | 'csv', enc: { key: Encoding; value: Encoding }, limits: ImportLimits): ImportRecord[] {
  const records: ImportRecord[] = [];
  const lastVersion = new Map<string, number>();
  let start = 0;
  for (let n = 1; start <= bytes.length; n++) {
    let end = bytes.indexOf(0x0a, start);
    if (end === -1) end = bytes.length;
    let raw = bytes.subarray(start, end);
    start = end + 1;
    if (raw.length > 0 && raw[raw.length - 1] === 0x0d) raw = raw.subarray(0, raw.length - 1);
    const where = `line ${n}`;
    let line: string;
    try {
      line = strictUtf8.decode(raw);
    } catch {
      throw new CliError('IMPORT_INVALID', `${where}: not valid UTF-8 (give binary keys and values as base64url or hex)`, { line: n });
    }
    if (line.trim() === '') continue;
    try {
      let rec: ImportRecord;
      if (format === 'jsonl') {
        let r: unknown;
        try {
          r = JSON.parse(line);
        } catch (err) {
          throw new CliError('IMPORT_INVALID', `${where}: not JSON (${(err as Error).message})`);
        }
        if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new CliError('IMPORT_INVALID', `${where}: want an object {"key", "value", "version"?}`);
        const o = r as Record<string, unknown>;
        for (const f of Object.keys(o)) if (!JSONL_FIELDS.has(f)) throw new CliError('IMPORT_INVALID', `${where}: unknown field ${JSON.stringify(f.slice(0, 64))}`);
        const v = o.version;
        if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v))) throw new CliError('INVALID_VERSION', `${where}: version must be an integer`);
        rec = { line: n, key: jsonBytes(o, 'key', enc.key, where), value: jsonBytes(o, 'value', enc.value, where), version: v === undefined ? undefined : versionOption(String(v), `${where}: version`, 1) };
      } else {
        let f: string[];
        try {
          f = parseCsvLine(line);
        } catch (err) {
          throw new CliError('IMPORT_INVALID', `${where}: ${(err as Error).message}`);
        }
        if (n === 1 && f[0] === 'key' && f[1] === 'value') continue;
        if (f.length < 2 || f.length > 3) throw new CliError('IMPORT_INVALID', `${where}: want key,value[,version], got ${f.length} field(s)`);
        const version = f[2] === undefined || f[2] === '' ? undefined : versionOption(f[2], `${where}: version`, 1);
        rec = { line: n, key: decode(f[0], enc.key, `${where}: key`, '--key-encoding'), value: decode(f[1], enc.value, `${where}: value`, '--value-encoding'), version };
      }
      if (rec.key.length === 0) throw new CliError('EMPTY_KEY', `${where}: the key is empty`);
      if (rec.key.length > limits.maxKeySize) throw new CliError('KEY_TOO_LARGE', `${where}: the key is ${rec.key.length} bytes, the server's limit is ${limits.maxKeySize}`);
      if (rec.value.length > limits.maxValueSize) throw new CliError('VALUE_TOO_LARGE', `${where}: the value is ${rec.value.length} bytes, the server's limit is ${limits.maxValueSize}`);
      if (rec.version !== undefined) {
        const id = toHex(rec.key);
        const prev = lastVersion.get(id);
        if (prev !== undefined && rec.version <= prev) throw new CliError('VERSION_NOT_INCREASING', `${where}: version ${rec.version} does not exceed version ${prev} of the same key on an earlier line`);
        lastVersion.set(id, rec.version);
      }
      records.push(rec);
    } catch (err) {
      if (err instanceof CliError) throw new CliError(err.code, err.message, { ...err.extra, line: n });
      throw err;
    }
  }
  return records;
}

/** Bytes `r` adds to a JSON batch body (base64url key and value plus field names). */
function wireBytes(r: ImportRecord): number {
  return Math.ceil((r.key.length * 4) / 3) + Math.ceil((r.value.length * 4) / 3) + 64;
}

/** Splits `records` into batches of at most `maxOps` records and `maxBytes` of request body. */
export function planBatches(records: ImportRecord[], maxOps: number, maxBytes: number): ImportRecord[][] {
  const out: ImportRecord[][] = [];
  let cur: ImportRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const b = wireBytes(r);
    if (cur.length > 0 && (cur.length >= maxOps || bytes + b > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(r);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** The server's limits, from `GET /v1/status`. */
async function limitsOf(c: ProofKVClient): Promise<ImportLimits> {
  const l = (await c.status()).limits as Partial<ImportLimits> | undefined;
  const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : d);
  return {
    maxKeySize: num(l?.maxKeySize, 65536),
    maxValueSize: num(l?.maxValueSize, 1024 * 1024),
    maxBatchOps: num(l?.maxBatchOps, 10_000),
    maxBatchBodyBytes: num(l?.maxBatchBodyBytes, 16 * 1024 * 1024),
  };
}

/** Rewrites `ops[i]` in a server message to the file line of that op. */
function withLines(detail: string, batch: ImportRecord[]): string {
  return detail.replace(/ops\[(\d+)\]/g, (m, i: string) => (batch[Number(i)] ? `line ${batch[Number(i)].line}` : m));
}

function registerImport(program: Command): void {
  withCommon(program.command('import <file>').description('import JSON lines ({"key","value","version"?}) or CSV (key,value[,version]): validated whole, then written in atomic batches'))
    .addOption(new Option('--format <format>', 'input format (default: by extension, .csv is CSV)').choices(['jsonl', 'csv']))
    .option('--batch-size <n>', 'records per atomic batch', '500')
    .option('--atomic', 'write the whole file as one atomic batch (refused before writing when it does not fit in one)')
    .option('--resume-from <line>', 'write only the records from this line on (after a failed import: the line it names)')
    .option('--no-progress', 'no progress bar')
    .action(
      run(async (file: string, o: CommonOptions & { format?: 'jsonl' | 'csv'; batchSize: string; atomic?: boolean; resumeFrom?: string; progress: boolean }) => {
        const format = o.format ?? (file.toLowerCase().endsWith('.csv') ? 'csv' : 'jsonl');
        const batchSize = intOption(o.batchSize, '--batch-size', 1)!;
        const resumeFrom = intOption(o.resumeFrom, '--resume-from', 1) ?? 1;
        if (o.atomic && o.resumeFrom !== undefined) throw new CliError('USAGE', '--atomic and --resume-from exclude each other');
        let size: number;
        try {
          size = (await stat(file)).size;
        } catch (err) {
          throw new CliError('USAGE', `cannot read ${file}: ${(err as Error).message}`);
        }
        if (size > IMPORT_MAX_FILE_BYTES) throw new CliError('IMPORT_TOO_LARGE', `${file} is ${size} bytes; import validates a file whole and reads at most ${IMPORT_MAX_FILE_BYTES}: split it`);
        const c = clientOf(o);
        const limits = await limitsOf(c);
        const all = parseImport(new Uint8Array(await readFile(file)), format, { key: o.keyEncoding, value: o.valueEncoding }, limits);
        const records = all.filter((r) => r.line >= resumeFrom);
        const skipped = all.length - records.length;
        if (records.length === 0) {
          if (all.length > 0 && o.resumeFrom !== undefined) throw new CliError('USAGE', `--resume-from ${resumeFrom}: no record on or after that line (the last record is on line ${all[all.length - 1].line})`);
          print(o, { records: 0, batches: 0, lastSeq: null, skipped }, [`nothing to import in ${file}`]);
          return;
        }
        const budget = limits.maxBatchBodyBytes - 4096;
        const batches = o.atomic ? planBatches(records, limits.maxBatchOps, budget) : planBatches(records, Math.min(batchSize, limits.maxBatchOps), budget);
        if (o.atomic && batches.length > 1) {
          throw new CliError(
            'IMPORT_TOO_LARGE',
            `--atomic: ${records.length} records do not fit in one batch (at most ${limits.maxBatchOps} operations and about ${budget} bytes of request); nothing was written`,
          );
        }
        const bar = o.progress && !o.json ? new cliProgress.SingleBar({ format: 'import [{bar}] {value}/{total} records | {eta_formatted} left', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
        bar?.start(records.length, 0);
        let landed = 0;
        let lastSeq = 0;
        try {
          for (let i = 0; i < batches.length; i++) {
            const chunk = batches[i];
            const ops: BatchOp[] = chunk.map((r) => ({ op: 'put', key: r.key, value: r.value, ...(r.version !== undefined ? { version: r.version } : {}) }));
            try {
              const res = await c.batch(ops);
              lastSeq = Math.max(lastSeq, ...res.map((x) => x.seq));
            } catch (err) {
              bar?.stop();
              const r = reportOf(err);
              const from = chunk[0].line;
              const to = chunk[chunk.length - 1].line;
              const unknown = r.code === 'NETWORK_ERROR';
              const before = skipped > 0 ? ` (lines before ${resumeFrom} were skipped by --resume-from)` : '';
              const done = landed === 0 ? `no record landed${before}` : `${landed} record(s) landed, lines ${records[0].line}–${batches[i - 1][batches[i - 1].length - 1].line}${before}`;
              throw new CliError(
                r.code,
                `batch ${i + 1} of ${batches.length} (lines ${from}–${to}) failed: ${withLines(r.detail, chunk)}; ${done}; ` +
                  (unknown
                    ? `whether batch ${i + 1} landed is unknown (no answer): check line ${to}'s key before resuming with --resume-from ${from} (or from the line after ${to})`
                    : `nothing from line ${from} on was written: fix the cause and run again with --resume-from ${from}`),
                { ...r.extra, imported: landed, resumeFrom: from, batch: { index: i + 1, of: batches.length, fromLine: from, toLine: to }, outcomeUnknown: unknown },
                r.status,
              );
            }
            landed += chunk.length;
            bar?.increment(chunk.length);
          }
        } finally {
          bar?.stop();
        }
        print(o, { records: landed, batches: batches.length, lastSeq, skipped, atomic: o.atomic === true }, [
          `imported ${landed} record(s) in ${batches.length} ${o.atomic ? 'atomic batch' : 'batch(es)'}, last seq ${lastSeq}` + (skipped > 0 ? ` (${skipped} record(s) before line ${resumeFrom} skipped)` : ''),
        ]);
      }),
    );
}

/** `bytes` as a JSON-lines field: `name` in `enc`, or `nameBase64url` when it is not text. */
function field(bytes: Uint8Array, enc: Encoding, name: 'key' | 'value'): Record<string, string> {
  const text = encodeText(bytes, enc);
  return text === undefined ? { [`${name}Base64url`]: toBase64Url(bytes) } : { [name]: text };
}

/** Writes `text`, waiting when the stream's buffer is full. */
async function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (!out.write(text)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
}

function registerExport(program: Command): void {
  withCommon(program.command('export').description('write latest values (or --all-versions) as JSON lines that `import` reads back (plain reads, not verified)'))
    .option('--prefix <p>', 'only keys with this prefix (in --key-encoding)')
    .option('--all-versions', 'every version of each key, oldest first, instead of the latest')
    .option('--out <file>', 'write to this file (atomically) instead of stdout')
    .action(
      run(async (o: CommonOptions & { prefix?: string; allVersions?: boolean; out?: string }) => {
        const prefix = o.prefix === undefined ? undefined : decode(o.prefix, o.keyEncoding, '--prefix', '--key-encoding');
        const c = clientOf(o);
        const tmp = o.out === undefined ? undefined : `${o.out}.${process.pid}.tmp`;
        let stream: WriteStream | undefined;
        const out: NodeJS.WritableStream = tmp === undefined ? process.stdout : (stream = createWriteStream(tmp, { mode: 0o644 }));
        const failed = new Promise<never>((_, reject) => stream?.on('error', (err) => reject(new CliError('IO_ERROR', `cannot write ${o.out}: ${err.message}`))));
        failed.catch(() => undefined);
        let records = 0;
        let keys = 0;
        let tombstones = 0;
        const line = (key: Uint8Array, value: Uint8Array, version: number) =>
          `${JSON.stringify({ ...field(key, o.keyEncoding, 'key'), ...field(value, o.valueEncoding, 'value'), version })}\n`;
        try {
          let cursor: string | undefined;
          do {
            const page = await Promise.race([c.scan({ prefix, cursor, limit: 1000 }), failed]);
            for (const e of page.items) {
              keys++;
              if (!o.allVersions) {
                await Promise.race([write(out, line(e.key, e.value, e.version)), failed]);
                records++;
                continue;
              }
              let hc: string | undefined;
              do {
                const h = await Promise.race([c.history(e.key, { limit: 1000, cursor: hc }), failed]);
                for (const v of h.entries) {
                  if (v.kind === 'delete') {
                    tombstones++;
                    continue;
                  }
                  await Promise.race([write(out, line(v.key, v.value, v.version)), failed]);
                  records++;
                }
                hc = h.cursor;
              } while (hc !== undefined);
            }
            cursor = page.cursor;
          } while (cursor !== undefined);
          if (stream) {
            await Promise.race([new Promise<void>((resolve) => stream!.end(() => resolve())), failed]);
            await rename(tmp!, o.out!);
          }
        } catch (err) {
          if (stream) {
            stream.destroy();
            await rm(tmp!, { force: true });
          }
          throw err;
        }
        const note = tombstones > 0 ? `; ${tombstones} delete(s) in histories not exported (import writes values only)` : '';
        const summary = { records, keys, ...(o.allVersions ? { skippedDeletes: tombstones } : {}), verified: false };
        if (o.out !== undefined) print(o, { file: o.out, ...summary }, [`exported ${records} record(s) of ${keys} key(s) to ${o.out} (plain reads, not verified${note})`]);
        else process.stderr.write(`proofkv: exported ${records} record(s) of ${keys} key(s) (plain reads, not verified${note})\n`);
      }),
    );
}

/** Registers `import` and `export`. */
export function registerTransferCommands(program: Command): void {
  registerImport(program);
  registerExport(program);
}
