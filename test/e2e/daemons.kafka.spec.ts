/**
 * Node daemons on Kafka, real processes: `vcp up --hosts 3` with VCP_KAFKA_BROKERS (a topic prefix
 * of its own) runs a create / start / migrate / stop workflow over HTTP, and ends in the same state
 * (partition states, hosts, incarnations, the event types of every partition stream) as the same
 * workflow under `vcp up` without Kafka, run in the same test. The Kafka run's daemons open no
 * HTTP directive stream, and their facts and migration facts travel on vcp.host-reports.
 */
import { afterAll, expect, it } from 'vitest';
import { type IncomingMessage, createKafkajsClient, hostReportCodec, hostReportHeaders, topicNames } from '../../services/messaging/index.ts';
import { type Collector, collect, describeKafka, kafkaBrokers, testLog, uniquePrefix } from '../support/kafka.ts';
import { api, freePort, killAll, spawnVcp, tempDir, waitFor } from '../support/processes.ts';

afterAll(async () => {
  await killAll();
});

/** Generous: seven processes start on a loaded 2-core machine. */
const stepWaitMs = 90_000;

type Outcome = {
  readonly partitions: { readonly [id: string]: { state: string; hostId: string | null; incarnation: number } };
  readonly history: { readonly [id: string]: readonly string[] };
  readonly migrationPhase: string;
  readonly directiveStreams: readonly number[];
};

async function runWorkflow(name: string, env: Record<string, string>): Promise<Outcome> {
  const port = await freePort();
  const call = api(() => `http://127.0.0.1:${port}`);
  const up = spawnVcp(name, ['up', '--port', String(port), '--data', tempDir(name), '--hosts', '3', '--logical-processors', '4', '--memory-mib', '8192'], env);
  try {
    await waitFor(`${name}: vcp up to print its URLs`, () => (up.output().includes('vcp is up') ? true : undefined), stepWaitMs);
    await waitFor(
      `${name}: three daemons connected`,
      async () => {
        const hosts = (await call('GET', '/v1/hosts')).body.hosts ?? [];
        return hosts.length === 3 && hosts.every((h: { daemon: { connected: boolean }; state: string }) => h.daemon.connected && h.state === 'Up') ? true : undefined;
      },
      stepWaitMs,
    );
    const stateOf = (id: string, state: string) =>
      waitFor(
        `${name}: ${id} ${state}`,
        async () => {
          const { body } = await call('GET', `/v1/partitions/${id}`);
          return body.state === state ? body : undefined;
        },
        stepWaitMs,
      );

    expect((await call('POST', '/v1/partitions', { id: 'web-1', vcpus: 2, memory: { startupMiB: 1024 } })).status).toBe(201);
    expect((await call('POST', '/v1/partitions', { id: 'db-1', vcpus: 1, memory: { startupMiB: 512 } })).status).toBe(201);
    expect((await call('POST', '/v1/partitions/web-1/start', { hostId: 'host-1' })).status).toBe(202);
    expect((await call('POST', '/v1/partitions/db-1/start', { hostId: 'host-2' })).status).toBe(202);
    await stateOf('web-1', 'Running');
    await stateOf('db-1', 'Running');

    const migration = await call('POST', '/v1/partitions/web-1/migrations', { targetHostId: 'host-3', bandwidthMiBps: 4096 });
    expect(migration.status).toBe(202);
    const done = await waitFor(
      `${name}: the migration to end`,
      async () => {
        const m = (await call('GET', `/v1/migrations/${migration.body.id}`)).body;
        return ['Completed', 'Failed', 'Cancelled'].includes(m.phase) ? m : undefined;
      },
      stepWaitMs,
    );
    await waitFor(`${name}: web-1 on host-3`, async () => ((await call('GET', '/v1/partitions/web-1')).body.hostId === 'host-3' ? true : undefined), stepWaitMs);

    expect((await call('POST', '/v1/partitions/db-1/stop')).status).toBe(202);
    await stateOf('db-1', 'Off');

    const partitions: { [id: string]: { state: string; hostId: string | null; incarnation: number } } = {};
    const history: { [id: string]: string[] } = {};
    for (const id of ['web-1', 'db-1']) {
      const { state, hostId, incarnation } = (await call('GET', `/v1/partitions/${id}`)).body;
      partitions[id] = { state, hostId, incarnation };
      history[id] = (await call('GET', `/v1/partitions/${id}/events`)).body.events.map((e: { type: string }) => e.type);
    }
    const hosts = (await call('GET', '/v1/hosts')).body.hosts as { daemon: { directiveStreams: number } }[];
    return { partitions, history, migrationPhase: done.phase, directiveStreams: hosts.map((h) => h.daemon.directiveStreams) };
  } finally {
    expect(await up.stop()).toBe(0);
  }
}

