/**
 * Verification rate of `verifyGetProof` in headless Chromium, next to Node's on the same proofs.
 * Loads N keys into a fresh embedded ProofDB, takes get proofs of random present keys, CBOR-encodes
 * them, bundles `proofs/index.ts` for the browser with esbuild (so SHA-256 is the built-in
 * `proofs/sha256.ts`, as on any web page) and times, inside the page, decode + verify and verify alone over the decoded
 * objects (the head is already verified: the first pass memoizes its signature). The same loop
 * runs in this process with the default hasher (JS below 128 bytes, node:crypto above), the built-in JS one and noble.
 *
 *   npx tsx bench/verify_browser.ts                 # 100k keys, 500 proofs, 3 reps
 *   npx tsx bench/verify_browser.ts --n 1m --proofs 1000 --reps 5 --chromium /usr/bin/chromium
 *   npx tsx bench/verify_browser.ts --n 1m --proofs 1000 --save p1m.json   # keep the proof set ...
 *   npx tsx bench/verify_browser.ts --load p1m.json --node-only             # ... and time it again, Node only
 *
 * `--save FILE` writes the proof set (encoded proofs, keys, the node's public key, the table
 * shape) as JSON; `--load FILE` times that set instead of building a database, so old and new
 * verifier code can be compared back to back on the same proofs (proofs in either encoding
 * format). `--node-only` skips Chromium.
 *
 * Not a test: it asserts nothing about timing; it does fail if any timed proof does not verify.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { fmtNum, loadAvg, noisePct, numArg, parseArgs, printTable, prng, rate, spread, tempDir, type Spread } from './lib.js';
import { ProofDB } from '../src/index.js';
import { fromBase64Url, getProofCodec, getProofCodecV1, Hasher, jsHasher, nobleHasher, toBase64Url, verifyGetProof, type CheckpointExpectation, type GetProof } from '../proofs/index.js';
import { sha256 as jsSha256 } from '../proofs/sha256.js';

const args = parseArgs(process.argv.slice(2));
const N = numArg(args, 'n', 100_000);
const PROOFS = numArg(args, 'proofs', 500);
const REPS = Math.max(1, numArg(args, 'reps', 3));
const MS = numArg(args, 'ms', 1000);
const CHROMIUM = typeof args.get('chromium') === 'string' ? (args.get('chromium') as string) : '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '..');
const SAVE = typeof args.get('save') === 'string' ? (args.get('save') as string) : undefined;
const LOAD = typeof args.get('load') === 'string' ? (args.get('load') as string) : undefined;
const NODE_ONLY = args.has('node-only');
const KEY_SIZE = 16;
const VALUE_SIZE = 100;

/** The page's side: decodes the proofs and times verification, `reps` runs of at least `ms` each. */
const PAGE_ENTRY = `
import { fromBase64Url, getProofCodec, verifyGetProof } from './proofs/index.ts';
function rate(items, f, ms) {
  let ops = 0;
  const t0 = performance.now();
  let t = t0;
  do { for (const x of items) f(x); ops += items.length; t = performance.now(); } while (t - t0 < ms);
  return ops / ((t - t0) / 1000);
}
globalThis.runBench = (input) => {
  const exp = { trust: { publicKeys: [fromBase64Url(input.publicKey)], quorum: 1 } };
  const encoded = input.items.map((x) => ({ b: fromBase64Url(x.proof), k: fromBase64Url(x.key) }));
  const objects = encoded.map(({ b, k }) => ({ p: getProofCodec.decode(b), k }));
  const check = (ok) => { if (!ok) throw new Error('a proof did not verify in the browser'); };
  rate(objects, ({ p, k }) => check(verifyGetProof(p, { key: k }, exp).ok), 300); // warm-up, memoizes the signature
  const verify = [], decodeVerify = [];
  for (let r = 0; r < input.reps; r++) {
    verify.push(rate(objects, ({ p, k }) => check(verifyGetProof(p, { key: k }, exp).ok), input.ms));
    decodeVerify.push(rate(encoded, ({ b, k }) => check(verifyGetProof(getProofCodec.decode(b), { key: k }, exp).ok), input.ms));
  }
  return { verify, decodeVerify, userAgent: navigator.userAgent };
};
`;

