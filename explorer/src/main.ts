/**
 * The ProofKV explorer: a static page served by every node at `/ui` that reads the public HTTP
 * API with the viewer's token and verifies every answer in the browser with the client SDK.
 * Routes live in the URL fragment: `#/keys`, `#/key/{b64url}`, `#/proof/{b64url}[/{version}]`,
 * `#/checkpoints`, `#/node`, `#/trust`. `docs/explorer.md` says what each page shows and proves.
 * @module
 */
import { fromBase64Url } from '../../client-sdk/bytes.js';
import { badge, failureBox, h, replace } from './dom.js';
import { renderCheckpoints } from './pages/checkpoints.js';
import { renderKey } from './pages/key.js';
import { renderKeys } from './pages/keys.js';
import { renderNode } from './pages/node.js';
import { renderProof } from './pages/proof.js';
import { renderTrust } from './pages/trust.js';
import { config, takeWarnings, trustedState } from './session.js';

const NAV: Array<[string, string]> = [
  ['#/keys', 'Keys'],
  ['#/checkpoints', 'Checkpoints'],
  ['#/node', 'Node'],
  ['#/trust', 'Trust'],
];

const main = h('main', { id: 'main', tabindex: '-1' });
const banner = h('div', { id: 'banner' });
const nav = h('nav', { 'aria-label': 'Explorer' }, h('ul', {}, NAV.map(([href, label]) => h('li', {}, h('a', { href }, label)))));
let generation = 0;

function go(hash: string): void {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

/** The TOFU warning, with the pinned key once there is one. */
async function renderBanner(): Promise<void> {
  const c = config();
  if (!c?.tofu) {
    replace(banner);
    return;
  }
  let pinned = 'none yet (the next verified answer pins the key that signed it)';
  try {
    const st = await trustedState();
    if (st?.publicKeys.length) pinned = st.publicKeys.join(', ');
  } catch {
    // Shown as unreadable state on the Trust page.
  }
  replace(
    banner,
    h(
      'div',
      { class: 'notice notice-warning', id: 'tofu-warning', role: 'note' },
      badge('warning', 'Trust on first use'),
      ' This browser trusts the key the node showed first, without checking it. Pinned key: ',
      h('code', {}, pinned),
      '. Compare it with the node’s start-up banner, or paste the key on the Trust page.',
    ),
  );
}

async function route(): Promise<void> {
  const gen = ++generation;
  const alive = () => gen === generation;
  const [path, q] = (location.hash.replace(/^#/, '') || '/keys').split('?');
  const parts = path.split('/').filter((x) => x !== '');
  const params = new URLSearchParams(q ?? '');
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${parts[0] ?? ''}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `ProofKV explorer — ${parts[0] ?? 'keys'}`;
  try {
    if (!config() && parts[0] !== 'trust') {
      await renderTrust(main, go);
    } else {
      switch (parts[0]) {
        case 'key':
          await renderKey(main, decodeKey(parts[1]), alive);
          break;
        case 'proof':
          await renderProof(main, decodeKey(parts[1]), parts[2] === undefined ? undefined : decodeVersion(parts[2]), alive);
          break;
        case 'checkpoints':
          await renderCheckpoints(main, alive);
          break;
        case 'node':
          await renderNode(main, alive);
          break;
        case 'trust':
          await renderTrust(main, go);
          break;
        default:
          renderKeys(main, params, go);
      }
    }
  } catch (err) {
    if (alive()) replace(main, failureBox(err, 'This page cannot be shown.'));
  }
  if (alive()) {
    takeWarnings();
    await renderBanner();
  }
}

function decodeKey(segment: string | undefined): Uint8Array {
  if (!segment) throw new TypeError('no key in the address');
  const k = fromBase64Url(segment);
  if (k.length === 0) throw new TypeError('the key is empty');
  return k;
}

function decodeVersion(segment: string): number {
  if (!/^\d{1,16}$/.test(segment) || !Number.isSafeInteger(Number(segment))) throw new RangeError(`version ${segment} is not an integer in [0, 2^53 - 1]`);
  return Number(segment);
}

document.body.append(
  h('a', { class: 'skip', href: '#main', onclick: (ev) => (ev.preventDefault(), main.focus()) }, 'Skip to content'),
  h('header', {}, h('p', { class: 'brand' }, 'ProofKV explorer'), nav),
  banner,
  main,
  h('footer', {}, 'Verified in this browser with the ProofKV client SDK. Green ✓ marks what a proof established; grey marks plain answers.'),
);
window.addEventListener('hashchange', () => void route());
void route();
