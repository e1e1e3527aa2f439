import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EventStore, openMemoryEventStore } from '../../services/eventstore/index.ts';
import {
  type CheckpointPort,
  type OutgoingMessage,
  codec,
  decodeEnvelope,
  directiveHosts,
  eventHeaders,
  eventMessages,
  fileCheckpoint,
  fingerprintHex,
  messageBytes,
  startRelay,
  topicNames,
} from '../../services/messaging/index.ts';
import { fakeKafka } from '../support/fake-kafka.ts';
import { eventually } from '../support/kafka.ts';
import { examples } from './fixtures/examples.ts';
import { appendLog } from './fixtures/event-log.ts';

const topics = topicNames('t.');
/** An example as a plain record (the examples are typed as the union of every event). */
const plain = (e: { type: string; data: object }) => e as { type: string; data: { [key: string]: unknown } };

describe('which hosts an event is a directive for', () => {
  it('is the hostId of a partition directive', () => {
    const e = plain(examples.PartitionStartRequested);
    expect(directiveHosts(e.type, e.data)).toEqual([e.data.hostId]);
  });

  it('is the source host of PartitionMigrated (discard the old copy), not its new host', () => {
    const e = plain(examples.PartitionMigrated);
    expect(directiveHosts(e.type, e.data)).toEqual([e.data.sourceHostId]);
  });

  it('is both ends of a migration step', () => {
    const e = plain(examples.MigrationTargetReserved);
    expect(directiveHosts(e.type, e.data)).toEqual([String(e.data.sourceHostId), String(e.data.targetHostId)].sort());
  });

  it('is nobody for host bookkeeping, or for a reconfiguration of a partition that runs nowhere', () => {
    expect(directiveHosts(examples.HostCapacityReserved.type, examples.HostCapacityReserved.data)).toEqual([]);
    expect(examples.PartitionReconfigured.data.hostId).toBeNull();
    expect(directiveHosts(examples.PartitionReconfigured.type, examples.PartitionReconfigured.data)).toEqual([]);
  });
});

describe('the messages of one event', () => {
  it('puts the envelope on vcp.events keyed by stream, and on vcp.host-directives keyed by host, with the ids in headers', async () => {
    const store = openMemoryEventStore();
    const [recorded] = (await store.append('partition-p1', [{ eventId: '00000000-0000-4000-8000-000000000001', type: 'MigrationTargetReserved', data: examples.MigrationTargetReserved.data as never, metadata: { actor: 'user:a', causationId: null, correlationId: 'c-1', schemaVersion: 1 } }], 'any')).events;
    if (recorded === undefined) throw new Error('nothing recorded');
    const messages = eventMessages(recorded, topics, codec());
    expect(messages.map((m) => [m.topic, m.key])).toEqual([
      [topics.events, 'partition-p1'],
      ...directiveHosts(recorded.type, recorded.data).map((h) => [topics.directives, h]),
    ]);
    expect(messages).toHaveLength(3);
    for (const m of messages) {
      expect(decodeEnvelope(m.value)).toStrictEqual(recorded);
      expect(m.headers[eventHeaders.eventId]).toBe(recorded.eventId);
      expect(m.headers[eventHeaders.eventType]).toBe('MigrationTargetReserved');
      expect(m.headers[eventHeaders.schemaFingerprint]).toBe(fingerprintHex(codec().fingerprint('Envelope')));
      expect(m.headers[eventHeaders.payloadFingerprint]).toBe(fingerprintHex(codec().fingerprint('MigrationTargetReserved')));
      expect(m.headers[eventHeaders.globalPosition]).toBe('1');
      expect(m.value.subarray(2, 10).toString('hex')).toBe(m.headers[eventHeaders.schemaFingerprint]);
    }
    expect(messages[1]?.headers[eventHeaders.hostId]).toBe(messages[1]?.key);
    await store.close();
  });
});

