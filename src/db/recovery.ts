/**
 * Opening a database directory: lock it, read the manifest, remove leftovers of interrupted
 * work, and replay the journals into the memtable.
 *
 * Replay applies the same freeze rule as live writes (a memtable freezes when it fills after a
 * batch), so a recovered engine flushes exactly the tables the live one would have: recovery does
 * not change the engine's shape. A torn tail of the newest journal (a crash mid-write: that write
 * was never acknowledged) is truncated; any other damage is a `CorruptionError`.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptionError, OutdatedFormatError } from '../errors.js';
import { decodeBatch } from '../journal/batch.js';
import { readJournal } from '../journal/reader.js';
import { latin1 } from './write.js';
import { files } from '../version/version_set.js';
import { syncDir } from '../util/durable.js';
import type { DBCore } from './core.js';

/** Deletes temporary files and tables the manifest does not reference (outputs of interrupted work). */
export function removeLeftovers(core: DBCore, keep: ReadonlySet<number> = new Set()): void {
  const live = core.vs.current.tableNumbers();
  checkManifestAgainstFiles(core);
  for (const n of keep) live.add(n);
  for (const name of fs.readdirSync(core.dir)) {
    const table = /^(\d+)\.sst$/.exec(name);
    if (name.endsWith('.tmp') || (table && !live.has(Number(table[1])))) {
      fs.rmSync(path.join(core.dir, name), { force: true });
    }
  }
}

/**
 * A manifest that lost its latest edits (damage to its tail that reads like a torn write) would
 * roll the database back to a table set whose files were already replaced. Two cross-checks catch
 * that before anything is deleted: every table the manifest names must exist, and the oldest
 * journal it needs must exist whenever newer journals do (journals are deleted only after an edit
 * that no longer needs them is durable).
 */
function checkManifestAgainstFiles(core: DBCore): void {
  const names = new Set(fs.readdirSync(core.dir));
  for (const n of core.vs.current.tableNumbers()) {
    if (!names.has(files.table(n))) {
      throw new CorruptionError(files.table(n), 'named by the manifest but missing (is the manifest behind?)');
    }
  }
  const journals = journalNumbers(core.dir);
  // Journal numbers start at 1, and a fresh manifest says logNumber 0.
  const needed = Math.max(core.vs.logNumber, 1);
  if (journals.some((j) => j > needed) && !journals.includes(needed)) {
    throw new CorruptionError(files.journal(needed), 'the oldest journal the manifest needs is missing while newer ones exist');
  }
}

/** Journal numbers present in the directory, ascending. */
export function journalNumbers(dir: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync(dir)) {
    const m = /^(\d+)\.log$/.exec(name);
    if (m) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/** Replays every journal the manifest still needs; deletes older ones. */
export async function replayJournals(core: DBCore): Promise<void> {
  const vs = core.vs;
  const numbers = journalNumbers(core.dir);
  core.lastSeq = vs.flushedSeq;
  core.lastTime = vs.lastTime ?? 0;
  for (const n of numbers) {
    if (n < vs.logNumber) fs.rmSync(path.join(core.dir, files.journal(n)), { force: true });
  }
  const needed = numbers.filter((n) => n >= vs.logNumber);
  // Journals created from here on (none during replay, one after it) must not reuse a number.
  if (numbers.length > 0) vs.nextJournalNumber = Math.max(vs.nextJournalNumber, numbers[numbers.length - 1] + 1);
  for (let idx = 0; idx < needed.length; idx++) {
    const number = needed[idx];
    const name = files.journal(number);
    const file = path.join(core.dir, name);
    const bytes = fs.readFileSync(file);
    const { records, validLength, tornTail } = readJournal(bytes, name);
    if (tornTail) {
      if (idx !== needed.length - 1) {
        throw new CorruptionError(name, 'damaged tail in a journal that is not the newest', validLength);
      }
      fs.truncateSync(file, validLength);
      syncDir(core.dir);
    }
    core.journals.push({ number, maxSeq: core.lastSeq });
    for (const rec of records) {
      const batch = decodeBatch(rec, name);
      const last = batch.seq + batch.ops.length - 1;
      if (last <= vs.flushedSeq) continue;
      if (batch.seq !== core.lastSeq + 1) {
        throw new CorruptionError(name, `batch seq ${batch.seq}, want ${core.lastSeq + 1}`);
      }
      batch.ops.forEach((op, i) => {
        if (op.version === undefined) throw new CorruptionError(name, 'journal record without a version');
        if (op.time === undefined) throw new OutdatedFormatError(name, 'holds journal records without commit times');
        const seq = batch.seq + i;
        const key = op.key.slice();
        core.memAdd(key, latin1(key), op.version, seq, op.time, op.kind, (op.value ?? EMPTY).slice());
      });
      core.lastSeq = last;
      core.noteJournaled(last);
      if (core.memtableFull()) await core.rotate(false);
    }
    vs.nextJournalNumber = Math.max(vs.nextJournalNumber, number + 1);
  }
  // Seqs are never reused, even if unsynced journal bytes were lost with the machine.
  core.lastSeq = Math.max(core.lastSeq, vs.lastSeq);
}

const EMPTY = new Uint8Array(0);
