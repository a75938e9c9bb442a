/**
 * The shortcuts both fronts take per request keep their meaning: the latency histograms fed
 * through the reused label sets hold what observing with fresh label objects holds, and a query
 * parameter name is decoded alike with or without the no-escape shortcut.
 */
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Query } from '../../server/keys.js';
import { Metrics } from '../../server/metrics.js';
import type { ProofDB } from '../../src/index.js';

/** The series lines of metric `name` in `text`, with the metric's name cut off. */
const series = (text: string, name: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .map((l) => l.slice(name.length))
    .sort();

describe('latency histograms through reused label sets', () => {
  const observations: [string, string, number, number][] = [
    ['GET', 'kv_get', 200, 0.0004],
    ['GET', 'kv_get', 404, 0.002],
    ['PUT', 'kv_put', 200, 0.03],
    ['GET', 'kv_get', 200, 0.7],
    ['DELETE', 'kv_delete', 409, 6],
    ['PUT', 'kv_get', 200, 0.0001],
    ['GET', 'kv_put', 200, 0.01],
  ];

  it('hold the same series, counts, sums and buckets as observing with fresh label objects', async () => {
    const m = new Metrics({} as ProofDB, { defaultMetrics: false });
    const plain = new Registry();
    const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    const http = new Histogram({ name: 'ref_http', help: 'h', labelNames: ['method', 'route', 'status'], buckets, registers: [plain] });
    const stream = new Histogram({ name: 'ref_stream', help: 's', labelNames: ['route', 'status'], buckets, registers: [plain] });
    for (let rep = 0; rep < 3; rep++) {
      for (const [method, route, status, s] of observations) {
        m.observeHttp(method, route, status, s * (rep + 1));
        http.observe({ method, route, status: String(status) }, s * (rep + 1));
        m.observeStream(route, status, s * (rep + 1));
        stream.observe({ route, status: String(status) }, s * (rep + 1));
      }
    }
    const mine = await m.registry.metrics();
    const ref = await plain.metrics();
    const httpSeries = series(mine, 'proofkv_http_request_duration_seconds');
    expect(httpSeries.length).toBeGreaterThan(observations.length);
    expect(httpSeries).toEqual(series(ref, 'ref_http'));
    expect(series(mine, 'proofkv_stream_request_duration_seconds')).toEqual(series(ref, 'ref_stream'));
    expect(mine).toMatch(/proofkv_http_request_duration_seconds_count\{method="GET",route="kv_get",status="200"\} 6\n/);
    expect(mine).toMatch(/proofkv_stream_request_duration_seconds_count\{route="kv_get",status="200"\} 9\n/);
  });
});

describe('query parameter names', () => {
  it('decode escapes and + as before, and plain names as themselves', () => {
    const q = new Query('?a%62c=1&x+y=2&%C3%A9t%C3%A9=3&plain=4&caf\u00e9=5');
    expect(q.text('abc')).toBe('1');
    expect(q.text('x y')).toBe('2');
    expect(q.text('été')).toBe('3');
    expect(q.text('plain')).toBe('4');
    expect(q.text('café')).toBe('5');
    expect(() => q.only(['abc', 'x y', 'été', 'plain'])).toThrow(/unknown query parameter "café"/);
  });

  it('a name given plain and escaped is repeated; a malformed escape or non-UTF-8 name is refused', () => {
    expect(() => new Query('?ab=1&%61b=2')).toThrow(/"ab" is repeated/);
    expect(() => new Query('?%61b=1&ab=2')).toThrow(/"ab" is repeated/);
    expect(() => new Query('?a%ZZ=1')).toThrow(/malformed query parameter name/);
    expect(() => new Query('?%FF=1')).toThrow(/malformed query parameter name/);
  });
});
