/**
 * The control plane's consumer of vcp.host-reports (issue 6), throughput on a real broker: 50
 * hosts' telemetry samples already in the topic, consumed and carried out through the real
 * DaemonGateway (validation, the telemetry store), with offsets committed after each message
 * beside once per fetched batch (the default), and a bare consumer of the same messages (our
 * kafkajs adapter, an eachBatch that only counts) as the baseline, all in the same run. The
 * rate is counted from the first message handled to the last, so the group join is left out.
 * It starts its own broker with infra/kafka/kafka.sh (or uses VCP_KAFKA_TEST_BROKERS).
 * Figures are printed, not asserted.
 */
import { randomUUID } from 'node:crypto';
import { DaemonGateway } from '../../services/control-plane/daemon-gateway.ts';
import { TelemetryStore } from '../../services/control-plane/telemetry.ts';
import { openMemoryEventStore } from '../../services/eventstore/index.ts';
import {
  type KafkaClient,
  type TopicNames,
  createKafkajsClient,
  hostReportCodec,
  hostReportHeaders,
  silentLog,
  startHostReportConsumer,
} from '../../services/messaging/index.ts';
import { startTestControlPlane } from '../messaging/fixtures/control-plane.ts';
import { type KafkaBroker, startKafkaBroker } from '../support/kafka-broker.ts';
import { freshTopics } from './kafka.bench.ts';

const hostCount = 50;
const samplesPerRound = 6_000;
const roundCount = 2;
const partitions = 6;
const pollMs = 5;

export interface HostReportsBenchResult {
  readonly name: string;
  readonly perMessageCommitPerSecond: number;
  readonly perBatchCommitPerSecond: number;
  readonly bareConsumerPerSecond: number;
}

const meta = { actor: 'user:bench', correlationId: 'bench', causationId: null, idSeed: null };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** samplesPerRound telemetry samples of hostCount hosts, produced before anyone consumes. */
async function produceSamples(client: KafkaClient, topics: TopicNames): Promise<void> {
  const codec = hostReportCodec();
  const producer = await client.producer();
  try {
    const startMs = Date.now();
    for (let offset = 0; offset < samplesPerRound; offset += 500) {
      const messages = [];
      for (let i = offset; i < Math.min(samplesPerRound, offset + 500); i++) {
        const hostId = `b${i % hostCount}`;
        const value = codec.encode('TelemetrySample', { hostId, bootId: 'boot', sampledAtMs: startMs + i, host: { cpuUsedLp: 1.5, memoryUsedMiB: 4096 }, partitions: [] });
        messages.push({ topic: topics.reports, key: hostId, value, headers: { [hostReportHeaders.hostId]: hostId, [hostReportHeaders.kind]: 'TelemetrySample' } });
      }
      await producer.send(messages);
    }
  } finally {
    await producer.close();
  }
}

/** Polls `count` until it reaches samplesPerRound; the ms from its first non-zero value to then. */
async function timeFromFirst(count: () => number): Promise<number> {
  let firstMs: number | null = null;
  const deadlineMs = performance.now() + 300_000;
  for (;;) {
    const n = count();
    if (n > 0 && firstMs === null) firstMs = performance.now();
    if (n >= samplesPerRound && firstMs !== null) return Math.max(1, performance.now() - firstMs);
    if (performance.now() > deadlineMs) throw new Error(`only ${n} of ${samplesPerRound} messages consumed in 300 s`);
    await sleep(pollMs);
  }
}

async function consumerRound(client: KafkaClient, commit: 'message' | 'batch'): Promise<number> {
  const topics = await freshTopics(client, `bench-reports-${randomUUID().slice(0, 8)}.`);
  await produceSamples(client, topics);
  const store = openMemoryEventStore();
  const cp = await startTestControlPlane(store);
  for (let h = 0; h < hostCount; h++) {
    const hostId = `b${h}`;
    await cp.service.hostCommand(hostId, { type: 'RegisterHost', hostId, logicalProcessors: 16, memoryMiB: 65_536, parentReserveMiB: 2048, labels: {}, limitsPreset: 'modern', limits: {} }, meta);
  }
  const gateway = new DaemonGateway(store, cp.service, cp.migrations, new TelemetryStore());
  const consumer = await startHostReportConsumer({ client, topics, groupId: `bench-${randomUUID()}`, gateway, commit });
  try {
    const ms = await timeFromFirst(() => consumer.stats().received);
    const stats = consumer.stats();
    if (stats.telemetrySamples !== samplesPerRound || stats.deadLettered !== 0) throw new Error(`unexpected outcome: ${JSON.stringify(stats)}`);
    return ms;
  } finally {
    await consumer.close();
    await cp.close();
    await store.close();
  }
}

async function bareRound(client: KafkaClient): Promise<number> {
  const topics = await freshTopics(client, `bench-reports-${randomUUID().slice(0, 8)}.`);
  await produceSamples(client, topics);
  let count = 0;
  const consumer = await client.consumer({ groupId: `bench-bare-${randomUUID()}`, topics: [topics.reports], fromBeginning: true });
  await consumer.run({
    eachBatch: async (batch) => {
      count += batch.messages.length;
    },
  });
  try {
    return await timeFromFirst(() => count);
  } finally {
    await consumer.close();
  }
}

export async function benchHostReports(): Promise<HostReportsBenchResult | null> {
  let broker: KafkaBroker | null = null;
  let brokers = process.env.VCP_KAFKA_TEST_BROKERS?.trim();
  if (!brokers) {
    try {
      broker = await startKafkaBroker();
      brokers = broker.brokers;
    } catch (error) {
      console.log(`kafka.host-reports: SKIPPED, the broker could not start: ${error instanceof Error ? error.message : String(error)}`);
      return null;
    }
  }
  const client = createKafkajsClient({ brokers: brokers.split(','), clientId: 'vcp-bench', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: '', partitions, replicationFactor: 1 }, silentLog);
  try {
    const ms = { message: 0, batch: 0, bare: 0 };
    // Modes alternate so that drift on a shared machine weighs on each.
    for (let round = 0; round < roundCount; round++) {
      ms.message += await consumerRound(client, 'message');
      ms.batch += await consumerRound(client, 'batch');
      ms.bare += await bareRound(client);
    }
    const rate = (total: number) => Math.round((samplesPerRound * roundCount * 1000) / total);
    const result: HostReportsBenchResult = {
      name: 'kafka.host-reports',
      perMessageCommitPerSecond: rate(ms.message),
      perBatchCommitPerSecond: rate(ms.batch),
      bareConsumerPerSecond: rate(ms.bare),
    };
    console.log(
      `${result.name}: ${samplesPerRound * roundCount} telemetry samples of ${hostCount} hosts through the DaemonGateway: ` +
        `${result.perBatchCommitPerSecond} reports/s committing per batch, ${result.perMessageCommitPerSecond}/s committing per message ` +
        `(ratio ${Math.round((result.perBatchCommitPerSecond / result.perMessageCommitPerSecond) * 100) / 100}); ` +
        `a bare consumer of the same messages ${result.bareConsumerPerSecond}/s (ratio of per-batch to bare ${Math.round((result.perBatchCommitPerSecond / result.bareConsumerPerSecond) * 100) / 100})`,
    );
    return result;
  } finally {
    await broker?.stop();
  }
}
