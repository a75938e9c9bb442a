/**
 * Helpers for the package tests: run a command, start a server through a launcher (npm, npx, the
 * bin), and check that it really stopped (process gone, port free, data directory unlocked).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { alive } from '../../src/db/lock.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** A fresh temporary directory. */
export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * The environment for a nested npm: without what the outer `npm test` put there for its own
 * script (lifecycle, package and local-prefix variables), which would make the nested npm and the
 * bin think they run inside this checkout's script.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const lower = k.toLowerCase();
    if (lower.startsWith('npm_lifecycle_') || lower.startsWith('npm_package_') || lower === 'npm_config_local_prefix' || lower === 'npm_command') continue;
    if (k.startsWith('PROOFKV_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** The result of one command. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` in `cwd` (bounded by `timeoutMs`) and collects its output. */
export function run(cmd: string, args: string[], cwd: string, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: opts.env ?? cleanEnv(), timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Throws with the command's output unless it exited 0. */
export function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** A server started through a launcher. */
export interface Launched {
  /** The launcher we started (npm, npx or node). */
  launcher: ChildProcess;
  url: string;
  port: number;
  /** The hex public key from the banner. */
  publicKeyHex: string;
  /** The pid of the process that holds the data directory (from its LOCK file). */
  serverPid: number;
  dataDir: string;
  /** Resolves with the launcher's exit code or signal. */
  exited: Promise<number | string>;
  output(): string;
}

/** Starts `cmd args` (which must run `proofkv serve --data dataDir --port 0`) and waits for its banner. */
export async function launch(cmd: string, args: string[], cwd: string, dataDir: string): Promise<Launched> {
  const launcher = spawn(cmd, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  launcher.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  launcher.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => launcher.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const banner = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner in 60 s:\n${out}`)), 60_000);
    const check = () => {
      const m = /listening on (http:\/\/127\.0\.0\.1:(\d+))[\s\S]*public key\s+([0-9a-f]{64})\b/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    launcher.stdout!.on('data', check);
    // 'close', not 'exit': a launcher may exit while the server it started keeps its output open.
    launcher.on('close', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} and its output closed (${code ?? sig}) before listening:\n${out}`));
    });
  });
  const serverPid = Number.parseInt(fs.readFileSync(path.join(dataDir, 'LOCK'), 'utf8'), 10);
  return { launcher, url: banner[1], port: Number(banner[2]), publicKeyHex: banner[3], serverPid, dataDir, exited, output: () => out };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** What is left of a server after its launcher got a signal. */
export interface Leftovers {
  serverAlive: boolean;
  portFree: boolean;
  lockPresent: boolean;
}

/** Polls (every 100 ms, up to `boundMs`) until the server is gone, its port free and its lock removed. */
export async function leftoversAfterStop(s: Launched, boundMs = 15_000): Promise<Leftovers> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const now: Leftovers = {
      serverAlive: alive(s.serverPid),
      portFree: await portFree(s.port),
      lockPresent: fs.existsSync(path.join(s.dataDir, 'LOCK')),
    };
    if ((!now.serverAlive && now.portFree && !now.lockPresent) || Date.now() > deadline) return now;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kills a server that a failed test left running (SIGKILL; its pid came from its own LOCK file). */
export function reap(s: Launched | undefined): void {
  if (!s) return;
  for (const pid of [s.serverPid, s.launcher.pid]) {
    if (pid !== undefined && alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}
