/**
 * The Kafka port over kafkajs 2.2.4, the only file that imports kafkajs.
 *
 * kafkajs is unmaintained (last release 2023-02, maintainer's "looking for maintainers" #1603),
 * speaks only the classic group protocol, and its idempotent producer is labelled experimental.
 * The way out is @confluentinc/kafka-javascript, whose `KafkaJS` namespace mirrors this API (its
 * differences: acks/compression move to the producer config, `eachBatch` batch size is
 * `js.consumer.max.batch.size`, no custom partitioners): a second adapter of kafka-port.ts.
 */
import { type Admin, AssignerProtocol, type Consumer, Kafka, type KafkaMessage, type PartitionAssigner, type Producer, Partitioners, type SASLOptions, logLevel } from 'kafkajs';
import type { KafkaConfig } from './kafka-config.ts';
import {
  type ConsumerHandler,
  type ConsumerOptions,
  type DeliveryReport,
  type IncomingMessage,
  type KafkaAdmin,
  type KafkaClient,
  type KafkaConsumer,
  type KafkaHeaders,
  type KafkaProducer,
  type Log,
  type OutgoingMessage,
  StopConsuming,
  type TopicDescription,
  type TopicReport,
  type TopicSpec,
  nextOffset,
  topicMismatches,
} from './kafka-port.ts';

/** kafkajs' ConfigResourceTypes.TOPIC (the enum is not a named ESM export of the CJS package). */
const configResourceTopic = 2;

export type KafkajsClientOptions = {
  /** A TCP connection must be up within this (kafkajs default 1000, short for a loaded machine). */
  readonly connectionTimeoutMs?: number;
  /** One request must be answered within this (kafkajs default 30 000). */
  readonly requestTimeoutMs?: number;
};

/**
 * kafkajs retries each request itself; these bound how long one send may block on an outage
 * before it rejects (about 30 s with the backoff), after which the caller (the relay) resends
 * the same batch on a fresh producer.
 */
const consumerFetchWaitMsMax = 1_000;

const producerRetry = { retries: 8, initialRetryTime: 200, maxRetryTime: 5_000 };

export function createKafkajsClient(config: KafkaConfig, log: Log, options: KafkajsClientOptions = {}): KafkaClient {
  const kafka = new Kafka({
    clientId: config.clientId,
    brokers: [...config.brokers],
    ssl: config.ssl === null ? false : config.ssl.ca === null ? true : { ca: [config.ssl.ca] },
    ...(config.sasl === null ? {} : { sasl: saslOptions(config.sasl) }),
    connectionTimeout: options.connectionTimeoutMs ?? 5_000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    logLevel: logLevel.INFO,
    logCreator: () => (entry) => {
      const { message, ...extra } = entry.log;
      const fields = { kafka: entry.namespace, ...extra };
      // Expected with our settings: the relay bounds retries and resends on a new producer, and
      // every consumer deduplicates by event id, so this is not news for an operator.
      if (message.startsWith('Limiting retries for the idempotent producer')) return log.debug(fields, message);
      // A broker's error response on one connection (coordinator loading, leader moving) is
      // retried by kafkajs; only what still fails after the retries reaches our callers.
      if (entry.level === logLevel.ERROR && entry.namespace === 'Connection') return log.warn(fields, message);
      if (entry.level === logLevel.ERROR) log.error(fields, message);
      else if (entry.level === logLevel.WARN) log.warn(fields, message);
      else log.debug(fields, message);
    },
  });

  return {
    async producer() {
      // idempotent requires acks = -1 and allows at most 5 requests in flight; 1 keeps a retried
      // batch from overtaking the next one even if the broker lost the producer's state.
      // DefaultPartitioner: murmur2 of the key, as the Java client's (named, so kafkajs does not warn).
      const producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        retry: producerRetry,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      return wrapProducer(producer);
    },
    async consumer(consumerOptions) {
      const consumer = kafka.consumer({
        groupId: consumerOptions.groupId,
        ...(consumerOptions.partitionOfKey === undefined ? {} : { partitionAssigners: [keyPartitionAssigner(consumerOptions.partitionOfKey)] }),
        sessionTimeout: consumerOptions.sessionTimeoutMs ?? 30_000,
        // How long one fetch waits for data (kafkajs default 5000): close() waits for the fetch
        // in flight, so this bounds a shutdown; an idle member polls once a second.
        maxWaitTimeInMs: consumerFetchWaitMsMax,
        allowAutoTopicCreation: false,
        // Only committed transactional messages (kafkajs' default, stated).
        readUncommitted: false,
      });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [...consumerOptions.topics], fromBeginning: consumerOptions.fromBeginning });
      } catch (error) {
        await consumer.disconnect().catch(() => undefined);
        throw error;
      }
      return wrapConsumer(consumer, consumerOptions);
    },
    async admin() {
      const admin = kafka.admin();
      await admin.connect();
      return wrapAdmin(admin);
    },
  };
}

