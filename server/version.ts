/**
 * The software version, read from the package's `package.json`: its own module so that the
 * command line can print it without loading the server.
 * @module
 */
import * as fs from 'node:fs';

/** The software version from package.json (`0.0.0` when it cannot be found). */
export function softwareVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'proofkv' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}