describeKafka('node daemons on Kafka (vcp up, real processes)', () => {
  it('runs create, start, migrate and stop to the same end as embedded mode', async () => {
    const prefix = uniquePrefix('daemons');
    const topics = topicNames(prefix);
    const embedded = await runWorkflow('up-embedded', {});

    const client = createKafkajsClient({ brokers: kafkaBrokers(), clientId: 'vcp-test-daemons', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: prefix, partitions: 3, replicationFactor: null }, testLog, {
      connectionTimeoutMs: 10_000,
    });
    let reports: Collector | null = null;
    let kafka: Outcome;
    try {
      const env = { VCP_KAFKA_BROKERS: kafkaBrokers().join(','), VCP_KAFKA_TOPIC_PREFIX: prefix, VCP_KAFKA_PARTITIONS: '3' };
      const running = runWorkflow('up-kafka', env);
      // The topics exist once the control plane is up; read what the daemons report.
      reports = await waitFor(
        'the Kafka topics',
        async () => {
          const admin = await client.admin();
          try {
            return (await admin.describeTopics([topics.reports])).length === 1 ? await collect(client, [topics.reports]) : undefined;
          } finally {
            await admin.close();
          }
        },
        stepWaitMs,
        500,
      );
      kafka = await running;
      const kinds = (messages: readonly IncomingMessage[]) => new Set(messages.map((m) => `${m.key?.toString()}:${m.headers[hostReportHeaders.kind]}`));
      const seen = await reports.until(
        'facts and migration facts on vcp.host-reports',
        (ms) => kinds(ms).has('host-1:PartitionReports') && kinds(ms).has('host-3:MigrationReports') && kinds(ms).has('host-1:MigrationReports'),
        stepWaitMs,
      );
      for (const m of seen) expect(hostReportCodec().decode(m.value!).value).toMatchObject({ hostId: m.key?.toString() });
    } finally {
      await reports?.close();
    }

    expect(embedded.migrationPhase).toBe('Completed');
    expect(embedded.partitions).toEqual({
      'web-1': { state: 'Running', hostId: 'host-3', incarnation: 2 },
      'db-1': { state: 'Off', hostId: null, incarnation: 1 },
    });
    expect(kafka.migrationPhase).toBe(embedded.migrationPhase);
    expect(kafka.partitions).toEqual(embedded.partitions);
    expect(kafka.history).toEqual(embedded.history);
    // Embedded daemons follow the HTTP stream; the Kafka ones do not open it.
    expect(embedded.directiveStreams).toEqual([1, 1, 1]);
    expect(kafka.directiveStreams).toEqual([0, 0, 0]);
  }, 600_000);

  it('refuses a bad Kafka setting of `vcp node` with one line naming the variable, and exit code 2', async () => {
    const node = spawnVcp('node (bad kafka)', ['node', '--host-id', 'h1', '--data', tempDir('bad-kafka-node')], { VCP_KAFKA_BROKERS: '127.0.0.1:9', VCP_KAFKA_PARTITIONS: 'many' });
    expect(await node.exited()).toBe(2);
    const lines = node.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^vcp node: VCP_KAFKA_PARTITIONS: must be a whole number/);
  });
});
