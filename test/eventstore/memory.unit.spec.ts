import { describe, expect, it } from 'vitest';
import { openMemoryEventStore, verifyChain } from '../../services/eventstore/index.ts';
import { eventStoreConformance } from './conformance.ts';

eventStoreConformance('memory', async () => {
  const store = openMemoryEventStore();
  return { store, cleanup: () => store.close() };
});

const metadata = { actor: 'user:test', causationId: null, correlationId: 'corr', schemaVersion: 1 };

describe('memory event store specifics', () => {
  it('caps readAll at batchSizeMax', async () => {
    const store = openMemoryEventStore({ batchSizeMax: 4 });
    await store.append(
      's',
      Array.from({ length: 10 }, (_, index) => ({ eventId: `e-${index}`, type: 'T', data: {}, metadata })),
      'any',
    );
    expect(await store.readAll({ after: 0, limit: 100 })).toHaveLength(4);
    expect((await store.readAll({ after: 8, limit: 100 })).map((event) => event.globalPosition)).toEqual([9, 10]);
    await store.close();
  });

  it('stamps recordedAt from the injected clock', async () => {
    let ms = Date.UTC(2030, 0, 1);
    const store = openMemoryEventStore({
      now: () => {
        ms += 1000;
        return new Date(ms);
      },
    });
    const first = await store.append('s', [{ eventId: 'a', type: 'T', data: {}, metadata }], 'any');
    const second = await store.append('s', [{ eventId: 'b', type: 'T', data: {}, metadata }], 'any');
    expect(first.events[0]!.recordedAt).toBe('2030-01-01T00:00:01.000Z');
    expect(second.events[0]!.recordedAt).toBe('2030-01-01T00:00:02.000Z');
    expect(verifyChain([...first.events, ...second.events])).toBeNull();
    await store.close();
  });

  it('hands out frozen events, so history cannot be edited through a reference', async () => {
    const store = openMemoryEventStore();
    await store.append('s', [{ eventId: 'a', type: 'T', data: { list: [1] }, metadata }], 'any');
    const [event] = await store.readStream('s');
    expect(Object.isFrozen(event)).toBe(true);
    expect(Object.isFrozen(event!.data.list)).toBe(true);
    await store.close();
  });

  it('refuses invalid options, naming them', () => {
    expect(() => openMemoryEventStore({ batchSizeMax: 0 })).toThrow(/batchSizeMax/);
    expect(() => openMemoryEventStore({ pollIntervalMs: -5 })).toThrow(/pollIntervalMs/);
  });
});
