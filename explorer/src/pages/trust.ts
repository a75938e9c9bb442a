/**
 * Trust: the viewer's token (kept in sessionStorage) and what the page trusts — node public keys
 * pasted in hex, base64url or base64 with a quorum, or trust on first use (with a warning) — and
 * the trusted state this browser keeps.
 * @module
 */
import { badge, failureBox, h, replace } from '../dom.js';
import { config, forgetState, setConfig, setToken, token, trustedState } from '../session.js';

export async function renderTrust(root: HTMLElement, go: (hash: string) => void): Promise<void> {
  const c = config();
  const tokenInput = h('input', { id: 'token', type: 'password', autocomplete: 'off', value: token() });
  const keys = h('textarea', { id: 'keys', rows: 3, cols: 70, spellcheck: 'false' }, c && !c.tofu ? c.publicKeys.join('\n') : '');
  const quorum = h('input', { id: 'quorum', type: 'number', min: 1, value: String(c?.quorum ?? 1) });
  const tofu = h('input', { id: 'tofu', type: 'checkbox', checked: c?.tofu === true });
  const error = h('div', {});
  const state = h('div', {});
  replace(
    root,
    h('h1', {}, 'Trust'),
    h('p', {}, 'The explorer verifies every answer in this browser. It trusts the node public keys you paste here (compare them with each node’s start-up banner), and keeps the newest verified head in this browser’s storage: a node that later shows an older or forked log is caught.'),
    h(
      'form',
      {
        id: 'trust-form',
        onsubmit: (ev) => {
          ev.preventDefault();
          try {
            const lines = keys.value.split(/[\s,]+/).filter((x) => x !== '');
            setConfig({ tofu: tofu.checked, publicKeys: lines, quorum: Number(quorum.value) });
            setToken(tokenInput.value.trim());
            go('#/keys');
          } catch (err) {
            replace(error, failureBox(err, 'The trust settings were not saved.'));
          }
        },
      },
      h('p', {}, h('label', { for: 'token' }, 'Token (kept in this tab only)'), h('br', {}), tokenInput),
      h('p', {}, h('label', { for: 'keys' }, 'Trusted node public keys, one per line (hex, base64url or base64)'), h('br', {}), keys),
      h('p', {}, h('label', { for: 'quorum' }, 'Quorum (signatures needed)'), ' ', quorum),
      h(
        'p',
        {},
        tofu,
        ' ',
        h('label', { for: 'tofu' }, 'Trust on first use instead: pin whichever key the node shows first (unsafe unless you check the pinned key)'),
      ),
      h('button', { type: 'submit', id: 'save-trust' }, 'Save and browse'),
    ),
    error,
    h('h2', {}, 'Trusted state in this browser'),
    state,
  );
  try {
    const st = await trustedState();
    if (!st) {
      replace(state, h('p', { id: 'trusted-state' }, 'None yet: the first verified answer is trusted on its signatures alone.'));
      return;
    }
    replace(
      state,
      h(
        'div',
        { id: 'trusted-state' },
        h('p', {}, st.tofu ? badge('warning', 'Pinned on first use') : badge('verified', 'Configured keys'), ' keys ', st.publicKeys.map((k, i) => [i ? ', ' : '', h('code', {}, k)]), `, quorum ${st.quorum}.`),
        h('p', {}, st.head ? `Trusted head: log size ${st.head.size}, root ${st.head.root.slice(0, 24)}…` : 'No head yet.', st.checkpoint ? ` Checkpoint ${st.checkpoint.index} (seq ${st.checkpoint.seq}).` : ''),
        h(
          'button',
          {
            type: 'button',
            id: 'forget',
            onclick: () => {
              forgetState();
              void renderTrust(root, go);
            },
          },
          'Forget this trusted state',
        ),
      ),
    );
  } catch (err) {
    replace(state, failureBox(err, 'The trusted state in this browser is unreadable.'));
  }
}
