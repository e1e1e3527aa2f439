/**
 * A node daemon in Kafka mode against the real broker of the global setup: the control plane
 * (SQLite, HTTP, its Kafka integration with the host-report consumer), a simulated host in this
 * process, and runNodeDaemon with the Kafka host client: directives from vcp.host-directives,
 * reports to vcp.host-reports, only register/desired/reads/heartbeat over HTTP.
 */
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ControlPlaneHandle, defaultControlPlaneConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { type SimHostHandle, createSimHostClient, runSimHost } from '../../services/hypervisor/index.ts';
import { type RecordedEvent, openMemoryEventStore } from '../../services/eventstore/index.ts';
import {
  type KafkaHostClient,
  type KafkaProducer,
  codec,
  consumerGroups,
  createKafkaHostClient,
  dlqHeaders,
  eventMessages,
  hostReportCodec,
} from '../../services/messaging/index.ts';
import { type NodeDaemonHandle, createControlPlaneClient, defaultNodeDaemonConfig, runNodeDaemon } from '../../services/node-daemon/index.ts';
import { type Collector, type TestKafka, collect, describeKafka, kafkaAvailable, kafkaTestTimeoutMs, testKafka, testLog } from '../support/kafka.ts';
import { examples } from './fixtures/examples.ts';
import { api, freePort, tempDir, waitFor } from '../support/processes.ts';