interface ProofSet {
  items: Array<{ proof: Uint8Array; key: Uint8Array }>;
  publicKey: Uint8Array;
  tables: string;
}

/**
 * The proof set of `--load FILE` (written by `--save`), re-encoded in the current proof format. The
 * file holds the text-keyed format 1, which every version of the decoder reads.
 */
function loadProofs(file: string): ProofSet {
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { items: Array<{ proof: string; key: string }>; publicKey: string; tables: string };
  const items = j.items.map((x) => ({ proof: getProofCodec.encode(getProofCodec.decode(fromBase64Url(x.proof))), key: fromBase64Url(x.key) }));
  return { items, publicKey: fromBase64Url(j.publicKey), tables: j.tables };
}

function saveProofs(file: string, set: ProofSet): void {
  const items = set.items.map((x) => ({ proof: toBase64Url(getProofCodecV1.encode(getProofCodec.decode(x.proof))), key: toBase64Url(x.key) }));
  fs.writeFileSync(file, JSON.stringify({ items, publicKey: toBase64Url(set.publicKey), tables: set.tables }));
}

async function makeProofs(): Promise<ProofSet> {
  const dir = tempDir('proofkv-verify-browser-');
  const db = await ProofDB.open(dir);
  try {
    const rnd = prng(0x5eed ^ N);
    const keys: Uint8Array[] = [];
    for (let b = 0; b < N; b += 1000) {
      const wb = db.batch();
      for (let i = b; i < Math.min(N, b + 1000); i++) {
        const k = new Uint8Array(KEY_SIZE).map(() => rnd() & 0xff);
        keys.push(k);
        wb.put(k, new Uint8Array(VALUE_SIZE).fill(i & 0xff));
      }
      await db.write(wb);
    }
    const cp = await db.checkpoint();
    const perLevel = new Array<number>(7).fill(0);
    for (const t of cp.tables) perLevel[t.level]++;
    const items = [];
    for (let i = 0; i < PROOFS; i++) {
      const key = keys[rnd() % keys.length];
      const { proof } = await db.getWithProof(key);
      items.push({ proof: getProofCodec.encode(proof), key });
    }
    return { items, publicKey: db.publicKey(), tables: perLevel.map((c, l) => `L${l}:${c}`).filter((s) => !s.endsWith(':0')).join(' ') };
  } finally {
    await db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!NODE_ONLY && !fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (--chromium PATH)`);
  console.log(
    `verifyGetProof, Node vs headless Chromium: ${LOAD ? `proofs of ${LOAD}` : `${fmtNum(N)} keys, ${PROOFS} proofs`}, ${REPS} reps of >= ${MS} ms (load avg ${loadAvg()})`,
  );
  const set = LOAD ? loadProofs(LOAD) : await makeProofs();
  if (SAVE) saveProofs(SAVE, set);
  const { items, publicKey, tables } = set;
  const meanBytes = items.reduce((a, x) => a + x.proof.length, 0) / items.length;
  console.log(`  tables ${tables}; mean proof ${meanBytes.toFixed(0)} B`);

  // Node, this process: the default hasher (installed by src/index.ts), the built-in JS one, noble.
  const exp: CheckpointExpectation = { trust: { publicKeys: [publicKey], quorum: 1 } };
  const nobleExp: CheckpointExpectation = { ...exp, hasher: nobleHasher };
  const jsExp: CheckpointExpectation = { ...exp, hasher: jsHasher };
  const objects = items.map(({ proof, key }) => ({ p: getProofCodec.decode(proof) as GetProof, k: key }));
  const check = (ok: boolean) => {
    if (!ok) throw new Error('a proof did not verify in Node');
  };
  rate(objects, ({ p, k }) => check(verifyGetProof(p, { key: k }, exp).ok), 300);
  // What one verification hashes: SHA-256 calls and 64-byte compressions, counted over every proof.
  let calls = 0;
  let blocks = 0;
  const counting = new Hasher((d) => {
    calls++;
    blocks += Math.floor((d.length + 8) / 64) + 1;
    return jsSha256(d);
  });
  for (const { p, k } of objects) check(verifyGetProof(p, { key: k }, { ...exp, hasher: counting }).ok);
  console.log(`  per verification: ${(calls / objects.length).toFixed(1)} SHA-256 calls, ${(blocks / objects.length).toFixed(1)} compressions`);
  const nodeRuns: number[] = [];
  const nodeCpuRuns: number[] = [];
  const nobleRuns: number[] = [];
  const jsRuns: number[] = [];
  const decodeRuns: number[] = [];
  const encoded = items.map(({ proof, key }) => ({ b: proof, k: key }));
  for (let r = 0; r < REPS; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    nodeRuns.push(rate(objects, ({ p, k }) => check(verifyGetProof(p, { key: k }, exp).ok), MS));
    const c = process.cpuUsage(c0);
    // The same run per CPU-second of this process: on a shared machine the wall rate falls with the
    // load; this one falls far less (the process's own time, not the time it waited for a core).
    nodeCpuRuns.push((nodeRuns[nodeRuns.length - 1] * (performance.now() - t0)) / ((c.user + c.system) / 1000));
    decodeRuns.push(rate(encoded, ({ b, k }) => check(verifyGetProof(getProofCodec.decode(b), { key: k }, exp).ok), MS));
    jsRuns.push(rate(objects, ({ p, k }) => check(verifyGetProof(p, { key: k }, jsExp).ok), MS));
    nobleRuns.push(rate(objects, ({ p, k }) => check(verifyGetProof(p, { key: k }, nobleExp).ok), MS));
  }

  const row = (name: string, s: Spread, goal: string) => [name, `${fmtNum(s.median)} [${fmtNum(s.min)}–${fmtNum(s.max)}]`, `${noisePct(s).toFixed(0)}%`, goal];
  const nodeRows = [
    row('Node, default: JS < 128 B, node:crypto above', spread(nodeRuns), '>= 20k/s'),
    row('  same runs, per CPU-second of the process', spread(nodeCpuRuns), ''),
    row('Node, proofs/sha256.ts (the browser default)', spread(jsRuns), ''),
    row('Node, noble SHA-256', spread(nobleRuns), ''),
    row('Node, default, decode CBOR + verify', spread(decodeRuns), ''),
  ];
  if (NODE_ONLY) {
    printTable(['verifyGetProof, one core, head already verified (ops/s)', 'rate', 'noise', 'goal'], nodeRows);
    console.log(`  load average at end: ${loadAvg()}`);
    return;
  }

  // Chromium: the browser bundle of proofs/.
  const out = await build({
    stdin: { contents: PAGE_ENTRY, resolveDir: ROOT, loader: 'js' },
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  let page: { verify: number[]; decodeVerify: number[]; userAgent: string };
  try {
    const p = await browser.newPage();
    await p.setContent('<!doctype html><meta charset="utf-8"><title>verify bench</title>');
    await p.addScriptTag({ content: out.outputFiles[0].text });
    const input = { items: items.map((x) => ({ proof: toBase64Url(x.proof), key: toBase64Url(x.key) })), publicKey: toBase64Url(publicKey), reps: REPS, ms: MS };
    page = await p.evaluate((i) => (globalThis as unknown as { runBench: (x: unknown) => typeof page }).runBench(i), input);
  } finally {
    await browser.close();
  }
  printTable(
    ['verifyGetProof, one core, head already verified (ops/s)', 'rate', 'noise', 'goal'],
    [
      ...nodeRows,
      row('Chromium, default hasher: proofs/sha256.ts (objects)', spread(page.verify), '>= 5k/s'),
      row('Chromium, decode CBOR + verify', spread(page.decodeVerify), ''),
    ],
  );
  console.log(`  ${page.userAgent}\n  load average at end: ${loadAvg()}`);
}

await main();
