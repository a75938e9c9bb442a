/**
 * The report of a nemesis run: `report.md` (seed, nodes, duration, the verdict of every check,
 * figures, the fault events, operations by kind and outcome, latency percentiles per phase, the
 * replay command) and `plot.svg` (written by hand, no dependency): acknowledged operations per
 * second and p99 latency per second over the run, the fault windows shaded and labelled.
 *
 * A "phase" is the time inside the windows of one fault kind, or outside every window
 * (`no fault`); an operation belongs to the phases its invocation falls in.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckReport } from './check.js';
import { OP_KINDS, isWrite, type FaultEvent, type OpRecord } from './history.js';

/** What a report shows. */
export interface RunSummary {
  seed: number;
  nodes: number;
  /** The clients' protocol (`http`, or `stream` for the hot key routes). */
  protocol?: string;
  /** Protocol `stream`: requests over the stream and over HTTP, connections opened. */
  streamStats?: { streamed: number; http: number; opened: number };
  minutes: number;
  events: FaultEvent[];
  history: OpRecord[];
  check: CheckReport;
  /** The command that replays the run. */
  replay: string;
}

/** The `q`-quantile (0..1) of sorted numbers (nearest rank); NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const ms = (x: number) => (Number.isFinite(x) ? `${x < 10 ? x.toFixed(1) : Math.round(x)}` : '–');
const secs = (x: number) => (x / 1000).toFixed(1);
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Latency of acknowledged operations per phase: `no fault` and each fault kind. */
export function phaseLatencies(history: OpRecord[], events: FaultEvent[]): Array<{ phase: string; ops: number; writes: number[]; reads: number[]; notOk: number }> {
  const phases = new Map<string, { ops: number; writes: number[]; reads: number[]; notOk: number }>();
  const get = (p: string) => {
    let v = phases.get(p);
    if (!v) phases.set(p, (v = { ops: 0, writes: [], reads: [], notOk: 0 }));
    return v;
  };
  get('no fault');
  const sorted = events.slice().sort((a, b) => a.start - b.start);
  for (const o of history) {
    const kinds = new Set(sorted.filter((e) => e.start <= o.call && o.call < e.end).map((e) => e.kind));
    const names = kinds.size === 0 ? ['no fault'] : [...kinds];
    for (const p of names) {
      const v = get(p);
      v.ops++;
      if (o.outcome !== 'ok') v.notOk++;
      else (isWrite(o) ? v.writes : v.reads).push(o.ret - o.call);
    }
  }
  return [...phases].map(([phase, v]) => ({ phase, ...v, writes: v.writes.sort((a, b) => a - b), reads: v.reads.sort((a, b) => a - b) }));
}

