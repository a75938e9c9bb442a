/**
 * Durable file operations shared by every store that must survive a power loss: syncing a file or
 * a directory, and replacing a small file atomically (temporary file, fsync, rename, directory
 * fsync). Synchronous unless named otherwise.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Syncs a file's data and metadata (`fsync`). */
export function syncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Syncs a directory so renames and creations in it survive a power loss. */
export function syncDir(dir: string): void {
  syncFile(dir);
}

/**
 * {@link syncDir} in libuv's threadpool: the event loop goes on while the device flushes (an
 * install's renames; docs/replication.md § Decisions). Rejects with the OS error.
 */
export function syncDirAsync(dir: string): Promise<void> {
  return new Promise((resolve, reject) =>
    fs.open(dir, 'r', (err, fd) => {
      if (err) return reject(err);
      fs.fsync(fd, (syncErr) => fs.close(fd, () => (syncErr ? reject(syncErr) : resolve())));
    }),
  );
}

/**
 * Replaces `file` by `data` durably: `<file>.tmp` written (mode `0600`) and fsynced, renamed over
 * `file`, then the directory fsynced. A crash leaves the old file or the new one, never a mix.
 */
export function writeFileDurably(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  syncDir(path.dirname(file));
}
