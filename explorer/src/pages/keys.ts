/**
 * Keys: browse and search by prefix. The list is a **plain** scan (the server has no proven
 * scans yet), shown as unverified; each key opened is verified on its own page.
 * @module
 */
import { toBase64Url } from '../../../client-sdk/bytes.js';
import { decodeText } from '../../../client-sdk/keys.js';
import type { Entry } from '../../../client-sdk/wire.js';
import { badge, busy, failureBox, h, replace } from '../dom.js';
import { formatBytes, keyView } from '../format.js';
import { getClient } from '../session.js';

/** Keys asked per scan page. */
const PAGE = 100;

/** A key's cell: text, or hex with a marker. */
export function keyCell(key: Uint8Array): HTMLElement {
  const v = keyView(key);
  return v.form === 'text' ? h('span', { class: 'key-text' }, v.text) : h('span', { class: 'key-hex' }, h('abbr', { title: 'binary key, shown as hex', class: 'hex-tag' }, 'hex'), ' ', v.text);
}

export function renderKeys(root: HTMLElement, params: URLSearchParams, go: (hash: string) => void): void {
  const prefixText = params.get('prefix') ?? '';
  const enc = params.get('enc') === 'hex' ? 'hex' : 'utf8';
  const input = h('input', { id: 'prefix', name: 'prefix', type: 'text', value: prefixText, autocomplete: 'off', spellcheck: 'false' });
  const select = h('select', { id: 'prefix-enc', name: 'enc' }, h('option', { value: 'utf8', selected: enc === 'utf8' }, 'text'), h('option', { value: 'hex', selected: enc === 'hex' }, 'hex'));
  const openInput = h('input', { id: 'open-key', name: 'open', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const openEnc = h('select', { id: 'open-enc', 'aria-label': 'Key encoding' }, h('option', { value: 'utf8' }, 'text'), h('option', { value: 'hex' }, 'hex'));
  const results = h('div', { id: 'scan-results' });
  const openError = h('div', {});
  replace(
    root,
    h('h1', {}, 'Keys'),
    h(
      'form',
      {
        class: 'inline-form',
        role: 'search',
        onsubmit: (ev) => {
          ev.preventDefault();
          const p = new URLSearchParams({ prefix: input.value, enc: select.value });
          go(`#/keys?${p.toString()}`);
        },
      },
      h('label', { for: 'prefix' }, 'Prefix'),
      input,
      h('label', { for: 'prefix-enc' }, 'as'),
      select,
      h('button', { type: 'submit' }, 'Search'),
    ),
    h(
      'form',
      {
        class: 'inline-form',
        onsubmit: (ev) => {
          ev.preventDefault();
          try {
            const k = decodeText(openInput.value, openEnc.value === 'hex' ? 'hex' : 'utf8');
            if (k.length === 0) throw new TypeError('the key is empty');
            go(`#/key/${toBase64Url(k)}`);
          } catch (err) {
            replace(openError, failureBox(err, 'That key cannot be opened.'));
          }
        },
      },
      h('label', { for: 'open-key' }, 'Open a key'),
      openInput,
      openEnc,
      h('button', { type: 'submit' }, 'Open and verify'),
    ),
    openError,
    h(
      'div',
      { class: 'notice notice-unverified', id: 'scan-notice' },
      badge('unverified', 'Unverified list'),
      ' This list comes from a plain scan: the server has no proven scans yet, so the list itself is not verified — a key could be missing, or listed without existing. Versions and sizes here are what the node says. Open a key to verify its history against your trusted keys.',
    ),
    results,
  );

  let prefix: Uint8Array;
  try {
    prefix = decodeText(prefixText, enc);
  } catch (err) {
    replace(results, failureBox(err, 'The prefix is not valid in that encoding.'));
    return;
  }
  const table = h('table', { class: 'keys' }, h('caption', {}, prefix.length ? 'Keys with this prefix (unverified list)' : 'All keys (unverified list)'));
  const tbody = h('tbody', {});
  table.append(h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Latest version (unverified)'), h('th', { scope: 'col' }, 'Size (unverified)'))), tbody);
  const more = h('div', {});
  replace(results, busy('Scanning…'));
  let shown = 0;
  const load = async (cursor?: string) => {
    let page: { items: Entry[]; cursor?: string };
    try {
      page = await getClient().scan({ prefix: prefix.length ? prefix : undefined, limit: PAGE, cursor });
    } catch (err) {
      replace(more, failureBox(err, 'The scan failed.'));
      if (shown === 0) replace(results, failureBox(err, 'The scan failed.'));
      return;
    }
    if (shown === 0) replace(results, table, more);
    for (const e of page.items) {
      tbody.append(
        h(
          'tr',
          {},
          h('td', {}, h('a', { href: `#/key/${toBase64Url(e.key)}`, class: 'key-link' }, keyCell(e.key))),
          h('td', {}, String(e.version)),
          h('td', {}, e.kind === 'put' ? formatBytes(e.value.length) : 'deleted'),
        ),
      );
      shown++;
    }
    if (shown === 0) replace(results, h('p', { id: 'no-keys' }, 'The node lists no keys here (unverified).'));
    else if (page.cursor) replace(more, h('button', { type: 'button', id: 'more', onclick: () => void load(page.cursor) }, `Load ${PAGE} more`));
    else replace(more, h('p', { class: 'muted' }, `${shown} key${shown === 1 ? '' : 's'} listed.`));
  };
  void load();
}