/** The markdown of a run. */
export function renderMarkdown(run: RunSummary): string {
  const { check, history, events } = run;
  const lines: string[] = [];
  lines.push(`# ProofKV nemesis run: ${check.ok ? 'PASS' : 'FAIL'}`, '');
  lines.push(`| | |`, `|---|---|`);
  lines.push(`| seed | ${run.seed} |`, `| nodes | ${run.nodes} |`, `| client protocol | ${run.protocol ?? 'http'}${run.streamStats ? ` (${run.streamStats.streamed} requests over the stream on ${run.streamStats.opened} connections, ${run.streamStats.http} over HTTP)` : ''} |`, `| duration | ${run.minutes} min |`, `| operations | ${history.length} |`, `| fault events | ${events.length} |`);
  lines.push(`| replay | \`${cell(run.replay)}\` |`, '');
  lines.push('![throughput and p99 latency over time, fault windows shaded](plot.svg)', '');

  lines.push('## Checks', '', '| check | verdict | detail |', '|---|---|---|');
  for (const c of check.checks) lines.push(`| ${cell(c.name)} | ${c.ok ? 'pass' : '**FAIL**'} | ${cell(c.detail.split('\n')[0])} |`);
  lines.push('');
  lines.push('Batches are split into per-key operations for the linearizability checker: atomicity across keys is not checked by it.');
  lines.push('Operations of unknown outcome are settled by the final proven history (values are unique); serializable and verified reads are checked against the final history, not for linearizability.', '');
  for (const c of check.checks.filter((x) => !x.ok || x.detail.includes('\n'))) {
    lines.push(`### ${c.name}`, '', '```', c.detail, '```', '');
  }

  lines.push('## Figures', '', '| figure | value |', '|---|---|');
  for (const [k, v] of Object.entries(check.figures).filter(([k]) => !k.startsWith('ops.') && !k.startsWith('outcome.'))) lines.push(`| ${k} | ${v} |`);
  lines.push('');

  lines.push('## Operations by kind and outcome', '', '| kind | ok | fail | info | most common errors |', '|---|---|---|---|---|');
  for (const kind of OP_KINDS) {
    const ops = history.filter((o) => o.kind === kind);
    if (ops.length === 0) continue;
    const errors = new Map<string, number>();
    for (const o of ops) if (o.error) errors.set(o.error, (errors.get(o.error) ?? 0) + 1);
    const top = [...errors].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([e, n]) => `${e} ${n}`).join(', ');
    const n = (x: string) => ops.filter((o) => o.outcome === x).length;
    lines.push(`| ${kind} | ${n('ok')} | ${n('fail')} | ${n('info')} | ${cell(top)} |`);
  }
  lines.push('');

  lines.push('## Latency per phase (acknowledged operations, ms)', '');
  lines.push('| phase | operations | fail or info | writes p50 | writes p99 | reads p50 | reads p99 |', '|---|---|---|---|---|---|---|');
  for (const p of phaseLatencies(history, events)) {
    lines.push(`| ${cell(p.phase)} | ${p.ops} | ${p.notOk} | ${ms(quantile(p.writes, 0.5))} | ${ms(quantile(p.writes, 0.99))} | ${ms(quantile(p.reads, 0.5))} | ${ms(quantile(p.reads, 0.99))} |`);
  }
  lines.push('');

  lines.push('## Fault events', '', '| # | kind | members | start (s) | end (s) | length (s) | detail |', '|---|---|---|---|---|---|---|');
  for (const e of events) lines.push(`| ${e.id} | ${cell(e.kind)} | ${e.targets.join(', ')} | ${secs(e.start)} | ${secs(e.end)} | ${secs(e.end - e.start)} | ${cell(e.detail ?? '')} |`);
  lines.push('');
  return lines.join('\n');
}

const PALETTE = ['#e41a1c', '#377eb8', '#ff7f00', '#4daf4a', '#984ea3', '#a65628', '#f781bf', '#17becf', '#bcbd22', '#7f7f7f', '#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02'];

/** A round axis maximum at or above `v` (1, 2 or 5 times a power of ten). */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Per second of the run: acknowledged operations and the p99 latency of those that completed in it. */
export function perSecond(history: OpRecord[]): { throughput: number[]; p99: number[] } {
  let end = 0;
  for (const o of history) end = Math.max(end, o.ret === Infinity ? o.call : o.ret);
  const n = Math.max(1, Math.ceil(end / 1000));
  const lat: number[][] = Array.from({ length: n }, () => []);
  for (const o of history) if (o.outcome === 'ok') lat[Math.min(n - 1, Math.floor(o.ret / 1000))].push(o.ret - o.call);
  return { throughput: lat.map((l) => l.length), p99: lat.map((l) => quantile(l.sort((a, b) => a - b), 0.99)) };
}

