/**
 * Kafka benchmarks (issue 6):
 *  - benchKafkaRelay: events per second from the SQLite store to Kafka through the relay (read,
 *    Avro-encode, publish to vcp.events and vcp.host-directives with acks=all on an idempotent
 *    producer, fsync the checkpoint after each batch), beside the baseline of the same producer
 *    sending the same messages, pre-encoded, in batches of the same size, back to back: the ratio
 *    is what the relay's reads, encoding and checkpoints cost on top of Kafka itself. The two run
 *    in alternating rounds on fresh topics so that drift on a shared machine weighs on both.
 *    It starts its own broker with infra/kafka/kafka.sh (Java 17; Maven once for the jars).
 *  - benchAvroCodec: time per event of encodeEnvelope / decodeEnvelope (Avro single-object, the
 *    payload nested as its own single-object encoding) beside JSON.stringify / JSON.parse of the
 *    same recorded events, and the sizes.
 * Figures are printed, not asserted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMemoryEventStore, openSqliteEventStore, type RecordedEvent } from '../../services/eventstore/index.ts';
import {
  codec,
  createCodec,
  createRegistryFraming,
  createKafkajsClient,
  decodeEnvelope,
  encodeEnvelope,
  eventMessages,
  fileCheckpoint,
  loadSchemaSet,
  type KafkaClient,
  messageBytes,
  type OutgoingMessage,
  relayBatchBytesMax,
  relayBatchEventsMax,
  silentLog,
  startRelay,
  topicNames,
  topicSpecs,
} from '../../services/messaging/index.ts';
import { appendLog } from '../messaging/fixtures/event-log.ts';
import { examples } from '../messaging/fixtures/examples.ts';
import { startKafkaBroker } from '../support/kafka-broker.ts';

const eventsPerRound = 10_000;
const roundCount = 2;
const partitions = 6;

export interface KafkaRelayBenchResult {
  readonly name: string;
  readonly events: number;
  /** Events per second store → Kafka through the relay. */
  readonly relayEventsPerS: number;
  /** Events per second of the bare producer sending the same messages in the same batches. */
  readonly baselineEventsPerS: number;
  /** relay ÷ baseline. */
  readonly ratioToBaseline: number;
  /** Kafka messages per event (vcp.events plus directives). */
  readonly messagesPerEvent: number;
  readonly bytesPerEvent: number;
}

export interface AvroCodecBenchResult {
  readonly name: string;
  readonly avroEncodeUs: number;
  readonly avroDecodeUs: number;
  readonly jsonStringifyUs: number;
  readonly jsonParseUs: number;
  readonly avroBytes: number;
  readonly jsonBytes: number;
  /** Confluent schema-registry framing, ids cached (the steady state). */
  readonly registryEncodeUs: number;
  readonly registryDecodeUs: number;
  readonly registryBytes: number;
}

const perSecond = (count: number, elapsedMs: number) => Math.round((count * 1000) / elapsedMs);
const round2 = (x: number) => Math.round(x * 100) / 100;

