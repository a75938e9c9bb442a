/**
 * The explorer's bounds that tests also read (no DOM here, so Node type-checks and imports it).
 * @module
 */

/**
 * Versions per load of a key's timeline: the newest window first, older ones on request. The page
 * holds the values it shows, so this bounds a load to about `TIMELINE_WINDOW` × the node's
 * largest value.
 */
export const TIMELINE_WINDOW = 100;

/** Versions whose own get proofs are checked at once when a window loads (its newest ones); the rest on request. */
export const AUTO_GET_PROOFS = 30;
