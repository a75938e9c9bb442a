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
import { CorruptionError } from '../errors.js';
import { decodeBatch } from '../journal/batch.js';
import { readJournal } from '../journal/reader.js';
import { encodeInternalKey } from '../keys.js';
import { files, syncDir } from '../version/version_set.js';
import type { DBCore } from './core.js';

/** Deletes temporary files and tables the manifest does not reference (outputs of interrupted work). */
export function removeLeftovers(core: DBCore, keep: ReadonlySet<number> = new Set()): void {
  const live = core.vs.current.tableNumbers();
  for (const n of keep) live.add(n);
  for (const name of fs.readdirSync(core.dir)) {
    const table = /^(\d+)\.sst$/.exec(name);
    if (name.endsWith('.tmp') || (table && !live.has(Number(table[1])))) {
      fs.rmSync(path.join(core.dir, name), { force: true });
    }
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
  for (const n of numbers) {
    if (n < vs.logNumber) fs.rmSync(path.join(core.dir, files.journal(n)), { force: true });
  }
  const needed = numbers.filter((n) => n >= vs.logNumber);
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
        const seq = batch.seq + i;
        core.mem.add(encodeInternalKey(op.key.slice(), op.version, seq, op.kind), (op.value ?? EMPTY).slice(), seq);
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
