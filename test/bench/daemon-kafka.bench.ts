/**
 * Node daemons on Kafka (issue 6): the latency from a start's acknowledgement (POST
 * /v1/partitions/:id/start answered 202) to the daemon's PartitionStarted appended to the store,
 * p50 and p99, with the daemons in embedded mode (HTTP directive stream, reports over HTTP) beside
 * Kafka mode (directives from vcp.host-directives through the relay, reports on vcp.host-reports
 * through the control plane's consumer), in the same run.
 *
 * Everything runs in this process, as in test/control-plane/loop.int.spec.ts: the control plane
 * (SQLite, HTTP), three simulated hosts on their Unix sockets and their daemons. The modes
 * alternate in rounds (fresh control plane, hosts and topics each round) so that drift on a
 * shared machine weighs on both. Starts are sequential: this is latency, not throughput.
 * It starts its own broker with infra/kafka/kafka.sh (or uses VCP_KAFKA_TEST_BROKERS).
 * Figures are printed, not asserted.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { defaultControlPlaneConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { createSimHostClient, runSimHost } from '../../services/hypervisor/index.ts';
import { type KafkaConfig, type KafkaHostClient, createKafkaHostClient, createKafkajsClient, silentLog } from '../../services/messaging/index.ts';
import { createControlPlaneClient, defaultNodeDaemonConfig, runNodeDaemon } from '../../services/node-daemon/index.ts';
import { type KafkaBroker, startKafkaBroker } from '../support/kafka-broker.ts';

const roundCount = 2;
const startsPerRound = 100;
/** Starts at the beginning of each round left out of the figures (connections, JIT, group joins). */
const warmupStarts = 10;
const hostIds = ['k1', 'k2', 'k3'];

export interface DaemonLatencyBenchResult {
  readonly name: string;
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
const round1 = (x: number) => Math.round(x * 10) / 10;

/** One round: a fresh control plane, hosts and daemons in the given mode; the latencies of its starts. */
async function measureRound(kafka: KafkaConfig | null): Promise<number[]> {
  const root = mkdtempSync(join(tmpdir(), 'vcp-bench-daemon-'));
  const cp = await runControlPlane({ ...defaultControlPlaneConfig, port: 0, dataDir: join(root, 'cp'), logLevel: 'silent', kafka });
  const closers: (() => Promise<void>)[] = [];
  // When the daemon's PartitionStarted of each partition was appended (the store notifies in process).
  const startedAt = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const subscription = cp.store.subscribeAll({
    after: await cp.store.headPosition(),
    onEvents: async (events) => {
      const nowMs = performance.now();
      for (const e of events) {
        if (e.type !== 'PartitionStarted') continue;
        const id = e.streamId.slice('partition-'.length);
        startedAt.set(id, nowMs);
        waiters.get(id)?.();
      }
    },
  });
  const post = async (path: string, body: unknown) => {
    const response = await fetch(cp.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const answeredMs = performance.now();
    const text = await response.text();
    if (response.status >= 300) throw new Error(`${path}: ${response.status} ${text}`);
    return answeredMs;
  };
  try {
    for (const hostId of hostIds) {
      const dataDir = join(root, hostId);
      const sim = await runSimHost({ hostId, logicalProcessors: 64, memoryMiB: 262_144, parentReserveMiB: 2048, dataDir, tickMs: 1000 });
      const config = { ...defaultNodeDaemonConfig, hostId, controlPlaneUrl: cp.url, dataDir };
      let client: KafkaHostClient | null = null;
      if (kafka !== null) {
        client = createKafkaHostClient({
          hostId,
          client: createKafkajsClient({ ...kafka, clientId: `vcp-node-${hostId}` }, silentLog),
          topicPrefix: kafka.topicPrefix,
          http: createControlPlaneClient(cp.url, hostId, config.requestTimeoutMs),
          consumedWaitMsMax: config.requestTimeoutMs,
        });
      }
      const daemon = await runNodeDaemon(config, createSimHostClient({ socketPath: sim.socketPath }), pino({ level: 'silent' }), client === null ? {} : { client });
      closers.push(
        () => daemon.close(),
        async () => client?.close(),
        () => sim.close(),
      );
    }
    for (;;) {
      const hosts = (await (await fetch(`${cp.url}/v1/hosts`)).json()) as { hosts: { daemon: { connected: boolean } }[] };
      if (hosts.hosts.length === hostIds.length && hosts.hosts.every((h) => h.daemon.connected)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const latenciesMs: number[] = [];
    for (let i = 0; i < warmupStarts + startsPerRound; i++) {
      const id = `b${i}`;
      await post('/v1/partitions', { id, vcpus: 1, memory: { startupMiB: 256 } });
      const started = new Promise<void>((resolve) => waiters.set(id, resolve));
      const answeredMs = await post(`/v1/partitions/${id}/start`, {});
      if (!startedAt.has(id)) await started;
      waiters.delete(id);
      if (i >= warmupStarts) latenciesMs.push(Math.max(0, startedAt.get(id)! - answeredMs));
    }
    return latenciesMs;
  } finally {
    await subscription.close();
    for (const close of closers) await close().catch(() => undefined);
    await cp.close();
    rmSync(root, { recursive: true, force: true });
  }
}

function summary(name: string, latenciesMs: readonly number[]): DaemonLatencyBenchResult {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    name,
    samples: sorted.length,
    p50Ms: round1(percentile(sorted, 50)),
    p99Ms: round1(percentile(sorted, 99)),
    meanMs: round1(sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length)),
  };
}

export async function benchDaemonLatency(): Promise<DaemonLatencyBenchResult[]> {
  const given = process.env.VCP_KAFKA_TEST_BROKERS?.trim();
  let broker: KafkaBroker | null = null;
  try {
    if (!given) broker = await startKafkaBroker();
    const brokers = (given ?? broker!.brokers).split(',');
    const embedded: number[] = [];
    const kafka: number[] = [];
    for (let r = 0; r < roundCount; r++) {
      embedded.push(...(await measureRound(null)));
      const config: KafkaConfig = { brokers, clientId: 'vcp-bench', ssl: null, sasl: null, schemaRegistry: null, topicPrefix: `bench-${randomUUID().slice(0, 8)}.`, partitions: 6, replicationFactor: 1 };
      kafka.push(...(await measureRound(config)));
    }
    const results = [summary('embedded (HTTP directive stream, reports over HTTP)', embedded), summary('Kafka (vcp.host-directives, vcp.host-reports)', kafka)];
    console.log(`start acknowledged (POST /start answered) → daemon's PartitionStarted appended; ${hostIds.length} in-process simulated hosts, ${roundCount} rounds of ${startsPerRound} sequential starts per mode`);
    for (const r of results) console.log(`  ${r.name}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, mean ${r.meanMs} ms (${r.samples} starts)`);
    const [e, k] = results as [DaemonLatencyBenchResult, DaemonLatencyBenchResult];
    console.log(`  Kafka ÷ embedded: p50 ${(k.p50Ms / Math.max(0.1, e.p50Ms)).toFixed(1)}×, p99 ${(k.p99Ms / Math.max(0.1, e.p99Ms)).toFixed(1)}×`);
    return results;
  } finally {
    await broker?.stop();
  }
}
