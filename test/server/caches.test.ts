/**
 * Every engine cache is bounded by bytes and reported: the byte LRU itself, the proof caches under
 * a proof load far larger than their budget, and the metrics a node exposes for them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { ByteLru } from '../../src/util/byte_lru.js';
import { resolveConfig } from '../../server/config.js';
import { defaultMaxConnections, defaultMaxOpenTables } from '../../server/node.js';
import { call, startLocalNode, tmpDir } from './harness.js';

describe('ByteLru', () => {
  it('evicts least recently used values until the charges fit, and keeps nothing larger than the budget', () => {
    const c = new ByteLru<string, number>(100);
    c.set('a', 1, 40);
    c.set('b', 2, 40);
    expect(c.get('a')).toBe(1); // a is now the most recently used
    c.set('c', 3, 40); // evicts b
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
    expect(c.bytes).toBe(80);
    c.set('huge', 4, 101);
    expect(c.get('huge')).toBeUndefined();
    expect(c.bytes).toBe(80);
    c.set('a', 5, 10); // replacing recharges
    expect(c.bytes).toBe(50);
    expect(c.count).toBe(2);
  });
});

describe('proof caches', () => {
  it('stay within their byte budgets under proofs of every key, and proofs keep working', async () => {
    const db = await ProofDB.open(path.join(tmpDir(), 'db'), {
      writeBufferSize: 64 * 1024,
      blockSize: 1024,
      proofBlockCacheBytes: 64 * 1024,
      blockTreeCacheBytes: 1024 * 1024,
      compactionThread: 'inline',
    });
    try {
      for (let i = 0; i < 3000; i++) await db.put(`key${String(i).padStart(5, '0')}`, 'v'.repeat(200));
      await db.checkpoint();
      let found = 0;
      for (let i = 0; i < 3000; i += 7) {
        const r = await db.getWithProof(`key${String(i).padStart(5, '0')}`);
        if (r.entry) found++;
        for (const c of db.cacheStats()) expect(c.bytes, c.cache).toBeLessThanOrEqual(c.capacity);
      }
      expect(found).toBe(Math.ceil(3000 / 7));
      const stats = Object.fromEntries(db.cacheStats().map((c) => [c.cache, c]));
      // The budget was the binding limit: more blocks were touched than it holds.
      expect(stats.proof_block.bytes).toBeGreaterThan(32 * 1024);
      expect(stats.proof_block.count).toBeLessThan(3000 / 7);
      expect(stats.block_tree.bytes).toBeGreaterThan(0);
    } finally {
      await db.close();
    }
  });

  it('are reported in /metrics with their budgets', async () => {
    const node = await startLocalNode();
    try {
      const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      for (const cache of ['block', 'table_memory', 'proof_block', 'block_tree', 'version_memo', 'leaf']) {
        expect(text).toMatch(new RegExp(`^proofkv_cache_bytes\\{cache="${cache}"\\} \\d+$`, 'm'));
        expect(text).toMatch(new RegExp(`^proofkv_cache_capacity_bytes\\{cache="${cache}"\\} [1-9]\\d*$`, 'm'));
      }
      expect(text).toMatch(/^proofkv_cache_capacity_bytes\{cache="proof_block"\} 33554432$/m);
      expect(text).toMatch(/^proofkv_open_tables \d+$/m);
      expect(text).toMatch(/^proofkv_table_reopens_total \d+$/m);
      const limit = Number(/^proofkv_open_tables_limit (\d+)$/m.exec(text)?.[1]);
      const connections = Number(/^proofkv_connections_limit (\d+)$/m.exec(text)?.[1]);
      // serve derives the bound from the descriptor limit, next to the connection limit.
      expect(limit).toBe(defaultMaxOpenTables(connections));
    } finally {
      await node.shutdown('test');
    }
  });
});

describe('open table file bound under serve', () => {
  it('leaves room for connections and the engine: tables + connections + 64 fit the descriptor limit', () => {
    for (const nofile of [256, 1024, 4096, 65536, 1 << 20]) {
      const conns = defaultMaxConnections(nofile);
      const tables = defaultMaxOpenTables(conns, nofile);
      expect(tables).toBeGreaterThanOrEqual(16);
      expect(tables).toBeLessThanOrEqual(1000);
      if (nofile >= 1024) expect(conns + tables + 64, `nofile ${nofile}`).toBeLessThanOrEqual(nofile);
    }
    expect(defaultMaxOpenTables(704, 1024)).toBe(256);
    expect(defaultMaxOpenTables(1024, 65536)).toBe(1000);
  });

  it('takes --log-commands / logCommands: binary by default, cbor for a rolling upgrade, anything else refused', () => {
    expect(resolveConfig({}, {}, new Set()).logCommands).toBe('binary');
    expect(resolveConfig({ logCommands: 'cbor' }, {}, new Set(['logCommands'])).logCommands).toBe('cbor');
    expect(() => resolveConfig({ logCommands: 'json' }, {}, new Set(['logCommands']))).toThrow(/log-commands must be one of binary, cbor/);
  });

  it('is configured by --max-open-tables or maxOpenTables in the config file (0: derived), and a bad value is refused', () => {
    expect(resolveConfig({}, {}, new Set()).maxOpenTables).toBe(0);
    expect(resolveConfig({ maxOpenTables: '64' }, {}, new Set(['maxOpenTables'])).maxOpenTables).toBe(64);
    const file = path.join(tmpDir(), 'serve.json');
    fs.writeFileSync(file, JSON.stringify({ maxOpenTables: 128 }));
    expect(resolveConfig({ config: file }, {}, new Set()).maxOpenTables).toBe(128);
    expect(() => resolveConfig({ maxOpenTables: '-1' }, {}, new Set(['maxOpenTables']))).toThrow(/max-open-tables/);
  });
});

describe('open table files through a node', () => {
  it('a node with maxOpenTables 4 and many tables answers every read and keeps at most 4 table files open', async () => {
    const dataDir = path.join(tmpDir(), 'data');
    const node = await startLocalNode(
      {
        writeBufferSize: 2048,
        targetFileSize: 2048,
        blockSize: 256,
        level0CompactionTrigger: 2,
        maxBytesForLevelBase: 4096,
        compactionThread: 'inline',
        tableMemoryBytes: 0,
        blockCacheSize: 0,
        maxOpenTables: 4,
      },
      dataDir,
    );
    const tableFds = () =>
      fs.readdirSync('/proc/self/fd').filter((fd) => {
        try {
          const t = fs.readlinkSync(`/proc/self/fd/${fd}`);
          return t.startsWith(dataDir + path.sep) && t.endsWith('.sst');
        } catch {
          return false;
        }
      }).length;
    const octets = { 'content-type': 'application/octet-stream' };
    try {
      const value = (i: number) => `value-${i}-${'v'.repeat(50)}`;
      for (let i = 0; i < 300; i++) {
        expect((await call(node.url, 'PUT', `/v1/kv/key${i % 150}`, { body: value(i), headers: octets })).status).toBe(200);
      }
      for (let i = 0; i < 150; i++) {
        const r = await call(node.url, 'GET', `/v1/kv/key${(i * 61) % 150}`, { headers: { accept: 'application/octet-stream' } });
        expect(new TextDecoder().decode(r.raw)).toBe(value(((i * 61) % 150) + 150));
        expect(tableFds()).toBeLessThanOrEqual(4);
      }
      const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      expect(Number(/^proofkv_open_tables (\d+)$/m.exec(text)?.[1])).toBeLessThanOrEqual(4);
      expect(text).toMatch(/^proofkv_open_tables_limit 4$/m);
      expect(Number(/^proofkv_table_reopens_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    } finally {
      await node.shutdown('test');
    }
  });
});
