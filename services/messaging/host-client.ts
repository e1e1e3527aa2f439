/**
 * The node daemon's ControlPlaneClient in Kafka mode: directives from vcp.host-directives,
 * reports (facts, migration facts, fencing, telemetry) to vcp.host-reports, and over HTTP only
 * what needs an answer.
 *
 * Directives. One consumer group per host (`<prefix>vcp-node-<hostId>`), reading only the
 * partition the host's key lands on (the adapter's key-partition assignment: kafkajs has no
 * manual assign), keeping only messages keyed with this host (partitions are shared by hosts),
 * yielding each envelope as a directive if its globalPosition is above the daemon's checkpoint
 * (`after`) and above the last one yielded (the relay may publish a batch twice after a crash).
 *
 * Offsets: a message's offset is committed only once the daemon asks for the next directive,
 * i.e. once it has applied the previous one, reported it and written its checkpoint (daemon.ts
 * does all three before pulling again). So the committed offset never runs ahead of the daemon's
 * checkpoint: a crash or a closed stream delivers again from the committed offset, and what the
 * daemon had already applied is dropped by position. The committed offset is only where to start
 * reading; the daemon's checkpoint file stays the truth of what it applied, as in embedded mode.
 * A stream that is closed (reconnection, self-fence, shutdown) or fails commits nothing more.
 *
 * Reports resolve once Kafka acknowledged them (idempotent producer, acks = all); the report id
 * stays the idempotency key (the control plane derives the event ids from it). Kafka gives no
 * answer, so report() and migrationReport() return no results: the control plane logs and
 * records (PartitionReportIgnored) what it did not apply. Two things must not overtake a report
 * still in the topic, and wait until the control plane's group has committed past it:
 * - desired() (which reconciliation reads right after reporting what it found: the snapshot must
 *   show those reports, or an old start directive could revive a partition just reported lost);
 * - the lease: fenced() resolves only once the control plane has consumed the fencing report, so
 *   the heartbeat that follows takes the lease after HostFenced, never before (a fence recorded
 *   after a new lease would mark partitions lost that run here under that lease). For the same
 *   reason the first heartbeat waits for every report already in the topic at start-up (a fence
 *   sent by a daemon process that then died).
 *
 * Over HTTP (the given ControlPlaneClient): register, desired, partition and migration reads, and
 * the lease heartbeat. The heartbeat's answer carries the log position and whether the host came
 * back from Failed or Fenced, which the daemon's start barrier and fencing rely on; a one-way
 * topic cannot answer, and a renewal must not queue behind a backlog or a consumer-group
 * rebalance when the lease is 10 s and the margin 2 s.
 */
import { randomUUID } from 'node:crypto';
import { concernsHost } from '../domain/index.ts';
import type { ControlPlaneClient, Desired, DirectiveMessage, Report } from '../node-daemon/index.ts';
import { type EventCodec, createCodec, codec as defaultEventCodec } from './codec.ts';
import { fingerprintHex } from './crc64.ts';
import { type HostReportCodec, type HostReportKind, createHostReportCodec, hostReportCodec, loadHostReportSchemaSet } from './host-report-schemas.ts';
import { type KafkaConfig, type TopicNames, consumerGroups, topicNames } from './kafka-config.ts';
import type { IncomingMessage, KafkaAdmin, KafkaClient, KafkaConsumer, KafkaProducer, Log } from './kafka-port.ts';
import { StopConsuming, silentLog } from './kafka-port.ts';
import { createKafkajsClient } from './kafkajs-adapter.ts';
import { eventHeaders } from './relay.ts';
import { registryFraming } from './schema-registry.ts';
import { loadSchemaSet } from './schemas.ts';

export const hostReportHeaders = {
  hostId: 'vcp-host-id',
  kind: 'vcp-report-kind',
  /** Fingerprint (CRC-64-AVRO, little-endian hex) of the value's schema, vcp.report.<kind>. */
  schemaFingerprint: 'vcp-schema-fingerprint',
  correlationId: 'vcp-correlation-id',
} as const;

