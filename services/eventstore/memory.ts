/**
 * An in-memory EventStore with exactly the semantics of the durable adapters (same rules
 * module, same subscription loop), for unit tests and the deterministic simulation.
 * Stored events are deep-frozen so no caller can alter history through a returned reference.
 */
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
  prepareAppend,
  prepareReadAll,
  prepareReadStream,
  recordedAtFrom,
  StoreClosedError,
  type StreamHead,
} from './rules.ts';
import { SubscriptionHub } from './subscription.ts';

export interface MemoryEventStoreOptions {
  /** Cap on readAll's limit and on a subscription batch. Default 1000. */
  readonly batchSizeMax?: number;
  /**
   * Poll interval of caught-up subscriptions. Default none: every writer is in this process and
   * notifies them, and a simulation wants no timers it did not ask for.
   */
  readonly pollIntervalMs?: number;
  /** The clock stamped into recordedAt. Default: the system clock. */
  readonly now?: () => Date;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export function openMemoryEventStore(options: MemoryEventStoreOptions = {}): EventStore {
  const batchSizeMax = optionCount(options.batchSizeMax, 'batchSizeMax', batchSizeMaxDefault, 1);
  const pollIntervalMs =
    options.pollIntervalMs === undefined ? null : optionCount(options.pollIntervalMs, 'pollIntervalMs', 0, 1);
  const now = options.now ?? (() => new Date());
  if (typeof now !== 'function') throw new TypeError('option now must be a function returning a Date');

  /** All events; the event at globalPosition p is at index p - 1. */
  const log: RecordedEvent[] = [];
  const byId = new Map<string, RecordedEvent>();
  /** Each stream's events; the event at streamVersion v is at index v - 1. */
  const streams = new Map<string, RecordedEvent[]>();

  const streamHead = (streamId: string): StreamHead => {
    const stream = streams.get(streamId);
    const last = stream?.[stream.length - 1];
    return last === undefined ? { version: 0, globalPosition: 0 } : { version: last.streamVersion, globalPosition: last.globalPosition };
  };
  const readAllNow = (after: number, limit: number): RecordedEvent[] => log.slice(after, after + limit);

  const hub = new SubscriptionHub({ readAll: async (after, limit) => readAllNow(after, limit), pollIntervalMs, batchSizeMax });
  let closed = false;
  const assertOpen = (operation: string): void => {
    if (closed) throw new StoreClosedError(operation);
  };

  return {
    async append(streamId: string, events: readonly NewEvent[], expected: ExpectedVersion): Promise<AppendResult> {
      assertOpen('append');
      const input = prepareAppend(streamId, events, expected);
      const stored = new Map<string, RecordedEvent>();
      for (const event of input.events) {
        const found = byId.get(event.eventId);
        if (found !== undefined) stored.set(event.eventId, found);
      }
      const head = streamHead(input.streamId);
      const decision = decideAppend({ ...input, stored, head });
      if (decision.kind === 'done') return decision.result;
      const last = log[log.length - 1];
      const recorded = buildRecordedEvents({
        streamId: input.streamId,
        events: input.events,
        streamVersionFirst: head.version + 1,
        globalPositionFirst: log.length + 1,
        prevHash: last?.hash ?? chainGenesisHash,
        recordedAt: recordedAtFrom(now),
      }).map(deepFreeze);
      // All checks are done and nothing below can throw, so the batch lands whole or not at all.
      let stream = streams.get(input.streamId);
      if (stream === undefined) {
        stream = [];
        streams.set(input.streamId, stream);
      }
      for (const event of recorded) {
        log.push(event);
        byId.set(event.eventId, event);
        stream.push(event);
      }
      hub.notifier.notify();
      const lastRecorded = recorded[recorded.length - 1]!;
      return {
        streamVersion: lastRecorded.streamVersion,
        globalPosition: lastRecorded.globalPosition,
        written: true,
        events: recorded,
      };
    },

    async readStream(streamId: string, readOptions?: ReadStreamOptions): Promise<readonly RecordedEvent[]> {
      assertOpen('readStream');
      const bounds = prepareReadStream(streamId, readOptions);
      const stream = streams.get(bounds.streamId) ?? [];
      const start = bounds.fromVersion - 1;
      return stream.slice(start, bounds.limit === null ? undefined : start + bounds.limit);
    },

    async streamVersion(streamId: string): Promise<number> {
      assertOpen('streamVersion');
      assertStreamId(streamId);
      return streamHead(streamId).version;
    },

    async readAll(readOptions: ReadAllOptions): Promise<readonly RecordedEvent[]> {
      assertOpen('readAll');
      const bounds = prepareReadAll(readOptions, batchSizeMax);
      return readAllNow(bounds.after, bounds.limit);
    },

    async headPosition(): Promise<number> {
      assertOpen('headPosition');
      return log.length;
    },

    async getEvent(eventId: string): Promise<RecordedEvent | null> {
      assertOpen('getEvent');
      assertEventId(eventId);
      return byId.get(eventId) ?? null;
    },

    subscribeAll(subscribeOptions: SubscribeOptions): Subscription {
      assertOpen('subscribeAll');
      return hub.subscribe(subscribeOptions);
    },

    // A subscription handler must not await close(): close() waits for that very handler.
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await hub.closeAll();
    },
  };
}
