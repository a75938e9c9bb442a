// Builds the explorer's static bundle with esbuild: explorer.js (the page and the client SDK, one
// ES module, minified), index.html and explorer.css. Plain JavaScript so that `npm run build` and
// a node running from a checkout can load it without a TypeScript loader.
//
//   node explorer/build.mjs [OUTDIR]     writes the files to OUTDIR (default dist/ui)
//   import { buildExplorer } from …      the files in memory: { name: Uint8Array }
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The files of /ui, built in memory: `{ 'index.html': bytes, 'explorer.js': bytes, 'explorer.css': bytes }`. */
export async function buildExplorer() {
  const { build } = await import('esbuild');
  const out = await build({
    entryPoints: [path.join(HERE, 'src/main.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
    outfile: 'explorer.js',
  });
  if (out.outputFiles.length !== 1) throw new Error(`explorer build produced ${out.outputFiles.length} files, want 1`);
  return {
    'index.html': new Uint8Array(readFileSync(path.join(HERE, 'static/index.html'))),
    'explorer.css': new Uint8Array(readFileSync(path.join(HERE, 'static/explorer.css'))),
    'explorer.js': out.outputFiles[0].contents,
  };
}

/** Writes the built files to `dir` (each through a temporary file and a rename). */
export async function writeExplorer(dir) {
  const files = await buildExplorer();
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    const tmp = path.join(dir, `.${name}.tmp`);
    writeFileSync(tmp, bytes);
    renameSync(tmp, path.join(dir, name));
  }
  return files;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = path.resolve(process.argv[2] ?? path.join(HERE, '../dist/ui'));
  const files = await writeExplorer(dir);
  const total = Object.values(files).reduce((n, b) => n + b.length, 0);
  process.stdout.write(`explorer: ${Object.keys(files).join(', ')} (${Math.round(total / 1024)} KiB) in ${dir}\n`);
}
