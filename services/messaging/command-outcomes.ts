/**
 * The outcomes of commands received over Kafka, by command id: a command id seen before is
 * answered with its first result (byte for byte) instead of being carried out again. SQLite,
 * durable (WAL, synchronous FULL), as the HTTP API's Idempotency-Key records
 * (control-plane/idempotency.ts), in a file the consumer owns.
 *
 * Rows older than outcomeRetentionMs are pruned: Kafka itself keeps commands 7 days, so a
 * redelivery older than 30 days cannot happen; a client re-sending an id that old gets it carried
 * out again, which the deterministic event ids still make harmless for an accepted command.
 */
import Database from 'better-sqlite3';

export type StoredOutcome = {
  /** sha256 of the command's type and fields: the same id with another command is refused. */
  readonly requestHash: string;
  /** The CommandResult as published (single-object encoded). */
  readonly result: Buffer;
};

export interface CommandOutcomeStore {
  get(commandId: string): StoredOutcome | null;
  /** Keeps the first outcome of an id (a second put of the same id changes nothing). */
  put(commandId: string, outcome: StoredOutcome): void;
  close(): void;
}

export const outcomeRetentionMs = 30 * 24 * 60 * 60 * 1000;
/** Prune once every this many puts (and at open). */
const pruneEveryPuts = 1000;

export function openSqliteCommandOutcomeStore(path: string, nowMs: () => number = Date.now): CommandOutcomeStore {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS command_outcomes (
    command_id TEXT PRIMARY KEY, request_hash TEXT NOT NULL, result BLOB NOT NULL, recorded_at_ms INTEGER NOT NULL)`);
  const select = db.prepare<[string], { request_hash: string; result: Buffer }>('SELECT request_hash, result FROM command_outcomes WHERE command_id = ?');
  const insert = db.prepare('INSERT OR IGNORE INTO command_outcomes (command_id, request_hash, result, recorded_at_ms) VALUES (?, ?, ?, ?)');
  const prune = db.prepare('DELETE FROM command_outcomes WHERE recorded_at_ms < ?');
  prune.run(nowMs() - outcomeRetentionMs);
  let puts = 0;
  return {
    get(commandId) {
      const row = select.get(commandId);
      return row ? { requestHash: row.request_hash, result: row.result } : null;
    },
    put(commandId, outcome) {
      insert.run(commandId, outcome.requestHash, outcome.result, nowMs());
      puts += 1;
      if (puts % pruneEveryPuts === 0) prune.run(nowMs() - outcomeRetentionMs);
    },
    close() {
      db.close();
    },
  };
}

/** For tests: the same contract, in memory. */
export function createMemoryCommandOutcomeStore(): CommandOutcomeStore {
  const rows = new Map<string, StoredOutcome>();
  return {
    get: (commandId) => rows.get(commandId) ?? null,
    put(commandId, outcome) {
      if (!rows.has(commandId)) rows.set(commandId, outcome);
    },
    close() {},
  };
}