/** The partition `key` lands on among `partitionCount` with the producer's partitioner (murmur2, as Java's). */
function partitionForKey(key: string, partitionCount: number): number {
  const partitionMetadata = Array.from({ length: partitionCount }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
  return Partitioners.DefaultPartitioner()({ topic: '', partitionMetadata, message: { key, value: null } });
}

const keyPartitionAssignerName = 'VcpKeyPartitionAssigner';

/**
 * A group assignment that gives one member (the first by member id) the partition `key` lands on,
 * in each subscribed topic, and nothing else to anyone: kafkajs has no manual assignment, and a
 * group of one member would otherwise fetch every partition. The partition count is read from
 * the metadata the group leader refreshes before it assigns.
 */
function keyPartitionAssigner(key: string): PartitionAssigner {
  return ({ cluster }) => ({
    name: keyPartitionAssignerName,
    version: 1,
    async assign({ members, topics }) {
      const owner = members.map((m) => m.memberId).sort()[0];
      const assignment: { [topic: string]: number[] } = {};
      for (const topic of topics) {
        const partitionCount = cluster.findTopicPartitionMetadata(topic).length;
        if (partitionCount > 0) assignment[topic] = [partitionForKey(key, partitionCount)];
      }
      return members.map(({ memberId }) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: memberId === owner ? assignment : {}, userData: Buffer.alloc(0) }),
      }));
    },
    protocol({ topics }) {
      return { name: keyPartitionAssignerName, metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
    },
  });
}

function saslOptions(sasl: NonNullable<KafkaConfig['sasl']>): SASLOptions {
  const { username, password } = sasl;
  switch (sasl.mechanism) {
    case 'plain':
      return { mechanism: 'plain', username, password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username, password };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', username, password };
    default: {
      const unreachable: never = sasl.mechanism;
      throw new Error(`unknown SASL mechanism ${String(unreachable)}`);
    }
  }
}

function wrapProducer(producer: Producer): KafkaProducer {
  return {
    async send(messages: readonly OutgoingMessage[]): Promise<readonly DeliveryReport[]> {
      if (messages.length === 0) return [];
      const byTopic = new Map<string, { key: string | null; value: Buffer; headers: { [name: string]: string } }[]>();
      for (const m of messages) {
        const list = byTopic.get(m.topic) ?? [];
        list.push({ key: m.key, value: m.value, headers: { ...m.headers } });
        byTopic.set(m.topic, list);
      }
      const results = await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })),
      });
      return results.map((r) => ({ topic: r.topicName, partition: r.partition, baseOffset: r.baseOffset ?? r.offset ?? '-1' }));
    },
    close: () => producer.disconnect(),
  };
}

function headersOf(message: KafkaMessage): KafkaHeaders {
  const out: { [name: string]: string } = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value === undefined) continue;
    // A header may repeat (an array); the last value wins, as in most HTTP-like readers.
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    if (last !== undefined) out[name] = Buffer.isBuffer(last) ? last.toString('utf8') : String(last);
  }
  return out;
}

function incoming(topic: string, partition: number, message: KafkaMessage): IncomingMessage {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key,
    value: message.value,
    headers: headersOf(message),
    timestampMs: Number(message.timestamp),
  };
}

function wrapConsumer(consumer: Consumer, options: ConsumerOptions): KafkaConsumer {
  const topics = options.topics.map((topic) => ({ topic }));
  let closed = false;
  return {
    async run(handler: ConsumerHandler) {
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary, pause }) => {
          const commit = (offset: string) =>
            commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: nextOffset(offset) }] }] });
          /** A handler stopping (its consumer closes): nothing more is committed or fetched here, quietly. */
          const stopped = (error: unknown): boolean => {
            if (!(error instanceof StopConsuming)) return false;
            pause();
            return true;
          };
          if ('eachBatch' in handler) {
            const last = batch.messages[batch.messages.length - 1];
            if (last === undefined || !isRunning() || isStale()) return;
            try {
              await handler.eachBatch({ topic: batch.topic, partition: batch.partition, messages: batch.messages.map((m) => incoming(batch.topic, batch.partition, m)) });
            } catch (error) {
              if (stopped(error)) return;
              throw error;
            }
            resolveOffset(last.offset);
            await commit(last.offset);
            return;
          }
          const perBatch = options.commit === 'batch';
          /** The last handled offset not committed yet ('batch' mode). */
          let handled: string | null = null;
          const commitHandled = async () => {
            if (handled === null) return;
            const offset = handled;
            handled = null;
            await commit(offset);
          };
          for (const message of batch.messages) {
            // A rebalance or a seek makes the rest of this batch someone else's (or stale).
            if (!isRunning() || isStale()) break;
            try {
              await handler.eachMessage(incoming(batch.topic, batch.partition, message));
            } catch (error) {
              // What was handled before stays handled: commit it (a failed commit only means
              // redelivery, which the handlers absorb), then stop or fail as before.
              await commitHandled().catch(() => undefined);
              if (stopped(error)) return;
              throw error;
            }
            resolveOffset(message.offset);
            if (perBatch) handled = message.offset;
            else await commit(message.offset);
            await heartbeat();
          }
          // A partition taken away by a rebalance is not ours to commit: its next owner gets the
          // uncommitted rest again, and the handlers absorb redelivery.
          if (isRunning() && !isStale()) await commitHandled();
        },
      });
    },
    pause: () => consumer.pause(topics),
    resume: () => consumer.resume(topics),
    async close() {
      if (closed) return;
      closed = true;
      await consumer.disconnect();
    },
  };
}

