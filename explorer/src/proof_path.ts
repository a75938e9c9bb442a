/**
 * The path that makes a get answer true, read from a decoded and **verified** get proof: the
 * entry, the data block that holds it, the table, the MasterRoot over the table set, the
 * checkpoint, the signed log head and its signers. Pure (no DOM): the proof page draws it as an
 * SVG and lists it as text; unit-tested in Node.
 * @module
 */
import { equalBytes, toHex } from '../../proofs/bytes.js';
import type { TrustPolicy } from '../../proofs/checkpoint.js';
import type { GetFacts, GetProof } from '../../proofs/lsm_proof.js';
import { formatBytes, keyView, shortHex } from './format.js';

/** One step of the path. */
export interface PathStep {
  /** `entry`, `block`, `table`, `masterRoot`, `checkpoint`, `head`, `signer`. */
  kind: string;
  title: string;
  /** Short lines shown in the box. */
  lines: string[];
  /** Full values (hashes in hex) for the text list and tooltips. */
  detail: string[];
}

/** The master-tree index of a descriptor: the tables of lower levels come first in read order. */
function masterIndex(levelCounts: number[], level: number, position: number): number {
  let i = position;
  for (let l = 0; l < level && l < levelCounts.length; l++) i += levelCounts[l];
  return i;
}

/**
 * The steps of a verified get proof, entry first. `facts` must come from verifying `proof`
 * (`verifyGetProof` / `verifyProofBundle`) against `policy`; signers are the signatures whose key
 * the policy trusts.
 */
export function proofPath(proof: GetProof, facts: GetFacts, policy: TrustPolicy): PathStep[] {
  const steps: PathStep[] = [];
  const e = facts.entry;
  if (e) {
    const kv = keyView(e.key);
    steps.push({
      kind: 'entry',
      title: 'Entry',
      lines: [`${kv.form === 'hex' ? 'key (hex) ' : 'key '}${kv.text.length > 28 ? `${kv.text.slice(0, 27)}…` : kv.text}`, `version ${e.version} · seq ${e.seq} · ${e.kind}${e.kind === 'put' ? ` · ${formatBytes(e.value.length)}` : ''}`],
      detail: [`key ${kv.form}: ${kv.text}`, `version ${e.version}, seq ${e.seq}, ${e.kind}`],
    });
  } else {
    steps.push({ kind: 'entry', title: 'No entry (proven absent)', lines: ['no version at or below the asked one'], detail: ['the proof shows no entry of the key at or below the asked version'] });
  }
  // The window block that holds the entry (or, for an absence, the windows that bracket it).
  const body = proof.body;
  let found: { table: number; blockCount: number; block: (typeof body.windows)[number]['blocks'][number] } | undefined;
  for (const w of body.windows) {
    for (const b of w.blocks) {
      if (e && b.entries.some((x) => equalBytes(x.key, e.key) && x.version === e.version && x.seq === e.seq)) found = { table: w.table, blockCount: w.blockCount, block: b };
    }
  }
  if (found) {
    const b = found.block;
    steps.push({
      kind: 'block',
      title: `Data block ${b.index}`,
      lines: [`entries ${b.offset}–${b.offset + b.entries.length - 1} of ${b.entryCount} revealed`, `range proof: ${b.proof.length} hashes`],
      detail: [`block ${b.index} of table ${found.table}: ${b.entryCount} entries, ${b.entries.length} revealed from offset ${b.offset}`],
    });
    const w = body.windows.find((x) => x.table === found!.table)!;
    const d = body.descriptors.find((x) => masterIndex(body.levelCounts, x.level, x.position) === found!.table);
    steps.push({
      kind: 'table',
      title: `Table ${found.table}${d ? ` (level ${d.level})` : ''}`,
      lines: [`${found.blockCount} block${found.blockCount === 1 ? '' : 's'}${d ? ` · ${d.entryCount} entries` : ''}`, d ? `root ${shortHex(d.tableRoot)}` : `block proof: ${w.blockProof.length} hashes`],
      detail: d ? [`table root ${toHex(d.tableRoot)}`, `level ${d.level}, position ${d.position}, ${d.entryCount} entries`] : [`table ${found.table}`],
    });
  } else {
    steps.push({
      kind: 'table',
      title: `Tables consulted: ${body.descriptors.length}`,
      lines: [`${body.windows.length} windows show the key is not there`],
      detail: body.descriptors.map((d) => `level ${d.level} position ${d.position}: root ${toHex(d.tableRoot)}`),
    });
  }
  const cp = facts.checkpoint;
  steps.push({
    kind: 'masterRoot',
    title: 'MasterRoot',
    lines: [shortHex(cp.masterRoot, 24), `levels [${body.levelCounts.join(', ')}] · ${body.masterProof.length} proof hashes`],
    detail: [`MasterRoot ${toHex(cp.masterRoot)}`, `tables per level: ${body.levelCounts.join(', ')}`],
  });
  steps.push({
    kind: 'checkpoint',
    title: `Checkpoint ${cp.index}`,
    lines: [`seq ${cp.seq}`, cp.prevCheckpointHash ? `prev ${shortHex(cp.prevCheckpointHash)}` : 'first checkpoint'],
    detail: [`index ${cp.index}, seq ${cp.seq}`, cp.prevCheckpointHash ? `prevCheckpointHash ${toHex(cp.prevCheckpointHash)}` : 'no predecessor'],
  });
  const head = facts.head;
  steps.push({
    kind: 'head',
    title: 'Signed log head',
    lines: [`size ${head.size} · root ${shortHex(head.root)}`, `inclusion path: ${proof.certificate.inclusion.length} hashes`],
    detail: [`size ${head.size}`, `root ${toHex(head.root)}`, `checkpoint ${cp.index} is leaf ${cp.index} (RFC 9162 inclusion, ${proof.certificate.inclusion.length} hashes)`],
  });
  for (const sig of proof.certificate.signatures) {
    const trusted = policy.publicKeys.some((k) => equalBytes(k, sig.publicKey));
    steps.push({
      kind: 'signer',
      title: trusted ? 'Signer (trusted)' : 'Signer (not trusted: ignored)',
      lines: [`key ${shortHex(sig.publicKey, 24)}`, `Ed25519 signature ${shortHex(sig.signature, 12)}`],
      detail: [`public key ${toHex(sig.publicKey)}`, trusted ? 'a trusted key: its signature counts toward the quorum' : 'not a trusted key'],
    });
  }
  return steps;
}
