/**
 * A few lines of DOM building: elements from a tag, attributes and children. Text always goes in
 * as text nodes (never `innerHTML`), so a key or value can never become markup; event handlers
 * are properties, so the page needs no inline script (the Content-Security-Policy forbids it).
 * @module
 */
import { ProofKVHttpError, ProofKVNetworkError, ProofKVResponseTooLargeError, VerificationError } from '../../client-sdk/errors.js';

type Child = Node | string | number | false | null | undefined | Child[];
type Attrs = Record<string, string | number | boolean | ((ev: Event) => void) | undefined>;

function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

function setAttrs(el: Element, attrs: Attrs | undefined): void {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** An HTML element. `on…` attributes are listeners; `false`/`undefined` attributes are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element (presentation attributes only: the policy forbids inline `style`). */
export function s(tag: string, attrs?: Attrs, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replaces the children of `el`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** What a failed call is, for the red box: a verification failure with its reason code, or another error with its code. */
export function describeError(err: unknown): { title: string; code: string; detail: string; verification: boolean } {
  if (err instanceof VerificationError) return { title: 'Verification failed', code: err.reason, detail: err.message, verification: true };
  if (err instanceof ProofKVHttpError) return { title: `The node refused (HTTP ${err.status})`, code: err.code, detail: err.detail ?? err.message, verification: false };
  if (err instanceof ProofKVResponseTooLargeError) return { title: 'Answer too large', code: 'RESPONSE_TOO_LARGE', detail: err.message, verification: false };
  if (err instanceof ProofKVNetworkError) return { title: 'No answer from the node', code: 'NETWORK_ERROR', detail: err.message, verification: false };
  if (err instanceof TypeError || err instanceof RangeError) return { title: 'Invalid input', code: 'INVALID_INPUT', detail: err.message, verification: false };
  return { title: 'Error', code: 'ERROR', detail: err instanceof Error ? err.message : String(err), verification: false };
}

/** The red box of a failure: title, reason code, detail. Nothing of the failed answer is shown. */
export function failureBox(err: unknown, what: string): HTMLElement {
  const d = describeError(err);
  return h(
    'div',
    { class: 'failure', role: 'alert', 'data-code': d.code },
    h('p', { class: 'failure-title' }, `✗ ${d.title}: `, h('code', { class: 'reason' }, d.code)),
    h('p', {}, what),
    h('p', { class: 'detail' }, d.detail),
    d.verification ? h('p', {}, 'Nothing of this answer is shown: it did not verify against your trusted keys and state.') : null,
  );
}

/** A badge: `verified` (green), `unverified` (grey, plain answer) or `failed` (red). */
export function badge(kind: 'verified' | 'unverified' | 'failed' | 'warning', text: string, title?: string): HTMLElement {
  return h('span', { class: `badge badge-${kind}`, title }, kind === 'verified' ? `✓ ${text}` : kind === 'failed' ? `✗ ${text}` : text);
}

/** "Working…" with a live region, while a call runs. */
export function busy(text: string): HTMLElement {
  return h('p', { class: 'busy', role: 'status' }, text);
}
