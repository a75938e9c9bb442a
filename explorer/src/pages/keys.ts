/**
 * Keys: browse and search by prefix. The list is a **proven** scan (`verifiedScan`): each page is
 * verified in the browser against the trusted keys — every live key of the range up to the page's
 * proven cursor, none omitted, none added, each with its newest version — as of the checkpoint the
 * page names. Writes after that checkpoint are not listed. Each key opened is verified again on its
 * own page (its whole history).
 * @module
 */
import { toBase64Url } from '../../../client-sdk/bytes.js';
import { decodeText } from '../../../client-sdk/keys.js';
import type { VerifiedScanPage } from '../../../client-sdk/client.js';
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
      { class: 'notice notice-verified', id: 'scan-notice' },
      badge('verified', 'Proven list'),
      ' Each page of this list is verified in your browser by a scan proof: every live key of the range up to the end of the page is listed, none omitted and none added, each with its newest version and value, as of the checkpoint the page names. Writes after that checkpoint are not listed yet. Open a key to see and verify its whole history.',
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
  const table = h('table', { class: 'keys' }, h('caption', {}, prefix.length ? 'Keys with this prefix (proven list)' : 'All keys (proven list)'));
  const tbody = h('tbody', {});
  table.append(h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Latest version'), h('th', { scope: 'col' }, 'Size'), h('th', { scope: 'col' }, 'Proven at'))), tbody);
  const more = h('div', {});
  replace(results, busy('Scanning and verifying…'));
  let shown = 0;
  const load = async (cursor?: string) => {
    let page: VerifiedScanPage;
    try {
      const pages = getClient().verifiedScan(prefix.length ? { prefix } : {}, { limit: PAGE, cursor });
      const next = await pages.next();
      await pages.return(undefined);
      if (next.done) throw new Error('the scan returned no page');
      page = next.value;
    } catch (err) {
      // Nothing of a page that failed verification is shown.
      replace(more, failureBox(err, 'The scan could not be verified.'));
      if (shown === 0) replace(results, failureBox(err, 'The scan could not be verified.'));
      return;
    }
    if (shown === 0) replace(results, table, more);
    const at = `checkpoint ${page.checkpoint.index}`;
    for (const e of page.entries) {
      tbody.append(
        h(
          'tr',
          {},
          h('td', {}, h('a', { href: `#/key/${toBase64Url(e.key)}`, class: 'key-link' }, keyCell(e.key))),
          h('td', {}, String(e.version)),
          h('td', {}, e.kind === 'put' ? formatBytes(e.value.length) : 'deleted'),
          h('td', {}, badge('verified', `✓ ${at}`)),
        ),
      );
      shown++;
    }
    if (shown === 0 && !page.cursor) replace(results, h('p', { id: 'no-keys' }, `Proven: no live key here as of ${at}.`));
    else if (page.cursor) replace(more, h('button', { type: 'button', id: 'more', onclick: () => void load(page.cursor) }, `Load ${PAGE} more`));
    else replace(more, h('p', { class: 'muted' }, `${shown} key${shown === 1 ? '' : 's'}, proven complete.`));
  };
  void load();
}
