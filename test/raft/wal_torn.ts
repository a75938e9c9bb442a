/**
 * What a crash in the middle of a WalStorage write leaves, for the harnesses that simulate one
 * (the nemesis harness's torn tail): a partial frame (write) right after the last whole one of the
 * newest segment, over the preallocated zeros — a frame header (a CRC never finished, a length,
 * the frame kind) and fewer bytes than its length. Nothing synced is cut.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FRAME_WRITE, RECORD_HEADER, scanSegment } from '../../src/raft/wal_format.js';

/** Writes a torn frame after the last whole frame of the newest segment in `walDir`; returns that file (undefined when there is none). */
export function tearWalTail(walDir: string, rand: () => number): string | undefined {
  const segments = fs.existsSync(walDir) ? fs.readdirSync(walDir).filter((f) => /^[0-9a-f]{16}\.wal$/.test(f)).sort() : [];
  if (segments.length === 0) return undefined;
  const name = segments[segments.length - 1];
  const file = path.join(walDir, name);
  const { end } = scanSegment(name, parseInt(name, 16), fs.readFileSync(file), true);
  const length = 1 + Math.floor(rand() * 4096);
  const present = Math.floor(rand() * length); // 0 .. length-1 bytes of the body
  const torn = new Uint8Array(RECORD_HEADER + present);
  const dv = new DataView(torn.buffer);
  dv.setUint32(0, Math.floor(rand() * 0x1_0000_0000));
  dv.setUint32(4, length);
  torn[8] = FRAME_WRITE;
  for (let i = RECORD_HEADER; i < torn.length; i++) torn[i] = Math.floor(rand() * 256);
  const fd = fs.openSync(file, 'r+');
  try { fs.writeSync(fd, torn, 0, torn.length, end); } finally { fs.closeSync(fd); }
  return file;
}