/** A new topic must have a leader for every partition within this. */
const topicReadyWaitMsMax = 30_000;
const topicReadyPollMs = 100;

/** kafkajs marks errors a retry may cure (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, ...). */
const isRetriable = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && ((error as { retriable?: unknown }).retriable === true || (error as { name?: unknown }).name === 'KafkaJSNumberOfRetriesExceeded');

function wrapAdmin(admin: Admin): KafkaAdmin {
  /**
   * Waits until the topics exist with a leader for every partition. kafkajs' own wait
   * (createTopics waitForLeaders) retries only LEADER_NOT_AVAILABLE, while a KRaft broker answers
   * UNKNOWN_TOPIC_OR_PARTITION for a moment after the creation.
   */
  const waitForTopics = async (names: readonly string[]): Promise<void> => {
    const deadlineMs = Date.now() + topicReadyWaitMsMax;
    let lastError: unknown = null;
    for (;;) {
      try {
        const existing = new Set(await admin.listTopics());
        if (names.every((n) => existing.has(n))) {
          const { topics } = await admin.fetchTopicMetadata({ topics: [...names] });
          if (topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
        }
      } catch (error) {
        if (!isRetriable(error)) throw error;
        lastError = error;
      }
      if (Date.now() > deadlineMs) {
        const why = lastError instanceof Error ? `: ${lastError.message}` : '';
        throw new Error(`topics ${names.join(', ')} have no leader for every partition after ${topicReadyWaitMsMax} ms${why}`);
      }
      await new Promise((resolve) => setTimeout(resolve, topicReadyPollMs));
    }
  };

  const describeTopics = async (names: readonly string[], configNames: readonly string[] = []): Promise<TopicDescription[]> => {
    const existing = new Set(await admin.listTopics());
    const present = names.filter((n) => existing.has(n));
    if (present.length === 0) return [];
    const { topics } = await admin.fetchTopicMetadata({ topics: present });
    const configs = new Map<string, { [name: string]: string }>();
    if (configNames.length > 0) {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: present.map((name) => ({ type: configResourceTopic, name, configNames: [...configNames] })),
      });
      for (const resource of described.resources) {
        configs.set(resource.resourceName, Object.fromEntries(resource.configEntries.map((e) => [e.configName, e.configValue])));
      }
    }
    return topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.length,
      replicationFactor: t.partitions[0]?.replicas.length ?? 0,
      config: configs.get(t.name) ?? {},
    }));
  };

  return {
    describeTopics,
    async ensureTopics(specs: readonly TopicSpec[]): Promise<readonly TopicReport[]> {
      const existing = new Set(await admin.listTopics());
      const missing = specs.filter((s) => !existing.has(s.name));
      if (missing.length > 0) {
        // Another instance may create them at the same moment: kafkajs then answers false or
        // throws TOPIC_ALREADY_EXISTS; either way the describe below tells what is there.
        await admin
          .createTopics({
            waitForLeaders: false,
            topics: missing.map((s) => ({
              topic: s.name,
              numPartitions: s.partitions,
              replicationFactor: s.replicationFactor,
              configEntries: Object.entries(s.config).map(([name, value]) => ({ name, value })),
            })),
          })
          .catch((error: unknown) => {
            if (!(error instanceof Error && /already exists/i.test(error.message))) throw error;
          });
        await waitForTopics(missing.map((s) => s.name));
      }
      const configNames = [...new Set(specs.flatMap((s) => Object.keys(s.config)))];
      const described = new Map((await describeTopics(specs.map((s) => s.name), configNames)).map((d) => [d.name, d]));
      return specs.map((spec) => {
        const found = described.get(spec.name);
        const created = missing.includes(spec);
        if (found === undefined) return { name: spec.name, status: 'mismatch' as const, mismatches: ['topic does not exist after creation'] };
        const mismatches = topicMismatches(spec, found);
        return { name: spec.name, status: mismatches.length > 0 ? ('mismatch' as const) : created ? ('created' as const) : ('ok' as const), mismatches };
      });
    },
    async brokerCount() {
      return (await admin.describeCluster()).brokers.length;
    },
    async committedOffsets(groupId, topic) {
      const [found] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return new Map((found?.partitions ?? []).map((p) => [p.partition, p.offset]));
    },
    async endOffsets(topic) {
      return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.high]));
    },
    close: () => admin.disconnect(),
  };
}
