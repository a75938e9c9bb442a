/**
 * Bearer-token authentication with three roles: `read` (GET routes), `write` (+ PUT, DELETE,
 * batch), `admin` (+ `POST /v1/checkpoints`, `/metrics`). Each role includes the ones below it.
 *
 * Tokens are kept as SHA-256 digests and looked up by the digest of the presented token, so the
 * lookup's timing does not depend on how much of a real token a guess matches. A node without
 * tokens treats every request as `admin`; the CLI then binds only to loopback
 * ({@link isLoopbackHost}).
 * @module
 */
import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { HttpError } from './errors.js';

/** Roles, lowest first. */
export const ROLES = ['read', 'write', 'admin'] as const;
/** A role. */
export type Role = (typeof ROLES)[number];
/** The role a route needs; `none` means no token is checked. */
export type RouteRole = Role | 'none';

/** A configured token. */
export interface TokenEntry {
  token: string;
  role: Role;
}

const rank = (r: Role): number => ROLES.indexOf(r);
const digest = (t: string): string => createHash('sha256').update(t, 'utf8').digest('hex');
const TOKEN = /^[\x21-\x7e]{1,512}$/;

/** Whether `r` is a role name. */
export function isRole(r: unknown): r is Role {
  return typeof r === 'string' && (ROLES as readonly string[]).includes(r);
}

/** Throws `Error` unless `token` is 1–512 printable ASCII characters without spaces. */
export function checkToken(token: unknown, where: string): asserts token is string {
  if (typeof token !== 'string' || !TOKEN.test(token)) {
    throw new Error(`${where}: a token must be 1-512 printable ASCII characters without spaces`);
  }
}

/**
 * Parses `PROOFKV_TOKENS`: `tok1:admin,tok2:read`. Throws `Error` on a malformed entry or an
 * unknown role.
 */
export function parseTokenList(s: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  for (const part of s.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const i = p.lastIndexOf(':');
    if (i <= 0) throw new Error(`PROOFKV_TOKENS: entry "${p.slice(0, 8)}…" must be token:role`);
    const token = p.slice(0, i);
    const role = p.slice(i + 1);
    checkToken(token, 'PROOFKV_TOKENS');
    if (!isRole(role)) throw new Error(`PROOFKV_TOKENS: unknown role "${role}" (read, write, admin)`);
    out.push({ token, role });
  }
  return out;
}

/** Authenticates requests against a fixed token set. */
export class Authenticator {
  private readonly byDigest = new Map<string, Role>();

  constructor(tokens: readonly TokenEntry[]) {
    for (const t of tokens) {
      checkToken(t.token, 'tokens');
      if (!isRole(t.role)) throw new Error(`tokens: unknown role "${String(t.role)}"`);
      const d = digest(t.token);
      const prev = this.byDigest.get(d);
      // A token listed twice gets the higher role.
      if (!prev || rank(t.role) > rank(prev)) this.byDigest.set(d, t.role);
    }
  }

  /** Whether no token is configured (every request is `admin`). */
  get open(): boolean {
    return this.byDigest.size === 0;
  }

  /** The role of the request's bearer token; throws `401 UNAUTHENTICATED` if missing or unknown. */
  roleOf(req: Request): Role {
    if (this.open) return 'admin';
    const h = req.headers.authorization;
    if (typeof h !== 'string' || h === '') throw unauthenticated('missing Authorization: Bearer <token>');
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
    if (!m) throw unauthenticated('Authorization must be "Bearer <token>"');
    const role = this.byDigest.get(digest(m[1]));
    if (!role) throw unauthenticated('unknown token');
    return role;
  }

  /** Middleware that requires at least `need`. */
  require(need: RouteRole): (req: Request, res: Response, next: NextFunction) => void {
    return (req, res, next) => {
      if (need === 'none') return next();
      try {
        const role = this.roleOf(req);
        checkRole(role, need);
        res.locals.role = role;
        next();
      } catch (err) {
        next(err);
      }
    };
  }
}

/** Throws `403 FORBIDDEN` unless `role` includes `need` (the HTTP routes and the stream's requests). */
export function checkRole(role: Role, need: Role): void {
  if (rank(role) < rank(need)) throw new HttpError('FORBIDDEN', `this route needs the ${need} role; the token has ${role}`);
}

function unauthenticated(detail: string): HttpError {
  return new HttpError('UNAUTHENTICATED', detail, { 'WWW-Authenticate': 'Bearer realm="proofkv"' });
}

/** Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (/^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  return false;
}
