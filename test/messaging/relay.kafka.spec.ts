/**
 * The relay against the real broker of the global setup and the real SQLite store: every event
 * exactly once in effect and in stream order across a crash between Kafka's acknowledgement and
 * the checkpoint; directives on vcp.host-directives keyed by host.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type EventStore, type RecordedEvent, openSqliteEventStore } from '../../services/eventstore/index.ts';
import {
  type CheckpointPort,
  type IncomingMessage,
  type Relay,
  codec,
  decodeEnvelope,
  directiveHosts,
  eventHeaders,
  fileCheckpoint,
  fingerprintHex,
  startRelay,
} from '../../services/messaging/index.ts';
import { collect, describeKafka, eventually, kafkaAvailable, kafkaTestTimeoutMs, testKafka, type TestKafka, testLog } from '../support/kafka.ts';
import { appendLog } from './fixtures/event-log.ts';

describeKafka('the relay on a real broker', () => {
  let dir: string;
  let store: EventStore;
  let kafka: TestKafka;
  const relays: Relay[] = [];

  beforeAll(async () => {
    if (!kafkaAvailable()) return;
    dir = mkdtempSync(join(tmpdir(), 'vcp-relay-kafka-'));
    store = openSqliteEventStore({ path: join(dir, 'events.db') });
    kafka = await testKafka('relay');
  }, kafkaTestTimeoutMs);
  afterAll(async () => {
    for (const relay of relays) await relay.close();
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, kafkaTestTimeoutMs);

  /** First occurrence of each event id, in the order the topic delivered them per partition. */
  const firstOccurrences = (messages: readonly IncomingMessage[]) => {
    const seen = new Set<string>();
    const out: IncomingMessage[] = [];
    for (const m of messages) {
      const id = m.headers[eventHeaders.eventId]!;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(m);
    }
    return out;
  };

  it('publishes every stored event exactly once in effect, in stream order, across a crash before the checkpoint', async () => {
    const stored: RecordedEvent[] = await appendLog(store, 1200, { streamCount: 12, perAppend: 40 });
    const path = join(dir, 'relay-checkpoint.json');
    const file = fileCheckpoint(path);
    let saves = 0;
    // The crash: Kafka has acknowledged the second batch, the checkpoint write fails.
    const faulty: CheckpointPort = {
      load: () => file.load(),
      save: async (position) => {
        saves += 1;
        if (saves === 2) throw new Error('injected crash after the publish, before the checkpoint');
        await file.save(position);
      },
    };
    const first = await startRelay({ store, client: kafka.client, topics: kafka.topics, checkpoint: faulty, batchEventsMax: 500, log: testLog });
    relays.push(first);
    expect(String(await first.ended)).toMatch(/injected crash/);
    expect(first.stats()).toMatchObject({ state: 'crashed', relayedPosition: 500 });
    expect(await file.load()).toBe(500);

    const second = await startRelay({ store, client: kafka.client, topics: kafka.topics, checkpoint: file, batchEventsMax: 500, log: testLog });
    relays.push(second);
    // Live appends while it catches up.
    stored.push(...(await appendLog(store, 100, { from: 1200, streamCount: 12, perAppend: 10 })));
    await eventually('the relay to reach the head', async () => ((await second.lag()) === 0 && second.stats().relayedPosition === 1300 ? true : undefined));

    const events = await collect(kafka.client, [kafka.topics.events]);
    try {
      const all = await events.until('every event on vcp.events', (ms) => new Set(ms.map((m) => m.headers[eventHeaders.eventId])).size >= 1300);
      // Duplicates only at the crash boundary: the batch Kafka acknowledged but the checkpoint missed.
      const positions = all.map((m) => Number(m.headers[eventHeaders.globalPosition]));
      const counts = new Map<number, number>();
      for (const p of positions) counts.set(p, (counts.get(p) ?? 0) + 1);
      const repeated = [...counts].filter(([, n]) => n > 1).map(([p]) => p);
      expect(repeated.sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => 501 + i));
      expect([...counts.values()].every((n) => n <= 2)).toBe(true);

      const unique = firstOccurrences(all);
      expect(unique).toHaveLength(1300);
      const byId = new Map(stored.map((e) => [e.eventId, e]));
      const envelopeFp = fingerprintHex(codec().fingerprint('Envelope'));
      const versionsByStream = new Map<string, number[]>();
      for (const m of unique) {
        const event = decodeEnvelope(m.value!);
        expect(event).toStrictEqual(byId.get(event.eventId));
        expect(m.key?.toString()).toBe(event.streamId);
        expect(m.headers[eventHeaders.eventId]).toBe(event.eventId);
        expect(m.headers[eventHeaders.schemaFingerprint]).toBe(envelopeFp);
        versionsByStream.set(event.streamId, [...(versionsByStream.get(event.streamId) ?? []), event.streamVersion]);
      }
      // In stream order: within a key (one partition) every stream reads 1, 2, 3, ... without a gap.
      for (const [, versions] of versionsByStream) expect(versions).toEqual(versions.map((_, i) => i + 1));
      expect(versionsByStream.size).toBe(12);
    } finally {
      await events.close();
    }
    expect(second.stats()).toMatchObject({ state: 'running', eventsPublished: 800, lag: 0 });
  });

  it('puts every directive on vcp.host-directives keyed by its host, in global order per host', async () => {
    const stored: RecordedEvent[] = [];
    for (let page = await store.readAll({ after: 0, limit: 1000 }); page.length > 0; page = await store.readAll({ after: stored.at(-1)!.globalPosition, limit: 1000 })) {
      stored.push(...page);
    }
    expect(stored).toHaveLength(1300);
    const expected = new Map<string, number[]>();
    for (const e of stored) for (const h of directiveHosts(e.type, e.data)) expected.set(h, [...(expected.get(h) ?? []), e.globalPosition]);
    const total = [...expected.values()].reduce((n, list) => n + list.length, 0);
    expect(expected.size).toBe(3);

    const directives = await collect(kafka.client, [kafka.topics.directives]);
    try {
      const all = await directives.until('every directive', (ms) => new Set(ms.map((m) => `${m.key}|${m.headers[eventHeaders.eventId]}`)).size >= total);
      const seen = new Set<string>();
      const got = new Map<string, number[]>();
      for (const m of all) {
        const host = m.key!.toString();
        const id = `${host}|${m.headers[eventHeaders.eventId]}`;
        if (seen.has(id)) continue;
        seen.add(id);
        expect(m.headers[eventHeaders.hostId]).toBe(host);
        const event = decodeEnvelope(m.value!);
        expect(directiveHosts(event.type, event.data)).toContain(host);
        got.set(host, [...(got.get(host) ?? []), event.globalPosition]);
      }
      expect(got).toEqual(expected);
    } finally {
      await directives.close();
    }
  });
});
