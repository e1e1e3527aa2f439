/**
 * The embedded default EventStore: one SQLite file (better-sqlite3), WAL journal,
 * synchronous=FULL so that an append resolves only once its commit is on disk.
 *
 * better-sqlite3 is synchronous: each method does its database work at call time and returns
 * a settled promise. Appends run in one BEGIN IMMEDIATE transaction, which takes the file's
 * write lock before reading anything, so the expected-version check, the idempotency check,
 * the next global position and the previous hash are all read under the lock that covers the
 * write: concurrent writers (in this process or others) cannot interleave.
 */
import Database from 'better-sqlite3';
import { chainGenesisHash } from './hash.ts';
import type {
  AppendResult,
  EventStore,
  ExpectedVersion,
  NewEvent,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeOptions,
  Subscription,
} from './port.ts';
import {
  assertEventId,
  assertStreamId,
  batchSizeMaxDefault,
  buildRecordedEvents,
  decideAppend,
  optionCount,
  type PreparedEvent,
  parseDataJson,
  pollIntervalMsDefault,
  prepareAppend,
  prepareReadAll,
  prepareReadStream,
  recordedAtFrom,
  StoreClosedError,
  type StreamHead,
} from './rules.ts';
import { SubscriptionHub } from './subscription.ts';

export interface SqliteEventStoreOptions {
  /** Database file, created if missing; ':memory:' for a private throw-away database. */
  readonly path: string;
  /** Cap on readAll's limit and on a subscription batch. Default 1000. */
  readonly batchSizeMax?: number;
  /** How often a caught-up subscription polls for appends by other processes. Default 200 ms. */
  readonly pollIntervalMs?: number;
  /** How long a statement waits for another connection's lock before failing. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
  /** The clock stamped into recordedAt; injectable for tests. Default: the system clock. */
  readonly now?: () => Date;
}

/** Version of the table layout, kept in PRAGMA user_version so that a newer file is refused. */
const schemaVersionCurrent = 1;
const busyTimeoutMsDefault = 5000;

const schemaSql = `
CREATE TABLE IF NOT EXISTS events (
  global_position INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id        TEXT    NOT NULL UNIQUE,
  stream_id       TEXT    NOT NULL,
  stream_version  INTEGER NOT NULL CHECK (stream_version >= 1),
  type            TEXT    NOT NULL,
  data            TEXT    NOT NULL CHECK (json_valid(data)),
  actor           TEXT    NOT NULL,
  causation_id    TEXT,
  correlation_id  TEXT    NOT NULL,
  schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
  recorded_at     TEXT    NOT NULL,
  hash            TEXT    NOT NULL,
  UNIQUE (stream_id, stream_version)
) STRICT;
`;

const eventColumns =
  'global_position, event_id, stream_id, stream_version, type, data, actor, causation_id, correlation_id, schema_version, recorded_at, hash';

function field<T>(row: Record<string, unknown>, column: string, check: (value: unknown) => value is T): T {
  const value = row[column];
  if (!check(value)) throw new Error(`events row has an invalid ${column}: ${String(value)}`);
  return value;
}
const isString = (value: unknown): value is string => typeof value === 'string';
const isPositiveInteger = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
const isStringOrNull = (value: unknown): value is string | null => value === null || typeof value === 'string';

/** Converts a row read from the file, asserting its shape: the file is outside our control. */
function toRecordedEvent(row: unknown): RecordedEvent {
  if (typeof row !== 'object' || row === null) throw new Error('events row is not an object');
  const record = row as Record<string, unknown>;
  return {
    eventId: field(record, 'event_id', isString),
    type: field(record, 'type', isString),
    streamId: field(record, 'stream_id', isString),
    streamVersion: field(record, 'stream_version', isPositiveInteger),
    globalPosition: field(record, 'global_position', isPositiveInteger),
    recordedAt: field(record, 'recorded_at', isString),
    actor: field(record, 'actor', isString),
    causationId: field(record, 'causation_id', isStringOrNull),
    correlationId: field(record, 'correlation_id', isString),
    schemaVersion: field(record, 'schema_version', isPositiveInteger),
    data: parseDataJson(field(record, 'data', isString)),
    hash: field(record, 'hash', isString),
  };
}

