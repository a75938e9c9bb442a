/**
 * The OpenAPI document and the express router agree: every registered route is in the document
 * with its method, and every documented operation is registered. Also checks the document's
 * internal references and that each route's role is stated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofNode } from '../../server/node.js';
import { openApiPath } from '../../server/route_table.js';
import { startLocalNode } from './harness.js';

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
}

describe('openapi.json', () => {
  let node: ProofNode;
  let doc: any;

  beforeAll(async () => {
    node = await startLocalNode();
    const r = await fetch(`${node.url}/openapi.json`, { signal: AbortSignal.timeout(10_000) });
    doc = await r.json();
  });
  afterAll(async () => {
    await node?.shutdown('test');
  });

  it('documents exactly the routes express has, with their methods', () => {
    const stack = (node.built.app as unknown as { router: { stack: Layer[] } }).router.stack;
    const registered = new Set<string>();
    for (const layer of stack) {
      if (!layer.route) continue;
      const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
      for (const p of paths) {
        for (const [m, on] of Object.entries(layer.route.methods)) if (on && m !== '_all') registered.add(`${m.toUpperCase()} ${openApiPath(p)}`);
      }
    }
    const documented = new Set<string>();
    for (const [p, ops] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${p}`);
    }
    expect([...registered].sort()).toEqual([...documented].sort());
    // The contract's routes are all there.
    for (const want of [
      'PUT /v1/kv/{key}',
      'GET /v1/kv/{key}',
      'DELETE /v1/kv/{key}',
      'POST /v1/batch',
      'GET /v1/kv',
      'GET /v1/kv/{key}/proof',
      'GET /v1/kv/{key}/history',
      'POST /v1/checkpoints',
      'GET /v1/checkpoints/latest',
      'GET /v1/checkpoints/{index}',
      'GET /v1/checkpoints/consistency',
      'GET /v1/status',
      'GET /healthz',
      'GET /metrics',
      'GET /openapi.json',
    ]) {
      expect(registered.has(want), want).toBe(true);
    }
  });

  it('is OpenAPI 3.1 with resolvable references, path parameters and roles', () => {
    expect(doc.openapi).toBe('3.1.0');
    const text = JSON.stringify(doc);
    for (const m of text.matchAll(/"\$ref":"#\/components\/schemas\/([A-Za-z]+)"/g)) {
      expect(doc.components.schemas[m[1]], m[1]).toBeDefined();
    }
    for (const [p, ops] of Object.entries<Record<string, any>>(doc.paths)) {
      const names = [...p.matchAll(/\{([a-z]+)\}/g)].map((m) => m[1]);
      for (const [m, op] of Object.entries<any>(ops)) {
        expect(['read', 'write', 'admin', 'none'], `${m} ${p}`).toContain(op['x-proofkv-role']);
        expect(Object.keys(op.responses).length, `${m} ${p}`).toBeGreaterThan(0);
        for (const n of names) expect(op.parameters.some((x: any) => x.in === 'path' && x.name === n && x.required), `${m} ${p} ${n}`).toBe(true);
      }
    }
    expect(doc.paths['/v1/checkpoints'].post['x-proofkv-role']).toBe('admin');
    expect(doc.paths['/v1/kv/{key}'].put['x-proofkv-role']).toBe('write');
    expect(doc.paths['/healthz'].get.security).toEqual([]);
  });
});