/**
 * A consumer of a host's directives is dropped from its group after this long without a
 * heartbeat: a daemon restarted after a crash waits at most this long for the dead member to go.
 */
export const directiveSessionTimeoutMs = 10_000;
/** How often the control plane's committed offsets are read while waiting for it to consume. */
const consumedPollMs = 25;

export type KafkaHostClientOptions = {
  readonly hostId: string;
  readonly client: KafkaClient;
  readonly topicPrefix: string;
  /** The HTTP client for what needs an answer (register, desired, reads, heartbeat). */
  readonly http: ControlPlaneClient;
  /** Longest wait for the control plane to consume reports already sent (desired, fencing, first heartbeat). */
  readonly consumedWaitMsMax: number;
  readonly log?: Log;
  readonly codec?: EventCodec;
  readonly reportCodec?: HostReportCodec;
};

export type KafkaHostClientStats = {
  readonly directivesReceived: number;
  /** Messages of this host at or below the checkpoint (redelivered, or published twice). */
  readonly directivesSkipped: number;
  readonly reportsSent: number;
  readonly sendFailures: number;
  readonly lastError: string | null;
};

export type KafkaHostClient = ControlPlaneClient & {
  stats(): KafkaHostClientStats;
  /** Ends the directive stream (committing nothing more) and closes the producer and admin. */
  close(): Promise<void>;
};

class StreamClosed extends StopConsuming {
  override readonly name = 'StreamClosed';
}

const errorText = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Directive = Extract<DirectiveMessage, { kind: 'directive' }>['directive'];

type Offer = { readonly message: DirectiveMessage; readonly taken: () => void; readonly refused: (error: Error) => void };

/**
 * One open directive stream: eachMessage hands a directive over and waits until the daemon pulls
 * the next one (then it resolves and the adapter commits its offset), or the stream ends (then it
 * rejects and nothing is committed).
 */
