/**
 * Kafka for tests: the broker of the global setup (kafka-global-setup.ts), a client on it, unique
 * topic prefixes and group ids so that test files running at once never share a topic, and a
 * collector that reads a topic until a condition holds.
 */
import { randomUUID } from 'node:crypto';
import { beforeEach, describe, inject } from 'vitest';
import { waitFor } from './processes.ts';
import {
  type IncomingMessage,
  type KafkaClient,
  type KafkaConfig,
  type Log,
  type TopicNames,
  createKafkajsClient,
  silentLog,
  topicNames,
  topicSpecs,
} from '../../services/messaging/index.ts';

export type KafkaProvided = { readonly brokers: string } | { readonly error: string };

declare module 'vitest' {
  export interface ProvidedContext {
    kafka: KafkaProvided;
  }
}

/** The broker's address; throws (failing the test) with the reason when there is none. */
export function kafkaBrokers(): string[] {
  const provided = inject('kafka');
  if (provided === undefined) {
    throw new Error('no Kafka broker: test/support/kafka-global-setup.ts is not in vitest.config.ts globalSetup');
  }
  if ('error' in provided) {
    throw new Error(
      `no Kafka broker for this test: ${provided.error}\n` +
        'The global setup starts one with infra/kafka/kafka.sh (needs Java 17, and Maven for the first fetch); ' +
        'or set VCP_KAFKA_TEST_BROKERS=host:port to use a running broker.',
    );
  }
  return provided.brokers.split(',');
}

/**
 * Per test and per hook of a Kafka spec: a group join on a fresh broker waits for the offsets
 * topic to load, and the machine may be loaded; conditions are awaited, never timed.
 */
export const kafkaTestTimeoutMs = 120_000;

/** Whether the global setup provided a broker (set-up hooks skip their work when not). */
export function kafkaAvailable(): boolean {
  const provided = inject('kafka');
  return provided !== undefined && !('error' in provided);
}

/**
 * A describe block of Kafka tests: each test fails with the reason when there is no broker (a
 * failing beforeAll would only mark them skipped), and gets kafkaTestTimeoutMs.
 */
export function describeKafka(name: string, body: () => void): void {
  describe(name, { timeout: kafkaTestTimeoutMs }, () => {
    beforeEach(() => {
      kafkaBrokers();
    });
    body();
  });
}

/** Set VCP_TEST_LOG=1 to see the components' logs. */
export const testLog: Log =
  process.env.VCP_TEST_LOG === '1'
    ? {
        debug: () => {},
        info: (f, m) => console.log('INFO', m, JSON.stringify(f)),
        warn: (f, m) => console.log('WARN', m, JSON.stringify(f)),
        error: (f, m) => console.log('ERROR', m, JSON.stringify(f)),
      }
    : silentLog;

/** A topic prefix of its own for one test (Kafka topic names: letters, digits, '.', '_', '-'). */
export const uniquePrefix = (name: string): string => `t-${name}-${randomUUID().slice(0, 8)}.`;

export type TestKafka = { readonly config: KafkaConfig; readonly client: KafkaClient; readonly topics: TopicNames };

/** A client and the vcp topics under a fresh prefix (3 partitions each, so keys really spread). */
export async function testKafka(name: string, partitions = 3): Promise<TestKafka> {
  const config: KafkaConfig = {
    brokers: kafkaBrokers(),
    clientId: `vcp-test-${name}`,
    ssl: null,
    sasl: null,
    schemaRegistry: null,
    topicPrefix: uniquePrefix(name),
    partitions,
    replicationFactor: 1,
  };
  const client = createKafkajsClient(config, testLog, { connectionTimeoutMs: 10_000 });
  const admin = await client.admin();
  try {
    const reports = await admin.ensureTopics(topicSpecs(config, 1));
    const bad = reports.filter((r) => r.status !== 'created');
    if (bad.length > 0) throw new Error(`test topics not created: ${JSON.stringify(bad)}`);
  } finally {
    await admin.close();
  }
  return { config, client, topics: topicNames(config.topicPrefix) };
}

/** waitFor (test/support/processes.ts) with the longer default a Kafka round trip on a fresh broker wants. */
export function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, intervalMs = 100): Promise<T> {
  return waitFor(what, probe, timeoutMs, intervalMs);
}

export type Collector = {
  readonly messages: IncomingMessage[];
  /** Resolves with the messages once `done(messages)` holds. */
  until(what: string, done: (messages: readonly IncomingMessage[]) => boolean, timeoutMs?: number): Promise<IncomingMessage[]>;
  close(): Promise<void>;
};

/** Reads `topics` from the beginning in a group of its own. */
export async function collect(client: KafkaClient, topics: readonly string[]): Promise<Collector> {
  const messages: IncomingMessage[] = [];
  const consumer = await client.consumer({ groupId: `test-collector-${randomUUID()}`, topics, fromBeginning: true });
  await consumer.run({
    eachBatch: async (batch) => {
      messages.push(...batch.messages);
    },
  });
  return {
    messages,
    until: (what, done, timeoutMs = 60_000) => eventually(what, () => (done(messages) ? [...messages] : undefined), timeoutMs),
    close: () => consumer.close(),
  };
}
