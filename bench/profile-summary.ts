/**
 * Summarises a V8 .cpuprofile (from `--cpu-prof` or `bench/engine.ts --profile PHASE`): top
 * functions by self time, and by inclusive ("total") time.
 *
 *   npx tsx bench/profile-summary.ts proofkv-write.cpuprofile [--top 25]
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { numArg, parseArgs } from './lib.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface Node {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const file = process.argv[2];
if (!file || file.startsWith('--')) {
  console.error('usage: tsx bench/profile-summary.ts FILE.cpuprofile [--top 25]');
  process.exit(2);
}
const top = numArg(parseArgs(process.argv.slice(3)), 'top', 25);
const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;

const byId = new Map<number, Node>();
const parent = new Map<number, number>();
for (const n of prof.nodes) {
  byId.set(n.id, n);
  for (const c of n.children ?? []) parent.set(c, n.id);
}
const label = (f: CallFrame) => {
  const where = f.url ? `${path.relative(process.cwd(), f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};

const self = new Map<string, number>();
const total = new Map<string, number>();
let all = 0;
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i] ?? 0;
  all += dt;
  let id: number | undefined = prof.samples[i];
  const first = byId.get(id)!;
  const l = label(first.callFrame);
  self.set(l, (self.get(l) ?? 0) + dt);
  const seen = new Set<string>();
  while (id !== undefined) {
    const lab = label(byId.get(id)!.callFrame);
    if (!seen.has(lab)) {
      seen.add(lab);
      total.set(lab, (total.get(lab) ?? 0) + dt);
    }
    id = parent.get(id);
  }
}

const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title} (of ${(all / 1000).toFixed(0)} ms sampled)`);
  const rows = [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, v] of rows) console.log(`${((v / all) * 100).toFixed(1).padStart(6)}%  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`);
};
show('self time', self);
show('total (inclusive) time', total);