/** The relay's batching: at most relayBatchEventsMax events and relayBatchBytesMax bytes per send. */
function batchesOf(events: readonly RecordedEvent[], topics: ReturnType<typeof topicNames>): OutgoingMessage[][] {
  const batches: OutgoingMessage[][] = [];
  let batch: OutgoingMessage[] = [];
  let count = 0;
  let bytes = 0;
  for (const event of events) {
    const own = eventMessages(event, topics, codec());
    const ownBytes = own.reduce((sum, m) => sum + messageBytes(m), 0);
    if (count > 0 && (count === relayBatchEventsMax || bytes + ownBytes > relayBatchBytesMax)) {
      batches.push(batch);
      batch = [];
      count = 0;
      bytes = 0;
    }
    batch.push(...own);
    count += 1;
    bytes += ownBytes;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** The vcp topics under `prefix` (6 partitions each, one replica). */
export async function freshTopics(client: KafkaClient, prefix: string) {
  const admin = await client.admin();
  try {
    await admin.ensureTopics(topicSpecs({ topicPrefix: prefix, partitions }, 1));
  } finally {
    await admin.close();
  }
  return topicNames(prefix);
}

export async function benchKafkaRelay(): Promise<KafkaRelayBenchResult | null> {
  let broker: Awaited<ReturnType<typeof startKafkaBroker>>;
  try {
    broker = await startKafkaBroker();
  } catch (error) {
    console.log(`kafka.relay: SKIPPED, the broker could not start: ${error instanceof Error ? error.message : String(error)}`);
    return null;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vcp-bench-kafka-'));
  const store = openSqliteEventStore({ path: join(dir, 'events.db') });
  const client = createKafkajsClient(
    { brokers: [broker.brokers], clientId: 'vcp-bench', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: '', partitions, replicationFactor: 1 },
    silentLog,
  );
  try {
    const events = await appendLog(store, eventsPerRound * roundCount, { streamCount: 200, perAppend: 500 });
    const relay = { events: 0, ms: 0 };
    const baseline = { events: 0, ms: 0 };
    let messages = 0;
    let bytes = 0;
    for (let round = 0; round < roundCount; round++) {
      const slice = events.slice(round * eventsPerRound, (round + 1) * eventsPerRound);

      // Baseline: the same messages, encoded beforehand, sent batch after batch.
      const rawTopics = await freshTopics(client, `bench-raw-${round}.`);
      const batches = batchesOf(slice, rawTopics);
      const producer = await client.producer();
      await producer.send(batches[0]!.slice(0, 1)); // connect to every broker before timing
      const rawStarted = performance.now();
      for (const batch of batches) await producer.send(batch);
      baseline.ms += performance.now() - rawStarted;
      baseline.events += slice.length;
      await producer.close();
      messages += batches.reduce((n, b) => n + b.length, 0);
      bytes += batches.reduce((n, b) => n + b.reduce((s, m) => s + messageBytes(m), 0), 0);

      // Relay: from the store, starting after the previous rounds' events.
      const relayTopics = await freshTopics(client, `bench-relay-${round}.`);
      const checkpoint = fileCheckpoint(join(dir, `checkpoint-${round}.json`));
      await checkpoint.save(round * eventsPerRound);
      const target = (round + 1) * eventsPerRound;
      const relayStarted = performance.now();
      const running = await startRelay({ store, client, topics: relayTopics, checkpoint });
      while (running.stats().relayedPosition < target) {
        if (running.stats().state !== 'running') throw new Error(`relay stopped: ${running.stats().lastError}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      relay.ms += performance.now() - relayStarted;
      relay.events += target - round * eventsPerRound;
      await running.close();
    }
    const relayEventsPerS = perSecond(relay.events, relay.ms);
    const baselineEventsPerS = perSecond(baseline.events, baseline.ms);
    const result: KafkaRelayBenchResult = {
      name: 'kafka.relay',
      events: relay.events,
      relayEventsPerS,
      baselineEventsPerS,
      ratioToBaseline: round2(relayEventsPerS / baselineEventsPerS),
      messagesPerEvent: round2(messages / baseline.events),
      bytesPerEvent: Math.round(bytes / baseline.events),
    };
    console.log(
      `${result.name}: store→Kafka ${relayEventsPerS} events/s through the relay (${relay.events} events, ${roundCount} rounds, SQLite store, checkpoint fsync per batch); ` +
        `bare idempotent producer, same messages and batches ${baselineEventsPerS} events/s; ratio ${result.ratioToBaseline}`,
    );
    console.log(`${result.name}: ${result.messagesPerEvent} Kafka messages and ${result.bytesPerEvent} bytes per event; ${partitions} partitions, acks=all, 1 broker`);
    return result;
  } finally {
    await store.close();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean µs per call of `fn` over the items, repeated for about measureMs (after a warm-up). */
function timePerItem<T>(items: readonly T[], fn: (item: T) => unknown, measureMs = 1000): number {
  const deadline = performance.now() + measureMs / 5;
  while (performance.now() < deadline) for (const item of items) fn(item);
  let calls = 0;
  const started = performance.now();
  while (performance.now() - started < measureMs) {
    for (const item of items) fn(item);
    calls += items.length;
  }
  return ((performance.now() - started) * 1000) / calls;
}

export async function benchAvroCodec(): Promise<AvroCodecBenchResult> {
  const store = openMemoryEventStore();
  const recorded: RecordedEvent[] = [];
  for (const [index, example] of Object.values(examples).entries()) {
    const result = await store.append(`partition-bench-${index}`, [{ eventId: crypto.randomUUID(), type: example.type, data: example.data as never, metadata: { actor: 'user:bench', causationId: null, correlationId: crypto.randomUUID(), schemaVersion: 1 } }], 'any');
    recorded.push(...result.events);
  }
  await store.close();
  const avro = recorded.map((e) => encodeEnvelope(e));
  const json = recorded.map((e) => JSON.stringify(e));
  // Registry framing: ids from an in-memory registry, registered once; per message, no request.
  const ids = new Map<string, number>();
  const registryCodec = createCodec(
    loadSchemaSet(),
    createRegistryFraming(
      {
        register: async (_subject, schema) => ids.get(schema) ?? ids.set(schema, ids.size + 1).size,
        schemaById: async (id) => [...ids].find(([, n]) => n === id)?.[0] ?? '',
      },
      'memory:',
    ),
  );
  await registryCodec.prepare();
  const framed = recorded.map((e) => registryCodec.encodeEnvelope(e));
  const result: AvroCodecBenchResult = {
    name: 'avro.codec',
    avroEncodeUs: round2(timePerItem(recorded, encodeEnvelope)),
    avroDecodeUs: round2(timePerItem(avro, decodeEnvelope)),
    jsonStringifyUs: round2(timePerItem(recorded, (e) => JSON.stringify(e))),
    jsonParseUs: round2(timePerItem(json, (s) => JSON.parse(s))),
    avroBytes: Math.round(avro.reduce((n, b) => n + b.length, 0) / avro.length),
    jsonBytes: Math.round(json.reduce((n, s) => n + Buffer.byteLength(s), 0) / json.length),
    registryEncodeUs: round2(timePerItem(recorded, (e) => registryCodec.encodeEnvelope(e))),
    registryDecodeUs: round2(timePerItem(framed, (b) => registryCodec.decodeEnvelope(b))),
    registryBytes: Math.round(framed.reduce((n, b) => n + b.length, 0) / framed.length),
  };
  console.log(
    `${result.name}: per event (${recorded.length} event types, envelope + payload) Avro encode ${result.avroEncodeUs} µs, decode ${result.avroDecodeUs} µs; ` +
      `JSON.stringify ${result.jsonStringifyUs} µs, JSON.parse ${result.jsonParseUs} µs; ` +
      `ratios encode ${round2(result.avroEncodeUs / result.jsonStringifyUs)}, decode ${round2(result.avroDecodeUs / result.jsonParseUs)}`,
  );
  console.log(`${result.name}: size ${result.avroBytes} bytes Avro vs ${result.jsonBytes} bytes JSON per event (ratio ${round2(result.avroBytes / result.jsonBytes)})`);
  console.log(
    `${result.name}: Confluent registry framing (ids cached) encode ${result.registryEncodeUs} µs, decode ${result.registryDecodeUs} µs, ${result.registryBytes} bytes ` +
      `(ratios to single-object: encode ${round2(result.registryEncodeUs / result.avroEncodeUs)}, decode ${round2(result.registryDecodeUs / result.avroDecodeUs)}, size ${round2(result.registryBytes / result.avroBytes)})`,
  );
  return result;
}
