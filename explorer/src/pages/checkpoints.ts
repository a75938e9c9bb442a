/**
 * Checkpoints: the latest certified head (verified by the SDK), the checkpoint log below it (each
 * checkpoint proven a leaf of that head, each linked to its predecessor), the heads this browser
 * verified over time, and an RFC 9162 consistency check between any two of them.
 * @module
 */
import type { VerifiedCheckpoint } from '../../../client-sdk/client.js';
import { ClientReason, verificationFailure } from '../../../client-sdk/errors.js';
import { check } from '../../../client-sdk/trust.js';
import { b64List, obj, parseSignedCheckpoint, uint } from '../../../client-sdk/wire.js';
import { equalBytes, toHex } from '../../../proofs/bytes.js';
import { verifyCheckpointInclusion, verifyCheckpointLink, type Checkpoint } from '../../../proofs/checkpoint.js';
import { Reason, VerificationError } from '../../../proofs/errors.js';
import { verifyConsistency } from '../../../proofs/log.js';
import { badge, busy, describeError, failureBox, h, replace } from '../dom.js';
import { shortHex } from '../format.js';
import { asHead, getClient, latestCheckpoint, seenHeads, type SeenHead } from '../session.js';

/** Checkpoints listed per page of the log. */
const PAGE = 20;

/**
 * Checkpoint `index` with its inclusion path, proven a leaf of the verified latest head
 * (`anchor.head`). When the node answers with a newer head (the log grew), that head is verified
 * first (signatures, consistency with the trusted one) and becomes the anchor.
 */
async function provenCheckpoint(index: number, anchor: { head: VerifiedCheckpoint['head'] }): Promise<Checkpoint> {
  const r = await getClient().transport.request<unknown>({ method: 'GET', path: `/v1/checkpoints/${index}` });
  let c: ReturnType<typeof parseSignedCheckpoint> & { inclusion: Uint8Array[] };
  try {
    const o = obj(r.body, 'checkpoint');
    c = { ...parseSignedCheckpoint(o), inclusion: b64List(o, 'inclusion', 'checkpoint') };
  } catch (err) {
    throw new VerificationError(Reason.MALFORMED_ENCODING, (err as Error).message, { cause: err });
  }
  if (c.checkpoint.index !== index) verificationFailure(ClientReason.RESPONSE_MISMATCH, `asked checkpoint ${index}, got ${c.checkpoint.index}`);
  const same = () => c.head.size === anchor.head.size && equalBytes(c.head.root, anchor.head.root);
  if (!same() && c.head.size > anchor.head.size) anchor.head = (await latestCheckpoint()).head;
  // The path must lead to a head this page verified.
  if (!same()) verificationFailure(ClientReason.RESPONSE_MISMATCH, `the node answered with a head of size ${c.head.size}, not the verified head of size ${anchor.head.size}`);
  check(verifyCheckpointInclusion(c.checkpoint, c.inclusion, anchor.head));
  return c.checkpoint;
}

