/**
 * Tamper evidence for the event log: every event carries a SHA-256 hash chained over the
 * previous event's hash (in global order) and its own canonical content, so an auditor holding
 * the log can detect any edited, inserted, removed or reordered event without trusting the store.
 *
 * The definitions here are the specification of the chain; every adapter and any offline
 * auditor must compute exactly the same bytes, so change them only with a migration plan.
 */
import { createHash } from 'node:crypto';
import type { Json, RecordedEvent } from './port.ts';

/** The "previous hash" of the first event of a store. */
export const chainGenesisHash = '0'.repeat(64);

/**
 * Nesting bound of a JSON value. It keeps canonicalisation from overflowing the stack and turns
 * a cyclic object graph into a clear error instead of an endless recursion.
 */
export const jsonDepthMax = 64;

/** An event as hashed: everything in the envelope except the hash itself. */
export type UnhashedEvent = Omit<RecordedEvent, 'hash'>;

/**
 * Canonical JSON text of a value: object keys sorted recursively (by UTF-16 code units, as
 * RFC 8785 does), no whitespace, strings and numbers as JSON.stringify writes them (which is
 * deterministic in ECMAScript). Two values that are equal as JSON give the same text, whatever
 * the key order they were built with.
 *
 * Throws a TypeError naming the path for anything that is not JSON (undefined, functions,
 * non-finite numbers, bigints, class instances such as Date, sparse arrays, too deep nesting),
 * because JSON.stringify would silently drop or rewrite those and the stored event would then
 * differ from what the writer meant.
 */
export function canonicalJson(value: Json): string {
  try {
    return writeCanonical(value, 0);
  } catch (error) {
    if (error instanceof NotJsonError) throw new TypeError(`$${error.path.reverse().join('')}: ${error.message}`);
    throw error;
  }
}

/**
 * Raised deep inside writeCanonical; each level on the way out adds its key to `path`, so the
 * hot path builds no path strings at all.
 */
class NotJsonError extends Error {
  readonly path: string[] = [];
}

function writeCanonical(value: unknown, depth: number): string {
  if (depth > jsonDepthMax) throw new NotJsonError(`nested deeper than jsonDepthMax=${jsonDepthMax} (or a cycle)`);
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new NotJsonError(`${String(value)} is not a JSON number`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        let text = '[';
        for (let index = 0; index < value.length; index += 1) {
          if (index > 0) text += ',';
          try {
            if (!(index in value)) throw new NotJsonError('a sparse array hole is not JSON');
            text += writeCanonical(value[index], depth + 1);
          } catch (error) {
            if (error instanceof NotJsonError) error.path.push(`[${index}]`);
            throw error;
          }
        }
        return text + ']';
      }
      const prototype: unknown = Object.getPrototypeOf(value);
      if (prototype !== Object.prototype && prototype !== null) {
        throw new NotJsonError(`only plain objects are JSON (got ${describeObject(value)})`);
      }
      const record = value as Record<string, unknown>;
      let text = '{';
      let first = true;
      for (const key of Object.keys(record).sort()) {
        if (!first) text += ',';
        first = false;
        try {
          text += JSON.stringify(key) + ':' + writeCanonical(record[key], depth + 1);
        } catch (error) {
          if (error instanceof NotJsonError) error.path.push(`.${key}`);
          throw error;
        }
      }
      return text + '}';
    }
    default:
      throw new NotJsonError(`a ${typeof value} is not JSON`);
  }
}

function describeObject(value: object): string {
  const name: unknown = value.constructor?.name;
  return typeof name === 'string' && name !== '' ? name : 'an object with a custom prototype';
}

/**
 * Hash of one event: hex SHA-256 of `prevHash + '\n' + canonicalJson(envelope)`, where the
 * envelope is { eventId, type, streamId, streamVersion, globalPosition, recordedAt, actor,
 * causationId, correlationId, schemaVersion, data } and nothing else (extra properties on the
 * argument are ignored, so a RecordedEvent can be passed as is: its own hash is not hashed).
 */
export function eventHash(prevHash: string, event: UnhashedEvent): string {
  return eventHashOfDataJson(prevHash, event, canonicalJson(event.data));
}

/**
 * eventHash for a writer that already holds canonicalJson(event.data), so appends do not
 * canonicalise every payload twice. The envelope's keys are written in sorted order by hand,
 * which makes the text identical to canonicalJson of the whole envelope (the hash tests pin it).
 */
export function eventHashOfDataJson(prevHash: string, event: Omit<UnhashedEvent, 'data'>, dataJson: string): string {
  const text =
    `{"actor":${JSON.stringify(event.actor)}` +
    `,"causationId":${event.causationId === null ? 'null' : JSON.stringify(event.causationId)}` +
    `,"correlationId":${JSON.stringify(event.correlationId)}` +
    `,"data":${dataJson}` +
    `,"eventId":${JSON.stringify(event.eventId)}` +
    `,"globalPosition":${JSON.stringify(event.globalPosition)}` +
    `,"recordedAt":${JSON.stringify(event.recordedAt)}` +
    `,"schemaVersion":${JSON.stringify(event.schemaVersion)}` +
    `,"streamId":${JSON.stringify(event.streamId)}` +
    `,"streamVersion":${JSON.stringify(event.streamVersion)}` +
    `,"type":${JSON.stringify(event.type)}}`;
  return createHash('sha256')
    .update(prevHash + '\n' + text)
    .digest('hex');
}

/** Where a verified slice of the chain starts: the event just before it. */
export interface ChainAnchor {
  readonly globalPosition: number;
  readonly hash: string;
}

/**
 * Checks a contiguous run of events in global order against the chain. Returns the
 * globalPosition of the first event that breaks it (wrong hash, or not at the position right
 * after its predecessor), or null when the whole run verifies.
 *
 * By default the run must start at the first event of the store; to verify a later slice (an
 * auditor paging through a large log), pass the position and hash of the event before it.
 */
export function verifyChain(
  events: readonly RecordedEvent[],
  after: ChainAnchor = { globalPosition: 0, hash: chainGenesisHash },
): number | null {
  let prevHash = after.hash;
  let positionExpected = after.globalPosition + 1;
  for (const event of events) {
    if (event.globalPosition !== positionExpected) return event.globalPosition;
    if (eventHash(prevHash, event) !== event.hash) return event.globalPosition;
    prevHash = event.hash;
    positionExpected += 1;
  }
  return null;
}
