/**
 * Backup and restore of a database, consistent at a checkpoint and verified against it.
 *
 * A backup is a directory holding the table files of one checkpoint, the checkpoint log up to and
 * including that checkpoint (`CHECKPOINTS`) and `BACKUP.json` (what was copied). It is taken from
 * a data directory while a node serves it, without the node's help: the latest checkpoint's tables
 * stay on disk until the next checkpoint, and they are hard-linked (or copied) first; if a newer
 * checkpoint deleted one meanwhile, the backup starts again from that newer checkpoint. Before a
 * backup is declared good, every table is re-read and re-hashed (`TableReader.verify`), the
 * MasterRoot of the table set is recomputed and compared with the checkpoint's, and the signature
 * on the log head that ends with the checkpoint is checked (against `publicKey` when given).
 *
 * Writes after the checkpoint are not in the backup (the journal is not copied): take a checkpoint
 * first (`POST /v1/checkpoints`) for a backup up to now. `NODE_KEY` is not copied either: a backup
 * holds no signing key. A restore writes a manifest for exactly the checkpoint's tables into an
 * empty data directory, after the same verification; give it the node key (or serve with
 * `--rotate-key`, a logged key rotation).
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkpointLeafHash, publicKeyOf, verifyHeadSignature, type LogHead } from '../../proofs/checkpoint.js';
import { LogTree } from '../../proofs/log.js';
import { HASH_LEN } from '../../proofs/hash.js';
import { masterRootOf } from '../../proofs/lsm.js';
import { equalBytes, toHex } from '../../proofs/bytes.js';
import { CorruptionError, ErrorCode, InvalidArgumentError, ProofKVError } from '../errors.js';
import { readJournal } from '../journal/reader.js';
import { JournalWriter } from '../journal/writer.js';
import { CHECKPOINT_LOG_FILE, decodeRecord, isCheckpointRecord, versionOfStored, type StoredCheckpoint } from '../proof/checkpoint_log.js';
import { ProofContext } from '../proof/prover.js';
import { NODE_KEY_FILE } from '../proof/node_key.js';
import { TableReader } from '../table/table_reader.js';
import { nodeHasher } from '../table/node_hasher.js';
import { ByteLru } from '../util/byte_lru.js';
import { files, VersionSet } from '../version/version_set.js';
import { syncDir, syncFile } from '../util/durable.js';

/** File name of a backup's description. */
export const BACKUP_FILE = 'BACKUP.json';

/** What a verified backup (or restored directory) holds. */
export interface BackupInfo {
  /** Checkpoint index, seq and MasterRoot (hex). */
  checkpoint: { index: number; seq: number; masterRoot: string };
  /** Log head that ends with the checkpoint (root hex) and the public keys whose signatures on it verified (hex). */
  head: { size: number; root: string; signers: string[] };
  /** Table files and their total bytes. */
  tables: number;
  bytes: number;
}

function ioError(what: string, err: unknown): ProofKVError {
  if (err instanceof ProofKVError) return err;
  return new ProofKVError(ErrorCode.IO_ERROR, `${what}: ${(err as Error).message}`, { cause: err });
}

