/**
 * The directory lock. Node has no portable `flock`, so the lock is a `LOCK` file created with
 * O_EXCL holding the owner's pid. A lock whose pid is no longer alive (a crashed or killed
 * process) is stale and taken over; within one process a set of held directories stops a second
 * open. Limitation: a recycled pid of an unrelated live process reads as a live owner; removing
 * `LOCK` by hand after checking no ProofKV process uses the directory clears it.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DirectoryLockedError } from '../errors.js';

const held = new Set<string>();

/** Whether process `pid` is alive (EPERM: alive, owned by another user). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A held lock; `release()` removes it. */
export interface DirLock {
  release(): void;
}

/** Takes the lock of `dir` (which must exist) or throws {@link DirectoryLockedError}. */
export function lockDir(dir: string): DirLock {
  const real = fs.realpathSync(dir);
  if (held.has(real)) throw new DirectoryLockedError(dir, 'already open in this process');
  const lockPath = path.join(real, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      held.add(real);
      return {
        release() {
          held.delete(real);
          try {
            fs.rmSync(lockPath, { force: true });
          } catch {
            /* best effort: a leftover LOCK with a dead pid is taken over at the next open */
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number.parseInt(fs.readFileSync(lockPath, 'utf8'), 10);
      if (Number.isSafeInteger(owner) && owner !== process.pid && alive(owner)) {
        throw new DirectoryLockedError(dir, `held by live process ${owner}`);
      }
      fs.rmSync(lockPath, { force: true }); // stale: its owner is gone
    }
  }
  throw new DirectoryLockedError(dir, 'could not take the lock');
}
