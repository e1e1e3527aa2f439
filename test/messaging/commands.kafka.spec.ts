/**
 * startKafkaIntegration against the real broker of the global setup, with the real control plane
 * objects over the real SQLite store: commands sent on vcp.commands get their results on
 * vcp.command-results, a repeated command id writes nothing, a poison message lands on vcp.dlq
 * and the next command still goes through, and the resulting events reach vcp.events and
 * vcp.host-directives.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type EventStore, openSqliteEventStore } from '../../services/eventstore/index.ts';
import {
  type CommandResultValue,
  type CommandType,
  type KafkaConfig,
  type KafkaIntegration,
  type KafkaProducer,
  commandCodec,
  commandHeaders,
  createKafkajsClient,
  decodeEnvelope,
  dlqHeaders,
  eventHeaders,
  startKafkaIntegration,
  topicNames,
} from '../../services/messaging/index.ts';
import { collect, type Collector, describeKafka, eventually, kafkaAvailable, kafkaBrokers, kafkaTestTimeoutMs, testLog, uniquePrefix } from '../support/kafka.ts';
import { type TestControlPlane, startTestControlPlane } from './fixtures/control-plane.ts';

const codec = commandCodec();

describeKafka('commands over a real broker (startKafkaIntegration)', () => {
  let dir: string;
  let store: EventStore;
  let cp: TestControlPlane;
  let integration: KafkaIntegration;
  let producer: KafkaProducer;
  let results: Collector;
  let config: KafkaConfig;
  const topics = () => topicNames(config.topicPrefix);

  beforeAll(async () => {
    if (!kafkaAvailable()) return;
    dir = mkdtempSync(join(tmpdir(), 'vcp-commands-kafka-'));
    store = openSqliteEventStore({ path: join(dir, 'events.db') });
    cp = await startTestControlPlane(store);
    config = { brokers: kafkaBrokers(), clientId: 'vcp-test-commands', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: uniquePrefix('commands'), partitions: 3, replicationFactor: null };
    const client = createKafkajsClient(config, testLog, { connectionTimeoutMs: 10_000 });
    integration = await startKafkaIntegration({ store, service: cp.service, migrations: cp.migrations, maintenance: cp.maintenance, config, dataDir: dir, log: testLog, client });
    producer = await client.producer();
    results = await collect(client, [topics().commandResults, topics().dlq]);
  }, kafkaTestTimeoutMs);
  afterAll(async () => {
    await results?.close();
    await producer?.close();
    await integration?.close();
    await cp?.close();
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, kafkaTestTimeoutMs);

  const resultsOf = (commandId: string) =>
    results.messages.filter((m) => m.topic === topics().commandResults && m.headers[commandHeaders.commandId] === commandId);

  /** Sends a command; waits for its `nth` result (1 = the first). */
  async function send(type: CommandType, fields: { [key: string]: unknown }, ids = { commandId: randomUUID(), correlationId: randomUUID() }, nth = 1): Promise<CommandResultValue> {
    await producer.send([{ topic: topics().commands, key: String(fields.partitionId ?? fields.hostId), value: codec.encode(type, { actor: 'service:platform', ...ids, ...fields }), headers: {} }]);
    const messages = await results.until(`result ${nth} of ${type} ${ids.commandId}`, () => resultsOf(ids.commandId).length >= nth);
    const message = messages.filter((m) => m.topic === topics().commandResults && m.headers[commandHeaders.commandId] === ids.commandId)[nth - 1]!;
    expect(message.key?.toString()).toBe(ids.correlationId);
    return codec.decode(message.value!).value as CommandResultValue;
  }

  it('created the topics it needs', () => {
    expect(integration.stats().topics.map((t) => t.status)).toEqual(['created', 'created', 'created', 'created', 'created', 'created']);
  });

  it('answers accepted commands with their event ids, and relays those events and their directives', async () => {
    const host = await send('RegisterHost', { hostId: 'h1', logicalProcessors: 8, memoryMiB: 32_768 });
    expect(host).toMatchObject({ outcome: 'accepted', resourceId: 'h1' });
    cp.connect('h1');
    const created = await send('CreatePartition', { partitionId: 'web-1', vcpus: 2, memory: { startupMiB: 2048 } });
    expect(created.events.map((e) => e.type)).toEqual(['PartitionCreated']);
    const started = await send('StartPartition', { partitionId: 'web-1' });
    expect(started.outcome).toBe('accepted');
    expect(started.events.map((e) => e.type)).toEqual(['HostCapacityReserved', 'PartitionStartRequested']);
    for (const ref of [...host.events, ...created.events, ...started.events]) expect(await store.getEvent(ref.eventId)).toMatchObject({ type: ref.type, globalPosition: ref.globalPosition });

    const directiveId = started.events[1]!.eventId;
    const relayed = await collect(createKafkajsClient(config, testLog), [topics().events, topics().directives]);
    try {
      await relayed.until('the start on vcp.events and on h1\'s directives', (ms) => ms.filter((m) => m.headers[eventHeaders.eventId] === directiveId).length >= 2);
      const directive = relayed.messages.find((m) => m.topic === topics().directives && m.headers[eventHeaders.eventId] === directiveId)!;
      expect(directive.key?.toString()).toBe('h1');
      expect(decodeEnvelope(directive.value!)).toMatchObject({ type: 'PartitionStartRequested', data: { partitionId: 'web-1', hostId: 'h1' } });
      const onEvents = relayed.messages.find((m) => m.topic === topics().events && m.headers[eventHeaders.eventId] === directiveId)!;
      expect(onEvents.key?.toString()).toBe('partition-web-1');
    } finally {
      await relayed.close();
    }
  });

  it('answers a refused command with the reason and the field, and writes nothing', async () => {
    const head = await store.headPosition();
    const refused = await send('CreatePartition', { partitionId: 'web-2', vcpus: 4096, memory: { startupMiB: 1024 } });
    expect(refused).toMatchObject({ outcome: 'rejected', events: [] });
    expect(refused.rejection).toMatchObject({ kind: 'invalid', code: 'invalid-input', field: '/vcpus' });
    const conflict = await send('ResumePartition', { partitionId: 'web-1' });
    expect(conflict.rejection).toMatchObject({ kind: 'conflict', code: 'invalid-transition' });
    expect(await store.headPosition()).toBe(head);
  });

  it('answers a repeated command id with the same outcome and appends nothing new', async () => {
    const ids = { commandId: randomUUID(), correlationId: randomUUID() };
    const first = await send('CreatePartition', { partitionId: 'db-1', vcpus: 1, memory: { startupMiB: 1024 } }, ids);
    expect(first.outcome).toBe('accepted');
    const head = await store.headPosition();
    const second = await send('CreatePartition', { partitionId: 'db-1', vcpus: 1, memory: { startupMiB: 1024 } }, ids, 2);
    expect(second).toStrictEqual(first);
    expect(resultsOf(ids.commandId)[1]?.headers[commandHeaders.replayed]).toBe('true');
    expect(await store.headPosition()).toBe(head);
  });

  it('sends a poison message to vcp.dlq and carries on with the next command', async () => {
    const marker = randomUUID();
    await producer.send([{ topic: topics().commands, key: 'junk', value: Buffer.from(`not avro ${marker}`), headers: { marker } }]);
    const cordoned = await send('CordonHost', { hostId: 'h1', reason: 'after the poison' });
    expect(cordoned.events.map((e) => e.type)).toEqual(['HostCordoned']);
    const dead = (await results.until('the poison on the DLQ', (ms) => ms.some((m) => m.topic === topics().dlq && m.headers.marker === marker))).find((m) => m.headers.marker === marker)!;
    expect(dead.headers[dlqHeaders.reason]).toBe('not-avro-single-object');
    expect(dead.headers[dlqHeaders.sourceTopic]).toBe(topics().commands);
    expect(Number(dead.headers[dlqHeaders.sourcePartition])).toBeGreaterThanOrEqual(0);
    expect(dead.headers[dlqHeaders.sourceOffset]).toMatch(/^[0-9]+$/);
    expect(dead.value?.toString()).toBe(`not avro ${marker}`);
    expect(integration.stats().commands.deadLettered).toBe(1);
  });

  it('keeps the relay caught up and counts what it did', async () => {
    await eventually('no relay lag', () => (integration.stats().relay.lag === 0 && integration.stats().relay.relayedPosition > 0 ? true : undefined));
    const stats = integration.stats();
    expect(stats.relay).toMatchObject({ state: 'running', sendFailures: 0 });
    expect(stats.relay.relayedPosition).toBe(await store.headPosition());
    expect(stats.commands).toMatchObject({ accepted: 5, rejected: 2, replayed: 1, failed: 0, deadLettered: 1 });
    expect(stats.relayRestarts).toBe(0);
  });
});
