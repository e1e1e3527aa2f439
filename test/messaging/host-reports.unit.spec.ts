/**
 * Node daemons over Kafka on a fake broker: the report schemas, the control plane's consumer of
 * vcp.host-reports against the real gateway (service, migrations, telemetry over an in-memory
 * store), and the daemon's Kafka host client (the directive stream's offsets, reports, the fence
 * that waits for the control plane). The same against a real broker: daemon.kafka.spec.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DaemonGateway } from '../../services/control-plane/daemon-gateway.ts';
import { TelemetryStore } from '../../services/control-plane/telemetry.ts';
import { type EventStore, type RecordedEvent, openMemoryEventStore } from '../../services/eventstore/index.ts';
import {
  type HostReportConsumer,
  type HostReportTargets,
  type KafkaHostClient,
  codec,
  commandCodec,
  createKafkaHostClient,
  dlqHeaders,
  eventHeaders,
  eventMessages,
  gatewayBody,
  hostReportCodec,
  hostReportHeaders,
  hostReportKinds,
  loadHostReportSchemaSet,
  startHostReportConsumer,
  topicNames,
} from '../../services/messaging/index.ts';
import type { ControlPlaneClient, DirectiveMessage } from '../../services/node-daemon/index.ts';
import { type FakeKafka, fakeKafka } from '../support/fake-kafka.ts';
import { eventually } from '../support/kafka.ts';
import { examples } from './fixtures/examples.ts';
import { type TestControlPlane, startTestControlPlane } from './fixtures/control-plane.ts';

const prefix = 'r.';
const topics = topicNames(prefix);
const reportCodec = hostReportCodec();
const meta = { actor: 'user:a', correlationId: 'c', causationId: null, idSeed: null };
const fact = (reportId: string, extra: object = {}) => ({ reportId, partitionId: 'vm1', type: 'PartitionCrashed', incarnation: 1, directiveEventId: null, reason: 'guest crashed', ...extra });

describe('host report schemas (schemas/host-reports/)', () => {
  const set = loadHostReportSchemaSet();

  it('has one record vcp.report.<Kind> per kind, hostId first, and documents every record and field', () => {
    expect([...set.subjects.keys()].sort()).toEqual([...hostReportKinds].sort());
    for (const [kind, type] of set.subjects) {
      expect(type.name).toBe(`vcp.report.${kind}`);
      const schema = type.schema({ exportAttrs: true }) as { doc?: string; fields: { name: string; doc?: string; type: unknown }[] };
      expect(schema.doc, kind).toBeTruthy();
      expect(schema.fields[0]?.name).toBe('hostId');
      for (const field of schema.fields) expect(field.doc, `${kind}.${field.name}`).toBeTruthy();
    }
    for (const [name, type] of set.shared) {
      const schema = type.schema({ exportAttrs: true }) as { doc?: string; fields: { name: string; doc?: string }[] };
      expect(schema.doc, name).toBeTruthy();
      for (const field of schema.fields) expect(field.doc, `${name}.${field.name}`).toBeTruthy();
    }
  });

  it('carries each HTTP body unchanged: what a daemon sends decodes to the body the HTTP route takes', () => {
    const roundTrip = (kind: (typeof hostReportKinds)[number], value: object) => {
      const decoded = reportCodec.decode(reportCodec.encode(kind, value));
      expect(decoded.subject).toBe(kind);
      return gatewayBody(kind, decoded.value as { [key: string]: unknown });
    };
    // Fields a daemon leaves out are null, as the HTTP route reads them.
    expect(roundTrip('PartitionReports', { hostId: 'h1', correlationId: 'c', reports: [{ reportId: 'r', partitionId: 'vm1', type: 'PartitionStarted', incarnation: 2, directiveEventId: 'e', memoryAssignedMiB: 1024 }] })).toStrictEqual({
      reports: [{ reportId: 'r', partitionId: 'vm1', type: 'PartitionStarted', incarnation: 2, directiveEventId: 'e', reason: null, code: null, how: null, memoryAssignedMiB: 1024 }],
    });
    const round = { reportId: 'x:round:1', migrationId: 'm', type: 'Round', round: 1, sentMiB: 512.5, durationMs: 40.25, transferredMiB: 512.5, remainingMiB: 12, dirtyRateMiBps: 3.5, throttlePct: 0, expectedDowntimeMs: 1.5 };
    expect(roundTrip('MigrationReports', { hostId: 'h1', correlationId: 'c', reports: [round] })).toStrictEqual({ reports: [{ ...round, finalCopyMiB: null, downtimeMs: null, reason: null }] });
    const fence = { bootId: 'b', turnedOff: ['vm1#2'], how: 'self-fence', reason: 'no renewal for 8001 ms' };
    expect(roundTrip('FencingReport', { hostId: 'h1', correlationId: 'c', ...fence })).toStrictEqual(fence);
    const sample = { bootId: 'b', sampledAtMs: 1_700_000_000_123, host: { cpuUsedLp: 1.25, memoryMiB: 8192 }, partitions: [{ partitionId: 'vm1', incarnation: 2, cpuPct: 62.5, throttlePct: null }] };
    expect(
      roundTrip('TelemetrySample', { hostId: 'h1', bootId: 'b', sampledAtMs: sample.sampledAtMs, host: sample.host, partitions: [{ partitionId: 'vm1', incarnation: 2, figures: { cpuPct: 62.5, throttlePct: null } }] }),
    ).toStrictEqual(sample);
  });
});

describe('the control plane consuming vcp.host-reports (fake broker, real gateway)', () => {
  let store: EventStore;
  let cp: TestControlPlane;
  let gateway: DaemonGateway;
  let telemetry: TelemetryStore;
  let kafka: FakeKafka;
  let consumer: HostReportConsumer;
  let nowMs: number;

  const start = async (targets: HostReportTargets = gateway) => {
    consumer = await startHostReportConsumer({ client: kafka.client, topics, groupId: 'g', gateway: targets, retryDelayMs: 1, nowMs: () => nowMs });
  };
  const deliver = (key: string | null, value: Buffer | null) => kafka.deliver(topics.reports, { key, value });
  const partitionReports = (hostId: string, reports: object[]) => reportCodec.encode('PartitionReports', { hostId, correlationId: `corr-${hostId}`, reports });
  const deadLetters = () => kafka.sent.filter((m) => m.topic === topics.dlq);

  beforeEach(async () => {
    store = openMemoryEventStore();
    cp = await startTestControlPlane(store);
    telemetry = new TelemetryStore();
    gateway = new DaemonGateway(store, cp.service, cp.migrations, telemetry);
    kafka = fakeKafka();
    nowMs = Date.now();
    await cp.service.hostCommand('h1', { type: 'RegisterHost', hostId: 'h1', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 512, labels: {}, limitsPreset: 'modern', limits: {} }, meta);
    await cp.service.createPartition('vm1', 'vm1', { vcpus: 1, memory: { startupMiB: 512 } }, meta);
    await start();
  });
  afterEach(async () => {
    await consumer.close();
    await cp.close();
    await store.close();
  });

  it('records facts through the gateway, and a redelivered report once', async () => {
    const value = partitionReports('h1', [fact('f-1')]);
    await deliver('h1', value);
    await deliver('h1', value);
    const events = await store.readStream('partition-vm1');
    expect(events.map((e) => e.type)).toEqual(['PartitionCreated', 'PartitionReportIgnored']);
    expect(events[1]).toMatchObject({ correlationId: 'corr-h1', actor: 'daemon:h1' });
    expect(consumer.stats()).toMatchObject({ received: 2, partitionReports: 2, factsIgnored: 1, factsDuplicate: 1, deadLettered: 0 });
  });

  it('records a fence once, however often it is delivered', async () => {
    const value = reportCodec.encode('FencingReport', { hostId: 'h1', correlationId: 'f', bootId: 'boot-1', turnedOff: [], how: 'self-fence', reason: 'no renewal' });
    await deliver('h1', value);
    await deliver('h1', value);
    expect((await store.readStream('host-h1')).filter((e) => e.type === 'HostFenced')).toHaveLength(1);
    expect(cp.service.host('h1')?.state).toBe('Fenced');
  });

  it.each([
    ['empty-value', 'h1', () => Buffer.alloc(0)],
    ['not-avro-single-object', 'h1', () => Buffer.from('{"reports":[]}')],
    ['unknown-schema-fingerprint', 'h1', () => commandCodec().encode('CordonHost', { commandId: 'c', actor: 'user:a', correlationId: 'k', hostId: 'h1' })],
    ['unknown-schema-fingerprint', 'h1', () => codec().encodeEvent(examples.HostCordoned)],
    ['undecodable', 'h1', () => partitionReports('h1', [fact('f-1')]).subarray(0, 20)],
    ['key-mismatch', 'h2', () => partitionReports('h1', [fact('f-1')])],
    ['key-mismatch', null, () => partitionReports('h1', [fact('f-1')])],
    ['invalid-report', 'h1', () => partitionReports('h1', [fact('f-1', { type: 'PartitionExploded' })])],
    ['invalid-report', 'h1', () => partitionReports('h1', [])],
    ['invalid-report', 'h'.repeat(201), () => partitionReports('h'.repeat(201), [fact('f-1')])],
    ['unknown-host', 'ghost', () => partitionReports('ghost', [fact('f-1')])],
    ['unknown-host', 'ghost', () => reportCodec.encode('FencingReport', { hostId: 'ghost', correlationId: 'f', bootId: 'b', turnedOff: [], how: 'watchdog', reason: 'r' })],
  ] as const)('dead-letters %s (case %#) with where it came from, and moves on', async (reason, key, value) => {
    const bytes = value();
    const delivered = await deliver(key, bytes);
    const [dead] = deadLetters();
    expect(dead?.headers).toMatchObject({ [dlqHeaders.reason]: reason, [dlqHeaders.sourceTopic]: topics.reports, [dlqHeaders.sourceOffset]: delivered.offset });
    expect(dead?.key).toBe(key);
    expect(dead?.value.equals(bytes)).toBe(true);
    expect(consumer.stats().deadLettered).toBe(1);
    expect((await store.readStream('partition-vm1')).map((e) => e.type)).toEqual(['PartitionCreated']);
    // The next good report is carried out.
    await deliver('h1', partitionReports('h1', [fact('f-2')]));
    expect(consumer.stats().factsIgnored).toBe(1);
  });

  it('tries a failing gateway call again, and gives the message back (uncommitted) after the attempts', async () => {
    await consumer.close();
    let failures = 2;
    const flaky: HostReportTargets = {
      ...gateway,
      reports: async (...args) => {
        if (failures-- > 0) throw new Error('SQLITE_BUSY');
        return gateway.reports(...args);
      },
      migrationReports: (...args) => gateway.migrationReports(...args),
      fenced: (...args) => gateway.fenced(...args),
      telemetrySample: (...args) => gateway.telemetrySample(...args),
    };
    await start(flaky);
    await deliver('h1', partitionReports('h1', [fact('f-1')]));
    expect(consumer.stats()).toMatchObject({ retries: 2, factsIgnored: 1 });

    failures = 1_000;
    await expect(deliver('h1', partitionReports('h1', [fact('f-2')]))).rejects.toThrow(/SQLITE_BUSY/);
    expect(kafka.committed.get(`${topics.reports}/0`)).toBe('1');
    expect(consumer.stats().lastError).toMatch(/SQLITE_BUSY/);
    expect(deadLetters()).toEqual([]);
  });

  it('records telemetry, drops a redelivered or stale sample, and dead-letters an unknown host\'s', async () => {
    const sample = (hostId: string, sampledAtMs: number) =>
      reportCodec.encode('TelemetrySample', { hostId, bootId: 'b', sampledAtMs, host: { cpuUsedLp: 0.5 }, partitions: [{ partitionId: 'vm1', incarnation: 1, figures: { cpuPct: 25 } }] });
    await deliver('h1', sample('h1', nowMs - 1000));
    await deliver('h1', sample('h1', nowMs - 1000));
    await deliver('h1', sample('h1', nowMs - 120_000));
    await deliver('h1', sample('h1', nowMs));
    expect(consumer.stats()).toMatchObject({ telemetrySamples: 2, telemetryDropped: 2 });
    expect(telemetry.host('h1', 10)?.current).toMatchObject({ cpuUsedLp: 0.5 });
    await deliver('ghost', sample('ghost', nowMs));
    expect(deadLetters().map((m) => m.headers[dlqHeaders.reason])).toEqual(['unknown-host']);
  });
});

describe("the daemon's Kafka host client (fake broker)", () => {
  let kafka: FakeKafka;
  let client: KafkaHostClient;
  let store: EventStore;
  const httpCalls: string[] = [];
  const http: ControlPlaneClient = {
    register: async () => httpCalls.push('register'),
    desired: async () => {
      httpCalls.push('desired');
      return { position: 0, partitions: [] };
    },
    report: async () => {
      throw new Error('reports go to Kafka');
    },
    partition: async () => {
      throw new Error('not used');
    },
    migration: async () => {
      throw new Error('not used');
    },
    migrationReport: async () => {
      throw new Error('reports go to Kafka');
    },
    telemetry: async () => {
      throw new Error('telemetry goes to Kafka');
    },
    heartbeat: async () => {
      httpCalls.push('heartbeat');
      return { position: 7, returned: false };
    },
    fenced: async () => {
      throw new Error('fencing goes to Kafka');
    },
    directives: async () => {
      throw new Error('directives come from Kafka');
    },
  };

  beforeEach(async () => {
    kafka = fakeKafka();
    store = openMemoryEventStore();
    httpCalls.length = 0;
    client = createKafkaHostClient({ hostId: 'h1', client: kafka.client, topicPrefix: prefix, http, consumedWaitMsMax: 5_000 });
  });
  afterEach(async () => {
    await client.close();
    await store.close();
  });

  /** The directive messages the relay would publish for these events (key = host). */
  const directivesOf = async (events: { type: string; data: object }[]): Promise<{ event: RecordedEvent; key: string; value: Buffer; headers: { [name: string]: string } }[]> => {
    const recorded = await store.append(
      'partition-p',
      events.map((e, i) => ({ eventId: `00000000-0000-4000-8000-0000000000${String(i).padStart(2, '0')}`, type: e.type, data: e.data as RecordedEvent['data'], metadata: { actor: 'user:a', causationId: null, correlationId: 'c', schemaVersion: 1 } })),
      'any',
    );
    return recorded.events.flatMap((event) =>
      eventMessages(event, topics, codec())
        .filter((m) => m.topic === topics.directives)
        .map((m) => ({ event, key: m.key!, value: m.value, headers: { ...m.headers } })),
    );
  };

  it('yields its host\'s directives above the checkpoint, committing each only when the next is asked for', async () => {
    const start = examples.PartitionStartRequested as { type: string; data: { hostId: string } };
    const stop = examples.PartitionStopRequested as { type: string; data: { hostId: string } };
    const [first, second, third] = await directivesOf([start, stop, start]);
    const stream = await client.directives(1, new AbortController().signal);
    const iterator = stream[Symbol.asyncIterator]();
    const committed = () => kafka.committed.get(`${topics.directives}/0`);

    // Position 1 is at the checkpoint: dropped (and committed); another host's message too.
    await kafka.deliver(topics.directives, first!);
    await kafka.deliver(topics.directives, { key: 'h2', value: second!.value, headers: second!.headers });
    expect(committed()).toBe('2');
    const handed = kafka.deliver(topics.directives, second!);
    const got = await iterator.next();
    expect(got.value).toStrictEqual({ kind: 'directive', directive: { eventId: second!.event.eventId, type: second!.event.type, globalPosition: 2, data: second!.event.data } } satisfies DirectiveMessage);
    let settled = false;
    void handed.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    expect(committed()).toBe('2');

    // Asking for the next one says the daemon is done with this one.
    const next = iterator.next();
    await handed;
    expect(committed()).toBe('3');
    const thirdHanded = kafka.deliver(topics.directives, third!);
    expect((await next).value).toMatchObject({ directive: { globalPosition: 3 } });
    // Leaving the loop (the daemon reconnects): the directive in hand is not committed.
    await iterator.return?.();
    await expect(thirdHanded).rejects.toThrow(/closed/);
    expect(committed()).toBe('3');
    expect(client.stats()).toMatchObject({ directivesReceived: 2, directivesSkipped: 1 });
  });

  it('passes on a directive of an unknown type without its data, and fails the stream on one it cannot read', async () => {
    const stream = await client.directives(0, new AbortController().signal);
    const iterator = stream[Symbol.asyncIterator]();
    const headers = { [eventHeaders.eventId]: 'e-9', [eventHeaders.eventType]: 'PartitionTeleportRequested', [eventHeaders.globalPosition]: '9' };
    const unknown = kafka.deliver(topics.directives, { key: 'h1', value: Buffer.from([0xc3, 1, 0, 0, 0, 0, 0, 0, 0, 0]), headers });
    expect((await iterator.next()).value).toStrictEqual({ kind: 'directive', directive: { eventId: 'e-9', type: 'PartitionTeleportRequested', globalPosition: 9, data: {} } });
    const next = iterator.next();
    await unknown;
    await expect(kafka.deliver(topics.directives, { key: 'h1', value: Buffer.from('garbage'), headers: { [eventHeaders.eventType]: 'PartitionStopRequested' } })).rejects.toThrow(/cannot be read/);
    await expect(next).rejects.toThrow(/cannot be read: NotSingleObjectError/);
  });

  it("fails the stream on a directive keyed with its host that does not concern it (a relay bug), rather than apply it", async () => {
    const [directive] = await directivesOf([examples.PartitionStartRequested as { type: string; data: object }]);
    const forged = createKafkaHostClient({ hostId: 'h7', client: kafka.client, topicPrefix: prefix, http, consumedWaitMsMax: 100 });
    try {
      const next = (await forged.directives(0, new AbortController().signal))[Symbol.asyncIterator]().next();
      await expect(kafka.deliver(topics.directives, { ...directive!, key: 'h7' })).rejects.toThrow(/does not concern it/);
      await expect(next).rejects.toThrow(/keyed with host h7/);
    } finally {
      await forged.close();
    }
  });

  it('ends the stream when its signal aborts, committing nothing more', async () => {
    const [directive] = await directivesOf([examples.PartitionStartRequested as { type: string; data: object }]);
    const abort = new AbortController();
    const iterator = (await client.directives(0, abort.signal))[Symbol.asyncIterator]();
    const handed = kafka.deliver(topics.directives, directive!);
    await iterator.next();
    abort.abort();
    await expect(handed).rejects.toThrow(/closed/);
    expect(await iterator.next()).toStrictEqual({ done: true, value: undefined });
    expect(kafka.committed.get(`${topics.directives}/0`)).toBeUndefined();
  });

  it('sends reports keyed by its host, resolving on the acknowledgement with no results', async () => {
    expect(await client.report([{ reportId: 'r-1', partitionId: 'vm1', type: 'PartitionStarted', incarnation: 1, directiveEventId: 'e', memoryAssignedMiB: 512 }])).toStrictEqual({ results: [] });
    await client.migrationReport([{ reportId: 'm-1', migrationId: 'm', type: 'TargetPrepared' }]);
    await client.telemetry({ bootId: 'b', sampledAtMs: 5, host: { cpuUsedLp: 1 }, partitions: [{ partitionId: 'vm1', incarnation: 1, cpuPct: 50 }] });
    expect(kafka.sent.map((m) => [m.topic, m.key, m.headers[hostReportHeaders.kind], reportCodec.decode(m.value).subject])).toEqual([
      [topics.reports, 'h1', 'PartitionReports', 'PartitionReports'],
      [topics.reports, 'h1', 'MigrationReports', 'MigrationReports'],
      [topics.reports, 'h1', 'TelemetrySample', 'TelemetrySample'],
    ]);
    expect(httpCalls).toEqual([]);
    await client.register({ id: 'h1' });
    await client.heartbeat('b', 0, { leaseMs: 10_000, renewMs: 1000, marginMs: 2000 });
    expect(httpCalls).toEqual(['register', 'heartbeat']);
  });

  it('resolves a fence only once the control plane consumed it, and reads the desired state only after its reports', async () => {
    const store2 = openMemoryEventStore();
    const cp = await startTestControlPlane(store2);
    await cp.service.hostCommand('h1', { type: 'RegisterHost', hostId: 'h1', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 512, labels: {}, limitsPreset: 'modern', limits: {} }, meta);
    const consumer = await startHostReportConsumer({ client: kafka.client, topics, groupId: 'g', gateway: new DaemonGateway(store2, cp.service, cp.migrations, new TelemetryStore()) });
    try {
      let fenced = false;
      const fencing = client.fenced({ bootId: 'b', turnedOff: ['vm1#1'], how: 'self-fence', reason: 'no renewal' }).then(() => {
        fenced = true;
      });
      const sent = await eventually('the fence on Kafka', () => kafka.sent.find((m) => m.topic === topics.reports));
      await new Promise((r) => setTimeout(r, 100));
      expect(fenced).toBe(false);
      await kafka.deliver(topics.reports, { key: sent.key, value: sent.value, headers: sent.headers });
      await fencing;
      expect(cp.service.host('h1')?.state).toBe('Fenced');

      // desired() waits for the reports sent before it, as reconciliation needs.
      await client.report([{ reportId: 'r', partitionId: 'vm1', type: 'PartitionCrashed', incarnation: 1, directiveEventId: null, reason: 'x' }]);
      const desired = client.desired();
      await new Promise((r) => setTimeout(r, 100));
      expect(httpCalls).toEqual([]);
      const report = kafka.sent.filter((m) => m.topic === topics.reports).at(-1)!;
      await kafka.deliver(topics.reports, { key: report.key, value: report.value, headers: report.headers });
      await desired;
      expect(httpCalls).toEqual(['desired']);
    } finally {
      await consumer.close();
      await cp.close();
      await store2.close();
    }
  });

  it('gives up waiting for the control plane after consumedWaitMsMax, naming its group', async () => {
    const impatient = createKafkaHostClient({ hostId: 'h1', client: kafka.client, topicPrefix: prefix, http, consumedWaitMsMax: 100 });
    try {
      await expect(impatient.fenced({ bootId: 'b', turnedOff: [], how: 'watchdog', reason: 'r' })).rejects.toThrow(/consumer group r\.vcp-control-plane-host-reports\) has not consumed/);
    } finally {
      await impatient.close();
    }
  });
});