/** The checkpoint log records of `dir` (complete records only; a torn tail is ignored). */
function logRecords(dir: string): Uint8Array[] {
  const file = path.join(dir, CHECKPOINT_LOG_FILE);
  if (!fs.existsSync(file)) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${dir} holds no checkpoint log`);
  return readJournal(fs.readFileSync(file), CHECKPOINT_LOG_FILE).records;
}

/** The checkpoints of `dir`'s log, in order (cosign and divergence records left out). */
function logCheckpoints(dir: string): StoredCheckpoint[] {
  return logRecords(dir).map(decodeRecord).filter(isCheckpointRecord);
}

/** Hard-links `from` to `to`, or copies it when linking is impossible (another file system). */
function linkOrCopy(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw err;
    fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
  }
}

/**
 * Verifies the database files of `dir` against the latest checkpoint of its log: every table of
 * the checkpoint re-hashed, their MasterRoot equal to the checkpoint's, the head signature valid
 * (by `publicKey` when given). Throws `CorruptionError` on any mismatch.
 */
export function verifyCheckpointFiles(dir: string, publicKey?: Uint8Array): BackupInfo {
  // Read-only: the log is read and its tree rebuilt in memory.
  const records = logCheckpoints(dir);
  const tree = new LogTree(nodeHasher);
  for (const r of records) tree.append(checkpointLeafHash(r.checkpoint, nodeHasher));
  const readers = new Map<number, TableReader>();
  try {
    const stored = records.at(-1);
    if (!stored) throw new CorruptionError(CHECKPOINT_LOG_FILE, 'the checkpoint log is empty');
    if (stored.checkpoint.index !== records.length - 1) throw new CorruptionError(CHECKPOINT_LOG_FILE, 'checkpoint indexes are not consecutive');
    let bytes = 0;
    for (const [, meta] of stored.tables) {
      const name = files.table(meta.number);
      const r = TableReader.open(path.join(dir, name), { fileNumber: meta.number, fileName: name, hasher: nodeHasher });
      readers.set(meta.number, r);
      r.verify();
      if (!equalBytes(r.root, meta.root) || r.entryCount !== meta.entryCount || !equalBytes(r.smallest, meta.smallest) || !equalBytes(r.largest, meta.largest)) {
        throw new CorruptionError(name, 'table differs from the checkpoint that names it');
      }
      bytes += r.size;
    }
    const ctx = new ProofContext(versionOfStored(stored), nodeHasher, { get: (n) => readers.get(n)! }, new ByteLru(0));
    const masterRoot = masterRootOf(nodeHasher, ctx.counts, ctx.master ? ctx.master.root() : new Uint8Array(HASH_LEN));
    if (!equalBytes(masterRoot, stored.checkpoint.masterRoot)) throw new CorruptionError(CHECKPOINT_LOG_FILE, 'the tables do not hash to the checkpoint MasterRoot');
    const head: LogHead = { size: records.length, root: tree.root(records.length) };
    const signers = stored.signatures.filter((g) => verifyHeadSignature(head, g)).map((g) => g.publicKey);
    if (signers.length === 0) throw new CorruptionError(CHECKPOINT_LOG_FILE, 'no valid signature on the log head of the checkpoint');
    if (publicKey && !signers.some((k) => equalBytes(k, publicKey))) {
      throw new CorruptionError(CHECKPOINT_LOG_FILE, `the checkpoint is not signed by ${toHex(publicKey).slice(0, 16)}`);
    }
    const c = stored.checkpoint;
    return {
      checkpoint: { index: c.index, seq: c.seq, masterRoot: toHex(c.masterRoot) },
      head: { size: head.size, root: toHex(head.root), signers: signers.map(toHex) },
      tables: stored.tables.length,
      bytes,
    };
  } finally {
    for (const r of readers.values()) r.close();
  }
}

/**
 * Takes a backup of the database in `dataDir` (which a node may be serving) into `outDir` (created;
 * must not exist), at the latest checkpoint, and verifies it. Returns what it holds.
 */
export async function backupDatabase(dataDir: string, outDir: string, options: { publicKey?: Uint8Array; attempts?: number } = {}): Promise<BackupInfo> {
  if (fs.existsSync(outDir)) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${outDir} already exists`);
  const attempts = options.attempts ?? 5;
  let publicKey = options.publicKey;
  if (!publicKey) {
    // The node's own key: the backup must be signed by the node it was taken from.
    try {
      publicKey = publicKeyOf(new Uint8Array(fs.readFileSync(path.join(dataDir, NODE_KEY_FILE))));
    } catch {
      publicKey = undefined;
    }
  }
  for (let attempt = 1; ; attempt++) {
    const tmp = `${outDir}.partial`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
    try {
      const records = logRecords(dataDir);
      if (records.length === 0) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${dataDir} has no checkpoint yet: take one first`);
      const stored = records.map(decodeRecord).filter(isCheckpointRecord).at(-1);
      if (!stored) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${dataDir} has no checkpoint yet: take one first`);
      for (const [, meta] of stored.tables) linkOrCopy(path.join(dataDir, files.table(meta.number)), path.join(tmp, files.table(meta.number)));
      const w = JournalWriter.open(path.join(tmp, CHECKPOINT_LOG_FILE));
      for (const rec of records) w.addRecord(rec);
      await w.flush({ sync: true });
      await w.close();
      const info = verifyCheckpointFiles(tmp, publicKey);
      for (const name of fs.readdirSync(tmp)) syncFile(path.join(tmp, name));
      fs.writeFileSync(path.join(tmp, BACKUP_FILE), `${JSON.stringify({ format: 'proofkv-backup-v1', ...info, time: new Date().toISOString() }, null, 2)}\n`, { mode: 0o600 });
      syncFile(path.join(tmp, BACKUP_FILE));
      syncDir(tmp);
      fs.renameSync(tmp, outDir);
      syncDir(path.dirname(path.resolve(outDir)));
      return info;
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      // A newer checkpoint deleted a table between reading the log and linking it: start again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt < attempts) continue;
      throw ioError('backup', err);
    }
  }
}

