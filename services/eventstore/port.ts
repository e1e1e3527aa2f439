/**
 * The EventStore port: the only source of truth in vcp.
 *
 * Every adapter (SQLite embedded default, PostgreSQL, KurrentDB) implements this
 * interface and passes the conformance suite in test/eventstore/conformance.ts.
 */

/** A JSON value as stored in an event's payload. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** What the writer wants to be true of the stream before the append. */
export type ExpectedVersion =
  /** No check at all. */
  | 'any'
  /** The stream must not exist yet (no event in it). */
  | 'no-stream'
  /** The stream must have at least one event. */
  | 'stream-exists'
  /** The stream's current version (number of events in it) must be exactly this. 0 = empty. */
  | number;

/** Metadata a writer attaches to each event; the store adds position, time and hash. */
export interface EventMetadata {
  /** Who caused it: `user:<name>`, `daemon:<hostId>`, `system:<component>`. */
  readonly actor: string;
  /** eventId of the event (or command id) that caused this one; null for a first cause. */
  readonly causationId: string | null;
  /** Id shared by everything one request or workflow caused. */
  readonly correlationId: string;
  /** Version of the payload schema of this event type (starts at 1). */
  readonly schemaVersion: number;
}

export interface NewEvent {
  /** UUID; the idempotency key of the append. */
  readonly eventId: string;
  readonly type: string;
  readonly data: { readonly [key: string]: Json };
  readonly metadata: EventMetadata;
}

/** The envelope of a stored event (see ../shared/DESIGN.md, "Events"). */
export interface RecordedEvent extends EventMetadata {
  readonly eventId: string;
  readonly type: string;
  readonly streamId: string;
  /** 1 for the first event of a stream, then +1 per event. */
  readonly streamVersion: number;
  /** 1 for the first event of the store, strictly increasing, no gaps once committed. */
  readonly globalPosition: number;
  /** ISO-8601 UTC time at which the store committed the event. */
  readonly recordedAt: string;
  readonly data: { readonly [key: string]: Json };
  /** Hex SHA-256 chained over the previous event's hash and this event's canonical content. */
  readonly hash: string;
}

export interface AppendResult {
  /** Version of the stream after the append (the last event's streamVersion). */
  readonly streamVersion: number;
  /** Global position of the last event of the batch. */
  readonly globalPosition: number;
  /** False when every event id was already stored (an idempotent retry): nothing was written. */
  readonly written: boolean;
  readonly events: readonly RecordedEvent[];
}

/** The stream's version did not match the expectation. Retry by re-reading and re-deciding. */
export class WrongExpectedVersionError extends Error {
  override readonly name = 'WrongExpectedVersionError';
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedVersion,
    readonly actual: number,
  ) {
    super(`stream ${streamId}: expected version ${String(expected)}, actual ${actual}`);
  }
}

/** An event id was reused for different content, or in another stream, or a batch is a partial repeat. */
export class EventIdConflictError extends Error {
  override readonly name = 'EventIdConflictError';
  constructor(
    readonly eventId: string,
    readonly reason: string,
  ) {
    super(`event ${eventId}: ${reason}`);
  }
}

export interface ReadAllOptions {
  /** Exclusive lower bound: events with globalPosition > after. 0 = from the start. */
  readonly after: number;
  /** At most this many events (adapters cap it at their own batchSizeMax). */
  readonly limit: number;
}

export interface ReadStreamOptions {
  /** Inclusive lower bound on streamVersion; default 1. */
  readonly fromVersion?: number;
  /** At most this many events; default: all. */
  readonly limit?: number;
}

export interface SubscribeOptions {
  /** Exclusive lower bound, as in readAll. */
  readonly after: number;
  /**
   * Called with each batch in global order; the next batch is read only after the returned
   * promise resolves (back-pressure). A thrown error ends the subscription with that error.
   */
  readonly onEvents: (events: readonly RecordedEvent[]) => Promise<void> | void;
  /** Called once if the subscription ends with an error (store closed, handler threw). */
  readonly onError?: (error: unknown) => void;
  /** Largest batch handed to onEvents. */
  readonly batchSizeMax?: number;
}

export interface Subscription {
  /** Global position of the last event handed to onEvents (0 if none yet). */
  readonly position: () => number;
  /** Stops the subscription; resolves once no handler call is running. */
  readonly close: () => Promise<void>;
}

export interface EventStore {
  /**
   * Appends events to one stream atomically, checking the expected version.
   * Idempotent by event id: a retry of a batch whose ids are all stored already, in the same
   * stream, in the same order, succeeds with written=false and changes nothing, whatever the
   * expected version says. Resolves only once the events are durable.
   */
  append(streamId: string, events: readonly NewEvent[], expected: ExpectedVersion): Promise<AppendResult>;
  /** The events of one stream in stream order ([] if it does not exist). */
  readStream(streamId: string, options?: ReadStreamOptions): Promise<readonly RecordedEvent[]>;
  /** Current version of a stream (0 if it does not exist). */
  streamVersion(streamId: string): Promise<number>;
  /** Events of all streams in global order. */
  readAll(options: ReadAllOptions): Promise<readonly RecordedEvent[]>;
  /** Global position of the newest event (0 if the store is empty). */
  headPosition(): Promise<number>;
  /** The stored event with this id, or null. */
  getEvent(eventId: string): Promise<RecordedEvent | null>;
  /** Catch-up then live subscription to all events, in global order, no gap, no duplicate. */
  subscribeAll(options: SubscribeOptions): Subscription;
  close(): Promise<void>;
}
