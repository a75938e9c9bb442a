/**
 * A small SVG chart of how the authenticated engine scales with the number of keys (issue 13):
 * four panels against N on a log axis — load writes/s, get-proof size (median bytes),
 * `getWithProof` latency (median µs) and `verifyGetProof`/s — one point per size of a
 * `bench/proofs.ts` run. Pure: numbers in, SVG text out (no fonts, scripts or external files),
 * so a person can open it in any browser beside the bench's table.
 */

/** One size of a run. */
export interface ScalePoint {
  /** Keys loaded. */
  n: number;
  /** Load rate: entries written per second, flushes, compactions and the final checkpoint included. */
  writesPerS: number;
  /** Median get-proof size of present keys, CBOR bytes. */
  proofBytes: number;
  /** Median `getWithProof` latency, µs (warm: keys proven before in the run). */
  getWithProofUs: number;
  /** Median `verifyGetProof` rate, proofs/s (one core, head already verified). */
  verifyPerS: number;
}

interface Panel {
  title: string;
  unit: string;
  value: (p: ScalePoint) => number;
}

const PANELS: Panel[] = [
  { title: 'writes/s (load, incl. checkpoint)', unit: '/s', value: (p) => p.writesPerS },
  { title: 'get proof, median', unit: 'B', value: (p) => p.proofBytes },
  { title: 'getWithProof, median', unit: 'µs', value: (p) => p.getWithProofUs },
  { title: 'verifyGetProof/s', unit: '/s', value: (p) => p.verifyPerS },
];

const W = 320;
const H = 210;
const PAD = { left: 58, right: 14, top: 28, bottom: 34 };

/** `n` as text: 10k, 1M, 2.5M. */
function short(n: number): string {
  const f = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(x < 10 ? 1 : 0));
  if (n >= 1e6) return `${f(n / 1e6)}M`;
  if (n >= 1e3) return `${f(n / 1e3)}k`;
  return f(n);
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** One panel at (x0, y0): log-10 x axis over the sizes, linear y axis from 0 to the largest value. */
function panel(points: readonly ScalePoint[], p: Panel, x0: number, y0: number): string {
  const xs = points.map((q) => Math.log10(q.n));
  const ys = points.map((q) => p.value(q));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  const yMax = Math.max(...ys.filter(Number.isFinite), 1) * 1.15;
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const sx = (x: number) => x0 + PAD.left + (xMax === xMin ? iw / 2 : ((x - xMin) / (xMax - xMin)) * iw);
  const sy = (y: number) => y0 + PAD.top + ih - (y / yMax) * ih;
  const out: string[] = [];
  out.push(`<rect x="${x0 + PAD.left}" y="${y0 + PAD.top}" width="${iw}" height="${ih}" fill="#fafafa" stroke="#ccc"/>`);
  out.push(`<text x="${x0 + W / 2}" y="${y0 + 17}" text-anchor="middle" font-size="13" font-weight="bold">${esc(p.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax / 4) * i;
    const y = sy(v);
    out.push(`<line x1="${x0 + PAD.left}" x2="${x0 + PAD.left + iw}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${x0 + PAD.left - 4}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="10">${esc(short(Math.round(v)))}${i === 4 ? ` ${esc(p.unit)}` : ''}</text>`);
  }
  points.forEach((q, i) => {
    out.push(`<text x="${sx(xs[i]).toFixed(1)}" y="${y0 + H - PAD.bottom + 14}" text-anchor="middle" font-size="10">${esc(short(q.n))}</text>`);
  });
  out.push(`<text x="${x0 + PAD.left + iw / 2}" y="${y0 + H - 6}" text-anchor="middle" font-size="10">keys (log scale)</text>`);
  const pts = points.map((_, i) => `${sx(xs[i]).toFixed(1)},${sy(ys[i]).toFixed(1)}`);
  out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="#1f6feb" stroke-width="2"/>`);
  points.forEach((_, i) => {
    out.push(`<circle cx="${sx(xs[i]).toFixed(1)}" cy="${sy(ys[i]).toFixed(1)}" r="3" fill="#1f6feb"><title>${esc(short(points[i].n))}: ${ys[i].toFixed(0)} ${esc(p.unit)}</title></circle>`);
    out.push(`<text x="${sx(xs[i]).toFixed(1)}" y="${(sy(ys[i]) - 7).toFixed(1)}" text-anchor="middle" font-size="9" fill="#444">${esc(short(Math.round(ys[i])))}</text>`);
  });
  return out.join('\n');
}

/**
 * The chart as SVG text: a 2 × 2 grid of panels and a caption line (`caption`: the machine, its
 * load, the command). Throws `RangeError` with fewer than one point or a non-positive size.
 */
export function scaleChartSvg(points: readonly ScalePoint[], caption: string): string {
  if (points.length === 0) throw new RangeError('a scale chart needs at least one size');
  if (points.some((p) => !(p.n > 0))) throw new RangeError('sizes must be positive');
  const sorted = [...points].sort((a, b) => a.n - b.n);
  const width = 2 * W;
  const height = 2 * H + 24;
  const body = PANELS.map((p, i) => panel(sorted, p, (i % 2) * W, Math.floor(i / 2) * H)).join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    body,
    `<text x="8" y="${height - 8}" font-size="10" fill="#555">${esc(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