function directiveStream(hostId: string, after: number, codec: EventCodec, counters: { directivesReceived: number; directivesSkipped: number }, end: () => void) {
  let lastPosition = after;
  let offered: Offer | null = null;
  let delivered: Offer | null = null;
  let waiting: { resolve: (r: IteratorResult<DirectiveMessage>) => void; reject: (e: unknown) => void } | null = null;
  let ended = false;
  let failure: Error | null = null;

  const finish = (error: Error | null) => {
    if (ended) return;
    ended = true;
    failure = error;
    const closed = new StreamClosed('the directive stream is closed');
    offered?.refused(closed);
    delivered?.refused(closed);
    offered = null;
    delivered = null;
    if (waiting !== null) {
      if (error === null) waiting.resolve({ done: true, value: undefined });
      else waiting.reject(error);
      waiting = null;
    }
    end();
  };

  const directiveOf = async (message: IncomingMessage): Promise<Directive> => {
    const type = message.headers[eventHeaders.eventType];
    // An event type this daemon has no schema for (a newer control plane): passed on without its
    // data, so the daemon skips it with a warning, as it does an unknown type over HTTP.
    if (type !== undefined && !codec.schemas.events.has(type)) {
      const eventId = message.headers[eventHeaders.eventId];
      const globalPosition = Number(message.headers[eventHeaders.globalPosition]);
      if (eventId === undefined || !Number.isSafeInteger(globalPosition)) throw new Error(`directive of unknown type ${type} at offset ${message.offset} lacks its id or position headers`);
      return { eventId, type, globalPosition, data: {} };
    }
    if (message.value === null) throw new Error(`directive at offset ${message.offset} has no value`);
    const event = await codec.decodeEnvelopeAsync(message.value);
    // The relay keys a directive with a host it concerns; anything else is a bug upstream.
    if (!concernsHost(event.type, event.data, hostId)) throw new Error(`${event.type} ${event.eventId} is keyed with host ${hostId} but does not concern it`);
    return { eventId: event.eventId, type: event.type, globalPosition: event.globalPosition, data: event.data };
  };

  const handle = async (message: IncomingMessage): Promise<void> => {
    if (ended) throw new StreamClosed('the directive stream is closed');
    // Partitions are shared by hosts: another host's directive is not ours to apply.
    if (message.key?.toString('utf8') !== hostId) return;
    let directive: Directive;
    try {
      directive = await directiveOf(message);
    } catch (error) {
      // Never skip a directive of ours that cannot be read: the stream fails, the daemon
      // reconnects (with backoff) and meets it again, so the problem stays visible.
      const failed = new Error(`directive at ${message.topic}/${message.partition}@${message.offset} cannot be read: ${errorText(error)}`);
      finish(failed);
      throw failed;
    }
    if (directive.globalPosition <= lastPosition) {
      counters.directivesSkipped += 1;
      return;
    }
    lastPosition = directive.globalPosition;
    counters.directivesReceived += 1;
    const delivery: DirectiveMessage = { kind: 'directive', directive };
    await new Promise<void>((taken, refused) => {
      const offer: Offer = { message: delivery, taken, refused };
      if (waiting !== null) {
        delivered = offer;
        waiting.resolve({ done: false, value: delivery });
        waiting = null;
      } else offered = offer;
    });
  };

  const iterator: AsyncIterator<DirectiveMessage> = {
    next() {
      // Pulling again: the daemon has applied, reported and checkpointed the previous one.
      delivered?.taken();
      delivered = null;
      if (failure !== null) return Promise.reject(failure);
      if (ended) return Promise.resolve({ done: true, value: undefined });
      if (offered !== null) {
        const offer: Offer = offered;
        offered = null;
        delivered = offer;
        return Promise.resolve({ done: false, value: offer.message });
      }
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
      });
    },
    // The daemon left the loop (its apply failed, or it reconnects): the directive in hand was
    // not finished, so its offset is not committed.
    async return() {
      finish(null);
      return { done: true, value: undefined };
    },
  };
  return { handle, finish, iterable: { [Symbol.asyncIterator]: () => iterator } satisfies AsyncIterable<DirectiveMessage> };
}

