/**
 * Drain of a host with 100 partitions, through the real control plane, simulated hosts and daemons
 * in one process: the wall time of the whole workflow beside the sum of the modelled transfer
 * times (what the migrations would take back to back on the wire). Their ratio is what the
 * orchestration (events, placement, handshakes, the per-host limit's queue) costs or saves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { defaultControlPlaneConfig, defaultMigrationConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { createSimHostClient, runSimHost } from '../../services/hypervisor/index.ts';
import { defaultNodeDaemonConfig, runNodeDaemon } from '../../services/node-daemon/index.ts';

const partitionCount = 100;
const memoryMiB = 128;
const bandwidthMiBps = 2048;

export async function benchDrain(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'vcp-bd-'));
  const cp = await runControlPlane({
    ...defaultControlPlaneConfig,
    port: 0,
    dataDir: join(root, 'cp'),
    logLevel: 'silent',
    migrationTickMs: 100,
    migrations: { ...defaultMigrationConfig, defaults: { ...defaultMigrationConfig.defaults, bandwidthMiBps } },
  });
  const closers: (() => Promise<void>)[] = [];
  const post = async (path: string, body: unknown) => {
    const r = await fetch(cp.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await r.json()) as Record<string, unknown>;
    if (r.status >= 300) throw new Error(`${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
  const get = async (path: string) => (await (await fetch(cp.url + path)).json()) as Record<string, unknown>;
  try {
    for (const hostId of ['b1', 'b2', 'b3']) {
      const dataDir = join(root, hostId);
      const sim = await runSimHost({ hostId, logicalProcessors: 256, memoryMiB: 262_144, parentReserveMiB: 2048, dataDir, tickMs: 1000 });
      const daemon = await runNodeDaemon(
        { ...defaultNodeDaemonConfig, hostId, controlPlaneUrl: cp.url, dataDir, heartbeatMs: 250 },
        createSimHostClient({ socketPath: sim.socketPath }),
        pino({ level: 'silent' }),
      );
      closers.push(() => daemon.close(), () => sim.close());
    }
    while (!((await get('/v1/hosts')).hosts as { daemon: { connected: boolean } }[]).every((h) => h.daemon.connected)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < partitionCount; i++) {
      await post('/v1/partitions', { id: `d${i}`, vcpus: 1, memory: { startupMiB: memoryMiB }, workload: { dirtyMiBps: 0 } });
      await post(`/v1/partitions/d${i}/start`, { hostId: 'b1' });
    }
    while (((await get('/v1/partitions?state=Running')).partitions as unknown[]).length < partitionCount) await new Promise((r) => setTimeout(r, 100));

    const started = performance.now();
    await post('/v1/hosts/b1/maintenance', { reason: 'bench' });
    let view: Record<string, unknown>;
    for (;;) {
      view = await get('/v1/hosts/b1/maintenance');
      if (view.state === 'InMaintenance') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const wallMs = performance.now() - started;
    const migrations = view.migrations as { downtimeMs: number; transferredMiB: number; phase: string }[];
    const modelledMs = migrations.reduce((sum, m) => sum + (m.transferredMiB / bandwidthMiBps) * 1000 + m.downtimeMs, 0);
    const limit = defaultMigrationConfig.perHostMax;
    console.log(
      `drain: ${migrations.length} live migrations of ${memoryMiB} MiB at ${bandwidthMiBps} MiB/s (${limit} at once per host): wall ${(wallMs / 1000).toFixed(1)} s; ` +
        `sum of modelled transfers ${(modelledMs / 1000).toFixed(1)} s; wall ÷ modelled = ${(wallMs / modelledMs).toFixed(2)} ` +
        `(÷ ${limit} for the parallelism allowed: ${((wallMs * limit) / modelledMs).toFixed(2)} = orchestration overhead per migration slot)`,
    );
  } finally {
    for (const close of closers) await close().catch(() => undefined);
    await cp.close();
    rmSync(root, { recursive: true, force: true });
  }
}
