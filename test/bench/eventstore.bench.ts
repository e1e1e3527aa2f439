/**
 * Event store throughput on the SQLite adapter, on a temp file with the production settings
 * (WAL, synchronous=FULL: every append waits for its fsync).
 *
 * Figures:
 *  - durable single-event appends to many streams, the control plane's common case;
 *  - the same with raw better-sqlite3 (one INSERT per fsynced transaction, no validation, no
 *    idempotency lookups, no hashing): the baseline, so the ratio shows the adapter's overhead
 *    separately from the disk's fsync rate, which dominates both;
 *  - batched appends (batchEventCount events per append), which also seed the store for:
 *  - readAll of 100,000 events in pages of batchSizeMax, as a projection rebuild would.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type NewEvent, openSqliteEventStore, type RecordedEvent } from '../../services/eventstore/index.ts';

export interface EventStoreBenchResult {
  readonly name: string;
  /** Durable single-event appends per second through the adapter. */
  readonly eventsPerS: number;
  /** Durable single-row inserts per second with raw better-sqlite3 (same pragmas). */
  readonly baselineEventsPerS: number;
  /** eventsPerS / baselineEventsPerS: the share of raw speed the adapter keeps. */
  readonly ratioToBaseline: number;
  readonly singleAppendCount: number;
  /** Events per second appended in batches of batchEventCount. */
  readonly batchedAppendEventsPerS: number;
  /** Events per second read by readAll paging through readAllEventCount events. */
  readonly readAllEventsPerS: number;
  readonly readAllEventCount: number;
}

/**
 * Single appends run in alternating rounds (baseline, adapter, baseline, ...) of
 * singleAppendRoundMs each, so that the disk's fsync latency, which drifts a lot on shared
 * machines, weighs on both sides alike and the ratio stays meaningful.
 */
const singleAppendRoundCount = 8;
const singleAppendRoundMs = 500;
const batchEventCount = 1000;
const readAllEventCount = 100_000;

const metadata = { actor: 'system:bench', causationId: null, correlationId: 'bench', schemaVersion: 1 };

function benchEvent(index: number): NewEvent {
  return {
    eventId: randomUUID(),
    type: 'PartitionStarted',
    data: { partitionId: `partition-${index}`, hostId: `host-${index % 16}`, memoryMiBAssigned: 4096, vcpuCount: 4 },
    metadata,
  };
}

function perSecond(count: number, elapsedMs: number): number {
  return Math.round((count * 1000) / elapsedMs);
}

interface Tally {
  count: number;
  elapsedMs: number;
}

/** Runs `appendOne` for one round; returns how many it did in how long. */
async function round(tally: Tally, appendOne: (index: number) => unknown): Promise<void> {
  const started = performance.now();
  while (performance.now() - started < singleAppendRoundMs) {
    await appendOne(tally.count);
    tally.count += 1;
  }
  tally.elapsedMs += performance.now() - started;
}

async function timeSingleAppends(dir: string): Promise<{ adapter: Tally; baseline: Tally }> {
  const store = openSqliteEventStore({ path: join(dir, 'single.db') });
  const raw = new Database(join(dir, 'raw.db'));
  try {
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = FULL');
    raw.exec('CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT UNIQUE, data TEXT)');
    const insert = raw.prepare('INSERT INTO events (event_id, data) VALUES (?, ?)');
    const insertOne = raw.transaction((event: NewEvent) => insert.run(event.eventId, JSON.stringify(event.data)));
    const adapter: Tally = { count: 0, elapsedMs: 0 };
    const baseline: Tally = { count: 0, elapsedMs: 0 };
    for (let roundIndex = 0; roundIndex < singleAppendRoundCount; roundIndex += 1) {
      await round(baseline, (index) => insertOne.immediate(benchEvent(index)));
      await round(adapter, (index) => store.append(`partition-${index % 1000}`, [benchEvent(index)], 'any'));
    }
    return { adapter, baseline };
  } finally {
    raw.close();
    await store.close();
  }
}

export async function benchEventStoreAppend(): Promise<EventStoreBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'vcp-bench-eventstore-'));
  try {
    const { adapter: single, baseline } = await timeSingleAppends(dir);

    const path = join(dir, 'read.db');
    const store = openSqliteEventStore({ path });
    try {
      const batchStarted = performance.now();
      for (let batchIndex = 0; batchIndex < readAllEventCount / batchEventCount; batchIndex += 1) {
        const batch = Array.from({ length: batchEventCount }, (_, index) =>
          benchEvent(batchIndex * batchEventCount + index),
        );
        await store.append(`partition-${batchIndex}`, batch, 'no-stream');
      }
      const batchElapsedMs = performance.now() - batchStarted;

      const readStarted = performance.now();
      let after = 0;
      let readCount = 0;
      for (;;) {
        const page: readonly RecordedEvent[] = await store.readAll({ after, limit: 1000 });
        if (page.length === 0) break;
        readCount += page.length;
        after = page[page.length - 1]!.globalPosition;
      }
      const readElapsedMs = performance.now() - readStarted;
      if (readCount !== readAllEventCount) {
        throw new Error(`readAll returned ${readCount} events, expected ${readAllEventCount}`);
      }

      const eventsPerS = perSecond(single.count, single.elapsedMs);
      const baselineEventsPerS = perSecond(baseline.count, baseline.elapsedMs);
      const result: EventStoreBenchResult = {
        name: 'eventstore.sqlite',
        eventsPerS,
        baselineEventsPerS,
        ratioToBaseline: Math.round((eventsPerS / baselineEventsPerS) * 100) / 100,
        singleAppendCount: single.count,
        batchedAppendEventsPerS: perSecond(readAllEventCount, batchElapsedMs),
        readAllEventsPerS: perSecond(readCount, readElapsedMs),
        readAllEventCount: readCount,
      };
      console.log(
        `${result.name}: durable single-event appends ${eventsPerS} events/s (${single.count} appends); ` +
          `raw better-sqlite3 baseline ${baselineEventsPerS} inserts/s; ratio ${result.ratioToBaseline}`,
      );
      console.log(
        `${result.name}: batched appends (${batchEventCount}/append) ${result.batchedAppendEventsPerS} events/s; ` +
          `readAll ${result.readAllEventsPerS} events/s over ${readCount} events`,
      );
      return result;
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
