/**
 * `vcp up` in Kafka mode with a schema registry (VCP_SCHEMA_REGISTRY_URL), real processes, the
 * real broker and the real registry of the global setups. A platform team that uses an ordinary
 * Confluent serde (@kafkajs/confluent-schema-registry, knowing nothing of vcp's code) sends a
 * command, reads its result and follows vcp.events; the daemons get their directives and send
 * their reports in the same framing, and the partition runs as it does in embedded mode.
 */
import { randomUUID } from 'node:crypto';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { afterAll, expect, it } from 'vitest';
import { type KafkaConfig, type KafkaProducer, commandHeaders, createKafkajsClient, topicNames } from '../../services/messaging/index.ts';
import { type Collector, collect, describeKafka, kafkaBrokers, testLog, uniquePrefix } from '../support/kafka.ts';
import { api, freePort, killAll, spawnVcp, tempDir, waitFor } from '../support/processes.ts';
import { schemaRegistryUrl } from '../support/schema-registry.ts';

afterAll(async () => {
  await killAll();
});

type Decoded = { [field: string]: unknown };

describeKafka('vcp up with VCP_KAFKA_BROKERS and VCP_SCHEMA_REGISTRY_URL', () => {
  it('speaks Confluent framing on every topic: a stock Confluent serde sends commands and reads results and events', async () => {
    const registryUrl = schemaRegistryUrl();
    const prefix = uniquePrefix('up-registry');
    const config: KafkaConfig = { brokers: kafkaBrokers(), clientId: 'vcp-test-up-registry', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: prefix, partitions: 3, replicationFactor: null };
    const topics = topicNames(prefix);
    const port = await freePort();
    const call = api(() => `http://127.0.0.1:${port}`);
    const up = spawnVcp('up (kafka, registry)', ['up', '--port', String(port), '--data', tempDir('up-registry'), '--hosts', '2'], {
      VCP_KAFKA_BROKERS: config.brokers.join(','),
      VCP_KAFKA_TOPIC_PREFIX: prefix,
      VCP_KAFKA_PARTITIONS: '3',
      VCP_SCHEMA_REGISTRY_URL: registryUrl,
    });
    await waitFor('vcp up to print its URLs', () => (up.output().includes('vcp is up') ? true : undefined), 120_000);
    await waitFor('two daemons connected', async () => {
      const hosts = (await call('GET', '/v1/hosts')).body.hosts ?? [];
      return hosts.length === 2 && hosts.every((h: { daemon: { connected: boolean } }) => h.daemon.connected) ? true : undefined;
    }, 60_000);

    // The platform team's side: a stock Confluent serde and the registry, nothing of vcp.
    const serde = new SchemaRegistry({ host: registryUrl });
    const client = createKafkajsClient(config, testLog, { connectionTimeoutMs: 10_000 });
    let producer: KafkaProducer | null = null;
    let seen: Collector | null = null;
    try {
      producer = await client.producer();
      seen = await collect(client, [topics.commandResults, topics.events, topics.directives, topics.reports]);
      const send = async (type: string, fields: Decoded): Promise<Decoded> => {
        const commandId = randomUUID();
        const id = await serde.getLatestSchemaId(`vcp.command.${type}`);
        const value = await serde.encode(id, { actor: 'service:platform', commandId, correlationId: randomUUID(), ...fields });
        expect(value[0]).toBe(0);
        await producer!.send([{ topic: topics.commands, key: String(fields.partitionId), value, headers: {} }]);
        const messages = await seen!.until(`the result of ${type}`, (ms) => ms.some((m) => m.topic === topics.commandResults && m.headers[commandHeaders.commandId] === commandId));
        const message = messages.find((m) => m.topic === topics.commandResults && m.headers[commandHeaders.commandId] === commandId)!;
        expect(message.value![0]).toBe(0);
        return (await serde.decode(message.value!)) as Decoded;
      };
      // Fields left out take their schema defaults, as with any Avro writer.
      const created = await send('CreatePartition', { partitionId: 'web-1', vcpus: 2, memory: { startupMiB: 2048 } });
      expect(created).toMatchObject({ outcome: 'accepted', resourceId: 'web-1' });
      expect(await send('StartPartition', { partitionId: 'web-1' })).toMatchObject({ outcome: 'accepted' });

      // The daemon's own fact comes back through the store and the relay, decoded by the serde:
      // the envelope by its id, then the payload (itself Confluent-framed) by its own.
      const started = await waitFor('PartitionStarted of web-1 on vcp.events', async () => {
        for (const m of seen!.messages.filter((x) => x.topic === topics.events && x.key?.toString() === 'partition-web-1')) {
          const envelope = (await serde.decode(m.value!)) as Decoded & { payload: Buffer };
          if (envelope.type === 'PartitionStarted') return { envelope, data: (await serde.decode(envelope.payload)) as Decoded };
        }
        return undefined;
      }, 60_000);
      expect(started.data).toMatchObject({ partitionId: 'web-1', incarnation: 1 });
      expect((await call('GET', '/v1/partitions/web-1')).body).toMatchObject({ state: 'Running', incarnation: 1 });
      expect((await call('GET', '/v1/kafka')).body.wire).toEqual({ framing: 'confluent', schemaRegistry: registryUrl });

      // Every message vcp wrote, on every topic, is Confluent-framed: directives and reports too.
      for (const topic of [topics.events, topics.directives, topics.reports, topics.commandResults]) {
        const values = seen.messages.filter((m) => m.topic === topic).map((m) => m.value!);
        expect(values.length, topic).toBeGreaterThan(0);
        expect(values.filter((v) => v[0] !== 0), topic).toEqual([]);
      }
    } finally {
      await seen?.close();
      await producer?.close();
    }
    expect(await up.stop()).toBe(0);
  }, 240_000);

  it('refuses to start when the registry cannot be reached, with one line naming VCP_SCHEMA_REGISTRY_URL', async () => {
    const closed = await freePort();
    const cp = spawnVcp('control-plane (registry out of reach)', ['control-plane', '--port', '0', '--data', tempDir('registry-down')], {
      VCP_KAFKA_BROKERS: kafkaBrokers().join(','),
      VCP_KAFKA_TOPIC_PREFIX: uniquePrefix('registry-down'),
      VCP_SCHEMA_REGISTRY_URL: `http://127.0.0.1:${closed}/apis/ccompat/v7`,
    });
    expect(await cp.exited()).toBe(1);
    const lines = cp.output().trim().split('\n');
    expect(lines.at(-1)).toMatch(new RegExp(`^vcp control-plane: schema registry at http://127\\.0\\.0\\.1:${closed}/apis/ccompat/v7 \\(VCP_SCHEMA_REGISTRY_URL\\): cannot register vcp\\.`));
  }, 120_000);
});
