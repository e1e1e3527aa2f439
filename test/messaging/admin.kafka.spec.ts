/** Topic administration against the real broker of the global setup. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type KafkaAdmin, type KafkaClient, createKafkajsClient, eventTopicMessageBytesMax, topicNames, topicSpecs } from '../../services/messaging/index.ts';
import { describeKafka, kafkaAvailable, kafkaBrokers, kafkaTestTimeoutMs, testLog, uniquePrefix } from '../support/kafka.ts';

describeKafka('Kafka topic administration', () => {
  let client: KafkaClient;
  let admin: KafkaAdmin;
  beforeAll(async () => {
    if (!kafkaAvailable()) return;
    client = createKafkajsClient({ brokers: kafkaBrokers(), clientId: 'vcp-test-admin', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: '', partitions: 2, replicationFactor: null }, testLog, { connectionTimeoutMs: 10_000 });
    admin = await client.admin();
  }, kafkaTestTimeoutMs);
  afterAll(async () => {
    await admin?.close();
  }, kafkaTestTimeoutMs);

  it('creates the vcp topics with their partitions, replication and configs, then finds them as specified', async () => {
    const config = { topicPrefix: uniquePrefix('admin'), partitions: 2 };
    expect(await admin.brokerCount()).toBe(1);
    const specs = topicSpecs(config, 1);
    const names = topicNames(config.topicPrefix);
    expect(specs.map((s) => s.name)).toEqual([names.events, names.directives, names.reports, names.commands, names.commandResults, names.dlq]);

    const first = await admin.ensureTopics(specs);
    expect(first.map((r) => [r.name, r.status])).toEqual(specs.map((s) => [s.name, 'created']));

    const [events] = await admin.describeTopics([names.events], ['retention.ms', 'retention.bytes', 'max.message.bytes', 'cleanup.policy']);
    expect(events).toEqual({
      name: names.events,
      partitions: 2,
      replicationFactor: 1,
      config: { 'retention.ms': '-1', 'retention.bytes': '-1', 'max.message.bytes': String(eventTopicMessageBytesMax), 'cleanup.policy': 'delete' },
    });

    const second = await admin.ensureTopics(specs);
    expect(second.every((r) => r.status === 'ok' && r.mismatches.length === 0)).toBe(true);
  });

  it('reports how an existing topic differs, and leaves it unchanged', async () => {
    const config = { topicPrefix: uniquePrefix('mismatch'), partitions: 2 };
    await admin.ensureTopics(topicSpecs(config, 1));
    const names = topicNames(config.topicPrefix);

    const wanted = topicSpecs({ ...config, partitions: 4 }, 1).map((s) => (s.name === names.events ? { ...s, config: { ...s.config, 'retention.ms': '604800000' } } : s));
    const reports = await admin.ensureTopics(wanted);
    const events = reports.find((r) => r.name === names.events);
    expect(events?.status).toBe('mismatch');
    expect(events?.mismatches).toEqual(['partitions: want 4, have 2', 'retention.ms: want 604800000, have -1']);
    expect(reports.find((r) => r.name === names.dlq)?.status).toBe('ok');

    const [after] = await admin.describeTopics([names.events], ['retention.ms']);
    expect(after).toMatchObject({ partitions: 2, config: { 'retention.ms': '-1' } });

    const tooMany = await admin.ensureTopics([{ ...topicSpecs(config, 1)[0]!, replicationFactor: 3 }]);
    expect(tooMany[0]?.mismatches).toEqual(['replication factor: want 3, have 1']);
  });

  it('describes only topics that exist', async () => {
    expect(await admin.describeTopics([`${uniquePrefix('none')}vcp.events`])).toEqual([]);
  });
});
