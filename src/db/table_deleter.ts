/**
 * Unlinks obsolete table files off the event loop. The engine decides what is obsolete (no live
 * version, install or quarantine references the number: `DBCore.deleteObsoleteTables`); this
 * only runs the unlinks, one at a time on the libuv threadpool so that journal and manifest
 * syncs sharing that pool never wait behind a burst of them.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { files } from '../version/version_set.js';

/** Table numbers queued for unlinking at most (8 bytes each); more wait in the engine's candidate set. */
export const MAX_QUEUED_UNLINKS = 1024;

export class TableDeleter {
  /** Numbers to unlink, oldest first; at most {@link MAX_QUEUED_UNLINKS}. */
  private readonly queue: number[] = [];
  private running: Promise<void> | null = null;
  /** An offer was refused since the queue last emptied. */
  private refused = false;

  /**
   * @param dir the data directory
   * @param counts where unlinks and their failures (other than ENOENT) are counted
   * @param onRoom called when the queue empties after an {@link offer} was refused, so the
   *   engine can hand over the candidates it kept back
   */
  constructor(
    private readonly dir: string,
    private readonly counts: { obsoleteTablesDeleted: number; obsoleteTableDeleteErrors: number },
    private readonly onRoom: () => void,
  ) {}

  /** Queues table `number` for unlinking; false (nothing queued) when the queue is full. */
  offer(number: number): boolean {
    if (this.queue.length >= MAX_QUEUED_UNLINKS) {
      this.refused = true;
      return false;
    }
    this.queue.push(number);
    if (!this.running) this.running = this.run();
    return true;
  }

  /** Unlinks queued or in flight. */
  get pending(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** Resolves once every queued unlink has finished (a reopen must not race them). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    // Started from offer(): the first unlink begins after the caller's turn, never inside it.
    await Promise.resolve();
    while (this.queue.length > 0) {
      const number = this.queue[0];
      try {
        await fs.promises.unlink(path.join(this.dir, files.table(number)));
        this.counts.obsoleteTablesDeleted++;
      } catch (err) {
        // ENOENT: gone already (an output renamed only in part, or removed by hand). Anything
        // else is counted and never thrown into the write path: the file is a leftover the next
        // open removes.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.counts.obsoleteTablesDeleted++;
        else this.counts.obsoleteTableDeleteErrors++;
      }
      this.queue.shift();
    }
    this.running = null;
    if (this.refused) {
      this.refused = false;
      this.onRoom();
    }
  }
}
