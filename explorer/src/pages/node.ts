/**
 * Node: what the node says about itself (`GET /v1/status`, `/healthz`, `/readyz`: plain, marked unverified)
 * next to its last certified checkpoint, verified by the SDK.
 * @module
 */
import { fromBase64Url } from '../../../client-sdk/bytes.js';
import { toHex } from '../../../proofs/bytes.js';
import { badge, busy, failureBox, h, replace } from '../dom.js';
import { formatBytes, shortHex } from '../format.js';
import { endpoint, getClient, latestCheckpoint, trustedState } from '../session.js';

function row(label: string, value: Node | string): HTMLElement {
  return h('tr', {}, h('th', { scope: 'row' }, label), h('td', {}, value));
}

/** Largest `/readyz` answer read, bytes. */
const MAX_READY_BYTES = 64 * 1024;

/**
 * `GET /readyz`: `200 { ready: true }`, or `503 { ready: false, reasons }` (a plain fetch: the
 * SDK's transport would retry a 503 as an unavailable node). Nodes without the route count as
 * not ready, with the status as the reason.
 */
async function readiness(): Promise<{ ready: boolean; reasons: string[] }> {
  const r = await fetch(`${endpoint()}/readyz`, { signal: AbortSignal.timeout(10_000), redirect: 'manual' });
  // Read at most MAX_READY_BYTES, then stop (an endless answer costs no more).
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = r.body?.getReader();
  for (;;) {
    const part = reader ? await reader.read() : { done: true as const, value: undefined };
    if (part.done) break;
    size += part.value.length;
    if (size > MAX_READY_BYTES) {
      await reader!.cancel();
      return { ready: false, reasons: [`an answer above ${MAX_READY_BYTES} bytes`] };
    }
    chunks.push(part.value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const text = new TextDecoder().decode(all);
  let body: { ready?: unknown; reasons?: unknown } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return { ready: false, reasons: [`HTTP ${r.status}, not JSON`] };
  }
  const reasons = Array.isArray(body.reasons) ? body.reasons.map((x) => String(x)) : r.ok ? [] : [`HTTP ${r.status}`];
  return { ready: r.ok && body.ready === true, reasons };
}

export async function renderNode(root: HTMLElement, alive: () => boolean): Promise<void> {
  const health = h('div', {}, busy('Asking /healthz and /readyz…'));
  const status = h('div', {}, busy('Asking /v1/status…'));
  const certified = h('div', {}, busy('Verifying the last checkpoint…'));
  replace(
    root,
    h('h1', {}, 'Node'),
    h('div', { class: 'notice notice-unverified' }, badge('unverified', 'Plain answers'), ' Status and health are what the node says about itself; nothing signs them. The last certified checkpoint below is verified.'),
    h('h2', {}, 'Health'),
    health,
    h('h2', {}, 'Status'),
    status,
    h('h2', {}, 'Last certified checkpoint'),
    certified,
  );
  const client = getClient();
  // The verified checkpoint first: under TOFU it pins the key the status is compared with.
  const verified = (async () => {
    try {
      const cp = await latestCheckpoint();
      replace(
        certified,
        h(
          'div',
          { class: 'notice notice-verified', id: 'certified' },
          badge('verified', `Checkpoint ${cp.checkpoint.index}`),
          ` seq ${cp.checkpoint.seq}, log size ${cp.head.size}, root ${shortHex(cp.head.root, 24)}, signed by `,
          cp.signers.map((k, i) => [i ? ', ' : '', h('code', { title: toHex(k) }, shortHex(k, 16))]),
          '.',
        ),
      );
    } catch (err) {
      replace(certified, failureBox(err, 'The last checkpoint did not verify.'));
    }
  })();
  const tasks = [
    verified,
    (async () => {
      try {
        const r = await client.transport.request<{ ok?: unknown }>({ method: 'GET', path: '/healthz' });
        const ready = await readiness();
        replace(
          health,
          h('p', { id: 'health' }, badge('unverified', r.body?.ok === true ? 'healthy' : 'not healthy'), ' (GET /healthz)'),
          h('p', { id: 'ready' }, badge('unverified', ready.ready ? 'ready' : 'not ready'), ready.reasons.length ? ` ${ready.reasons.join('; ')}` : '', ' (GET /readyz)'),
        );
      } catch (err) {
        replace(health, failureBox(err, 'The health check failed.'));
      }
    })(),
    (async () => {
      try {
        const st = await client.status();
        await verified;
        const trusted = await trustedState();
        let keyNote = '';
        if (typeof st.publicKey === 'string') {
          const hex = toHex(fromBase64Url(st.publicKey));
          keyNote = !trusted ? ' — no key is trusted yet' : trusted.publicKeys.includes(hex) ? ' — one of your trusted keys' : ' — NOT one of your trusted keys';
        }
        const limits = (st.limits ?? {}) as Record<string, unknown>;
        const members = Array.isArray(st.members) ? (st.members as unknown[]) : undefined;
        const lc = st.lastCheckpoint as { checkpoint?: { index?: unknown; seq?: unknown } } | undefined;
        replace(
          status,
          h(
            'table',
            { id: 'status-table' },
            h('caption', {}, 'GET /v1/status (unverified)'),
            h(
              'tbody',
              {},
              row('Role', String(st.role ?? '—')),
              row('Node id', String(st.nodeId ?? '—')),
              st.leader !== undefined ? row('Leader', String(st.leader)) : null,
              members ? row('Members', members.map((m) => (typeof m === 'string' ? m : JSON.stringify(m))).join(', ')) : null,
              row('Public key', h('span', {}, h('code', {}, typeof st.publicKey === 'string' ? toHex(fromBase64Url(st.publicKey)) : '—'), keyNote)),
              row('Software version', String(st.version ?? '—')),
              row('Last seq', String(st.lastSeq ?? '—')),
              row('Last checkpoint (as the node says)', lc?.checkpoint ? `index ${String(lc.checkpoint.index)}, seq ${String(lc.checkpoint.seq)}` : 'none yet'),
              row('Tables', String(st.tables ?? '—')),
              row('Bytes on disk', typeof st.bytesOnDisk === 'number' ? formatBytes(st.bytesOnDisk) : '—'),
              row('Limits', Object.entries(limits).map(([k, v]) => `${k} ${String(v)}`).join(', ')),
            ),
          ),
        );
      } catch (err) {
        replace(status, failureBox(err, 'The status request failed.'));
      }
    })(),
  ];
  await Promise.all(tasks);
  void alive;
}
