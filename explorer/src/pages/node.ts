/**
 * Node: what the node says about itself (`GET /v1/status`, `/healthz`: plain, marked unverified)
 * next to its last certified checkpoint, verified by the SDK.
 * @module
 */
import { fromBase64Url } from '../../../client-sdk/bytes.js';
import { toHex } from '../../../proofs/bytes.js';
import { badge, busy, failureBox, h, replace } from '../dom.js';
import { formatBytes, shortHex } from '../format.js';
import { getClient, latestCheckpoint, trustedState } from '../session.js';

function row(label: string, value: Node | string): HTMLElement {
  return h('tr', {}, h('th', { scope: 'row' }, label), h('td', {}, value));
}

export async function renderNode(root: HTMLElement, alive: () => boolean): Promise<void> {
  const health = h('div', {}, busy('Asking /healthz…'));
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
  const tasks = [
    (async () => {
      try {
        const r = await client.transport.request<{ ok?: unknown }>({ method: 'GET', path: '/healthz' });
        replace(health, h('p', { id: 'health' }, badge('unverified', r.body?.ok === true ? 'healthy' : 'not healthy'), ' (GET /healthz)'));
      } catch (err) {
        replace(health, failureBox(err, 'The health check failed.'));
      }
    })(),
    (async () => {
      try {
        const st = await client.status();
        const trusted = await trustedState();
        let keyNote = '';
        if (typeof st.publicKey === 'string') {
          const hex = toHex(fromBase64Url(st.publicKey));
          keyNote = trusted?.publicKeys.includes(hex) ? ' — one of your trusted keys' : ' — NOT one of your trusted keys';
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
    (async () => {
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
    })(),
  ];
  await Promise.all(tasks);
  void alive;
}
