/**
 * Where the slowest writes of a cluster run spend their time: reads the members' trace files
 * (`bench/cluster.ts --trace --keep`, src/replication/trace.ts) and, per write proposed on a
 * member, splits its time on that member into three stages —
 *
 *   queue     `propose` → `feed`         waiting for the group's loop to take it into the Raft node
 *   replicate `feed` → `apply`           the leader's and the followers' log writes, the commit
 *   apply     `apply` → `answer`         the engine's write queue (behind checkpoints, cosigns)
 *
 * — and prints the median of each stage for all writes and for the slowest 1 %, with what
 * overlapped the slowest: the engine's checkpoint and cosign barriers (`ckpt`, `cosign`; a
 * pipelined checkpoint holds the write queue only from `begin` to `frozen`: `ckpt-hold`), installs,
 * garbage-collector pauses, and the group's turns (`ready` → `saved`: the log write and its sync).
 * Used for the tail of bench/README.md § "Each member's write path". Not a test.
 *
 *   npx tsx bench/cluster_tail.ts <trace file>...
 * @module
 */
import fs from 'node:fs';

type Ev = [number, string, ...Array<number | string | boolean>];

interface Write {
  node: number;
  propose: number;
  feed?: number;
  apply?: number;
  answer?: number;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.log('usage: npx tsx bench/cluster_tail.ts <trace file>...');
  process.exit(1);
}

const writes: Write[] = [];
/** Per member: its barrier intervals (checkpoint, cosign), installs, GC pauses and turns. */
const spans = new Map<number, { kind: string; from: number; to: number; detail: string }[]>();

for (const file of files) {
  let node = 0;
  const byId = new Map<string, Write>();
  const open = new Map<string, number>();
  const list: { kind: string; from: number; to: number; detail: string }[] = [];
  let readyAt = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const e = JSON.parse(line) as Ev;
    const [t, kind] = e;
    switch (kind) {
      case 'node':
        node = e[2] as number;
        break;
      case 'propose': {
        const w: Write = { node, propose: t };
        byId.set(e[2] as string, w);
        writes.push(w);
        break;
      }
      case 'feed': {
        const w = byId.get(e[2] as string);
        if (w && w.feed === undefined) w.feed = t;
        break;
      }
      case 'apply': {
        const w = byId.get(e[3] as string);
        if (w && w.apply === undefined) w.apply = t;
        break;
      }
      case 'answer': {
        const w = byId.get(e[2] as string);
        if (w) w.answer = t;
        break;
      }
      case 'ckpt':
      case 'cosign': {
        const key = `${kind}:${e[3]}`;
        if (e[2] === 'begin') open.set(key, t);
        else if (e[2] === 'end' && open.has(key)) {
          list.push({ kind, from: open.get(key)!, to: t, detail: String(e[3]) });
          open.delete(key);
        } else if (kind === 'ckpt' && open.has(key)) {
          list.push({ kind: `ckpt:${e[2]}`, from: t, to: t, detail: String(e[3]) });
          // A pipelined checkpoint holds the write queue only up to its freeze.
          if (e[2] === 'frozen') list.push({ kind: 'ckpt-hold', from: open.get(key)!, to: t, detail: String(e[3]) });
        }
        break;
      }
      case 'install':
        list.push({ kind: `install:${e[2]}`, from: t - ((e[3] as number) + (e[4] as number)), to: t, detail: `rename+dirsync ${e[3]} µs, manifest ${e[4]} µs` });
        break;
      case 'flush-built':
        list.push({ kind: 'flush-built', from: t - (e[3] as number), to: t, detail: `${e[2]} entries` });
        break;
      case 'flush-waited':
      case 'announced':
        list.push({ kind, from: t - (e[2] as number), to: t, detail: '' });
        break;
      case 'gc':
        list.push({ kind: 'gc', from: t - (e[2] as number), to: t, detail: `${e[2]} µs` });
        break;
      case 'ready':
        readyAt = t;
        break;
      case 'saved':
        list.push({ kind: 'turn-save', from: readyAt, to: t, detail: String(e[2]) });
        break;
    }
  }
  spans.set(node, list);
}

