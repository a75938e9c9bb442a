/**
 * Runs the real `proofkv` CLI (the sources, compiled once per run: test/support/cli_build.ts) as a child process, with its
 * own HOME (so the default `~/.proofkv/trust.json` lands in a temporary directory) and endpoint.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { cliArgv } from '../support/cli_build.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The outcome of one CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link cli}. */
export interface CliOptions {
  env?: Record<string, string>;
  /** Bytes for stdin. */
  input?: Uint8Array | string;
  /**
   * A shell fragment appended to the command line as is (`"$(printf 'a\\377b')"`), for arguments
   * that are not valid UTF-8 and so cannot be passed as JavaScript strings.
   */
  rawArg?: string;
  /** Called with each chunk the CLI writes to stderr, as it comes. */
  onStderr?: (chunk: string) => void;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the CLI with `args`; resolves with its exit code and output (60 s timeout). */
export function cli(args: string[], opts: CliOptions = {}): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  // Nothing from the environment the tests run in: each test says its endpoint, state and token.
  for (const k of ['PROOFKV_TOKEN', 'PROOFKV_STATE', 'PROOFKV_ENDPOINT', 'PROOFKV_TOKENS', 'PROOFKV_LOG_LEVEL']) delete env[k];
  for (const [k, v] of Object.entries(opts.env ?? {})) env[k] = v;
  const argv = [...cliArgv(), ...args];
  const proc =
    opts.rawArg === undefined
      ? spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn('/bin/sh', ['-c', `exec ${[process.execPath, ...argv].map(quote).join(' ')} ${opts.rawArg}`], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    opts.onStderr?.(d.toString());
  });
  proc.stdin.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`CLI timed out: ${args.join(' ')}\n${stdout}\n${stderr}`));
    }, 60_000);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Parses the one JSON document a `--json` run printed. */
export function jsonOf(r: CliRun): any {
  const text = r.stdout.trim();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`not one JSON document on stdout (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** Asserts the shape of a `--json` error and returns its `error` object. */
export function jsonError(r: CliRun): { code: string; status: number | null; detail: string; [k: string]: unknown } {
  const doc = jsonOf(r);
  if (typeof doc?.error !== 'object' || doc.error === null) throw new Error(`no error object: ${r.stdout}`);
  const e = doc.error;
  if (typeof e.code !== 'string' || typeof e.detail !== 'string' || !(e.status === null || typeof e.status === 'number')) {
    throw new Error(`malformed error object: ${r.stdout}`);
  }
  return e;
}
