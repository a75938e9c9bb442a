/**
 * {@link CommitNotices}: a leader's appends that only tell a follower a new commit index wait a
 * little, so that the next append with entries carries that index instead. Pure: the caller
 * supplies the messages, the progress rule and the timer.
 *
 * When a leader learns that an entry is committed it tells every follower at once, with an append
 * that has no entries (Raft §5.3; etcd's `bcastAppend`), and each follower answers it with one
 * more acknowledgement. For a client that writes one request at a time that is, per write, two
 * more messages out of the leader, two wake-ups, Readies and acknowledgements on the followers,
 * and two more acknowledgements into the leader: about a third of the cluster's messages. Yet the
 * next write's append, which carries the commit index too, usually follows within a millisecond.
 *
 * Nothing in Raft's safety depends on when a follower learns the commit index: commit is decided
 * by the leader from the acknowledgements alone, and a follower applies what it learns in log
 * order whenever it learns it. What a follower's prompt knowledge serves is its own apply: the
 * answer to a write it relayed for its client, a linearizable read it serves (it waits until it
 * has applied the read index), a serializable read's freshness, and its signature of a
 * checkpoint. So a commit-only append to follower X is held, at most {@link
 * DEFAULT_COMMIT_NOTICE_DELAY_MS}, unless:
 * - X relayed a proposal whose commit it has not been told yet (its client waits);
 * - the leader answers a read index to X (its read waits for the apply), which sends a held
 *   notice along;
 * - X is not replicating normally (a probe, a follower catching up: `canHold` is false).
 *
 * A held notice is dropped when any later message to X states a commit index at least as high
 * (an append with entries, a heartbeat); otherwise it is sent when the delay runs out. Messages
 * to different followers are independent, and a held message is sent unchanged: an empty append
 * whose previous index the follower holds, which it acknowledges like any other.
 * @module
 */
import { MessageType, type Message } from '../raft/index.js';

/** How long a commit-only append may wait for an append with entries to carry its commit index (ms). */
export const DEFAULT_COMMIT_NOTICE_DELAY_MS = 10;

/** True for a leader's append that carries no entries: it tells the follower a commit index only. */
export function isCommitNotice(m: Message): boolean {
  return m.type === MessageType.App && m.entries.length === 0;
}

/** The commit notices a leader holds back, per follower (see the module's comment). */
export class CommitNotices {
  /** The held commit-only append of each follower (the latest: its commit index is the highest). */
  private readonly held = new Map<number, Message>();
  /** The highest commit index sent to each follower, in any message. */
  private readonly told = new Map<number, number>();
  /** The last log index of the proposals each follower relayed to this leader. */
  private readonly relayed = new Map<number, number>();

  /** Number of notices held now. */
  get size(): number { return this.held.size; }

  /** Records that follower `from` relayed proposals now in the leader's log up to `lastIndex`. */
  noteRelayed(from: number, lastIndex: number): void {
    if (lastIndex > (this.relayed.get(from) ?? 0)) this.relayed.set(from, lastIndex);
  }

  /**
   * The messages of one send that go now, in order: commit-only appends that may wait
   * (`canHold(m)`, and no proposal relayed by their recipient awaits a commit it was not told)
   * are held instead, replacing an older held one for the same follower. A held notice that a
   * message in `messages` supersedes is dropped; one whose follower gets a read index is sent
   * with it. Returns `messages` itself when nothing was held or released.
   */
  pass(messages: readonly Message[], canHold: (m: Message) => boolean): readonly Message[] {
    let out: Message[] | null = null;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      let keep = true;
      let release: Message | undefined;
      if (isCommitNotice(m) && canHold(m) && (this.relayed.get(m.to) ?? 0) <= (this.told.get(m.to) ?? 0)) {
        const h = this.held.get(m.to);
        if (h === undefined || h.commit <= m.commit) this.held.set(m.to, m);
        keep = false;
      } else {
        const h = this.held.get(m.to);
        if (h !== undefined) {
          if ((m.type === MessageType.App || m.type === MessageType.Heartbeat) && m.commit >= h.commit) this.held.delete(m.to);
          else if (m.type === MessageType.ReadIndexResp || m.type === MessageType.Snap) {
            this.held.delete(m.to);
            if (m.type === MessageType.ReadIndexResp) release = h;
          }
        }
        if ((m.type === MessageType.App || m.type === MessageType.Heartbeat) && m.commit > (this.told.get(m.to) ?? 0)) this.told.set(m.to, m.commit);
      }
      if (keep && release === undefined) {
        out?.push(m);
        continue;
      }
      out ??= messages.slice(0, i);
      if (release !== undefined) {
        out.push(release);
        this.noteTold(release);
      }
      if (keep) out.push(m);
    }
    return out ?? messages;
  }

  /** Every held notice, now due: they are forgotten here and counted as told. */
  take(): Message[] {
    const out = [...this.held.values()];
    this.held.clear();
    for (const m of out) this.noteTold(m);
    return out;
  }

  /** Forgets everything (this member stopped leading: its followers hear from the next leader). */
  clear(): void {
    this.held.clear();
    this.told.clear();
    this.relayed.clear();
  }

  private noteTold(m: Message): void {
    if (m.commit > (this.told.get(m.to) ?? 0)) this.told.set(m.to, m.commit);
  }
}