const done = writes.filter((w) => w.feed !== undefined && w.apply !== undefined && w.answer !== undefined);
const total = (w: Write) => w.answer! - w.propose;
done.sort((a, b) => total(a) - total(b));
const median = (xs: number[]) => (xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[xs.length >> 1]);
const pct = (p: number) => done[Math.min(done.length - 1, Math.floor(p * done.length))];
const stages = (ws: Write[]) => ({
  queue: median(ws.map((w) => w.feed! - w.propose)),
  replicate: median(ws.map((w) => w.apply! - w.feed!)),
  apply: median(ws.map((w) => w.answer! - w.apply!)),
  total: median(ws.map(total)),
});
const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`;
console.log(`${done.length} writes traced from propose to answer (${writes.length} proposed)`);
console.log(`p50 ${ms(total(pct(0.5)))}, p90 ${ms(total(pct(0.9)))}, p99 ${ms(total(pct(0.99)))}, max ${ms(total(done[done.length - 1]))}`);
const slow = done.slice(Math.floor(done.length * 0.99));
for (const [name, ws] of [['all', done], ['slowest 1 %', slow]] as const) {
  const s = stages(ws);
  console.log(`${name.padEnd(12)} median: queue ${ms(s.queue)}, replicate ${ms(s.replicate)}, apply ${ms(s.apply)}, total ${ms(s.total)}`);
}

// What overlapped the slowest writes' apply stage on their member, and their replicate stage on any member.
const overlap = <T extends { from: number; to: number }>(list: T[], from: number, to: number) => list.filter((s) => s.to > from && s.from < to);
const counts = new Map<string, number>();
for (const w of slow) {
  const seen = new Set<string>();
  for (const s of overlap(spans.get(w.node) ?? [], w.apply!, w.answer!)) seen.add(`apply stage, own member: ${s.kind.replace(/:\d+$/, '')}`);
  for (const [, list] of spans) for (const s of overlap(list, w.feed!, w.apply!)) if (s.kind === 'gc' ? s.to - s.from > 5000 : s.kind !== 'turn-save' || s.to - s.from > 20_000) seen.add(`replicate stage, any member: ${s.kind === 'gc' ? 'gc > 5 ms' : s.kind === 'turn-save' ? 'log save > 20 ms' : s.kind.replace(/:\d+$/, '')}`);
  for (const k of seen) counts.set(k, (counts.get(k) ?? 0) + 1);
}
console.log(`\nof the ${slow.length} slowest writes, how many overlapped:`);
for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(5)}  ${k}`);

// The barriers themselves, per member: how long each checkpoint and cosign held the write queue.
for (const [node, list] of [...spans].sort((a, b) => a[0] - b[0])) {
  const ck = list.filter((s) => s.kind === 'ckpt').map((s) => s.to - s.from);
  // Pipelined checkpoints (a `frozen` phase): the write queue is held from begin to the freeze;
  // before them, from begin to end.
  const holds = list.filter((s) => s.kind === 'ckpt-hold').map((s) => s.to - s.from);
  const held = holds.length > 0 ? holds : ck;
  const co = list.filter((s) => s.kind === 'cosign').map((s) => s.to - s.from);
  const ins = list.filter((s) => s.kind.startsWith('install')).map((s) => s.to - s.from);
  const gc = list.filter((s) => s.kind === 'gc').map((s) => s.to - s.from);
  const save = list.filter((s) => s.kind === 'turn-save').map((s) => s.to - s.from);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const of = (k: string) => list.filter((s) => s.kind === k).map((s) => s.to - s.from);
  const max = (xs: number[]) => (xs.length ? Math.max(...xs) : 0);
  console.log(
    `member ${node}: ${ck.length} checkpoints (begin to record median ${ms(median(ck))}, max ${ms(max(ck))}; write queue held median ${ms(median(held))}, max ${ms(max(held))}, ${ms(sum(held))} in all), ${co.length} cosigns (median ${ms(median(co))}, max ${ms(max(co))}), ` +
      `${ins.length} installs (sum ${ms(sum(ins))}, max ${ms(max(ins))}), gc ${gc.length} (sum ${ms(sum(gc))}, max ${ms(max(gc))}), log saves median ${ms(median(save))} max ${ms(max(save))}; ` +
      `flush built on the worker median ${ms(median(of('flush-built')))} max ${ms(max(of('flush-built')))}, a flush's wait for compactions median ${ms(median(of('flush-waited')))} max ${ms(max(of('flush-waited')))}, ` +
      `session persist before an install median ${ms(median(of('announced')))} max ${ms(max(of('announced')))}`,
  );
}

// The phases of each checkpoint on the slowest member's side: begin → intent → flushed → settled → end.
const phases = new Map<string, number[]>();
for (const [, list] of spans) {
  const byIndex = new Map<string, { kind: string; from: number }[]>();
  for (const s of list) if (s.kind.startsWith('ckpt')) (byIndex.get(s.detail) ?? byIndex.set(s.detail, []).get(s.detail)!).push(s);
  for (const [, ev] of byIndex) {
    const whole = ev.find((x) => x.kind === 'ckpt');
    if (!whole) continue;
    let prev = whole.from;
    for (const p of ['intent', 'frozen', 'flushed', 'settled']) {
      const at = ev.find((x) => x.kind === `ckpt:${p}`);
      if (!at) continue;
      (phases.get(p) ?? phases.set(p, []).get(p)!).push(at.from - prev);
      prev = at.from;
    }
    const end = (whole as { to?: number }).to;
    if (end !== undefined) (phases.get('record') ?? phases.set('record', []).get('record')!).push(end - prev);
  }
}
console.log(`\ncheckpoint phases, median over all members' checkpoints: ${[...phases].map(([p, xs]) => `${p} ${ms(median(xs))} (max ${ms(Math.max(...xs))})`).join(', ')}`);
