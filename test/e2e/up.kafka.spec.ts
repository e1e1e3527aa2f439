/**
 * `vcp up` in Kafka mode, real processes and the real broker of the global setup: a platform team
 * sends Avro commands on vcp.commands, reads their results on vcp.command-results, and follows the
 * whole log on vcp.events, up to the daemon's own fact that the partition started. The state the
 * API shows at the end is the one the same workflow reaches over HTTP. A bad Kafka setting stops
 * the control plane with one line and exit code 2.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { type CommandResultValue, type CommandType, type KafkaConfig, type KafkaProducer, commandCodec, commandHeaders, createKafkajsClient, decodeEnvelope, topicNames } from '../../services/messaging/index.ts';
import { type Collector, collect, describeKafka, kafkaAvailable, kafkaBrokers, testLog, uniquePrefix } from '../support/kafka.ts';
import { api, freePort, killAll, spawnVcp, tempDir, waitFor } from '../support/processes.ts';

afterAll(async () => {
  await killAll();
});

const codec = commandCodec();

describeKafka('vcp up with VCP_KAFKA_BROKERS', () => {
  it('takes commands from vcp.commands, answers on vcp.command-results and relays every event, the daemons\' facts included', async () => {
    if (!kafkaAvailable()) kafkaBrokers(); // fails with the reason
    const prefix = uniquePrefix('up');
    const config: KafkaConfig = { brokers: kafkaBrokers(), clientId: 'vcp-test-up', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: prefix, partitions: 3, replicationFactor: null };
    const topics = topicNames(prefix);
    const port = await freePort();
    const call = api(() => `http://127.0.0.1:${port}`);
    const up = spawnVcp('up (kafka)', ['up', '--port', String(port), '--data', tempDir('up-kafka'), '--hosts', '3'], {
      VCP_KAFKA_BROKERS: config.brokers.join(','),
      VCP_KAFKA_TOPIC_PREFIX: prefix,
      VCP_KAFKA_PARTITIONS: '3',
    });
    await waitFor('vcp up to print its URLs', () => (up.output().includes('vcp is up') ? true : undefined), 120_000);
    await waitFor('three daemons connected', async () => {
      const hosts = (await call('GET', '/v1/hosts')).body.hosts ?? [];
      return hosts.length === 3 && hosts.every((h: { daemon: { connected: boolean } }) => h.daemon.connected) ? true : undefined;
    }, 60_000);

    const client = createKafkajsClient(config, testLog, { connectionTimeoutMs: 10_000 });
    let producer: KafkaProducer | null = null;
    let seen: Collector | null = null;
    try {
      producer = await client.producer();
      seen = await collect(client, [topics.commandResults, topics.events]);
      const send = async (type: CommandType, fields: { [key: string]: unknown }): Promise<CommandResultValue> => {
        const commandId = randomUUID();
        await producer!.send([{ topic: topics.commands, key: String(fields.partitionId), value: codec.encode(type, { actor: 'service:platform', commandId, correlationId: randomUUID(), ...fields }), headers: {} }]);
        const [result] = await seen!.until(`the result of ${type}`, (ms) => ms.some((m) => m.topic === topics.commandResults && m.headers[commandHeaders.commandId] === commandId));
        void result;
        const message = seen!.messages.find((m) => m.topic === topics.commandResults && m.headers[commandHeaders.commandId] === commandId)!;
        return codec.decode(message.value!).value as CommandResultValue;
      };
      expect(await send('CreatePartition', { partitionId: 'web-1', vcpus: 2, memory: { startupMiB: 2048 } })).toMatchObject({ outcome: 'accepted' });
      expect(await send('StartPartition', { partitionId: 'web-1' })).toMatchObject({ outcome: 'accepted' });
      const refused = await send('StartPartition', { partitionId: 'no-such-partition' });
      expect(refused.outcome).toBe('rejected');

      // The daemon's fact reaches Kafka through the store: the relay carries everything.
      await seen.until('PartitionStarted of web-1 on vcp.events', (ms) =>
        ms.some((m) => m.topic === topics.events && decodeEnvelope(m.value!).type === 'PartitionStarted'),
      );
      const onKafka = seen.messages.filter((m) => m.topic === topics.events && m.key?.toString() === 'partition-web-1').map((m) => decodeEnvelope(m.value!).type);
      expect(onKafka.slice(0, 3)).toEqual(['PartitionCreated', 'PartitionStartRequested', 'PartitionStarted']);
      // Same state as the HTTP workflow reaches (test/e2e/up.e2e.spec.ts).
      const partition = (await call('GET', '/v1/partitions/web-1')).body;
      expect(partition).toMatchObject({ state: 'Running', incarnation: 1 });
      const history = (await call('GET', '/v1/partitions/web-1/events')).body.events.map((e: { type: string }) => e.type);
      expect(history.slice(0, 3)).toEqual(onKafka.slice(0, 3));
      // The figures an SRE watches: the relay caught up, the commands counted.
      const figures = await waitFor('the relay caught up', async () => {
        const body = (await call('GET', '/v1/kafka')).body;
        return body.relay?.lag === 0 ? body : undefined;
      }, 30_000);
      expect(figures.relay.relayedPosition).toBeGreaterThanOrEqual(history.length);
      expect(JSON.stringify(figures.commands)).toMatch(/[1-9]/);
      expect(figures.wire).toEqual({ framing: 'single-object', schemaRegistry: null });
    } finally {
      await seen?.close();
      await producer?.close();
    }
    expect(await up.stop()).toBe(0);
  }, 240_000);

  it('refuses a bad Kafka setting with one line naming the variable, and exit code 2', async () => {
    const cp = spawnVcp('control-plane (bad kafka)', ['control-plane', '--port', '0', '--data', tempDir('bad-kafka')], { VCP_KAFKA_BROKERS: '127.0.0.1:9', VCP_KAFKA_SSL: 'yes' });
    expect(await cp.exited()).toBe(2);
    const lines = cp.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/VCP_KAFKA_SSL/);
  });
});