export async function renderCheckpoints(root: HTMLElement, alive: () => boolean): Promise<void> {
  const top = h('div', {}, busy('Verifying the latest checkpoint…'));
  const log = h('div', {});
  const heads = h('div', {});
  replace(
    root,
    h('h1', {}, 'Checkpoints'),
    h('p', {}, h('button', { type: 'button', id: 'refresh', onclick: () => void renderCheckpoints(root, alive) }, 'Verify the latest again')),
    top,
    heads,
    log,
  );
  let latest: VerifiedCheckpoint;
  try {
    latest = await latestCheckpoint();
  } catch (err) {
    if (alive()) replace(top, failureBox(err, 'The latest checkpoint did not verify.'));
    renderHeads(heads);
    return;
  }
  if (!alive()) return;
  replace(
    top,
    h(
      'div',
      { class: 'notice notice-verified', id: 'latest-status' },
      badge('verified', 'Latest certified head'),
      ` Log size ${latest.head.size}, root ${shortHex(latest.head.root, 24)}, ending with checkpoint ${latest.checkpoint.index} (seq ${latest.checkpoint.seq}); signed by ${latest.signers.length} trusted key${latest.signers.length === 1 ? '' : 's'}: `,
      latest.signers.map((k, i) => [i ? ', ' : '', h('code', { title: toHex(k) }, shortHex(k, 16))]),
      '. It extends the head you trusted before (consistency proven) and links to its predecessor.',
    ),
  );
  renderHeads(heads);

  // The log, newest first, a page at a time; each row proven a leaf of the latest head.
  const tbody = h('tbody', {});
  const more = h('div', {});
  replace(
    log,
    h('h2', {}, 'The checkpoint log'),
    h(
      'table',
      { id: 'checkpoint-log' },
      h('caption', {}, `Checkpoints in the verified head of size ${latest.head.size}, newest first`),
      h('thead', {}, h('tr', {}, ['Index', 'Seq', 'MasterRoot', 'Proof status'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody,
    ),
    more,
  );
  const anchor = { head: latest.head };
  let next: Checkpoint | undefined = latest.checkpoint;
  let index = latest.checkpoint.index;
  const page = async () => {
    replace(more, busy('Proving checkpoints…'));
    const stop = Math.max(-1, index - PAGE);
    for (; index > stop; index--) {
      if (!alive()) return;
      let status: HTMLElement;
      let cp: Checkpoint | undefined;
      try {
        cp = index === latest.checkpoint.index ? latest.checkpoint : await provenCheckpoint(index, anchor);
        if (next && next.index === cp.index + 1) check(verifyCheckpointLink(cp, next));
        status = badge('verified', index === latest.checkpoint.index ? 'last leaf of the signed head' : `leaf ${index} of the head of size ${anchor.head.size}${next ? `, linked to ${index + 1}` : ''}`);
      } catch (err) {
        const d = describeError(err);
        status = h('span', { class: 'badge badge-failed', role: 'alert', title: d.detail }, '✗ ', h('code', { class: 'reason' }, d.code), ` ${d.detail}`);
        cp = undefined;
      }
      tbody.append(
        h(
          'tr',
          { 'data-index': String(index) },
          h('th', { scope: 'row' }, String(index)),
          h('td', {}, cp ? String(cp.seq) : '—'),
          h('td', {}, cp ? h('code', { title: toHex(cp.masterRoot) }, shortHex(cp.masterRoot, 20)) : '—'),
          h('td', {}, status),
        ),
      );
      next = cp;
    }
    replace(more, index >= 0 ? h('button', { type: 'button', id: 'older', onclick: () => void page() }, 'Older checkpoints') : h('p', { class: 'muted' }, 'The first checkpoint is listed.'));
  };
  await page();
}

/** The heads this browser verified, and the consistency check between two of them. */
function renderHeads(el: HTMLElement): void {
  const list = seenHeads();
  const out = h('div', { id: 'consistency-out' });
  const opts = (sel: number) => list.map((x, i) => h('option', { value: String(i), selected: i === sel }, `size ${x.size} (${shortHex(asHead(x).root, 8)})`));
  const a = h('select', { id: 'cons-from' }, opts(0));
  const b = h('select', { id: 'cons-to' }, opts(list.length - 1));
  replace(
    el,
    h('h2', {}, 'Heads this browser verified'),
    h('p', {}, 'Every head below was signed by your trusted keys and accepted as consistent with the trusted state when this browser saw it (kept in this browser, the newest 200).'),
    h(
      'table',
      { id: 'seen-heads' },
      h('caption', {}, 'Verified log heads, oldest first'),
      h('thead', {}, h('tr', {}, ['Log size', 'Root', 'Verified at'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, list.map((x) => h('tr', {}, h('th', { scope: 'row' }, String(x.size)), h('td', {}, h('code', { title: x.root }, `${x.root.slice(0, 24)}…`)), h('td', {}, x.seenAt)))),
    ),
    list.length < 2
      ? h('p', { class: 'muted' }, 'A consistency check needs two heads: come back after the log grew and verify the latest again.')
      : h(
          'form',
          { class: 'inline-form', onsubmit: (ev) => (ev.preventDefault(), void consistency(list[Number(a.value)], list[Number(b.value)], out)) },
          h('label', { for: 'cons-from' }, 'Consistency from'),
          a,
          h('label', { for: 'cons-to' }, 'to'),
          b,
          h('button', { type: 'submit', id: 'cons-run' }, 'Check consistency'),
        ),
    out,
  );
}

/** Fetches and verifies the RFC 9162 consistency proof between two verified heads. */
async function consistency(x: SeenHead, y: SeenHead, out: HTMLElement): Promise<void> {
  const [from, to] = x.size <= y.size ? [x, y] : [y, x];
  if (from.size === to.size) {
    replace(out, from.root === to.root ? h('p', { class: 'notice notice-verified' }, badge('verified', 'Same head')) : failureBox(new VerificationError(Reason.FORK, `two roots at size ${from.size}`), 'Two different heads of the same size: a fork.'));
    return;
  }
  replace(out, busy('Checking consistency…'));
  try {
    const r = await getClient().transport.request<unknown>({ method: 'GET', path: `/v1/checkpoints/consistency?from=${from.size}&to=${to.size}` });
    let proof: Uint8Array[];
    try {
      const o = obj(r.body, 'consistency');
      if (uint(o, 'from', 'consistency') !== from.size || uint(o, 'to', 'consistency') !== to.size) verificationFailure(ClientReason.RESPONSE_MISMATCH, 'the proof is for other sizes');
      proof = b64List(o, 'proof', 'consistency');
    } catch (err) {
      if (err instanceof VerificationError) throw err;
      throw new VerificationError(Reason.MALFORMED_ENCODING, (err as Error).message, { cause: err });
    }
    const v = verifyConsistency(from.size, to.size, proof, asHead(from).root, asHead(to).root);
    if (!v.ok) throw new VerificationError(v.reason === Reason.ROOT_MISMATCH ? Reason.FORK : v.reason, v.message);
    replace(
      out,
      h('div', { class: 'notice notice-verified', id: 'consistency-status' }, badge('verified', 'Consistent'), ` The log of size ${to.size} extends the log of size ${from.size}: its first ${from.size} checkpoint${from.size === 1 ? ' is' : 's are'} unchanged (RFC 9162 consistency proof, ${proof.length} hash${proof.length === 1 ? '' : 'es'}).`),
    );
  } catch (err) {
    replace(out, failureBox(err, `The heads of size ${from.size} and ${to.size} are not proven consistent.`));
  }
}
