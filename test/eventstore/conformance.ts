/**
 * The EventStore conformance suite: every adapter (memory, SQLite, later PostgreSQL and
 * KurrentDB) runs exactly these tests, so "implements the port" means "behaves the same".
 *
 * Each test gets a fresh, empty store from `open` and hands it back to `cleanup`, which must
 * tolerate a store the test already closed.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  appendEventsCountMax,
  EventIdConflictError,
  eventDataBytesMax,
  type EventStore,
  type ExpectedVersion,
  type Json,
  type NewEvent,
  type RecordedEvent,
  StoreClosedError,
  verifyChain,
  WrongExpectedVersionError,
} from '../../services/eventstore/index.ts';

export interface OpenedStore {
  readonly store: EventStore;
  readonly cleanup: () => Promise<void>;
}

const metadata = { actor: 'user:conformance', causationId: null, correlationId: 'corr-1', schemaVersion: 1 } as const;

function newEvent(type = 'Tested', data: { readonly [key: string]: Json } = {}, eventId = randomUUID()): NewEvent {
  return { eventId, type, data, metadata };
}

function events(count: number, type = 'Tested'): NewEvent[] {
  return Array.from({ length: count }, (_, index) => newEvent(type, { index }));
}

function positions(recorded: readonly RecordedEvent[]): number[] {
  return recorded.map((event) => event.globalPosition);
}

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, index) => first + index);
}

/** Polls until `condition` holds; fails the test after waitMsMax instead of hanging. */
async function waitFor(condition: () => boolean, what: string, waitMsMax = 5000): Promise<void> {
  const deadline = Date.now() + waitMsMax;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${waitMsMax} ms waiting for ${what}`);
    await sleep(2);
  }
}

async function readEverything(store: EventStore): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for (;;) {
    const page = await store.readAll({ after: all.length === 0 ? 0 : all[all.length - 1]!.globalPosition, limit: 100 });
    if (page.length === 0) return all;
    all.push(...page);
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** A small deterministic PRNG (mulberry32), so racing tests interleave the same way each run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function eventStoreConformance(name: string, open: () => Promise<OpenedStore>): void {
  describe(`EventStore conformance: ${name}`, () => {
    let opened: OpenedStore;
    let store: EventStore;

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });

    afterEach(async () => {
      await opened.cleanup();
    });

    describe('append and read', () => {
      it('stores events with the full envelope and reads them back by stream, globally and by id', async () => {
        const timeBefore = Date.now();
        const data = { name: 'vm-1', nested: { list: [1, 2.5, 'three', null, true], empty: {} }, unicode: 'héllo 😀' };
        const first = newEvent('PartitionCreated', data);
        const result = await store.append('partition-1', [first, newEvent('PartitionStarted')], 'no-stream');
        const timeAfter = Date.now();

        expect(result).toMatchObject({ streamVersion: 2, globalPosition: 2, written: true });
        expect(result.events).toHaveLength(2);
        const recorded = result.events[0]!;
        expect(recorded).toMatchObject({
          eventId: first.eventId,
          type: 'PartitionCreated',
          streamId: 'partition-1',
          streamVersion: 1,
          globalPosition: 1,
          actor: 'user:conformance',
          causationId: null,
          correlationId: 'corr-1',
          schemaVersion: 1,
        });
        expect(recorded.data).toEqual(data);
        expect(recorded.hash).toMatch(/^[0-9a-f]{64}$/);
        expect(recorded.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(Date.parse(recorded.recordedAt)).toBeGreaterThanOrEqual(timeBefore);
        expect(Date.parse(recorded.recordedAt)).toBeLessThanOrEqual(timeAfter);

        expect(await store.readStream('partition-1')).toEqual(result.events);
        expect(await store.readAll({ after: 0, limit: 10 })).toEqual(result.events);
        expect(await store.getEvent(first.eventId)).toEqual(recorded);
        expect(await store.streamVersion('partition-1')).toBe(2);
        expect(await store.headPosition()).toBe(2);
      });

      it('answers for missing streams and ids without inventing anything', async () => {
        expect(await store.readStream('nothing-here')).toEqual([]);
        expect(await store.streamVersion('nothing-here')).toBe(0);
        expect(await store.headPosition()).toBe(0);
        expect(await store.readAll({ after: 0, limit: 10 })).toEqual([]);
        expect(await store.getEvent(randomUUID())).toBeNull();
      });

      it('numbers stream versions per stream and global positions across streams, without gaps', async () => {
        await store.append('a', events(2), 'any');
        await store.append('b', events(3), 'any');
        await store.append('a', events(1), 'any');
        const all = await store.readAll({ after: 0, limit: 100 });
        expect(positions(all)).toEqual(range(1, 6));
        expect(all.map((event) => `${event.streamId}@${event.streamVersion}`)).toEqual([
          'a@1',
          'a@2',
          'b@1',
          'b@2',
          'b@3',
          'a@3',
        ]);
        expect((await store.readStream('a')).map((event) => event.streamVersion)).toEqual([1, 2, 3]);
        expect(await store.streamVersion('b')).toBe(3);
        expect(await store.headPosition()).toBe(6);
      });

      it('reads a stream from a version with a limit', async () => {
        await store.append('s', events(5), 'no-stream');
        const versions = async (options: { fromVersion?: number; limit?: number }): Promise<number[]> =>
          (await store.readStream('s', options)).map((event) => event.streamVersion);
        expect(await versions({ fromVersion: 2 })).toEqual([2, 3, 4, 5]);
        expect(await versions({ fromVersion: 2, limit: 2 })).toEqual([2, 3]);
        expect(await versions({ limit: 1 })).toEqual([1]);
        expect(await versions({ fromVersion: 6 })).toEqual([]);
        expect(await versions({ limit: 0 })).toEqual([]);
      });

      it('pages through readAll with an exclusive lower bound', async () => {
        for (let index = 0; index < 5; index += 1) await store.append(`s-${index % 3}`, events(5), 'any');
        const pages: number[][] = [];
        let after = 0;
        for (;;) {
          const page = await store.readAll({ after, limit: 10 });
          if (page.length === 0) break;
          pages.push(positions(page));
          after = page[page.length - 1]!.globalPosition;
        }
        expect(pages).toEqual([range(1, 10), range(11, 20), range(21, 25)]);
        expect(positions(await store.readAll({ after: 24, limit: 10 }))).toEqual([25]);
        expect(await store.readAll({ after: 3, limit: 0 })).toEqual([]);
        expect(await store.readAll({ after: 1000, limit: 10 })).toEqual([]);
      });

      it('keeps what was stored when the caller later mutates its input', async () => {
        const data = { list: [1, 2], inner: { value: 'before' } };
        const event = newEvent('Mutable', data);
        await store.append('s', [event], 'any');
        data.list.push(3);
        data.inner.value = 'after';
        expect((await store.getEvent(event.eventId))?.data).toEqual({ list: [1, 2], inner: { value: 'before' } });
      });

      it('accepts an empty batch, checking the expected version and writing nothing', async () => {
        expect(await store.append('s', [], 'any')).toEqual({
          streamVersion: 0,
          globalPosition: 0,
          written: false,
          events: [],
        });
        await expect(store.append('s', [], 'stream-exists')).rejects.toBeInstanceOf(WrongExpectedVersionError);
        await store.append('other', events(1), 'any');
        await store.append('s', events(2), 'any');
        expect(await store.append('s', [], 2)).toEqual({ streamVersion: 2, globalPosition: 3, written: false, events: [] });
        await expect(store.append('s', [], 1)).rejects.toBeInstanceOf(WrongExpectedVersionError);
        expect(await store.headPosition()).toBe(3);
      });
    });

    describe('expected version', () => {
      async function expectWrongVersion(
        streamId: string,
        expected: ExpectedVersion,
        actual: number,
      ): Promise<WrongExpectedVersionError> {
        const headBefore = await store.headPosition();
        const error: unknown = await store.append(streamId, events(1), expected).then(
          () => null,
          (thrown: unknown) => thrown,
        );
        expect(error).toBeInstanceOf(WrongExpectedVersionError);
        const wrong = error as WrongExpectedVersionError;
        expect({ streamId: wrong.streamId, expected: wrong.expected, actual: wrong.actual }).toEqual({
          streamId,
          expected,
          actual,
        });
        expect(await store.headPosition()).toBe(headBefore);
        return wrong;
      }

      it("'any' appends whether or not the stream exists", async () => {
        expect((await store.append('s', events(1), 'any')).streamVersion).toBe(1);
        expect((await store.append('s', events(1), 'any')).streamVersion).toBe(2);
      });

      it("'no-stream' appends only to an empty stream", async () => {
        expect((await store.append('s', events(2), 'no-stream')).streamVersion).toBe(2);
        await expectWrongVersion('s', 'no-stream', 2);
      });

      it("'stream-exists' appends only to a stream with events", async () => {
        await expectWrongVersion('s', 'stream-exists', 0);
        await store.append('s', events(1), 'any');
        expect((await store.append('s', events(1), 'stream-exists')).streamVersion).toBe(2);
      });

      it('an exact version appends only when it equals the number of events in the stream', async () => {
        expect((await store.append('s', events(1), 0)).streamVersion).toBe(1);
        await expectWrongVersion('s', 0, 1);
        await expectWrongVersion('s', 2, 1);
        expect((await store.append('s', events(2), 1)).streamVersion).toBe(3);
        await expectWrongVersion('s', 1, 3);
        expect((await store.append('s', events(1), 3)).streamVersion).toBe(4);
        await expectWrongVersion('other', 1, 0);
      });

      it('checks versions per stream', async () => {
        await store.append('a', events(3), 'any');
        expect((await store.append('b', events(1), 0)).streamVersion).toBe(1);
        await expect(store.append('b', events(1), 'no-stream')).rejects.toBeInstanceOf(WrongExpectedVersionError);
        expect((await store.append('a', events(1), 3)).globalPosition).toBe(5);
      });
    });

    describe('idempotency by event id', () => {
      it('answers a retry of a stored batch with the stored events, written=false, even with a stale expected version', async () => {
        const batch = events(3);
        const original = await store.append('s', batch, 'no-stream');
        await store.append('s', events(1), 3);
        await store.append('other', events(1), 'any');

        for (const expected of ['no-stream', 0, 3, 'stream-exists', 'any'] as const) {
          const retry = await store.append('s', batch, expected);
          expect(retry).toEqual({
            streamVersion: 3,
            globalPosition: 3,
            written: false,
            events: original.events,
          });
        }
        expect(await store.headPosition()).toBe(5);
        expect(await store.streamVersion('s')).toBe(4);
        const ids = (await readEverything(store)).map((event) => event.eventId);
        expect(new Set(ids).size).toBe(ids.length);
      });

      it('answers a retry of a consecutive part of a stored batch', async () => {
        const batch = events(4);
        const original = await store.append('s', batch, 'any');
        const retry = await store.append('s', batch.slice(1, 3), 'any');
        expect(retry).toEqual({ streamVersion: 3, globalPosition: 3, written: false, events: original.events.slice(1, 3) });
        expect(await store.headPosition()).toBe(4);
      });

      it('refuses an id already stored in another stream', async () => {
        const event = newEvent();
        await store.append('s', [event], 'any');
        const error = await store.append('t', [event], 'any').catch((thrown: unknown) => thrown);
        expect(error).toBeInstanceOf(EventIdConflictError);
        expect((error as EventIdConflictError).eventId).toBe(event.eventId);
        expect(await store.streamVersion('t')).toBe(0);
      });

      it('refuses an id reused with a different type, data or metadata', async () => {
        const event = newEvent('Original', { value: 1, other: 'x' });
        await store.append('s', [event], 'any');
        const variants: NewEvent[] = [
          { ...event, type: 'Other' },
          { ...event, data: { value: 2 } },
          { ...event, metadata: { ...metadata, actor: 'user:someone-else' } },
          { ...event, metadata: { ...metadata, schemaVersion: 2 } },
        ];
        for (const variant of variants) {
          await expect(store.append('s', [variant], 'any')).rejects.toBeInstanceOf(EventIdConflictError);
        }
        // Same content with keys in another order is the same event.
        expect((await store.append('s', [{ ...event, data: { other: 'x', value: 1 } }], 'any')).written).toBe(false);
        expect(await store.headPosition()).toBe(1);
      });

      it('refuses a partial repeat and writes nothing of it', async () => {
        const [a, b] = events(2) as [NewEvent, NewEvent];
        const c = newEvent();
        await store.append('s', [a, b], 'no-stream');
        const attempts: NewEvent[][] = [
          [a, b, c], // starts as a retry, then goes on with a new event
          [c, a], // new event first, stored one after
          [b, a], // stored ids, wrong order
          [a, c],
          [c, b],
        ];
        for (const batch of attempts) {
          await expect(store.append('s', batch, 'any')).rejects.toBeInstanceOf(EventIdConflictError);
        }
        expect(await store.getEvent(c.eventId)).toBeNull();
        expect(await store.headPosition()).toBe(2);
      });

      it('refuses a batch that holds the same id twice', async () => {
        const event = newEvent();
        await expect(store.append('s', [event, newEvent(), event], 'any')).rejects.toBeInstanceOf(EventIdConflictError);
        expect(await store.headPosition()).toBe(0);
      });
    });

    describe('input validation', () => {
      it('refuses malformed input with a TypeError and writes nothing', async () => {
        const valid = newEvent();
        const cases: Array<[string, unknown, unknown]> = [
          ['', [valid], 'any'],
          ['x'.repeat(201), [valid], 'any'],
          ['bad\u0000id', [valid], 'any'],
          ['s', [{ ...valid, eventId: '' }], 'any'],
          ['s', [{ ...valid, type: '' }], 'any'],
          ['s', [{ ...valid, data: { n: Number.NaN } }], 'any'],
          ['s', [{ ...valid, data: { n: undefined } }], 'any'],
          ['s', [{ ...valid, data: { d: new Date(0) } }], 'any'],
          ['s', [{ ...valid, data: [1, 2] }], 'any'],
          ['s', [{ ...valid, metadata: { ...metadata, schemaVersion: 0 } }], 'any'],
          ['s', [{ ...valid, metadata: { ...metadata, actor: '' } }], 'any'],
          ['s', [valid], -1],
          ['s', [valid], 1.5],
          ['s', [valid], 'latest'],
          ['s', 'not-an-array', 'any'],
          ['s', [{ ...valid, data: { blob: 'x'.repeat(eventDataBytesMax) } }], 'any'],
          ['s', Array.from({ length: appendEventsCountMax + 1 }, () => newEvent()), 'any'],
        ];
        for (const [streamId, batch, expected] of cases) {
          // The casts are the point: untyped callers exist, and the store must refuse them.
          const attempt = store.append(streamId as string, batch as NewEvent[], expected as ExpectedVersion);
          await expect(attempt, JSON.stringify([streamId, expected])).rejects.toBeInstanceOf(TypeError);
        }
        expect((await store.append('x'.repeat(200), [valid], 'any')).written).toBe(true);
        expect(await store.headPosition()).toBe(1);
      });

      it('refuses malformed read arguments with a TypeError', async () => {
        await expect(store.readAll({ after: -1, limit: 10 })).rejects.toBeInstanceOf(TypeError);
        await expect(store.readAll({ after: 0, limit: 1.5 })).rejects.toBeInstanceOf(TypeError);
        await expect(store.readStream('', {})).rejects.toBeInstanceOf(TypeError);
        await expect(store.readStream('s', { fromVersion: 0 })).rejects.toBeInstanceOf(TypeError);
        await expect(store.streamVersion('')).rejects.toBeInstanceOf(TypeError);
        await expect(store.getEvent('')).rejects.toBeInstanceOf(TypeError);
      });
    });

    describe('concurrent writers', () => {
      it('lets exactly one of many racing no-stream appends win', async () => {
        const writerCount = 20;
        const outcomes = await Promise.allSettled(
          Array.from({ length: writerCount }, () => store.append('contended', events(1), 'no-stream')),
        );
        const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
        const lost = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(writerCount - 1);
        for (const reason of lost) expect(reason).toBeInstanceOf(WrongExpectedVersionError);
        expect(await store.streamVersion('contended')).toBe(1);
      });

      it('loses no update when 20 writers read, decide and append with exact versions on one stream', async () => {
        const writerCount = 20;
        const appendsPerWriter = 5;
        const attemptCountMax = 500;
        const random = prng(42);
        const acknowledged: string[] = [];
        let conflictCount = 0;

        const writer = async (writerIndex: number): Promise<void> => {
          for (let appendIndex = 0; appendIndex < appendsPerWriter; appendIndex += 1) {
            for (let attempt = 1; ; attempt += 1) {
              if (attempt > attemptCountMax) throw new Error(`writer ${writerIndex} starved`);
              // Read, decide (next counter value from the latest event), append at that version.
              const version = await store.streamVersion('counter');
              const latest = version === 0 ? [] : await store.readStream('counter', { fromVersion: version });
              const counterSeen = latest[0]?.data.counter ?? 0;
              if (typeof counterSeen !== 'number') throw new Error('counter is not a number');
              if (random() < 0.5) await sleep(0);
              const event = newEvent('Counted', { counter: counterSeen + 1, writerIndex });
              try {
                await store.append('counter', [event], version);
                acknowledged.push(event.eventId);
                break;
              } catch (error) {
                if (!(error instanceof WrongExpectedVersionError)) throw error;
                conflictCount += 1;
              }
            }
          }
        };
        await Promise.all(Array.from({ length: writerCount }, (_, index) => writer(index)));

        const total = writerCount * appendsPerWriter;
        const stream = await store.readStream('counter');
        expect(stream.map((event) => event.streamVersion)).toEqual(range(1, total));
        // Each decision saw the state right before its own append: no lost update.
        expect(stream.map((event) => event.data.counter)).toEqual(range(1, total));
        expect(stream.map((event) => event.eventId).sort()).toEqual([...acknowledged].sort());
        expect(conflictCount).toBeGreaterThan(0);
        expect(await store.headPosition()).toBe(total);
      });
    });

    describe('subscribeAll', () => {
      it('catches up, then delivers live appends in order with no gap and no duplicate', async () => {
        const streamIds = ['a', 'b', 'c'];
        for (let index = 0; index < 30; index += 1) await store.append(streamIds[index % 3]!, events(1), 'any');
        const batches: RecordedEvent[][] = [];
        const subscription = store.subscribeAll({
          after: 0,
          batchSizeMax: 7,
          onEvents: async (batch) => {
            batches.push([...batch]);
            await sleep(1);
          },
        });
        const appender = async (streamId: string): Promise<void> => {
          for (let index = 0; index < 20; index += 1) {
            await store.append(streamId, events(1 + (index % 2)), 'any');
            if (index % 3 === 0) await sleep(1);
          }
        };
        await Promise.all(streamIds.map(appender));
        const total = await store.headPosition();
        expect(total).toBe(30 + 3 * 30);
        const delivered = (): RecordedEvent[] => batches.flat();
        await waitFor(() => delivered().length >= total, 'all events delivered');
        await sleep(30);
        expect(positions(delivered())).toEqual(range(1, total));
        expect(delivered().map((event) => event.eventId)).toEqual((await readEverything(store)).map((e) => e.eventId));
        for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(7);
        expect(subscription.position()).toBe(total);
        await subscription.close();
      });

      it('starts after the given position', async () => {
        await store.append('s', events(10), 'any');
        const delivered: number[] = [];
        const subscription = store.subscribeAll({
          after: 6,
          onEvents: (batch) => {
            delivered.push(...positions(batch));
          },
        });
        await waitFor(() => delivered.length >= 4, 'catch-up');
        await store.append('s', events(1), 'any');
        await waitFor(() => delivered.length >= 5, 'live event');
        expect(delivered).toEqual([7, 8, 9, 10, 11]);
        await subscription.close();
      });

      it('waits for the handler before reading on (back-pressure)', async () => {
        let running = 0;
        let runningMax = 0;
        const delivered: number[] = [];
        const subscription = store.subscribeAll({
          after: 0,
          batchSizeMax: 3,
          onEvents: async (batch) => {
            running += 1;
            runningMax = Math.max(runningMax, running);
            await sleep(15);
            delivered.push(...positions(batch));
            running -= 1;
          },
        });
        for (let index = 0; index < 12; index += 1) {
          await store.append('s', events(1), 'any');
          await sleep(2);
        }
        await waitFor(() => delivered.length >= 12, 'slow handler to catch up');
        expect(runningMax).toBe(1);
        expect(delivered).toEqual(range(1, 12));
        expect(subscription.position()).toBe(12);
        await subscription.close();
      });

      it('close() resolves only once the running handler has returned, and nothing is delivered after', async () => {
        await store.append('s', events(1), 'any');
        const release = deferred();
        let handlerCallCount = 0;
        let handlerDone = false;
        const subscription = store.subscribeAll({
          after: 0,
          onEvents: async () => {
            handlerCallCount += 1;
            await release.promise;
            handlerDone = true;
          },
        });
        await waitFor(() => handlerCallCount === 1, 'handler call');
        let closeResolved = false;
        const closing = subscription.close().then(() => {
          closeResolved = true;
        });
        await store.append('s', events(2), 'any');
        await sleep(20);
        expect(closeResolved).toBe(false);
        release.resolve();
        await closing;
        expect(handlerDone).toBe(true);
        await store.append('s', events(1), 'any');
        await sleep(30);
        expect(handlerCallCount).toBe(1);
        expect(subscription.position()).toBe(1);
        await subscription.close();
      });

      it('ends on a handler error, reports it once to onError and keeps the last good position', async () => {
        await store.append('s', events(5), 'any');
        const failure = new Error('projection failed');
        const errors: unknown[] = [];
        const delivered: number[] = [];
        const subscription = store.subscribeAll({
          after: 0,
          batchSizeMax: 1,
          onEvents: (batch) => {
            if (batch[0]!.globalPosition === 3) throw failure;
            delivered.push(...positions(batch));
          },
          onError: (error) => errors.push(error),
        });
        await waitFor(() => errors.length > 0, 'onError');
        await store.append('s', events(2), 'any');
        await sleep(30);
        expect(errors).toEqual([failure]);
        expect(delivered).toEqual([1, 2]);
        expect(subscription.position()).toBe(2);
        await subscription.close();
      });

      it('ends quietly when the store closes, and the closed store refuses every call', async () => {
        await store.append('s', events(1), 'any');
        const errors: unknown[] = [];
        const delivered: number[] = [];
        let handlerStarted = false;
        store.subscribeAll({
          after: 0,
          onEvents: async (batch) => {
            handlerStarted = true;
            await sleep(10);
            delivered.push(...positions(batch));
          },
          onError: (error) => errors.push(error),
        });
        await waitFor(() => handlerStarted, 'handler call');
        await store.close();
        expect(delivered).toEqual([1]);
        await sleep(30);
        expect(errors).toEqual([]);
        await expect(store.append('s', events(1), 'any')).rejects.toBeInstanceOf(StoreClosedError);
        await expect(store.readAll({ after: 0, limit: 1 })).rejects.toBeInstanceOf(StoreClosedError);
        await expect(store.readStream('s')).rejects.toBeInstanceOf(StoreClosedError);
        await expect(store.streamVersion('s')).rejects.toBeInstanceOf(StoreClosedError);
        await expect(store.headPosition()).rejects.toBeInstanceOf(StoreClosedError);
        await expect(store.getEvent(randomUUID())).rejects.toBeInstanceOf(StoreClosedError);
        expect(() => store.subscribeAll({ after: 0, onEvents: () => undefined })).toThrow(StoreClosedError);
        await store.close();
      });
    });

    describe('hash chain', () => {
      it('chains every event to its predecessor in global order and detects tampering', async () => {
        for (let index = 0; index < 6; index += 1) {
          await store.append(`s-${index % 2}`, events(2), 'any');
        }
        const all = await readEverything(store);
        expect(all).toHaveLength(12);
        expect(verifyChain(all)).toBeNull();
        expect(new Set(all.map((event) => event.hash)).size).toBe(12);
        // A slice verifies from the event before it.
        const anchor = all[4]!;
        expect(verifyChain(all.slice(5), anchor)).toBeNull();

        const edited = all.map((event) => (event.globalPosition === 5 ? { ...event, data: { index: 99 } } : event));
        expect(verifyChain(edited)).toBe(5);
        const rehashed = all.map((event) => (event.globalPosition === 5 ? { ...event, hash: 'f'.repeat(64) } : event));
        expect(verifyChain(rehashed)).toBe(5);
        const retimed = all.map((event) =>
          event.globalPosition === 7 ? { ...event, recordedAt: '2000-01-01T00:00:00.000Z' } : event,
        );
        expect(verifyChain(retimed)).toBe(7);
        expect(verifyChain(all.filter((event) => event.globalPosition !== 8))).toBe(9);
        const swapped = [...all];
        [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
        expect(verifyChain(swapped)).toBe(4);
        expect(verifyChain(all.slice(1))).toBe(2);
      });
    });
  });
}
