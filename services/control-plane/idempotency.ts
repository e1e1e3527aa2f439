/**
 * Idempotency-Key records: a retried POST returns the first response and writes nothing new.
 * Kept in the control plane's own SQLite file beside the store (durable, WAL, synchronous FULL).
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';

export type StoredResponse = { readonly statusCode: number; readonly body: string; readonly contentType: string };

export type IdempotencyLookup =
  | { readonly kind: 'new' }
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'mismatch' };

/** Keys are opaque client strings up to this length (IETF draft: a UUID is typical). */
export const idempotencyKeyLengthMax = 255;

export interface IdempotencyStore {
  lookup(scope: string, key: string, requestHash: string): IdempotencyLookup;
  record(scope: string, key: string, requestHash: string, response: StoredResponse): void;
  close(): void;
}

export function requestHash(method: string, url: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${url}\n${JSON.stringify(body ?? null)}`).digest('hex');
}

export function openIdempotencyStore(path: string): IdempotencyStore {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL, body TEXT NOT NULL, content_type TEXT NOT NULL, recorded_at TEXT NOT NULL,
    PRIMARY KEY (scope, key))`);
  const select = db.prepare<[string, string], { request_hash: string; status_code: number; body: string; content_type: string }>(
    'SELECT request_hash, status_code, body, content_type FROM idempotency WHERE scope = ? AND key = ?',
  );
  const insert = db.prepare(
    'INSERT OR IGNORE INTO idempotency (scope, key, request_hash, status_code, body, content_type, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  return {
    lookup(scope, key, hash) {
      const row = select.get(scope, key);
      if (!row) return { kind: 'new' };
      if (row.request_hash !== hash) return { kind: 'mismatch' };
      return { kind: 'replay', response: { statusCode: row.status_code, body: row.body, contentType: row.content_type } };
    },
    record(scope, key, hash, response) {
      insert.run(scope, key, hash, response.statusCode, response.body, response.contentType, new Date().toISOString());
    },
    close() {
      db.close();
    },
  };
}
