import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type EventStore,
  type NewEvent,
  openSqliteEventStore,
  type RecordedEvent,
  verifyChain,
} from '../../services/eventstore/index.ts';
import { eventStoreConformance } from './conformance.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'vcp-eventstore-'));
}

eventStoreConformance('sqlite file', async () => {
  const dir = tempDir();
  const store = openSqliteEventStore({ path: join(dir, 'events.db'), pollIntervalMs: 20 });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

eventStoreConformance('sqlite :memory:', async () => {
  const store = openSqliteEventStore({ path: ':memory:' });
  return { store, cleanup: () => store.close() };
});

const metadata = { actor: 'user:test', causationId: null, correlationId: 'corr', schemaVersion: 1 };

function event(eventId: string, data: NewEvent['data'] = {}): NewEvent {
  return { eventId, type: 'Tested', data, metadata };
}

describe('sqlite event store specifics', () => {
  let dir: string;
  let path: string;
  const opened: EventStore[] = [];
  const open = (options: Omit<Parameters<typeof openSqliteEventStore>[0], 'path'> = {}): EventStore => {
    const store = openSqliteEventStore({ path, ...options });
    opened.push(store);
    return store;
  };

  beforeEach(() => {
    dir = tempDir();
    path = join(dir, 'events.db');
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps events, positions and the chain across close and reopen', async () => {
    const first = open();
    await first.append('s', [event('a', { n: 1 }), event('b', { n: 2 })], 'no-stream');
    await first.append('t', [event('c')], 'no-stream');
    const before = await first.readAll({ after: 0, limit: 100 });
    await first.close();

    const second = open();
    expect(await second.readAll({ after: 0, limit: 100 })).toEqual(before);
    expect(await second.streamVersion('s')).toBe(2);
    // Appends continue the numbering and the chain; retries of old batches are still recognised.
    expect((await second.append('s', [event('a', { n: 1 }), event('b', { n: 2 })], 'no-stream')).written).toBe(false);
    expect(await second.append('s', [event('d')], 2)).toMatchObject({ streamVersion: 3, globalPosition: 4 });
    expect(verifyChain(await second.readAll({ after: 0, limit: 100 }))).toBeNull();
  });

  it('uses a WAL journal and records the schema version in the file', async () => {
    const store = open();
    await store.append('s', [event('a')], 'any');
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(1);
    } finally {
      raw.close();
    }
  });

  it('refuses a file written by a newer schema version', async () => {
    await open().close();
    const raw = new Database(path);
    raw.pragma('user_version = 99');
    raw.close();
    expect(() => openSqliteEventStore({ path })).toThrow(/schema version 99/);
  });

  it('caps readAll at batchSizeMax', async () => {
    const store = open({ batchSizeMax: 5 });
    await store.append(
      's',
      Array.from({ length: 12 }, (_, index) => event(`e-${index}`)),
      'any',
    );
    expect(await store.readAll({ after: 0, limit: 1000 })).toHaveLength(5);
    expect((await store.readAll({ after: 10, limit: 1000 })).map((e) => e.globalPosition)).toEqual([11, 12]);
  });

  it('stamps recordedAt from the injected clock', async () => {
    const store = open({ now: () => new Date('2031-05-06T07:08:09.010Z') });
    const result = await store.append('s', [event('a')], 'any');
    expect(result.events[0]!.recordedAt).toBe('2031-05-06T07:08:09.010Z');
    expect((await store.getEvent('a'))!.recordedAt).toBe('2031-05-06T07:08:09.010Z');
  });

  it('refuses a clock that returns an invalid date, writing nothing', async () => {
    const store = open({ now: () => new Date(Number.NaN) });
    await expect(store.append('s', [event('a')], 'any')).rejects.toThrow(/invalid Date/);
    expect(await store.headPosition()).toBe(0);
  });

  it('refuses invalid options, naming them', () => {
    expect(() => openSqliteEventStore({ path: '' })).toThrow(/path/);
    expect(() => openSqliteEventStore({ path, batchSizeMax: 0 })).toThrow(/batchSizeMax/);
    expect(() => openSqliteEventStore({ path, pollIntervalMs: 1.5 })).toThrow(/pollIntervalMs/);
  });

  it('delivers to a subscription the appends made through another connection to the same file', async () => {
    const reader = open({ pollIntervalMs: 10 });
    const writer = open();
    const delivered: RecordedEvent[] = [];
    const subscription = reader.subscribeAll({
      after: 0,
      onEvents: (batch) => {
        delivered.push(...batch);
      },
    });
    for (let index = 0; index < 20; index += 1) {
      await writer.append(`s-${index % 4}`, [event(`x-${index}`)], 'any');
      if (index % 5 === 0) await sleep(15);
    }
    const deadline = Date.now() + 5000;
    while (delivered.length < 20 && Date.now() < deadline) await sleep(5);
    expect(delivered.map((e) => e.globalPosition)).toEqual(Array.from({ length: 20 }, (_, index) => index + 1));
    await subscription.close();
  });

  it('interleaves two connections writing the same file without gaps or broken chain', async () => {
    const one = open();
    const two = open();
    for (let index = 0; index < 30; index += 1) {
      const store = index % 2 === 0 ? one : two;
      const version = await store.streamVersion('shared');
      await store.append('shared', [event(`y-${index}`)], version);
    }
    const all = await one.readAll({ after: 0, limit: 1000 });
    expect(all.map((e) => e.streamVersion)).toEqual(Array.from({ length: 30 }, (_, index) => index + 1));
    expect(verifyChain(all)).toBeNull();
  });

  it('lets verifyChain find a row edited directly in the file', async () => {
    const store = open();
    for (let index = 0; index < 5; index += 1) await store.append('s', [event(`z-${index}`, { amount: index })], 'any');
    const raw = new Database(path);
    raw.prepare(`UPDATE events SET data = '{"amount":100}' WHERE global_position = 3`).run();
    raw.close();
    const all = await store.readAll({ after: 0, limit: 100 });
    expect(all[2]!.data).toEqual({ amount: 100 });
    expect(verifyChain(all)).toBe(3);
  });

  it('refuses to store data that is not valid JSON even through raw SQL', () => {
    open();
    const raw = new Database(path);
    try {
      expect(() =>
        raw
          .prepare(
            `INSERT INTO events (event_id, stream_id, stream_version, type, data, actor, causation_id, correlation_id, schema_version, recorded_at, hash)
             VALUES ('bad', 's', 1, 'T', '{not json', 'a', NULL, 'c', 1, 'now', 'h')`,
          )
          .run(),
      ).toThrow(/CHECK constraint/);
    } finally {
      raw.close();
    }
  });
});
