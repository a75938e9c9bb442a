/**
 * Proof view: the path that makes a get answer true, drawn as an inline SVG from the decoded
 * proof (entry → block → table → MasterRoot → checkpoint → signed head → signers), listed as text
 * too, with a download of the proof bundle (with edge proofs, `edges: true`) for offline `proofkv verify`. The proof is checked
 * twice: online by `verifiedGet` (edges, consistency with the trusted state), and the drawn
 * bytes offline by `verifyProofBundle` against the trusted keys, as `proofkv verify` does.
 * @module
 */
import { getProofBundle, verifyProofBundle, type ProofBundle } from '../../../client-sdk/bundle.js';
import { toBase64Url } from '../../../client-sdk/bytes.js';
import { ClientReason, verificationFailure } from '../../../client-sdk/errors.js';
import { toHex } from '../../../proofs/bytes.js';
import { getProofCodec } from '../../../proofs/lsm_encoding.js';
import type { GetFacts, GetProof } from '../../../proofs/lsm_proof.js';
import { badge, busy, failureBox, h, replace, s } from '../dom.js';
import { proofPath, type PathStep } from '../proof_path.js';
import { endpoint, getClient, recordHead } from '../session.js';
import { keyCell } from './keys.js';

const BOX_W = 420;
const BOX_H = 62;
const GAP = 34;
const WIDTH = 720;

/** The path as an SVG picture: one box per step, arrows meaning "is committed by". */
export function pathSvg(steps: PathStep[]): SVGElement {
  const chain = steps.filter((x) => x.kind !== 'signer');
  const signers = steps.filter((x) => x.kind === 'signer');
  const rows = chain.length + (signers.length ? 1 : 0);
  const height = rows * (BOX_H + GAP) + 10;
  const svg = s('svg', { xmlns: 'http://www.w3.org/2000/svg', viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: 'img', 'aria-labelledby': 'path-svg-title', class: 'proof-path', id: 'proof-svg' });
  svg.append(s('title', { id: 'path-svg-title' }, `Proof path: ${steps.map((x) => x.title).join(', then ')}`));
  svg.append(
    s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 5, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow-head' }))),
  );
  const box = (x: number, y: number, w: number, st: PathStep) =>
    s(
      'g',
      { class: `step step-${st.kind}`, 'data-kind': st.kind },
      s('title', {}, st.detail.join('\n')),
      s('rect', { x, y, width: w, height: BOX_H, rx: 8, ry: 8 }),
      s('text', { x: x + 12, y: y + 20, class: 'step-title' }, st.title),
      st.lines.map((l, i) => s('text', { x: x + 12, y: y + 38 + i * 15, class: 'step-line' }, l)),
    );
  const x0 = (WIDTH - BOX_W) / 2;
  chain.forEach((st, i) => {
    const y = 5 + i * (BOX_H + GAP);
    svg.append(box(x0, y, BOX_W, st));
    if (i + 1 < rows) {
      svg.append(s('line', { x1: WIDTH / 2, y1: y + BOX_H + 2, x2: WIDTH / 2, y2: y + BOX_H + GAP - 4, class: 'arrow', 'marker-end': 'url(#arrow)' }));
      svg.append(s('text', { x: WIDTH / 2 + 10, y: y + BOX_H + GAP / 2 + 4, class: 'arrow-label' }, i + 1 === chain.length ? 'signed by' : 'committed by'));
    }
  });
  if (signers.length) {
    const y = 5 + chain.length * (BOX_H + GAP);
    const n = Math.min(signers.length, 3);
    const w = Math.min(BOX_W, (WIDTH - 10 * (n + 1)) / n);
    signers.slice(0, 3).forEach((st, i) => svg.append(box(10 + i * (w + 10) + (WIDTH - n * (w + 10) - 10) / 2, y, w, st)));
  }
  return svg;
}

export async function renderProof(root: HTMLElement, key: Uint8Array, version: number | undefined, alive: () => boolean): Promise<void> {
  const body = h('div', {}, busy('Fetching and verifying the proof…'));
  replace(
    root,
    h('h1', {}, 'Proof: key ', keyCell(key), version !== undefined ? ` at version ${version}` : ', latest version'),
    h('p', {}, h('a', { href: `#/key/${toBase64Url(key)}` }, 'Back to the key')),
    body,
  );
  const client = getClient();
  let proof: GetProof;
  let facts: GetFacts;
  let bundle: ProofBundle;
  let online: Awaited<ReturnType<typeof client.verifiedGet>>;
  try {
    // Online first: it pins the key under TOFU and moves the trusted head (consistency proven).
    online = await client.verifiedGet(key, { version });
    recordHead(online.head);
    const raw = await client.getProof(key, { version, edges: true });
    proof = getProofCodec.decode(raw.proof);
    bundle = getProofBundle(key, raw.proof, { version, edges: true, endpoint: endpoint() });
    const policy = await client.trust.policy(proof.certificate.signatures);
    const r = verifyProofBundle(bundle, policy, await client.trust.trustedHead());
    facts = r as GetFacts;
    // The node's plain entry must be the proven one.
    const pe = facts.entry;
    const ce = raw.entry;
    if (!pe !== !ce || (pe && ce && (pe.version !== ce.version || pe.seq !== ce.seq || pe.kind !== ce.kind))) {
      verificationFailure(ClientReason.RESPONSE_MISMATCH, 'the node\'s entry disagrees with its proof');
    }
    if (!alive()) return;
    const steps = proofPath(proof, facts, policy);
    const download = h(
      'button',
      {
        type: 'button',
        id: 'download',
        onclick: () => {
          const blob = new Blob([JSON.stringify(bundle, null, 2) + '\n'], { type: 'application/json' });
          const url = URL.createObjectURL(blob);
          const a = h('a', { href: url, download: `proofkv-proof-${toHex(key).slice(0, 32)}${version !== undefined ? `-v${version}` : ''}.json` });
          document.body.append(a);
          a.click();
          a.remove();
          setTimeout(() => URL.revokeObjectURL(url), 10_000);
        },
      },
      'Download proof bundle',
    );
    const e = facts.entry;
    replace(
      body,
      h(
        'div',
        { class: 'notice notice-verified', id: 'proof-status' },
        badge('verified', 'Proof verified'),
        ` ${e ? `Version ${e.version} (${e.kind}) is the newest entry of this key` : 'The key has no entry'} at or below ${version === undefined ? 'the latest version' : `version ${version}`} at checkpoint ${facts.checkpoint.index}, in a log head signed by your trusted keys. Checked online (edge proofs, consistency with your trusted head at checkpoint ${online.checkpoint.index}) and the drawn proof, with its edge proofs, offline, as proofkv verify does.`,
      ),
      h('p', {}, download, ' Check it offline with ', h('code', {}, 'proofkv verify FILE --public-key KEY'), '.'),
      h('figure', {}, pathSvg(steps), h('figcaption', {}, 'Each box is committed by the one below it; the head is signed by the signers.')),
      h('h2', {}, 'The path, step by step'),
      h(
        'ol',
        { class: 'path-list', id: 'path-list' },
        steps.map((st) => h('li', { 'data-kind': st.kind }, h('strong', {}, st.title), ': ', st.detail.join('; '))),
      ),
    );
  } catch (err) {
    if (alive()) replace(body, failureBox(err, 'This proof did not verify, so its path is not drawn.'));
  }
}
