/** startKafkaIntegration's wiring and supervision on a fake Kafka (the real broker: commands.kafka.spec.ts). */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EventStore, openMemoryEventStore } from '../../services/eventstore/index.ts';
import {
  type CommandResultValue,
  type KafkaIntegration,
  commandCodec,
  eventHeaders,
  relayCheckpointFile,
  silentLog,
  startKafkaIntegration,
  topicNames,
} from '../../services/messaging/index.ts';
import { type FakeKafka, fakeKafka } from '../support/fake-kafka.ts';
import { eventually } from '../support/kafka.ts';
import { type TestControlPlane, startTestControlPlane } from './fixtures/control-plane.ts';

const config = { brokers: ['fake:9092'], clientId: 'vcp-test', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: 'i.', partitions: 1, replicationFactor: null };
const topics = topicNames(config.topicPrefix);
const meta = { actor: 'user:a', correlationId: 'c', causationId: null, idSeed: null };

describe('startKafkaIntegration (fake Kafka)', () => {
  let dir: string;
  let store: EventStore;
  let cp: TestControlPlane;
  let kafka: FakeKafka;
  let integration: KafkaIntegration;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vcp-integration-'));
    store = openMemoryEventStore();
    cp = await startTestControlPlane(store);
    kafka = fakeKafka();
    integration = await startKafkaIntegration({ store, service: cp.service, migrations: cp.migrations, maintenance: cp.maintenance, config, dataDir: dir, log: silentLog, client: kafka.client });
  });
  afterEach(async () => {
    await integration.close();
    await cp.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const register = (hostId: string) =>
    cp.service.hostCommand(hostId, { type: 'RegisterHost', hostId, logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 512, labels: {}, limitsPreset: 'modern', limits: {} }, meta);

  it('relays the store and answers commands', async () => {
    expect(integration.stats().topics.map((t) => t.name)).toEqual(Object.values(topics));
    await register('h1');
    await eventually('the event relayed', () => (kafka.sent.some((m) => m.topic === topics.events && m.headers[eventHeaders.eventType] === 'HostRegistered') ? true : undefined));

    const codec = commandCodec();
    await kafka.deliver(topics.commands, { key: 'h1', value: codec.encode('CordonHost', { commandId: 'k-1', actor: 'user:a', correlationId: 'corr-1', hostId: 'h1' }) });
    const result = kafka.sent.find((m) => m.topic === topics.commandResults);
    expect(result?.key).toBe('corr-1');
    expect((codec.decode(result!.value).value as CommandResultValue).events.map((e) => e.type)).toEqual(['HostCordoned']);
    await eventually('no lag', () => (integration.stats().relay.lag === 0 && integration.stats().relay.relayedPosition === 2 ? true : undefined));
    expect(integration.stats().commands).toMatchObject({ received: 1, accepted: 1 });
  });

  it('restarts a crashed relay from its checkpoint, losing nothing', async () => {
    await register('h1');
    await eventually('the first event relayed', () => (integration.stats().relay.relayedPosition === 1 ? true : undefined));
    // The checkpoint cannot be replaced any more (its temp file's name is taken by a directory).
    const blocker = join(dir, `${relayCheckpointFile}.tmp`);
    mkdirSync(blocker);
    await register('h2');
    await eventually('the relay to crash', () => (integration.stats().relay.state === 'crashed' ? true : undefined));
    expect(integration.stats().relay.lastError).toMatch(/EISDIR|directory/);
    rmSync(blocker, { recursive: true });
    await eventually('the restarted relay to catch up', () => (integration.stats().relay.state === 'running' && integration.stats().relay.relayedPosition === 2 ? true : undefined), 30_000);
    expect(integration.stats().relayRestarts).toBeGreaterThanOrEqual(1);
    const positions = kafka.sent.filter((m) => m.topic === topics.events).map((m) => m.headers[eventHeaders.globalPosition]);
    // Position 2 was acknowledged before the failed checkpoint, so it went out again after the restart.
    expect(new Set(positions)).toEqual(new Set(['1', '2']));
  }, 40_000);

  it('closes once, whatever the number of calls', async () => {
    await Promise.all([integration.close(), integration.close()]);
    expect(integration.stats().relay.state).toBe('stopped');
  });
});
