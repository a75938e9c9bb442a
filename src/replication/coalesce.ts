/**
 * {@link coalesceAppendAcks}: a member's acknowledgements of appends (MsgAppResp) sent together
 * collapse into one per leader and term. Pure.
 *
 * A follower that steps several appends in one turn (their frames arrived while it synced the
 * previous Ready) answers each with its own MsgAppResp, and they all leave with the Ready, after
 * its one sync. An accepted MsgAppResp of index `i` says "my log matches the leader's up to `i`"
 * (Raft §5.3): a later one of the same term with a higher index says everything an earlier one
 * says, and the leader's progress keeps only the highest (`maybeUpdate` ignores a lower match;
 * `freeLE` frees every inflight append up to it). Sending only that one ends in the same leader
 * state, with fewer messages: and each acknowledgement that moved the commit index had made the
 * leader broadcast a commit-only append to every follower, each answered by one more
 * acknowledgement (bench/README.md, "Fewer acknowledgements per save").
 * @module
 */
import { MessageType, type Message } from '../raft/index.js';

/** An acknowledgement that may be collapsed: an accepted MsgAppResp. Refusals carry hints and stay as they are. */
function isAck(m: Message): boolean {
  return m.type === MessageType.AppResp && !m.reject;
}

/**
 * `messages` (one send, in order) with the accepted MsgAppResps of each (recipient, term) reduced
 * to one: the highest index among them, in the place of the last of them (it is the one a leader
 * would have stepped last). Every other message is kept, in order. Returns `messages` itself when
 * there is nothing to collapse.
 */
export function coalesceAppendAcks(messages: readonly Message[]): readonly Message[] {
  let acks = 0;
  for (const m of messages) if (isAck(m)) acks++;
  if (acks < 2) return messages;
  const key = (m: Message) => `${m.to}/${m.term}`;
  const last = new Map<string, number>();
  const best = new Map<string, Message>();
  messages.forEach((m, i) => {
    if (!isAck(m)) return;
    const k = key(m);
    last.set(k, i);
    const b = best.get(k);
    if (b === undefined || m.index > b.index) best.set(k, m);
  });
  if (last.size === acks) return messages;
  const out: Message[] = [];
  messages.forEach((m, i) => {
    if (!isAck(m)) out.push(m);
    else if (last.get(key(m)) === i) out.push(best.get(key(m))!);
  });
  return out;
}
