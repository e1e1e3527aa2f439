/**
 * Control-plane benchmarks (issue 2):
 *  - commands per second and p50/p99 latency through the HTTP API with the SQLite store
 *    (create + start of partitions placed on 100 hosts), beside the raw durable append rate of
 *    the same store measured in the same run: the ratio is the cost of everything above the store
 *    (HTTP, validation, reading and folding streams, placement, two-stream start, projection);
 *  - the time to rebuild all projections from 100,000 events.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultControlPlaneConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { toNewEvents } from '../../services/control-plane/commands.ts';
import { Projections, startProjections } from '../../services/control-plane/projections.ts';
import type { PartitionEvent, PartitionSpec } from '../../services/domain/index.ts';
import { openSqliteEventStore } from '../../services/eventstore/index.ts';

const hostCount = 100;
const partitionCount = 1_000;
const clientConcurrency = 8;
const rebuildEventCount = 100_000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function rawAppendRate(dir: string, durationMs: number): Promise<number> {
  const store = openSqliteEventStore({ path: join(dir, 'raw.db') });
  let count = 0;
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    await store.append(`partition-raw-${count}`, [{ eventId: randomUUID(), type: 'PartitionCreated', data: { n: count }, metadata: { actor: 'user:bench', causationId: null, correlationId: randomUUID(), schemaVersion: 1 } }], 'no-stream');
    count++;
  }
  const elapsedMs = performance.now() - started;
  await store.close();
  return (count / elapsedMs) * 1000;
}

export async function benchCommands(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vcp-bench-cp-'));
  try {
    const cp = await runControlPlane({ ...defaultControlPlaneConfig, port: 0, dataDir: join(dir, 'cp'), logLevel: 'silent' });
    const post = async (path: string, body: unknown) => {
      const response = await fetch(cp.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      await response.arrayBuffer();
      if (response.status >= 300) throw new Error(`${path}: ${response.status}`);
    };
    for (let i = 0; i < hostCount; i++) await post('/v1/hosts', { id: `h${i}`, logicalProcessors: 64, memoryMiB: 262_144 });
    // The hosts' daemons are not running here: heartbeats make them eligible for placement.
    const beat = () => Promise.all(Array.from({ length: hostCount }, (_, i) => post(`/v1/hosts/h${i}/heartbeat`, { bootId: 'bench', checkpointPosition: 0 })));
    await beat();
    const beating = setInterval(() => void beat(), 1000);

    const latenciesMs: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clientConcurrency }, async () => {
        for (;;) {
          const i = next++;
          if (i >= partitionCount) return;
          let t = performance.now();
          await post('/v1/partitions', { id: `p${i}`, vcpus: 2, memory: { startupMiB: 1024 } });
          latenciesMs.push(performance.now() - t);
          t = performance.now();
          await post(`/v1/partitions/p${i}/start`, {});
          latenciesMs.push(performance.now() - t);
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    clearInterval(beating);
    await cp.close();
    const commandsPerS = (latenciesMs.length / elapsedMs) * 1000;
    const rawPerS = await rawAppendRate(dir, 3000);
    latenciesMs.sort((a, b) => a - b);
    console.log(
      `control-plane.http: ${latenciesMs.length} commands (create+start of ${partitionCount} partitions on ${hostCount} hosts, ${clientConcurrency} clients): ` +
        `${commandsPerS.toFixed(0)} commands/s, p50 ${percentile(latenciesMs, 50).toFixed(1)} ms, p99 ${percentile(latenciesMs, 99).toFixed(1)} ms`,
    );
    console.log(
      `control-plane.http: raw durable single-event appends of the same store ${rawPerS.toFixed(0)} events/s; ` +
        `commands/s ÷ raw appends/s = ${(commandsPerS / rawPerS).toFixed(2)} (a start appends 2 events on 2 streams, a create 1)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchProjectionRebuild(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vcp-bench-rebuild-'));
  try {
    const path = join(dir, 'events.db');
    const store = openSqliteEventStore({ path });
    const meta = { actor: 'user:bench', causationId: null, correlationId: 'bench', schemaVersion: 1 };
    const spec: PartitionSpec = {
      vcpus: 2,
      processor: { reservePct: 0, limitPct: 100, weight: 100 },
      memory: { mode: 'static', startupMiB: 1024 },
      ha: { restart: 'any-host', priority: 2000, antiAffinityClass: null, antiAffinityMode: 'soft', preferredHostIds: [] },
      workload: null,
    };
    await store.append('host-h1', [{ eventId: randomUUID(), type: 'HostRegistered', data: { hostId: 'h1', logicalProcessors: 64, memoryMiB: 1 << 30, parentReserveMiB: 0, labels: {}, limitsPreset: 'modern', limits: { vcpusPerPartitionMax: 240, partitionsPerHostMax: 1 << 30, vcpusPerHostMax: 1 << 30, vcpusPerLpRatioMax: 0 } }, metadata: meta }], 'no-stream');
    // Each partition's life: created, started (placed), started fact, stopped intent, stopped fact.
    let written = 1;
    for (let p = 0; written < rebuildEventCount; p++) {
      const on = { partitionId: `p${p}`, hostId: 'h1', incarnation: 1 };
      const events: PartitionEvent[] = [
        { type: 'PartitionCreated', data: { partitionId: `p${p}`, name: `p${p}`, spec } },
        { type: 'PartitionStartRequested', data: { ...on, reservationId: `r${p}`, fromSaved: false, spec, placement: { policy: 'least-loaded', chosenHostId: 'h1', scores: [{ hostId: 'h1', score: 99 }], rejected: [] } } },
        { type: 'PartitionStarted', data: { ...on, directiveEventId: null, memoryAssignedMiB: 1024 } },
        { type: 'PartitionStopRequested', data: on },
        { type: 'PartitionStopped', data: { ...on, directiveEventId: null, how: 'shutdown' } },
      ];
      await store.append(`partition-p${p}`, toNewEvents(events, `partition-p${p}`, { actor: 'user:bench', correlationId: 'bench', causationId: null, idSeed: null }), 'no-stream');
      written += events.length;
    }
    await store.close();

    const started = performance.now();
    const reopened = openSqliteEventStore({ path });
    const projections = new Projections();
    const subscription = await startProjections(reopened, projections);
    const elapsedMs = performance.now() - started;
    await subscription.close();
    await reopened.close();
    console.log(
      `projections.rebuild: ${projections.position} events folded into ${projections.partitions.size} partitions and ${projections.hosts.size} host in ${elapsedMs.toFixed(0)} ms ` +
        `(${((projections.position / elapsedMs) * 1000).toFixed(0)} events/s)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
