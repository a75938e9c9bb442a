/**
 * The explorer at `/ui`: three static files (`index.html`, `explorer.js`, `explorer.css`; see
 * `docs/explorer.md`) served from memory with their content types and a strict
 * Content-Security-Policy (scripts, styles and requests from this origin only, no inline script,
 * no eval, no frames). No token is needed to load the page: it is public code, and it asks the
 * viewer for a token to call the API.
 *
 * Where the files come from:
 * - an installed package: `dist/ui/`, written by `npm run build` (`explorer/build.mjs`), next to
 *   this module's `dist/server/`;
 * - a checkout (the explorer's sources sit next to `server/`): built in memory with esbuild on
 *   the first request, so `npm start` always serves the explorer of the sources it runs.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { NextFunction, Request, Response } from 'express';
import { HttpError } from './errors.js';

/** The Content-Security-Policy of every `/ui` answer. */
export const UI_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The files of `/ui` and their content types; nothing else is served. */
const UI_TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'explorer.js': 'text/javascript; charset=utf-8',
  'explorer.css': 'text/css; charset=utf-8',
};

/** Ceiling on the explorer's files held in memory, bytes (they are about 180 KB). */
export const MAX_UI_BYTES = 4 * 1024 * 1024;

type UiFiles = Record<string, Uint8Array>;

const HERE = path.dirname(fileURLToPath(import.meta.url));

function checked(files: UiFiles, where: string): UiFiles {
  let total = 0;
  for (const name of Object.keys(UI_TYPES)) {
    if (!(files[name] instanceof Uint8Array)) throw new Error(`explorer file ${name} is missing in ${where}`);
    total += files[name].length;
  }
  if (total > MAX_UI_BYTES) throw new Error(`explorer files in ${where} take ${total} bytes, above ${MAX_UI_BYTES}`);
  return files;
}

/** Loads the files once: built from the sources in a checkout, else read from `dist/ui`; `undefined` when neither exists. */
async function loadFiles(): Promise<UiFiles | undefined> {
  const script = path.join(HERE, '../explorer/build.mjs');
  if (existsSync(script)) {
    const mod = (await import(pathToFileURL(script).href)) as { buildExplorer: () => Promise<UiFiles> };
    return checked(await mod.buildExplorer(), 'the explorer build');
  }
  const dir = path.join(HERE, '../ui');
  if (!existsSync(path.join(dir, 'index.html'))) return undefined;
  const files: UiFiles = {};
  for (const name of Object.keys(UI_TYPES)) files[name] = new Uint8Array(readFileSync(path.join(dir, name)));
  return checked(files, dir);
}

/** Express middleware for `app.use('/ui', …)`: GET and HEAD of the three files (`/ui` and `/ui/` give `index.html`). */
export function explorerRoutes(): (req: Request, res: Response, next: NextFunction) => void {
  let files: Promise<UiFiles | undefined> | undefined;
  return (req, res, next) => {
    res.locals.route = 'ui';
    const name = req.path === '/' ? 'index.html' : req.path.slice(1);
    if (!Object.hasOwn(UI_TYPES, name)) {
      next(new HttpError('NOT_FOUND', 'no such file in the explorer'));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      next(new HttpError('METHOD_NOT_ALLOWED', `${req.method} is not allowed here; allowed: GET, HEAD`, { Allow: 'GET, HEAD' }));
      return;
    }
    files ??= loadFiles();
    files.then(
      (f) => {
        if (!f) {
          next(new HttpError('NOT_FOUND', 'the explorer is not built: run npm run build'));
          return;
        }
        const body = f[name];
        res.setHeader('Content-Type', UI_TYPES[name]);
        res.setHeader('Content-Security-Policy', UI_CSP);
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.setHeader('Referrer-Policy', 'no-referrer');
        res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
        res.setHeader('Cache-Control', 'no-cache');
        res.setHeader('Content-Length', String(body.length));
        res.status(200).end(req.method === 'HEAD' ? undefined : Buffer.from(body.buffer, body.byteOffset, body.length));
      },
      (err: unknown) => {
        files = undefined; // a failed build is tried again on the next request
        next(err);
      },
    );
  };
}
