/**
 * The apply of committed PUT entries on one member, in isolation (issue 10): what a cluster member
 * spends per PUT between the group's `applyEntries` and the memtable — the command's decoding,
 * `CommandApplier.execute` (server/write_path.ts), the engine's write API and its `WritePipeline`
 * (src/db/write.ts: queue, group, version resolution, memtable insert, answer) — on an engine in
 * external-log mode, fed as the group feeds it: a Ready of R entries started in log order, then
 * awaited in order.
 *
 * Commands have the cluster bench's shape: binary `put`s of new keys `c-%010d` in ascending order,
 * 100-byte values, a proposer's time, no session. The memtable is large enough that nothing is
 * frozen during a rep (no flush: the apply alone).
 *
 * Run: `npx tsx bench/apply.ts [--n 100k] [--ready 32] [--reps 5] [--value 100]`. Reports median
 * [min–max] CPU µs per PUT of this process (user + system, every thread) over the reps, each on a
 * fresh database; asserts nothing. Run it from two trees for an A/B.
 * @module
 */
import fs from 'node:fs';
import { encodeCommand, decodeCommand } from '../server/command_codec.js';
import { CommandApplier } from '../server/write_path.js';
import { ProofDB } from '../src/index.js';
import { fmtNum, loadAvg, machineInfo, numArg, parseArgs, printTable, spread, tempDir, ValuePool } from './lib.js';

const args = parseArgs(process.argv.slice(2));
const n = numArg(args, 'n', 100_000);
const ready = numArg(args, 'ready', 32);
const reps = numArg(args, 'reps', 5);
const valueSize = numArg(args, 'value', 100);

const values = new ValuePool(valueSize, 5);
const enc = new TextEncoder();
const T0 = 1_700_000_000_000;
const entries = Array.from({ length: n }, (_, i) => encodeCommand({ type: 'put', key: enc.encode(`c-${String(i).padStart(10, '0')}`), value: values.value(i), time: T0 + i }));

/** CPU µs per PUT of applying every entry, Ready by Ready, as `ReplicationGroup.applyEntries` does. */
async function rep(): Promise<number> {
  const dir = tempDir('proofkv-apply-');
  const db = await ProofDB.open(dir, { writeAheadLog: 'external', writeBufferSize: 256 * 1024 * 1024 });
  const applier = new CommandApplier(db);
  try {
    const c0 = process.cpuUsage();
    for (let from = 0; from < n; from += ready) {
      const started: Array<Promise<unknown>> = [];
      for (let i = from; i < Math.min(n, from + ready); i++) {
        const p = applier.execute(decodeCommand(entries[i]), i + 1);
        p.catch(() => undefined);
        started.push(p);
      }
      for (const p of started) await p;
    }
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / n;
  } finally {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const line of machineInfo()) console.log(line);
console.log(`${n} PUTs of ${valueSize}-byte values, Readys of ${ready} entries, ${reps} reps; load average before ${loadAvg()}`);
await rep(); // warm-up
const runs: number[] = [];
for (let r = 0; r < reps; r++) runs.push(await rep());
const s = spread(runs);
printTable(['row', 'CPU µs per PUT, median [min–max]'], [[`apply (execute, ready ${ready})`, `${fmtNum(s.median)} [${fmtNum(s.min)}–${fmtNum(s.max)}]`]]);
console.log(`load average after ${loadAvg()}`);