describeKafka('a node daemon in Kafka mode', () => {
  let kafka: TestKafka;
  let port: number;
  let cpDir: string;
  let cp: ControlPlaneHandle;
  let sim: SimHostHandle;
  let hostClient: KafkaHostClient;
  let daemon: NodeDaemonHandle;
  let reports: Collector;
  let producer: KafkaProducer;
  const hostDir = tempDir('kafka-host');
  const call = api(() => `http://127.0.0.1:${port}`);
  const waitMs = 60_000;

  const startControlPlane = () => runControlPlane({ ...defaultControlPlaneConfig, port, dataDir: cpDir, logLevel: 'silent', kafka: kafka.config });
  const hostReports = () => cp.kafka?.().hostReports ?? null;
  const stateOf = (id: string, state: string) =>
    waitFor(
      `${id} to be ${state}`,
      async () => {
        const { body } = await call('GET', `/v1/partitions/${id}`);
        return body.state === state ? body : undefined;
      },
      waitMs,
    );
  const historyOf = async (id: string): Promise<{ type: string; data: { how?: string } }[]> => (await call('GET', `/v1/partitions/${id}/events`)).body.events;

  beforeAll(async () => {
    if (!kafkaAvailable()) return;
    kafka = await testKafka('daemon');
    port = await freePort();
    cpDir = tempDir('kafka-cp');
    cp = await startControlPlane();
    sim = await runSimHost({ hostId: 'h1', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 1024, dataDir: hostDir, tickMs: 100 });
    const controlPlaneUrl = `http://127.0.0.1:${port}`;
    hostClient = createKafkaHostClient({
      hostId: 'h1',
      client: kafka.client,
      topicPrefix: kafka.config.topicPrefix,
      http: createControlPlaneClient(controlPlaneUrl, 'h1', 10_000),
      consumedWaitMsMax: 30_000,
      log: testLog,
    });
    daemon = await runNodeDaemon(
      // A long lease: the control plane is stopped for a while in the last test, and the daemon
      // must not fence itself meanwhile (that is not what is tested here).
      { ...defaultNodeDaemonConfig, hostId: 'h1', controlPlaneUrl, dataDir: hostDir, heartbeatMs: 500, leaseMs: 120_000, marginMs: 2_000, observationPollMs: 100, telemetryMs: 1_000 },
      createSimHostClient({ socketPath: sim.socketPath }),
      pino({ level: 'silent' }),
      { client: hostClient },
    );
    reports = await collect(kafka.client, [kafka.topics.reports, kafka.topics.dlq]);
    producer = await kafka.client.producer();
    await waitFor(
      'h1 registered, its daemon connected and its directive stream open',
      async () => {
        const { status, body } = await call('GET', '/v1/hosts/h1');
        return status === 200 && body.daemon.connected && daemon.connected() ? body : undefined;
      },
      waitMs,
    );
  }, kafkaTestTimeoutMs);

  afterAll(async () => {
    await daemon?.close();
    await hostClient?.close();
    await reports?.close();
    await producer?.close();
    await sim?.close();
    await cp?.close();
  }, kafkaTestTimeoutMs);

  it('starts, reconfigures and stops a partition as in embedded mode, its directives and reports on Kafka', async () => {
    expect((await call('POST', '/v1/partitions', { id: 'vm1', vcpus: 2, memory: { startupMiB: 1024 } })).status).toBe(201);
    expect((await call('POST', '/v1/partitions/vm1/start', {})).status).toBe(202);
    expect(await stateOf('vm1', 'Running')).toMatchObject({ hostId: 'h1', incarnation: 1 });
    expect((await sim.hypervisor.list()).map((p) => [p.partitionId, p.incarnation, p.state])).toEqual([['vm1', 1, 'Running']]);

    expect((await call('PATCH', '/v1/partitions/vm1', { processor: { weight: 300 } })).status).toBe(200);
    await waitFor('the new weight applied live', async () => ((await sim.hypervisor.list())[0]?.processor.weight === 300 ? true : undefined), waitMs);

    expect((await call('POST', '/v1/partitions/vm1/stop')).status).toBe(202);
    await stateOf('vm1', 'Off');
    expect(await sim.hypervisor.list()).toEqual([]);
    // The same history as loop.int.spec.ts's daemon over HTTP writes.
    expect((await historyOf('vm1')).map((e) => e.type)).toEqual([
      'PartitionCreated',
      'PartitionStartRequested',
      'PartitionStarted',
      'PartitionReconfigured',
      'PartitionStopRequested',
      'PartitionStopped',
    ]);

    // The facts came over vcp.host-reports (and not the HTTP routes), the directives over Kafka.
    const host = (await call('GET', '/v1/hosts/h1')).body;
    expect(host.daemon.directiveStreams).toBe(0);
    expect(hostReports()).toMatchObject({ deadLettered: 0 });
    expect(hostReports()!.factsRecorded).toBeGreaterThanOrEqual(2);
    expect(hostClient.stats().directivesReceived).toBeGreaterThanOrEqual(3);
    // The daemon's group reads (and commits) one partition: the one its host's key lands on.
    const admin = await kafka.client.admin();
    try {
      const committed = await admin.committedOffsets(consumerGroups(kafka.config.topicPrefix).node('h1'), kafka.topics.directives);
      expect([...committed.values()].filter((offset) => offset !== '-1')).toHaveLength(1);
    } finally {
      await admin.close();
    }
    await waitFor('telemetry over Kafka', async () => ((await call('GET', '/v1/hosts/h1/telemetry')).body.current !== null ? true : undefined), waitMs);
  });

  it("sends a report keyed with another host, or about an unknown host, to the DLQ and goes on", async () => {
    const codec = hostReportCodec();
    const fact = { reportId: 'forged-1', partitionId: 'vm1', type: 'PartitionCrashed', incarnation: 1, directiveEventId: null, reason: 'forged' };
    const forged = codec.encode('PartitionReports', { hostId: 'h1', correlationId: 'c-forged', reports: [fact] });
    const ghost = codec.encode('PartitionReports', { hostId: 'ghost', correlationId: 'c-ghost', reports: [fact] });
    await producer.send([
      { topic: kafka.topics.reports, key: 'h2', value: forged, headers: {} },
      { topic: kafka.topics.reports, key: 'ghost', value: ghost, headers: {} },
      { topic: kafka.topics.reports, key: 'h1', value: Buffer.from('{"not":"avro"}'), headers: {} },
    ]);
    const dead = await reports.until('three dead letters', (ms) => ms.filter((m) => m.topic === kafka.topics.dlq).length >= 3, waitMs);
    const reasons = dead.filter((m) => m.topic === kafka.topics.dlq).map((m) => [m.key?.toString(), m.headers[dlqHeaders.reason]]);
    expect(reasons.sort()).toEqual([
      ['ghost', 'unknown-host'],
      ['h1', 'not-avro-single-object'],
      ['h2', 'key-mismatch'],
    ]);
    const forgedCopy = dead.find((m) => m.topic === kafka.topics.dlq && m.headers[dlqHeaders.reason] === 'key-mismatch')!;
    expect(forgedCopy.value?.equals(forged)).toBe(true);
    expect(forgedCopy.headers[dlqHeaders.sourceTopic]).toBe(kafka.topics.reports);
    expect(hostReports()!.deadLettered).toBe(3);
    // Nothing of it was recorded, and reports keep flowing.
    expect((await historyOf('vm1')).some((e) => e.type === 'PartitionCrashed' || e.type === 'PartitionReportIgnored')).toBe(false);
    await call('POST', '/v1/partitions', { id: 'vm2', vcpus: 1, memory: { startupMiB: 512 } });
    await call('POST', '/v1/partitions/vm2/start', {});
    await stateOf('vm2', 'Running');
  });

  it('resumes after a control-plane restart: a report sent while it was down is recorded, once', async () => {
    await stateOf('vm2', 'Running');
    await cp.close();
    // The guest shuts itself down while the control plane is away: the daemon reports it to Kafka.
    sim.hypervisor.shutdownFromGuest('vm2');
    const isGuestStop = (value: Buffer | null) => {
      if (value === null || value[0] !== 0xc3) return false; // the garbage of the previous test
      const decoded = hostReportCodec().decode(value);
      return decoded.subject === 'PartitionReports' && (decoded.value as { reports: { partitionId: string; how: string | null }[] }).reports.some((r) => r.partitionId === 'vm2' && r.how === 'guest');
    };
    const [sent] = (await reports.until('the guest stop reported on Kafka', (ms) => ms.some((m) => m.topic === kafka.topics.reports && isGuestStop(m.value)), waitMs)).filter(
      (m) => m.topic === kafka.topics.reports && isGuestStop(m.value),
    );

    cp = await startControlPlane();
    await stateOf('vm2', 'Off');
    // Delivered again (as after a crash between the gateway call and the commit): recorded once.
    await producer.send([{ topic: kafka.topics.reports, key: 'h1', value: sent!.value!, headers: sent!.headers }]);
    await waitFor('the redelivered report seen as a duplicate', () => ((hostReports()?.factsDuplicate ?? 0) >= 1 ? true : undefined), waitMs);
    const stops = (await historyOf('vm2')).filter((e) => e.type === 'PartitionStopped');
    expect(stops).toHaveLength(1);
    expect(stops[0]!.data.how).toBe('guest');
    expect((await historyOf('vm2')).some((e) => e.type === 'PartitionReportIgnored')).toBe(false);

    // The daemon carries on with the restarted control plane.
    await call('POST', '/v1/partitions/vm2/start', {});
    expect(await stateOf('vm2', 'Running')).toMatchObject({ hostId: 'h1', incarnation: 2 });
  });

  it('commits a directive only once the daemon asks for the next: a stream opened again starts with the one that was in hand', async () => {
    // Three directives for a host of their own, as the relay publishes them.
    const store = openMemoryEventStore();
    const start = examples.PartitionStartRequested as { type: string; data: RecordedEvent['data'] };
    const data = { ...start.data, hostId: 'solo' };
    const appended = await store.append(
      'partition-solo-vm',
      [1, 2, 3].map((i) => ({ eventId: `00000000-0000-4000-8000-00000000000${i}`, type: start.type, data, metadata: { actor: 'user:a', causationId: null, correlationId: 'c', schemaVersion: 1 } })),
      'no-stream',
    );
    await store.close();
    await producer.send(appended.events.flatMap((e) => eventMessages(e, kafka.topics, codec())).filter((m) => m.topic === kafka.topics.directives));
    const solo = createKafkaHostClient({ hostId: 'solo', client: kafka.client, topicPrefix: kafka.config.topicPrefix, http: createControlPlaneClient('http://127.0.0.1:9', 'solo', 1000), consumedWaitMsMax: 1000, log: testLog });
    const admin = await kafka.client.admin();
    const committed = async () => [...(await admin.committedOffsets(consumerGroups(kafka.config.topicPrefix).node('solo'), kafka.topics.directives)).values()].filter((o) => o !== '-1');
    try {
      const abort = new AbortController();
      const first = (await solo.directives(0, abort.signal))[Symbol.asyncIterator]();
      expect((await first.next()).value).toMatchObject({ directive: { globalPosition: 1 } });
      expect((await first.next()).value).toMatchObject({ directive: { globalPosition: 2 } });
      // Position 1 is done (the daemon asked for more); 2 is in hand when the stream is aborted.
      abort.abort();
      expect(await first.next()).toStrictEqual({ done: true, value: undefined });
      await waitFor('position 1 committed', async () => ((await committed()).length === 1 ? true : undefined), waitMs);
      const [offset] = await committed();

      const second = (await solo.directives(1, new AbortController().signal))[Symbol.asyncIterator]();
      expect((await second.next()).value).toMatchObject({ directive: { globalPosition: 2 } });
      expect((await second.next()).value).toMatchObject({ directive: { globalPosition: 3 } });
      await waitFor('position 2 committed', async () => ((await committed())[0] === String(Number(offset) + 1) ? true : undefined), waitMs);
      await second.return?.();
    } finally {
      await admin.close();
      await solo.close();
    }
  });
});