describe('the relay (on a fake Kafka)', () => {
  let dir: string;
  let store: EventStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vcp-relay-unit-'));
    store = openMemoryEventStore();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const eventsOf = (sent: readonly OutgoingMessage[]) => sent.filter((m) => m.topic === topics.events).map((m) => Number(m.headers[eventHeaders.globalPosition]));

  it('publishes every event once, in global order, in bounded batches, and checkpoints each after it was acknowledged', async () => {
    await appendLog(store, 1234);
    const kafka = fakeKafka();
    const saves: { position: number; sentBefore: number }[] = [];
    const file = fileCheckpoint(join(dir, 'checkpoint.json'));
    const checkpoint: CheckpointPort = {
      load: () => file.load(),
      save: async (position) => {
        saves.push({ position, sentBefore: eventsOf(kafka.sent).length });
        await file.save(position);
      },
    };
    const relay = await startRelay({ store, client: kafka.client, topics, checkpoint, batchEventsMax: 500 });
    await eventually('the relay to catch up', () => (relay.stats().relayedPosition === 1234 ? true : undefined));
    expect(eventsOf(kafka.sent)).toEqual(Array.from({ length: 1234 }, (_, i) => i + 1));
    // Each save came after Kafka had every event up to it.
    for (const save of saves) expect(save.sentBefore).toBeGreaterThanOrEqual(save.position);
    const sizes = saves.map((s, i) => s.position - (saves[i - 1]?.position ?? 0));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(500);
    expect(JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8')).position).toBe(1234);
    const stats = relay.stats();
    expect(stats).toMatchObject({ state: 'running', relayedPosition: 1234, lag: 0, eventsPublished: 1234, sendFailures: 0 });
    expect(stats.directivesPublished).toBe(kafka.sent.filter((m) => m.topic === topics.directives).length);
    expect(stats.directivesPublished).toBeGreaterThan(0);
    // Live: an append after catching up is relayed too.
    await appendLog(store, 10, { from: 1234 });
    await eventually('the live append', () => (relay.stats().relayedPosition === 1244 ? true : undefined));
    await relay.close();
    expect(relay.stats().state).toBe('stopped');
  });

  it('publishes nothing the control plane\'s projections do not show yet', async () => {
    await appendLog(store, 5);
    const kafka = fakeKafka();
    let shown = 0;
    const asked: number[] = [];
    let wake = () => {};
    const applied = async (position: number) => {
      asked.push(position);
      while (shown < position) await new Promise<void>((resolve) => (wake = resolve));
    };
    const relay = await startRelay({ store, client: kafka.client, topics, checkpoint: fileCheckpoint(join(dir, 'c.json')), applied });
    await eventually('the relay to ask', () => (asked.length > 0 ? true : undefined));
    expect(kafka.sent).toEqual([]);
    shown = 5;
    wake();
    await eventually('the relay to publish', () => (relay.stats().relayedPosition === 5 ? true : undefined));
    expect(asked).toEqual([5]);
    expect(eventsOf(kafka.sent)).toEqual([1, 2, 3, 4, 5]);
    await relay.close();
  });

  it('splits a batch that would exceed the byte bound', async () => {
    await appendLog(store, 40);
    const kafka = fakeKafka();
    const budget = 6_000;
    const relay = await startRelay({ store, client: kafka.client, topics, checkpoint: fileCheckpoint(join(dir, 'c.json')), batchBytesMax: budget });
    await eventually('the relay to catch up', () => (relay.stats().relayedPosition === 40 ? true : undefined));
    expect(relay.stats().batchesPublished).toBeGreaterThan(1);
    expect(kafka.sendCalls()).toBe(relay.stats().batchesPublished);
    expect(relay.stats().bytesPublished).toBe(kafka.sent.reduce((sum, m) => sum + messageBytes(m), 0));
    // Every batch stays within the budget, but for a single event larger than it (it goes alone).
    for (const batch of kafka.batches) {
      const events = batch.filter((m) => m.topic === topics.events).length;
      const bytes = batch.reduce((sum, m) => sum + messageBytes(m), 0);
      expect(bytes <= budget || events === 1, `a batch of ${events} events and ${bytes} bytes`).toBe(true);
    }
    expect(kafka.batches.some((b) => b.filter((m) => m.topic === topics.events).length > 1)).toBe(true);
    await relay.close();
  });

  it('reads nothing more while a batch waits for its acknowledgement (back-pressure)', async () => {
    await appendLog(store, 30);
    const kafka = fakeKafka();
    const release = kafka.holdSends();
    const relay = await startRelay({ store, client: kafka.client, topics, checkpoint: fileCheckpoint(join(dir, 'c.json')), batchEventsMax: 10 });
    await eventually('the first send', () => (kafka.sendCalls() === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect(kafka.sendCalls()).toBe(1);
    expect(relay.stats()).toMatchObject({ relayedPosition: 0, lag: 30 });
    release();
    await eventually('the relay to catch up', () => (relay.stats().relayedPosition === 30 ? true : undefined));
    expect(kafka.sendCalls()).toBe(3);
    await relay.close();
  });

  it('sends a refused batch again on a new producer, losing nothing and checkpointing only after success', async () => {
    await appendLog(store, 20);
    const kafka = fakeKafka();
    kafka.failNextSends(2);
    const relay = await startRelay({ store, client: kafka.client, topics, checkpoint: fileCheckpoint(join(dir, 'c.json')), sendRetryDelayMsMax: 20 });
    await eventually('the relay to catch up', () => (relay.stats().relayedPosition === 20 ? true : undefined));
    expect(relay.stats().sendFailures).toBe(2);
    expect(relay.stats().lastError).toMatch(/broker unavailable/);
    expect(kafka.producersCreated()).toBe(3);
    expect(eventsOf(kafka.sent)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await relay.close();
  });

  it('after a crash between the acknowledgement and the checkpoint, a new relay publishes only that batch again, same ids, same order', async () => {
    const recorded = await appendLog(store, 25);
    const kafka = fakeKafka();
    const path = join(dir, 'c.json');
    const file = fileCheckpoint(path);
    let saves = 0;
    const faulty: CheckpointPort = {
      load: () => file.load(),
      save: async (position) => {
        saves += 1;
        if (saves === 2) throw new Error('disk full (injected)');
        await file.save(position);
      },
    };
    const crashed = await startRelay({ store, client: kafka.client, topics, checkpoint: faulty, batchEventsMax: 10 });
    const error = await crashed.ended;
    expect(String(error)).toMatch(/disk full/);
    expect(crashed.stats()).toMatchObject({ state: 'crashed', relayedPosition: 10 });
    expect(eventsOf(kafka.sent)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await file.load()).toBe(10);

    const restarted = await startRelay({ store, client: kafka.client, topics, checkpoint: file, batchEventsMax: 10 });
    await eventually('the restarted relay to catch up', () => (restarted.stats().relayedPosition === 25 ? true : undefined));
    const positions = eventsOf(kafka.sent);
    expect(positions).toEqual([...Array.from({ length: 20 }, (_, i) => i + 1), ...Array.from({ length: 15 }, (_, i) => i + 11)]);
    const ids = kafka.sent.filter((m) => m.topic === topics.events).map((m) => m.headers[eventHeaders.eventId]);
    expect(new Set(ids)).toEqual(new Set(recorded.map((e) => e.eventId)));
    await restarted.close();
  });

  it('stops on an event it cannot encode instead of leaving a hole in vcp.events', async () => {
    await appendLog(store, 3);
    await store.append('partition-x', [{ eventId: '00000000-0000-4000-8000-0000000000aa', type: 'SomethingUnknown', data: {}, metadata: { actor: 'user:a', causationId: null, correlationId: 'c', schemaVersion: 1 } }], 'any');
    await appendLog(store, 3, { from: 3 });
    const kafka = fakeKafka();
    const relay = await startRelay({ store, client: kafka.client, topics, checkpoint: fileCheckpoint(join(dir, 'c.json')), batchEventsMax: 3 });
    expect(String(await relay.ended)).toMatch(/SomethingUnknown/);
    expect(relay.stats()).toMatchObject({ state: 'crashed', relayedPosition: 3 });
    expect(relay.stats().lastError).toMatch(/SomethingUnknown/);
    expect(eventsOf(kafka.sent)).toEqual([1, 2, 3]);
  });

  it('reports the lag against the store head', async () => {
    await appendLog(store, 5);
    const kafka = fakeKafka();
    const release = kafka.holdSends();
    const relay = await startRelay({ store, client: kafka.client, topics, checkpoint: fileCheckpoint(join(dir, 'c.json')) });
    await appendLog(store, 7, { from: 5 });
    expect(await relay.lag()).toBe(12);
    release();
    await eventually('no lag', async () => ((await relay.lag()) === 0 ? true : undefined));
    await relay.close();
  });

  it('refuses a checkpoint file that is not one', async () => {
    const path = join(dir, 'bad.json');
    await fileCheckpoint(path).save(3);
    expect(await fileCheckpoint(path).load()).toBe(3);
    writeFileSync(path, '{"position": -1}');
    await expect(fileCheckpoint(path).load()).rejects.toThrow(/not a relay checkpoint/);
  });
});
