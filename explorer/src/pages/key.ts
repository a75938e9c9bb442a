/**
 * A key: its version timeline from `verifiedHistory` (every version, proven complete), each
 * version's own get proof, a value viewer (text, JSON, hex) and a diff between two versions.
 * Nothing is shown before the history verifies; a failure is a red box with its reason.
 * @module
 */
import type { VerifiedHistoryResult } from '../../../client-sdk/client.js';
import { toBase64Url } from '../../../client-sdk/bytes.js';
import type { Entry } from '../../../client-sdk/wire.js';
import { badge, busy, describeError, failureBox, h, replace } from '../dom.js';
import { diff, diffLines, formatBytes, hexDump, MAX_HEX_BYTES, MAX_VIEW_BYTES, preview, valueJson, valueText } from '../format.js';
import { AUTO_GET_PROOFS, TIMELINE_WINDOW as WINDOW } from '../limits.js';
import { getClient, recordHead } from '../session.js';
import { keyCell } from './keys.js';

export async function renderKey(root: HTMLElement, key: Uint8Array, alive: () => boolean): Promise<void> {
  const k64 = toBase64Url(key);
  const body = h('div', {}, busy('Verifying the history of this key…'));
  replace(root, h('h1', {}, 'Key ', keyCell(key)), h('p', {}, h('a', { href: `#/proof/${k64}` }, 'Proof of the latest version'), ' · ', h('a', { href: '#/keys' }, 'Back to keys')), body);
  const client = getClient();
  let newest: number;
  try {
    // The newest version (a put or a tombstone) bounds the first window.
    const latest = await client.verifiedGet(key);
    recordHead(latest.head);
    if (!latest.entry) {
      if (alive()) {
        replace(
          body,
          h('div', { class: 'notice notice-verified', id: 'history-status' }, badge('verified', 'Proven absent'), ` This key has no versions at checkpoint ${latest.checkpoint.index} (seq ${latest.checkpoint.seq}, log size ${latest.head.size}).`),
        );
      }
      return;
    }
    newest = latest.entry.version;
  } catch (err) {
    if (alive()) replace(body, failureBox(err, 'The latest version of this key did not verify.'));
    return;
  }
  let entries: Entry[] = [];
  let loadedFrom = newest + 1;
  let last: VerifiedHistoryResult | undefined;
  const statuses = new Map<number, Node>();
  const viewer = h('section', { id: 'value-viewer', 'aria-labelledby': 'viewer-title' });
  const older = h('div', {});

  const checkGet = async (e: Entry): Promise<void> => {
    statuses.set(e.version, document.createTextNode('get proof: checking…'));
    refreshStatus(e.version);
    let out: Node;
    try {
      const g = await client.verifiedGet(key, { version: e.version });
      recordHead(g.head);
      const ok = g.entry && g.entry.version === e.version && g.entry.seq === e.seq && g.entry.kind === e.kind;
      out = ok ? badge('verified', `get proof at checkpoint ${g.checkpoint.index}`) : badge('failed', 'get proof shows another entry', 'the get proof disagrees with the history proof');
    } catch (err) {
      const d = describeError(err);
      out = h('span', { class: 'badge badge-failed', role: 'alert', title: d.detail }, `✗ get proof: `, h('code', { class: 'reason' }, d.code));
    }
    statuses.set(e.version, out);
    refreshStatus(e.version);
  };
  const refreshStatus = (version: number) => {
    const cell = root.querySelector(`tr[data-version="${version}"] .get-status`);
    const st = statuses.get(version);
    if (cell && st) replace(cell, st);
  };

  const draw = () => {
    const all = loadedFrom <= 1;
    const summary = h(
      'div',
      { class: 'notice notice-verified', id: 'history-status' },
      badge('verified', all ? 'History proven complete' : 'Versions proven complete in range'),
      ` ${all ? '' : `Versions ${loadedFrom} to ${newest}: `}${entries.length} version${entries.length === 1 ? '' : 's'}, none omitted and none added, up to version ${newest} (the newest when this page opened), proven at checkpoint ${last!.checkpoint.index} (seq ${last!.checkpoint.seq}, log size ${last!.head.size}). Commit times are those the proofs commit to (UTC).`,
    );
    const rows = entries.map((e) => {
      const p = e.kind === 'put' ? preview(e.value) : { form: 'empty', text: '' };
      const st = statuses.get(e.version) ?? h('button', { type: 'button', onclick: () => void checkGet(e) }, `Check get proof v${e.version}`);
      return h(
        'tr',
        { 'data-version': String(e.version) },
        h('th', { scope: 'row' }, String(e.version)),
        h('td', {}, e.kind === 'put' ? 'put' : h('span', { class: 'tombstone' }, 'delete')),
        h('td', {}, e.kind === 'put' ? formatBytes(e.value.length) : '—'),
        h('td', { class: `preview preview-${p.form}` }, e.kind === 'delete' ? '(tombstone)' : p.form === 'empty' ? '(empty)' : p.form === 'hex' ? `hex ${p.text}` : p.text),
        h('td', { class: 'time', title: `${e.time} ms` }, e.time <= 8.64e15 ? new Date(e.time).toISOString() : `${e.time} ms`),
        h('td', { class: 'status' }, badge('verified', 'in history proof'), ' ', h('span', { class: 'get-status' }, st)),
        h(
          'td',
          {},
          h('button', { type: 'button', class: 'view-btn', onclick: () => showValue(viewer, e) }, `View v${e.version}`),
          ' ',
          h('a', { href: `#/proof/${k64}/${e.version}` }, `Proof v${e.version}`),
        ),
      );
    });
    const table = h(
      'table',
      { class: 'timeline', id: 'timeline' },
      h('caption', {}, 'Version timeline (oldest first)'),
      h('thead', {}, h('tr', {}, ...['Version', 'Operation', 'Size', 'Value preview', 'Committed', 'Proof status', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows),
    );
    replace(
      older,
      all ? null : h('button', { type: 'button', id: 'load-older', onclick: () => void load() }, `Load versions ${Math.max(1, loadedFrom - WINDOW)} to ${loadedFrom - 1}`),
    );
    replace(body, summary, older, table, viewer, diffSection(entries));
    const shown = [...entries].reverse().find((e) => e.kind === 'put') ?? entries[entries.length - 1];
    if (!viewer.hasChildNodes() && shown) showValue(viewer, shown);
  };

  const load = async (): Promise<void> => {
    const maxVersion = loadedFrom - 1;
    const minVersion = Math.max(0, maxVersion - WINDOW + 1);
    replace(older, busy(`Verifying versions ${minVersion} to ${maxVersion}…`));
    let res: VerifiedHistoryResult;
    try {
      res = await client.verifiedHistory(key, { minVersion, maxVersion });
    } catch (err) {
      if (!alive()) return;
      if (entries.length) replace(older, failureBox(err, `The history of versions ${minVersion} to ${maxVersion} did not verify.`));
      else replace(body, failureBox(err, 'The history of this key did not verify.'));
      return;
    }
    if (!alive()) return;
    recordHead(res.head);
    last = res;
    entries = [...res.entries, ...entries];
    loadedFrom = Math.max(1, minVersion);
    const fresh = res.entries.slice(-AUTO_GET_PROOFS);
    for (const e of fresh) statuses.set(e.version, document.createTextNode('get proof: waiting'));
    draw();
    // Each version's own get proof: "the newest entry at or below v is this one".
    for (const e of [...fresh].reverse()) {
      if (!alive()) return;
      await checkGet(e);
    }
  };
  await load();
}

function showValue(viewer: HTMLElement, e: Entry): void {
  const title = h('h2', { id: 'viewer-title' }, `Value of version ${e.version}`);
  if (e.kind === 'delete') {
    replace(viewer, title, h('p', {}, `Version ${e.version} is a tombstone (a proven delete): it has no value.`));
    return;
  }
  const text = valueText(e.value);
  const json = valueJson(e.value);
  const out = h('pre', { class: 'value', id: 'value-out', tabindex: '0', 'aria-label': `value of version ${e.version}` });
  const note = h('p', { class: 'muted', id: 'value-note' });
  const buttons: HTMLButtonElement[] = [];
  const views: Array<[string, string | undefined, () => string]> = [
    ['Text', text, () => text!],
    ['JSON', json, () => json!],
    ['Hex', 'hex', () => hexDump(e.value).join('\n')],
  ];
  const select = (i: number) => {
    buttons.forEach((b, j) => b.setAttribute('aria-pressed', String(i === j)));
    replace(out, views[i][2]());
    const cut = i === 2 ? MAX_HEX_BYTES : MAX_VIEW_BYTES;
    replace(note, `${formatBytes(e.value.length)}${e.value.length > cut ? `; showing the first ${formatBytes(cut)}` : ''}.`);
  };
  views.forEach(([label, avail], i) => {
    const b = h('button', { type: 'button', class: 'view-mode', 'aria-pressed': 'false', disabled: avail === undefined, title: avail === undefined ? `not ${label}` : undefined, onclick: () => select(i) }, label);
    buttons.push(b);
  });
  replace(viewer, title, h('div', { role: 'group', 'aria-label': 'View as' }, buttons), note, out);
  select(json !== undefined ? 1 : text !== undefined ? 0 : 2);
}

function diffSection(entries: Entry[]): HTMLElement {
  const opts = (sel: number) => entries.map((e, i) => h('option', { value: String(i), selected: i === sel }, `v${e.version}${e.kind === 'delete' ? ' (delete)' : ''}`));
  const a = h('select', { id: 'diff-a' }, opts(Math.max(0, entries.length - 2)));
  const b = h('select', { id: 'diff-b' }, opts(entries.length - 1));
  const out = h('div', { id: 'diff-out' });
  const run = () => {
    const ea = entries[Number(a.value)];
    const eb = entries[Number(b.value)];
    const la = ea.kind === 'put' ? diffLines(ea.value) : [];
    const lb = eb.kind === 'put' ? diffLines(eb.value) : [];
    const d = diff(la, lb);
    if (!d) {
      replace(out, h('p', {}, `v${ea.version} and v${eb.version} are too large to compare line by line.`));
      return;
    }
    const changed = d.filter((l) => l.op !== ' ').length;
    replace(
      out,
      h('p', { id: 'diff-summary' }, changed === 0 ? `v${ea.version} and v${eb.version} have the same value.` : `${changed} line${changed === 1 ? '' : 's'} differ between v${ea.version} and v${eb.version}.`),
      h(
        'pre',
        { class: 'diff', tabindex: '0', 'aria-label': 'diff' },
        d.map((l) => h('span', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same' }, `${l.op} ${l.text}\n`)),
      ),
    );
  };
  return h(
    'section',
    { 'aria-labelledby': 'diff-title' },
    h('h2', { id: 'diff-title' }, 'Compare two versions'),
    h(
      'form',
      { class: 'inline-form', onsubmit: (ev) => (ev.preventDefault(), run()) },
      h('label', { for: 'diff-a' }, 'From'),
      a,
      h('label', { for: 'diff-b' }, 'to'),
      b,
      h('button', { type: 'submit', id: 'diff-run' }, 'Compare'),
    ),
    out,
  );
}
