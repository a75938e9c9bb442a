/**
 * {@link PeerQueue}: the encoded messages waiting for one peer, bounded in bytes, taken in
 * batches. Pure.
 * @module
 */
import { varintLength } from '../../util/coding.js';
import { MAX_BATCH_MESSAGES } from './codec.js';

/** Bytes a batch frame adds besides each message's own length prefix: version and a count of ≤ 2^16 (3 bytes). */
export const BATCH_FRAME_BYTES = 4;

/** Bytes `encoded` takes inside a batch (its length prefix included). */
export function framedSize(encoded: Uint8Array): number {
  return varintLength(encoded.length) + encoded.length;
}

/** A FIFO of encoded messages whose total size never exceeds `maxBytes`. */
export class PeerQueue {
  private items: Uint8Array[] = [];
  private head = 0;
  private size = 0;

  constructor(readonly maxBytes: number) {}

  /** Bytes queued (each message's encoding, without framing). */
  get bytes(): number {
    return this.size;
  }

  /** Messages queued. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Queues `encoded`; false (and nothing queued) when it would take the queue over its bound. */
  push(encoded: Uint8Array): boolean {
    if (this.size + encoded.length > this.maxBytes) return false;
    this.items.push(encoded);
    this.size += encoded.length;
    return true;
  }

  /**
   * Takes the oldest messages whose batch (frame included) fits in `maxBatchBytes`: at least one
   * when the queue is not empty (a caller never queues a message that cannot fit alone).
   */
  take(maxBatchBytes: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let batch = BATCH_FRAME_BYTES;
    while (this.head < this.items.length && out.length < MAX_BATCH_MESSAGES) {
      const next = this.items[this.head];
      const add = framedSize(next);
      if (out.length > 0 && batch + add > maxBatchBytes) break;
      out.push(next);
      batch += add;
      this.size -= next.length;
      this.items[this.head++] = EMPTY;
    }
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Drops everything queued; returns how many messages were dropped. */
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.size = 0;
    return n;
  }
}

const EMPTY = new Uint8Array(0);
