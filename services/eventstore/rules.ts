/**
 * The semantics every EventStore adapter shares: input validation at the boundary, the
 * idempotency and expected-version decision, and the building of hash-chained envelopes.
 *
 * Adapters only fetch what the decision needs (inside their own write transaction, so nothing
 * can change between the decision and the write) and persist what it returns. Keeping the rules
 * here, as plain functions over plain data, is what makes the adapters behave identically.
 */
import { canonicalJson, eventHashOfDataJson } from './hash.ts';
import {
  type AppendResult,
  EventIdConflictError,
  type ExpectedVersion,
  type Json,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  WrongExpectedVersionError,
} from './port.ts';

/** Longest stream id; ids are keys in indexes and in Kafka, so they stay short. */
export const streamIdLengthMax = 200;
/** Longest eventId, type, actor, correlationId or causationId. */
export const idLengthMax = 200;
/**
 * Most events in one append. An append is one transaction holding the store's write lock, and
 * idempotency checks look every id up, so a batch must stay small enough not to stall writers.
 */
export const appendEventsCountMax = 1000;
/** Largest payload of one event, as canonical JSON in UTF-8. Big blobs belong elsewhere. */
export const eventDataBytesMax = 1024 * 1024;
/** Default cap on events returned by one readAll and handed to one onEvents call. */
export const batchSizeMaxDefault = 1000;
/** Default interval at which a live SQLite subscription looks for appends by other processes. */
export const pollIntervalMsDefault = 200;

/** Raised by every method of a closed store. */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';
  constructor(readonly operation: string) {
    super(`event store is closed: cannot ${operation}`);
  }
}

/** A NewEvent that passed validation, copied so later mutation by the caller cannot reach it. */
export interface PreparedEvent {
  readonly eventId: string;
  readonly type: string;
  readonly actor: string;
  readonly causationId: string | null;
  readonly correlationId: string;
  readonly schemaVersion: number;
  /** canonicalJson(data): what is stored, hashed and compared on an idempotent retry. */
  readonly dataJson: string;
}

// Identifiers end up in SQL text columns (UTF-8), logs and URLs: control characters and lone
// surrogates (which UTF-8 cannot carry and would be replaced by U+FFFD, changing the id) are
// refused rather than silently altered.
const controlOrLoneSurrogate = /[\p{Cc}\p{Cs}]/u;

function assertIdText(value: unknown, what: string, lengthMax: number): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`${what} must be a non-empty string`);
  }
  if (value.length > lengthMax) {
    throw new TypeError(`${what} is ${value.length} characters long; the maximum is ${lengthMax}`);
  }
  if (controlOrLoneSurrogate.test(value)) {
    throw new TypeError(`${what} contains a control character or a lone UTF-16 surrogate`);
  }
}

export function assertStreamId(streamId: unknown): asserts streamId is string {
  assertIdText(streamId, 'streamId', streamIdLengthMax);
}

export function assertEventId(eventId: unknown): asserts eventId is string {
  assertIdText(eventId, 'eventId', idLengthMax);
}

function isRecord(value: unknown): value is { readonly [key: string]: unknown } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function assertExpectedVersion(expected: unknown): asserts expected is ExpectedVersion {
  if (expected === 'any' || expected === 'no-stream' || expected === 'stream-exists') return;
  if (typeof expected === 'number' && Number.isSafeInteger(expected) && expected >= 0) return;
  throw new TypeError(
    `expected version must be 'any', 'no-stream', 'stream-exists' or a non-negative integer (got ${String(expected)})`,
  );
}