export function createKafkaHostClient(options: KafkaHostClientOptions): KafkaHostClient {
  const { hostId, client, http } = options;
  const log = options.log ?? silentLog;
  const codec = options.codec ?? defaultEventCodec();
  const reportCodec = options.reportCodec ?? hostReportCodec();
  const topics: TopicNames = topicNames(options.topicPrefix);
  const groups = consumerGroups(options.topicPrefix);
  const counters = { directivesReceived: 0, directivesSkipped: 0, reportsSent: 0, sendFailures: 0 };
  let lastError: string | null = null;
  let closed = false;

  let producer: Promise<KafkaProducer> | null = null;
  let admin: Promise<KafkaAdmin> | null = null;
  /** The open directive stream, and the close of the previous one (a new stream waits for it). */
  let current: { finish: (error: Error | null) => void } | null = null;
  let previousClosed: Promise<void> = Promise.resolve();

  /** Per partition of vcp.host-reports, the last offset the control plane must have consumed. */
  const sent = new Map<number, bigint>();
  /** The same for the reports already in the topic when this client started (earlier daemon processes). */
  let startup: Map<number, bigint> | null = null;
  let startupConsumed = false;

  const connectedAdmin = async (): Promise<KafkaAdmin> => {
    admin ??= client.admin();
    try {
      return await admin;
    } catch (error) {
      admin = null;
      throw error;
    }
  };

  /** With a schema registry: the report schemas' ids, once (tried again after a failure). */
  let prepared: Promise<void> | null = null;
  const prepare = (): Promise<void> => {
    prepared ??= reportCodec.prepare().catch((error: unknown) => {
      prepared = null;
      lastError = errorText(error);
      throw error;
    });
    return prepared;
  };

  const send = async (kind: HostReportKind, value: { [key: string]: unknown }, correlationId: string | null): Promise<void> => {
    if (closed) throw new Error('the Kafka host client is closed');
    await prepare();
    const bytes = reportCodec.encode(kind, value);
    producer ??= client.producer();
    let connected: KafkaProducer;
    try {
      connected = await producer;
    } catch (error) {
      producer = null;
      counters.sendFailures += 1;
      lastError = errorText(error);
      throw error;
    }
    try {
      const headers = {
        [hostReportHeaders.hostId]: hostId,
        [hostReportHeaders.kind]: kind,
        [hostReportHeaders.schemaFingerprint]: fingerprintHex(reportCodec.fingerprint(kind)),
        ...(correlationId === null ? {} : { [hostReportHeaders.correlationId]: correlationId }),
      };
      const reports = await connected.send([{ topic: topics.reports, key: hostId, value: bytes, headers }]);
      counters.reportsSent += 1;
      for (const r of reports) {
        const offset = BigInt(r.baseOffset);
        if (offset >= 0n && offset > (sent.get(r.partition) ?? -1n)) sent.set(r.partition, offset);
      }
    } catch (error) {
      // Its idempotence state may be stale: the caller's retry goes out on a new producer.
      counters.sendFailures += 1;
      lastError = errorText(error);
      if (producer !== null && (await producer.catch(() => null)) === connected) producer = null;
      await connected.close().catch(() => undefined);
      throw error;
    }
  };

  /** Resolves once the control plane's group has committed past every offset in `targets`. */
  const consumed = async (targets: readonly ReadonlyMap<number, bigint>[], what: string): Promise<void> => {
    const need = new Map<number, bigint>();
    for (const target of targets) for (const [partition, offset] of target) need.set(partition, offset > (need.get(partition) ?? -1n) ? offset : (need.get(partition) ?? -1n));
    if (need.size === 0) return;
    const deadlineMs = Date.now() + options.consumedWaitMsMax;
    const connected = await connectedAdmin();
    for (;;) {
      const committed = await connected.committedOffsets(groups.hostReports, topics.reports);
      const behind = [...need].filter(([partition, offset]) => BigInt(committed.get(partition) ?? '-1') <= offset);
      if (behind.length === 0) return;
      if (Date.now() > deadlineMs) {
        const where = behind.map(([p, o]) => `${topics.reports}/${p} up to offset ${o} (committed ${committed.get(p) ?? 'nothing'})`).join(', ');
        throw new Error(`${what}: the control plane (consumer group ${groups.hostReports}) has not consumed ${where} after ${options.consumedWaitMsMax} ms`);
      }
      await sleep(consumedPollMs);
    }
  };

  /** Every report already in the topic when this client started must be consumed before its first lease. */
  const startupReports = async (): Promise<Map<number, bigint>> => {
    if (startup !== null) return startup;
    const ends = await (await connectedAdmin()).endOffsets(topics.reports);
    startup = new Map([...ends].filter(([, end]) => BigInt(end) > 0n).map(([partition, end]) => [partition, BigInt(end) - 1n]));
    return startup;
  };

  const partitionFacts = (reports: readonly Report[]) =>
    reports.map((r) => ({
      reportId: r.reportId,
      partitionId: r.partitionId,
      type: r.type,
      incarnation: r.incarnation,
      directiveEventId: r.directiveEventId,
      reason: r.reason ?? null,
      code: r.code ?? null,
      how: r.how ?? null,
      memoryAssignedMiB: r.memoryAssignedMiB ?? null,
    }));

  return {
    register: (body) => http.register(body),
    async desired(): Promise<Desired> {
      await consumed([await startupReports(), sent], 'reading the desired state');
      return http.desired();
    },
    partition: (partitionId) => http.partition(partitionId),
    migration: (migrationId) => http.migration(migrationId),
    async heartbeat(bootId, checkpointPosition, lease) {
      if (!startupConsumed) {
        await consumed([await startupReports()], 'taking the lease');
        startupConsumed = true;
      }
      return http.heartbeat(bootId, checkpointPosition, lease);
    },
    async report(reports) {
      const correlationId = randomUUID();
      await send('PartitionReports', { hostId, correlationId, reports: partitionFacts(reports) }, correlationId);
      return { results: [] };
    },
    async migrationReport(reports) {
      const correlationId = randomUUID();
      await send('MigrationReports', { hostId, correlationId, reports }, correlationId);
      return { results: [] };
    },
    async fenced(body) {
      const correlationId = randomUUID();
      await send('FencingReport', { hostId, correlationId, ...body }, correlationId);
      // The lease the next heartbeat takes must come after HostFenced in the log.
      await consumed([sent], 'reporting the fence');
      return null;
    },
    async telemetry(sample) {
      const { bootId, sampledAtMs, host, partitions } = sample as {
        bootId: string;
        sampledAtMs: number;
        host: { [figure: string]: unknown };
        partitions: readonly ({ partitionId: string; incarnation: number } & { [figure: string]: unknown })[];
      };
      await send('TelemetrySample', { hostId, bootId, sampledAtMs, host, partitions: partitions.map(({ partitionId, incarnation, ...figures }) => ({ partitionId, incarnation, figures })) }, null);
      return null;
    },
    async directives(after, signal) {
      if (closed) throw new Error('the Kafka host client is closed');
      await previousClosed;
      const none: AsyncIterable<DirectiveMessage> = { [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }) };
      if (signal.aborted) return none;
      const consumer: KafkaConsumer = await client.consumer({
        groupId: groups.node(hostId),
        topics: [topics.directives],
        // A host's first stream reads its partition from the start (7 days kept): a directive
        // published before the group existed must not be missed; positions drop the old ones.
        fromBeginning: true,
        sessionTimeoutMs: directiveSessionTimeoutMs,
        partitionOfKey: hostId,
      });
      let closing: Promise<void> | null = null;
      const stream = directiveStream(hostId, after, codec, counters, () => {
        closing ??= consumer.close().catch((error: unknown) => log.warn({ err: errorText(error) }, 'closing the directive consumer failed'));
        previousClosed = closing;
      });
      current = stream;
      if (signal.aborted) {
        stream.finish(null);
        return none;
      }
      signal.addEventListener('abort', () => stream.finish(null), { once: true });
      try {
        // Resolves once the member joined its group (and was assigned the host's partition).
        await consumer.run({
          eachMessage: async (message) => {
            try {
              await stream.handle(message);
            } catch (error) {
              if (!(error instanceof StreamClosed)) lastError = errorText(error);
              throw error;
            }
          },
        });
      } catch (error) {
        stream.finish(error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
      log.debug({ hostId, after, group: groups.node(hostId) }, 'directive consumer running');
      return stream.iterable;
    },
    stats: () => ({ ...counters, lastError }),
    async close() {
      if (closed) return;
      closed = true;
      current?.finish(null);
      await previousClosed;
      const stale = [producer, admin];
      producer = null;
      admin = null;
      for (const p of stale) {
        const connected = await p?.catch(() => null);
        await connected?.close().catch(() => undefined);
      }
    },
  };
}

/**
 * The Kafka host client of `vcp node` with VCP_KAFKA_BROKERS: the kafkajs adapter over `config`,
 * and the HTTP client of embedded mode for what needs an answer.
 */
export function createKafkaControlPlaneClient(config: KafkaConfig, hostId: string, http: ControlPlaneClient, requestTimeoutMs: number, log: Log): KafkaHostClient {
  // With a schema registry: reports in Confluent framing; directives are read in either framing.
  const registry = registryFraming(config.schemaRegistry);
  const codecs = registry === null ? {} : { codec: createCodec(loadSchemaSet(), registry), reportCodec: createHostReportCodec(loadHostReportSchemaSet(), registry) };
  return createKafkaHostClient({ hostId, client: createKafkajsClient(config, log), topicPrefix: config.topicPrefix, http, consumedWaitMsMax: requestTimeoutMs, log, ...codecs });
}