/**
 * Restores the backup in `backupDir` into `dataDir` (created; must be missing or empty): verifies
 * the backup, copies tables and checkpoint log, writes a manifest for exactly the checkpoint's
 * tables (no journal: the database resumes at the checkpoint's seq), and `nodeKey` as `NODE_KEY`
 * when given. Without a key the node refuses to start until given one or `--rotate-key`.
 */
export async function restoreDatabase(backupDir: string, dataDir: string, options: { publicKey?: Uint8Array; nodeKey?: Uint8Array } = {}): Promise<BackupInfo> {
  if (fs.existsSync(dataDir) && fs.readdirSync(dataDir).length > 0) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, `${dataDir} is not empty`);
  if (options.nodeKey && options.nodeKey.length !== 32) throw new InvalidArgumentError(ErrorCode.INVALID_ARGUMENT, 'the node key must be 32 bytes');
  const publicKey = options.publicKey ?? (options.nodeKey ? publicKeyOf(options.nodeKey) : undefined);
  verifyCheckpointFiles(backupDir, publicKey); // throws unless the backup verifies
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dataDir, 0o700);
  try {
    const stored = logCheckpoints(backupDir).at(-1)!;
    for (const [, meta] of stored.tables) {
      const name = files.table(meta.number);
      fs.copyFileSync(path.join(backupDir, name), path.join(dataDir, name), fs.constants.COPYFILE_EXCL);
      fs.chmodSync(path.join(dataDir, name), 0o600);
      syncFile(path.join(dataDir, name));
    }
    fs.copyFileSync(path.join(backupDir, CHECKPOINT_LOG_FILE), path.join(dataDir, CHECKPOINT_LOG_FILE), fs.constants.COPYFILE_EXCL);
    fs.chmodSync(path.join(dataDir, CHECKPOINT_LOG_FILE), 0o600);
    syncFile(path.join(dataDir, CHECKPOINT_LOG_FILE));
    if (options.nodeKey) {
      fs.writeFileSync(path.join(dataDir, NODE_KEY_FILE), options.nodeKey, { mode: 0o600 });
      syncFile(path.join(dataDir, NODE_KEY_FILE));
    }
    const vs = VersionSet.create(dataDir);
    vs.current = versionOfStored(stored);
    vs.nextTableNumber = Math.max(0, ...stored.tables.map(([, m]) => m.number)) + 1;
    vs.lastSeq = stored.checkpoint.seq;
    vs.flushedSeq = stored.checkpoint.seq;
    // The restored tables hold every write: commit times resume from their largest.
    vs.lastTime = maxTimeOfTables(dataDir, stored);
    await vs.writeNewManifest();
    await vs.close();
    syncDir(dataDir);
  } catch (err) {
    throw ioError('restore', err);
  }
  return verifyCheckpointFiles(dataDir, publicKey);
}

/** The largest commit time of a checkpoint's tables in `dir` (their `proofkv.max-time` properties). */
export function maxTimeOfTables(dir: string, stored: StoredCheckpoint): number {
  let max = 0;
  for (const [, meta] of stored.tables) {
    const name = files.table(meta.number);
    const r = TableReader.open(path.join(dir, name), { fileNumber: meta.number, fileName: name, hasher: nodeHasher });
    try {
      max = Math.max(max, r.maxTime);
    } finally {
      r.close();
    }
  }
  return max;
}