/** The SVG plot of a run. */
export function renderSvg(history: OpRecord[], events: FaultEvent[], title: string): string {
  const W = 1200;
  const left = 70;
  const right = 20;
  const { throughput, p99 } = perSecond(history);
  const n = throughput.length;
  const laneH = 14;
  // Labels go to lanes so that no two overlap (a label may be wider than its window).
  const sorted = events.slice().sort((a, b) => a.start - b.start);
  const x = (t: number) => left + ((W - left - right) * t) / Math.max(1, n);
  const laneEnd: number[] = [];
  const lanes = sorted.map((e) => {
    const x0 = x(e.start / 1000);
    const x1 = Math.max(x(e.end / 1000), x0 + 6.5 * e.kind.length + 6);
    let l = laneEnd.findIndex((end) => end <= x0);
    if (l === -1) l = laneEnd.push(0) - 1;
    laneEnd[l] = x1;
    return l;
  });
  const top = 40 + Math.min(laneEnd.length, 8) * laneH;
  const panelH = 180;
  const gap = 40;
  const kinds = [...new Set(events.map((e) => e.kind))];
  const H = top + 2 * panelH + gap + 50 + 14 * Math.ceil(kinds.length / 6);
  const color = (k: string) => PALETTE[kinds.indexOf(k) % PALETTE.length];
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${left}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // Fault windows over both panels, labelled in lanes above.
  sorted.forEach((e, i) => {
    const x0 = x(e.start / 1000);
    const x1 = Math.max(x0 + 1, x(e.end / 1000));
    const lane = lanes[i];
    out.push(`<rect x="${x0.toFixed(1)}" y="${top}" width="${(x1 - x0).toFixed(1)}" height="${2 * panelH + gap}" fill="${color(e.kind)}" fill-opacity="0.15"><title>${esc(`#${e.id} ${e.kind} [${e.targets.join(',')}] ${secs(e.start)}–${secs(e.end)} s${e.detail ? ` ${e.detail}` : ''}`)}</title></rect>`);
    // Past 8 lanes a window keeps its colour (legend) and its tooltip, not a label.
    // A label that would pass the right edge ends at it.
    const endAnchored = x0 + 6.5 * e.kind.length > W - right;
    const lx = endAnchored ? W - right : x0;
    if (lane < 8) out.push(`<text x="${lx.toFixed(1)}" y="${30 + lane * laneH + 10}" fill="${color(e.kind)}"${endAnchored ? ' text-anchor="end"' : ''}>${esc(e.kind)}</text>`);
  });
  const panel = (y0: number, values: number[], label: string, stroke: string) => {
    const finite = values.filter((v) => Number.isFinite(v));
    const max = niceMax(finite.reduce((m, v) => Math.max(m, v), 0));
    const y = (v: number) => y0 + panelH - (panelH * v) / max;
    out.push(`<rect x="${left}" y="${y0}" width="${W - left - right}" height="${panelH}" fill="none" stroke="#888"/>`);
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      out.push(`<line x1="${left - 4}" x2="${left}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#888"/><text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${Number.isInteger(v) ? v : v.toFixed(1)}</text>`);
    }
    out.push(`<text x="14" y="${y0 + panelH / 2}" transform="rotate(-90 14 ${y0 + panelH / 2})" text-anchor="middle">${esc(label)}</text>`);
    const pts: string[] = [];
    values.forEach((v, i) => {
      if (Number.isFinite(v)) pts.push(`${x(i + 0.5).toFixed(1)},${y(v).toFixed(1)}`);
      else if (pts.length > 0) {
        out.push(`<polyline fill="none" stroke="${stroke}" stroke-width="1.2" points="${pts.join(' ')}"/>`);
        pts.length = 0;
      }
    });
    if (pts.length > 0) out.push(`<polyline fill="none" stroke="${stroke}" stroke-width="1.2" points="${pts.join(' ')}"/>`);
  };
  panel(top, throughput, 'acknowledged ops/s', '#1f77b4');
  panel(top + panelH + gap, p99, 'p99 latency (ms)', '#d62728');
  // Time axis.
  const axisY = top + 2 * panelH + gap;
  const step = n <= 60 ? 10 : n <= 300 ? 30 : n <= 1200 ? 120 : 300;
  for (let t = 0; t <= n; t += step) out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${axisY}" y2="${axisY + 4}" stroke="#888"/><text x="${x(t).toFixed(1)}" y="${axisY + 16}" text-anchor="middle">${t}</text>`);
  out.push(`<text x="${(left + W - right) / 2}" y="${axisY + 32}" text-anchor="middle">time since start (s)</text>`);
  // Legend.
  kinds.forEach((k, i) => {
    const lx = left + (i % 6) * 180;
    const ly = axisY + 44 + Math.floor(i / 6) * 14;
    out.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${color(k)}" fill-opacity="0.5"/><text x="${lx + 14}" y="${ly}">${esc(k)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Writes `report.md` and `plot.svg` into `dir` (created when missing); returns their paths. */
export function writeReport(dir: string, run: RunSummary): { markdown: string; svg: string } {
  fs.mkdirSync(dir, { recursive: true });
  const markdown = path.join(dir, 'report.md');
  const svg = path.join(dir, 'plot.svg');
  fs.writeFileSync(markdown, renderMarkdown(run) + '\n');
  fs.writeFileSync(svg, renderSvg(run.history, run.events, `seed ${run.seed}, ${run.nodes} nodes, ${run.minutes} min: ${run.check.ok ? 'PASS' : 'FAIL'}`) + '\n');
  return { markdown, svg };
}