function openDatabase(path: string, busyTimeoutMs: number): Database.Database {
  const db = new Database(path, { timeout: busyTimeoutMs });
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // WAL: readers (subscriptions, other processes) never block the writer and vice versa.
    const journalMode: unknown = db.pragma('journal_mode = WAL', { simple: true });
    if (path !== ':memory:' && journalMode !== 'wal') {
      throw new Error(`could not switch ${path} to WAL journal mode (got ${String(journalMode)})`);
    }
    // FULL: the WAL is fsynced at every commit, so an acknowledged append survives power loss.
    db.pragma('synchronous = FULL');
    db.transaction(() => {
      const version: unknown = db.pragma('user_version', { simple: true });
      if (typeof version !== 'number' || version > schemaVersionCurrent) {
        throw new Error(
          `${path} has event store schema version ${String(version)}; this code knows up to ${schemaVersionCurrent}`,
        );
      }
      db.exec(schemaSql);
      if (version < schemaVersionCurrent) db.pragma(`user_version = ${schemaVersionCurrent}`);
    }).immediate();
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

export function openSqliteEventStore(options: SqliteEventStoreOptions): EventStore {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (typeof options.path !== 'string' || options.path === '') {
    throw new TypeError('option path must be a non-empty file path or ":memory:"');
  }
  const batchSizeMax = optionCount(options.batchSizeMax, 'batchSizeMax', batchSizeMaxDefault, 1);
  const pollIntervalMs = optionCount(options.pollIntervalMs, 'pollIntervalMs', pollIntervalMsDefault, 1);
  const busyTimeoutMs = optionCount(options.busyTimeoutMs, 'busyTimeoutMs', busyTimeoutMsDefault, 0);
  const now = options.now ?? (() => new Date());
  if (typeof now !== 'function') throw new TypeError('option now must be a function returning a Date');

  const db = openDatabase(options.path, busyTimeoutMs);
  const statements = {
    byId: db.prepare(`SELECT ${eventColumns} FROM events WHERE event_id = ?`),
    streamHead: db.prepare(
      'SELECT stream_version, global_position FROM events WHERE stream_id = ? ORDER BY stream_version DESC LIMIT 1',
    ),
    storeHead: db.prepare('SELECT global_position, hash FROM events ORDER BY global_position DESC LIMIT 1'),
    stream: db.prepare(
      `SELECT ${eventColumns} FROM events WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`,
    ),
    all: db.prepare(`SELECT ${eventColumns} FROM events WHERE global_position > ? ORDER BY global_position LIMIT ?`),
    insert: db.prepare(
      `INSERT INTO events (${eventColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
  };

  const readStreamHead = (streamId: string): StreamHead => {
    const row = statements.streamHead.get(streamId) as Record<string, unknown> | undefined;
    if (row === undefined) return { version: 0, globalPosition: 0 };
    return {
      version: field(row, 'stream_version', isPositiveInteger),
      globalPosition: field(row, 'global_position', isPositiveInteger),
    };
  };

  const readStoreHead = (): { globalPosition: number; hash: string } => {
    const row = statements.storeHead.get() as Record<string, unknown> | undefined;
    if (row === undefined) return { globalPosition: 0, hash: chainGenesisHash };
    return { globalPosition: field(row, 'global_position', isPositiveInteger), hash: field(row, 'hash', isString) };
  };

  const readAllNow = (after: number, limit: number): RecordedEvent[] =>
    statements.all.all(after, limit).map(toRecordedEvent);

  const appendTransaction = db.transaction(
    (streamId: string, events: readonly PreparedEvent[], expected: ExpectedVersion): AppendResult => {
      const stored = new Map<string, RecordedEvent>();
      for (const event of events) {
        const row: unknown = statements.byId.get(event.eventId);
        if (row !== undefined) stored.set(event.eventId, toRecordedEvent(row));
      }
      const head = readStreamHead(streamId);
      const decision = decideAppend({ streamId, events, expected, stored, head });
      if (decision.kind === 'done') return decision.result;
      const storeHead = readStoreHead();
      const recorded = buildRecordedEvents({
        streamId,
        events,
        streamVersionFirst: head.version + 1,
        // Positions are given explicitly (the hash covers them, so they must be known before
        // the insert). Under the write lock, head + 1 is exactly what AUTOINCREMENT would
        // pick, since rows are never deleted; a gap or reuse would violate the PRIMARY KEY or
        // be caught by verifyChain.
        globalPositionFirst: storeHead.globalPosition + 1,
        prevHash: storeHead.hash,
        recordedAt: recordedAtFrom(now),
      });
      for (const [index, event] of recorded.entries()) {
        // Positional parameters, in eventColumns order: measurably cheaper than named ones.
        statements.insert.run(
          event.globalPosition,
          event.eventId,
          event.streamId,
          event.streamVersion,
          event.type,
          events[index]!.dataJson,
          event.actor,
          event.causationId,
          event.correlationId,
          event.schemaVersion,
          event.recordedAt,
          event.hash,
        );
      }
      const last = recorded[recorded.length - 1]!;
      return { streamVersion: last.streamVersion, globalPosition: last.globalPosition, written: true, events: recorded };
    },
  );

  const hub = new SubscriptionHub({ readAll: async (after, limit) => readAllNow(after, limit), pollIntervalMs, batchSizeMax });
  let closed = false;
  const assertOpen = (operation: string): void => {
    if (closed) throw new StoreClosedError(operation);
  };

  return {
    async append(streamId: string, events: readonly NewEvent[], expected: ExpectedVersion): Promise<AppendResult> {
      assertOpen('append');
      const input = prepareAppend(streamId, events, expected);
      const result = appendTransaction.immediate(input.streamId, input.events, input.expected);
      if (result.written) hub.notifier.notify();
      return result;
    },

    async readStream(streamId: string, options?: ReadStreamOptions): Promise<readonly RecordedEvent[]> {
      assertOpen('readStream');
      const bounds = prepareReadStream(streamId, options);
      // SQLite reads LIMIT -1 as "no limit".
      return statements.stream.all(bounds.streamId, bounds.fromVersion, bounds.limit ?? -1).map(toRecordedEvent);
    },

    async streamVersion(streamId: string): Promise<number> {
      assertOpen('streamVersion');
      assertStreamId(streamId);
      return readStreamHead(streamId).version;
    },

    async readAll(readOptions: ReadAllOptions): Promise<readonly RecordedEvent[]> {
      assertOpen('readAll');
      const bounds = prepareReadAll(readOptions, batchSizeMax);
      return readAllNow(bounds.after, bounds.limit);
    },

    async headPosition(): Promise<number> {
      assertOpen('headPosition');
      return readStoreHead().globalPosition;
    },

    async getEvent(eventId: string): Promise<RecordedEvent | null> {
      assertOpen('getEvent');
      assertEventId(eventId);
      const row: unknown = statements.byId.get(eventId);
      return row === undefined ? null : toRecordedEvent(row);
    },

    subscribeAll(subscribeOptions: SubscribeOptions): Subscription {
      assertOpen('subscribeAll');
      return hub.subscribe(subscribeOptions);
    },

    // A subscription handler must not await close(): close() waits for that very handler.
    async close(): Promise<void> {
      // Idempotent: shutdown paths often close twice.
      if (closed) return;
      closed = true;
      // End subscriptions first (quietly, waiting for running handlers) so that none reads a
      // closed database.
      await hub.closeAll();
      db.close();
    },
  };
}
