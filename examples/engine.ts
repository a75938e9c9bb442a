/**
 * A runnable tour of the embedded engine: `npm run example`.
 * Writes versioned records, reads history, takes a snapshot, checkpoints, reopens.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ProofDB } from '../src/index.js';

const dir = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-example-'));
const text = (b?: Uint8Array) => (b ? new TextDecoder().decode(b) : '(none)');

const db = await ProofDB.open(dir);
console.log(`opened ${dir}`);
console.log('put        ', await db.put('invoice:42', 'draft'));
console.log('put        ', await db.put('invoice:42', 'sent'));
console.log('explicit   ', await db.putWithVersion('invoice:42', 'paid', 100));
try {
  await db.putWithVersion('invoice:42', 'rewrite history', 50);
} catch (err) {
  console.log('rejected   ', (err as Error).message);
}
const snap = db.snapshot();
console.log('delete     ', await db.delete('invoice:42'));
console.log('latest     ', text(await db.get('invoice:42')));
console.log('at v2      ', text((await db.getWithVersion('invoice:42', 2))?.value));
console.log('snapshot   ', text(await snap.get('invoice:42')));
snap.release();
console.log('history    ');
for (const e of await db.getVersionHistory('invoice:42')) console.log(`  v${e.version} seq ${e.seq} ${e.kind} ${text(e.value)}`);
const cp = await db.checkpoint();
console.log(`checkpoint  seq ${cp.seq}, ${cp.tables.length} table(s), root of first ${Buffer.from(cp.tables[0].root).toString('hex')}`);
await db.close();
const again = await ProofDB.open(dir);
console.log('reopened   ', (await again.getVersionHistory('invoice:42')).length, 'versions');
await again.close();
