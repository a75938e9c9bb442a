/**
 * The engine's side of installing a snapshot: replacing a data directory's engine files by a
 * staged, already verified set in one crash-safe step (`src/replication/snapshot.ts` stages and
 * verifies them).
 *
 * ```
 * <dir>/SNAPSHOT-STAGING/   being filled: tables, CHECKPOINTS, MANIFEST, CURRENT, SNAPSHOT, FILES
 *   rename (+ fsync of <dir>)              ← the commit point
 * <dir>/SNAPSHOT-INSTALL/   committed: rolled forward by finishSnapshotInstall (at every open)
 * <dir>/SNAPSHOT-FETCHED/   verified tables of a failed attempt, for the next one (removed at open)
 * ```
 * Rolling forward deletes `CURRENT`, deletes every engine file of the old state that the new set
 * does not name, moves the staged files in, then moves `CURRENT` in last and removes the folder.
 * Each step is idempotent, so a crash anywhere leaves the old state (before the commit rename) or
 * a folder that the next open finishes into the new state. `NODE_KEY`, `KEY_ROTATIONS`, `LOCK`
 * and sub-folders (the Raft log in `raft/`) are never touched.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptionError } from '../errors.js';
import { files } from '../version/version_set.js';
import { syncDir, syncFile } from '../util/durable.js';

/** Folder a snapshot is fetched and verified in, inside the data directory (not yet committed). */
export const SNAPSHOT_STAGING_DIR = 'SNAPSHOT-STAGING';
/**
 * Verified tables failed install attempts staged, kept for the next attempt (at most the tables
 * of the last attempt's snapshot); removed at every open and after a successful install.
 */
export const SNAPSHOT_FETCHED_DIR = 'SNAPSHOT-FETCHED';
/** The staging folder once committed: the next open (or the install itself) rolls it forward. */
export const SNAPSHOT_INSTALL_DIR = 'SNAPSHOT-INSTALL';
/** In the staged set: the JSON list of the file names it installs (`CURRENT` excluded). */
export const SNAPSHOT_FILES_LIST = 'FILES';

/** Engine files an install replaces: everything that describes the table state. */
const ENGINE_FILE = /^(CURRENT|CURRENT\.tmp|CHECKPOINTS|SNAPSHOT|MANIFEST-\d+|\d+\.(sst|log)|flush-[^/]*\.tmp|compact-[^/]*\.tmp)$/;

/** A step of {@link finishSnapshotInstall}, reported to `onStep` (tests copy the directory there). */
export type InstallStep = 'committed' | 'current-removed' | 'old-removed' | 'moved' | 'current-installed' | 'done';

/** The names a staged set installs, read from its `FILES` list (a `CorruptionError` if unusable). */
function stagedNames(folder: string): string[] {
  const file = path.join(folder, SNAPSHOT_FILES_LIST);
  let names: unknown;
  try {
    names = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CorruptionError(`${path.basename(folder)}/${SNAPSHOT_FILES_LIST}`, `unreadable: ${(err as Error).message}`);
  }
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && ENGINE_FILE.test(n) && n !== files.current)) {
    throw new CorruptionError(`${path.basename(folder)}/${SNAPSHOT_FILES_LIST}`, 'not a list of engine file names');
  }
  return names as string[];
}

/**
 * Writes the `FILES` list of a staged set (every file in `folder` but `CURRENT`) and syncs the
 * folder. Call once every staged file is written and synced.
 */
export function sealStagedSnapshot(folder: string): void {
  const names = fs.readdirSync(folder).filter((n) => n !== files.current && n !== SNAPSHOT_FILES_LIST).sort();
  for (const n of names) {
    if (!ENGINE_FILE.test(n)) throw new Error(`snapshot staging: unexpected file ${n}`);
  }
  if (!fs.existsSync(path.join(folder, files.current))) throw new Error('snapshot staging: no CURRENT');
  const list = path.join(folder, SNAPSHOT_FILES_LIST);
  fs.writeFileSync(list, `${JSON.stringify(names)}\n`, { mode: 0o600 });
  syncFile(list);
  syncDir(folder);
}

/**
 * Commits the staged set in `<dir>/SNAPSHOT-STAGING` (sealed by {@link sealStagedSnapshot}) and
 * rolls it forward. The caller holds the directory's lock (no engine has it open).
 */
export function commitStagedSnapshot(dir: string, onStep?: (step: InstallStep) => void): void {
  const staging = path.join(dir, SNAPSHOT_STAGING_DIR);
  stagedNames(staging);
  // An earlier install committed but never finished (no open since its crash): finish it first,
  // so that the directory always holds one whole state or one committed install.
  if (fs.existsSync(path.join(dir, SNAPSHOT_INSTALL_DIR))) finishCommitted(dir);
  fs.renameSync(staging, path.join(dir, SNAPSHOT_INSTALL_DIR));
  syncDir(dir);
  onStep?.('committed');
  finishSnapshotInstall(dir, onStep);
}

/**
 * Finishes a committed snapshot install in `dir` (idempotent; a no-op without one) and removes
 * an uncommitted staging folder. `ProofDB.open` calls it right after taking the lock. Returns
 * whether an install was finished.
 */
export function finishSnapshotInstall(dir: string, onStep?: (step: InstallStep) => void): boolean {
  // A fetch that never committed: the old state is whole, the staged files are garbage (and the
  // tables a failed attempt kept are of no use to an engine that opens).
  fs.rmSync(path.join(dir, SNAPSHOT_STAGING_DIR), { recursive: true, force: true });
  fs.rmSync(path.join(dir, SNAPSHOT_FETCHED_DIR), { recursive: true, force: true });
  if (!fs.existsSync(path.join(dir, SNAPSHOT_INSTALL_DIR))) return false;
  finishCommitted(dir, onStep);
  return true;
}

/** Rolls the committed install in `<dir>/SNAPSHOT-INSTALL` forward (idempotent). */
function finishCommitted(dir: string, onStep?: (step: InstallStep) => void): void {
  const install = path.join(dir, SNAPSHOT_INSTALL_DIR);
  const stagedCurrent = path.join(install, files.current);
  if (fs.existsSync(stagedCurrent)) {
    const names = new Set(stagedNames(install));
    fs.rmSync(path.join(dir, files.current), { force: true });
    syncDir(dir);
    onStep?.('current-removed');
    for (const name of fs.readdirSync(dir)) {
      if (ENGINE_FILE.test(name) && !names.has(name)) fs.rmSync(path.join(dir, name), { force: true });
    }
    onStep?.('old-removed');
    for (const name of names) {
      const from = path.join(install, name);
      if (fs.existsSync(from)) fs.renameSync(from, path.join(dir, name));
    }
    syncDir(dir);
    onStep?.('moved');
    fs.renameSync(stagedCurrent, path.join(dir, files.current));
    syncDir(dir);
    onStep?.('current-installed');
  }
  fs.rmSync(install, { recursive: true, force: true });
  syncDir(dir);
  onStep?.('done');
}

/**
 * True when `dir` holds an engine state: a `CURRENT` manifest pointer, or a committed snapshot
 * install that the next open finishes. False for a missing or empty directory, or one holding only
 * a node key (a member laid out by `cluster add` that has not opened its engine yet).
 */
export function holdsEngineState(dir: string): boolean {
  return fs.existsSync(path.join(dir, files.current)) || fs.existsSync(path.join(dir, SNAPSHOT_INSTALL_DIR));
}
