/**
 * The CBOR writing of served proofs: the proof codecs' own writer (`proofs/cbor_write.ts`) against
 * cbor-x (the codecs' encoder before it), on the same wire values of real get proofs, in one
 * process, alternating; then the whole `encodeTrusted` of a get proof (schema to wire, then
 * CBOR) as a server pays it. CPU time per proof (`process.cpuUsage`), with the load average.
 *
 *   npx tsx bench/proof_encode.ts [--keys 5000] [--proofs 2000] [--reps 5]
 *
 * Not a test.
 * @module
 */
import { proofCbor } from '../proofs/cbor_instance.js';
import { writeCbor } from '../proofs/cbor_write.js';
import { proofCodecs } from '../proofs/lsm_encoding.js';
import type { GetProof } from '../proofs/lsm_proof.js';
import { ProofDB } from '../src/index.js';
import { loadAvg, machineInfo, numArg, parseArgs, tempDir } from './lib.js';
import fs from 'node:fs';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const keys = numArg(args, 'keys', 5000);
  const n = numArg(args, 'proofs', 2000);
  const reps = numArg(args, 'reps', 5);
  console.log('bench/proof_encode.ts: CBOR of served get proofs, cbor-x vs the codecs\' writer (CPU µs per proof)');
  for (const l of machineInfo()) console.log(`  ${l}`);
  console.log(`  load average before: ${loadAvg()}`);
  const dir = tempDir('proofkv-bench-proof-encode-');
  const db = await ProofDB.open(dir);
  try {
    const enc = new TextEncoder();
    const value = new Uint8Array(100).fill(7);
    const key = (i: number) => enc.encode(`c${String(i).padStart(8, '0')}`);
    // Six checkpoints of overwrites of every key: proofs that cross several tables.
    for (let r = 0; r < 6; r++) {
      for (let i = 0; i < keys; i++) await db.put(key(i), value);
      await db.checkpoint();
    }
    const codec = proofCodecs(2).get;
    const proofs: GetProof[] = [];
    for (let i = 0; i < n; i++) proofs.push((await db.getWithProof(key((i * 7919) % keys))).proof);
    const wires = proofs.map((p) => proofCbor.decode(codec.encodeTrusted(p)) as unknown);
    const bytes = wires.reduce((s: number, w) => s + writeCbor(w).length, 0) / n;
    const cpu = (f: () => void): number => {
      const a = process.cpuUsage();
      f();
      const d = process.cpuUsage(a);
      return (d.user + d.system) / n;
    };
    console.log(`  ${n} get proofs over ${keys} keys, ${bytes.toFixed(0)} bytes each on average`);
    const rows: number[][] = [];
    for (let rep = 0; rep < reps; rep++) {
      const x = cpu(() => { for (const w of wires) new Uint8Array(proofCbor.encode(w)); });
      const o = cpu(() => { for (const w of wires) writeCbor(w); });
      const t = cpu(() => { for (const p of proofs) codec.encodeTrusted(p); });
      rows.push([x, o, t]);
      console.log(`  rep ${rep + 1}: cbor-x ${x.toFixed(1)} µs, writeCbor ${o.toFixed(1)} µs (${(x / o).toFixed(2)}x); whole encodeTrusted ${t.toFixed(1)} µs`);
    }
    const med = (i: number) => rows.map((r) => r[i]).sort((a, b) => a - b)[Math.floor(rows.length / 2)];
    console.log(`  median: cbor-x ${med(0).toFixed(1)} µs, writeCbor ${med(1).toFixed(1)} µs per proof: ${(med(0) / med(1)).toFixed(2)}x; whole encodeTrusted ${med(2).toFixed(1)} µs`);
    console.log(`  load average after: ${loadAvg()}`);
  } finally {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