function prepareEvent(event: unknown, index: number): PreparedEvent {
  const where = `events[${index}]`;
  if (!isRecord(event)) throw new TypeError(`${where} must be an object`);
  assertIdText(event.eventId, `${where}.eventId`, idLengthMax);
  assertIdText(event.type, `${where}.type`, idLengthMax);
  const data = event.data;
  if (!isRecord(data)) throw new TypeError(`${where}.data must be a JSON object`);
  const metadata = event.metadata;
  if (!isRecord(metadata)) throw new TypeError(`${where}.metadata must be an object`);
  assertIdText(metadata.actor, `${where}.metadata.actor`, idLengthMax);
  assertIdText(metadata.correlationId, `${where}.metadata.correlationId`, idLengthMax);
  const causationId = metadata.causationId;
  if (causationId !== null) assertIdText(causationId, `${where}.metadata.causationId (or null)`, idLengthMax);
  const schemaVersion = metadata.schemaVersion;
  if (typeof schemaVersion !== 'number' || !Number.isSafeInteger(schemaVersion) || schemaVersion < 1) {
    throw new TypeError(`${where}.metadata.schemaVersion must be an integer >= 1 (got ${String(schemaVersion)})`);
  }
  let dataJson: string;
  try {
    // The runtime walk in canonicalJson is the validator that makes this cast sound.
    dataJson = canonicalJson(data as Json);
  } catch (error) {
    throw new TypeError(`${where}.data is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const dataBytes = Buffer.byteLength(dataJson, 'utf8');
  if (dataBytes > eventDataBytesMax) {
    throw new TypeError(`${where}.data is ${dataBytes} bytes as JSON; eventDataBytesMax is ${eventDataBytesMax}`);
  }
  return {
    eventId: event.eventId,
    type: event.type,
    actor: metadata.actor,
    causationId,
    correlationId: metadata.correlationId,
    schemaVersion,
    dataJson,
  };
}

/**
 * Validates the arguments of an append as they cross into the store (callers may be untyped
 * JavaScript or deserialised HTTP input). Throws a TypeError for malformed input and an
 * EventIdConflictError for an id repeated inside the batch; nothing has been read or written yet.
 */
export function prepareAppend(
  streamId: unknown,
  events: unknown,
  expected: unknown,
): { readonly streamId: string; readonly events: readonly PreparedEvent[]; readonly expected: ExpectedVersion } {
  assertStreamId(streamId);
  assertExpectedVersion(expected);
  if (!Array.isArray(events)) throw new TypeError('events must be an array');
  if (events.length > appendEventsCountMax) {
    throw new TypeError(`an append holds at most appendEventsCountMax=${appendEventsCountMax} events (got ${events.length})`);
  }
  const prepared = events.map((event: unknown, index) => prepareEvent(event, index));
  const seen = new Set<string>();
  for (const event of prepared) {
    if (seen.has(event.eventId)) throw new EventIdConflictError(event.eventId, 'appears more than once in the batch');
    seen.add(event.eventId);
  }
  return { streamId, events: prepared, expected };
}

/** What the store knows about the target stream, read inside the write transaction. */
export interface StreamHead {
  /** Number of events in the stream (0 if it does not exist). */
  readonly version: number;
  /** Global position of the stream's last event (0 if it does not exist). */
  readonly globalPosition: number;
}

export type AppendDecision =
  /** Nothing to write: an idempotent retry or an empty batch; answer with this result. */
  | { readonly kind: 'done'; readonly result: AppendResult }
  /** Write the batch at the versions following the stream head. */
  | { readonly kind: 'write' };

function sameContent(stored: RecordedEvent, event: PreparedEvent): boolean {
  return (
    stored.type === event.type &&
    stored.actor === event.actor &&
    stored.causationId === event.causationId &&
    stored.correlationId === event.correlationId &&
    stored.schemaVersion === event.schemaVersion &&
    canonicalJson(stored.data) === event.dataJson
  );
}

/**
 * The append decision, the heart of the store's contract (see EventStore.append in port.ts):
 *
 * 1. If the batch's first event id is stored already, the batch is a retry. It succeeds with
 *    written=false and the stored events, whatever the expected version says, only if every
 *    event of the batch is stored in this stream, at consecutive versions, in the same order,
 *    with the same content. Anything else is an EventIdConflictError: the id was reused.
 * 2. If a later id of the batch is stored but the first is not, the batch is a partial repeat
 *    (EventIdConflictError): writing it would store some events twice or out of order.
 * 3. Otherwise the expected version is checked (WrongExpectedVersionError), and a non-empty
 *    batch is written; an empty one answers with the stream's current version.
 *
 * `stored` maps each id of the batch that is stored already to its stored event.
 */
export function decideAppend(input: {
  readonly streamId: string;
  readonly events: readonly PreparedEvent[];
  readonly expected: ExpectedVersion;
  readonly stored: ReadonlyMap<string, RecordedEvent>;
  readonly head: StreamHead;
}): AppendDecision {
  const { streamId, events, expected, stored, head } = input;
  const first = events[0];
  const storedFirst = first === undefined ? undefined : stored.get(first.eventId);
  if (first !== undefined && storedFirst !== undefined) {
    if (storedFirst.streamId !== streamId) {
      throw new EventIdConflictError(
        first.eventId,
        `already stored in stream ${JSON.stringify(storedFirst.streamId)}, not in ${JSON.stringify(streamId)}`,
      );
    }
    const replayed: RecordedEvent[] = [];
    for (const [index, event] of events.entries()) {
      const storedEvent = stored.get(event.eventId);
      const versionExpected = storedFirst.streamVersion + index;
      if (storedEvent === undefined) {
        throw new EventIdConflictError(
          event.eventId,
          `partial repeat: the batch starts with stored event ${first.eventId} but this event is not stored`,
        );
      }
      if (storedEvent.streamId !== streamId || storedEvent.streamVersion !== versionExpected) {
        throw new EventIdConflictError(
          event.eventId,
          `retry does not match the stored order: stored in ${JSON.stringify(storedEvent.streamId)} at version ${storedEvent.streamVersion}, expected ${JSON.stringify(streamId)} at version ${versionExpected}`,
        );
      }
      if (!sameContent(storedEvent, event)) {
        throw new EventIdConflictError(event.eventId, 'already stored with a different type, data or metadata');
      }
      replayed.push(storedEvent);
    }
    const last = replayed[replayed.length - 1]!;
    return {
      kind: 'done',
      result: { streamVersion: last.streamVersion, globalPosition: last.globalPosition, written: false, events: replayed },
    };
  }
  for (const event of events) {
    if (stored.has(event.eventId)) {
      throw new EventIdConflictError(
        event.eventId,
        'partial repeat: already stored, but the first event of the batch is not; the batch must be retried whole',
      );
    }
  }
  const versionOk =
    expected === 'any' ||
    (expected === 'no-stream' && head.version === 0) ||
    (expected === 'stream-exists' && head.version > 0) ||
    expected === head.version;
  if (!versionOk) throw new WrongExpectedVersionError(streamId, expected, head.version);
  if (events.length === 0) {
    // No event, so no "last event of the batch": report the stream's head, which is what a
    // caller that appended nothing can rely on.
    return {
      kind: 'done',
      result: { streamVersion: head.version, globalPosition: head.globalPosition, written: false, events: [] },
    };
  }
  return { kind: 'write' };
}

/**
 * The envelopes of a batch about to be written, chained to the store's current last hash.
 * The caller must hold the write lock so that `prevHash` and `globalPositionFirst` are the
 * store's real head.
 */
export function buildRecordedEvents(input: {
  readonly streamId: string;
  readonly events: readonly PreparedEvent[];
  readonly streamVersionFirst: number;
  readonly globalPositionFirst: number;
  readonly prevHash: string;
  readonly recordedAt: string;
}): RecordedEvent[] {
  let prevHash = input.prevHash;
  return input.events.map((event, index) => {
    const unhashed = {
      eventId: event.eventId,
      type: event.type,
      streamId: input.streamId,
      streamVersion: input.streamVersionFirst + index,
      globalPosition: input.globalPositionFirst + index,
      recordedAt: input.recordedAt,
      actor: event.actor,
      causationId: event.causationId,
      correlationId: event.correlationId,
      schemaVersion: event.schemaVersion,
    };
    const hash = eventHashOfDataJson(prevHash, unhashed, event.dataJson);
    prevHash = hash;
    // A fresh copy of the payload, so the result shares nothing with the caller's input.
    return { ...unhashed, data: parseDataJson(event.dataJson), hash };
  });
}

/** Parses a stored payload, asserting it is a JSON object as every payload must be. */
export function parseDataJson(text: string): { readonly [key: string]: Json } {
  const value: unknown = JSON.parse(text);
  if (!isRecord(value)) throw new Error(`stored event data is not a JSON object: ${text.slice(0, 80)}`);
  // JSON.parse only ever yields JSON values, so an object from it is a JSON object.
  return value as { readonly [key: string]: Json };
}

/** The store's clock reading for an append, as ISO-8601 UTC; refuses a broken injected clock. */
export function recordedAtFrom(now: () => Date): string {
  const date = now();
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new TypeError('the store clock (now) returned an invalid Date');
  }
  return date.toISOString();
}

function assertCount(value: unknown, what: string, min: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`${what} must be an integer >= ${min} (got ${String(value)})`);
  }
}

/** Validated readAll bounds, with the limit capped at the adapter's batchSizeMax. */
export function prepareReadAll(options: ReadAllOptions, batchSizeMax: number): { after: number; limit: number } {
  if (!isRecord(options)) throw new TypeError('readAll options must be an object');
  assertCount(options.after, 'readAll after', 0);
  assertCount(options.limit, 'readAll limit', 0);
  return { after: options.after, limit: Math.min(options.limit, batchSizeMax) };
}

/** Validated readStream bounds; limit null means all events from fromVersion on. */
export function prepareReadStream(
  streamId: unknown,
  options: ReadStreamOptions | undefined,
): { streamId: string; fromVersion: number; limit: number | null } {
  assertStreamId(streamId);
  const fromVersion = options?.fromVersion ?? 1;
  const limit = options?.limit ?? null;
  assertCount(fromVersion, 'readStream fromVersion', 1);
  if (limit !== null) assertCount(limit, 'readStream limit', 0);
  return { streamId, fromVersion, limit };
}

/** Validates an adapter's numeric option, naming it in the error so start-up says what is wrong. */
export function optionCount(value: number | undefined, name: string, fallback: number, min: number): number {
  const result = value ?? fallback;
  if (!Number.isSafeInteger(result) || result < min) {
    throw new TypeError(`option ${name} must be an integer >= ${min} (got ${String(value)})`);
  }
  return result;
}
