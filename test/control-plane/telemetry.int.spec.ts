/**
 * What an SRE sees: partitions with contrasting processor and memory settings on one simulated
 * host, through the API's telemetry, match Hyper-V's semantics (water-filling entitlement with
 * reserves, caps and weights; Dynamic Memory's target = demand × (1 + buffer)).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlaneHandle, defaultControlPlaneConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { type SimHostHandle, createSimHostClient, runSimHost } from '../../services/hypervisor/index.ts';
import { type NodeDaemonHandle, defaultNodeDaemonConfig, runNodeDaemon } from '../../services/node-daemon/index.ts';
import { api, repoRoot, tempDir, waitFor } from '../support/processes.ts';

let cp: ControlPlaneHandle;
let sim: SimHostHandle;
let daemon: NodeDaemonHandle;
const call = api(() => cp.url);
const tickMs = 500;

/** Mean of a field over the partition's last `n` telemetry samples of its current incarnation. */
async function mean(id: string, field: string, n = 4): Promise<number> {
  const { body } = await call('GET', `/v1/partitions/${id}/telemetry?limit=${n}`);
  const values = body.history.map((s: Record<string, number>) => s[field]);
  return values.reduce((a: number, b: number) => a + b, 0) / values.length;
}

async function settle(ticks = 6) {
  await new Promise((r) => setTimeout(r, ticks * tickMs));
}

beforeAll(async () => {
  cp = await runControlPlane({ ...defaultControlPlaneConfig, port: 0, dataDir: tempDir('tel-cp'), logLevel: 'silent' });
  const dir = tempDir('tel-h');
  sim = await runSimHost({ hostId: 'h1', logicalProcessors: 4, memoryMiB: 16_384, parentReserveMiB: 1024, dataDir: dir, tickMs });
  daemon = await runNodeDaemon(
    { ...defaultNodeDaemonConfig, hostId: 'h1', controlPlaneUrl: cp.url, dataDir: dir, telemetryMs: tickMs },
    createSimHostClient({ socketPath: sim.socketPath }),
    pino({ level: 'silent' }),
  );
  await waitFor('daemon connected', async () => ((await call('GET', '/v1/hosts/h1')).body?.daemon?.connected ? true : undefined));
  const partitions = [
    { id: 'a', vcpus: 4, processor: { weight: 100 }, memory: { startupMiB: 1024 }, workload: { cpuDemandPct: 100 } },
    { id: 'b', vcpus: 4, processor: { weight: 300 }, memory: { startupMiB: 1024 }, workload: { cpuDemandPct: 100 } },
    { id: 'c', vcpus: 2, processor: { limitPct: 25 }, memory: { startupMiB: 1024 }, workload: { cpuDemandPct: 100 } },
    {
      id: 'd',
      vcpus: 1,
      memory: { mode: 'dynamic', startupMiB: 1024, minMiB: 512, maxMiB: 4096, bufferPct: 20 },
      workload: { cpuDemandPct: 0, memoryDemandMiB: 1000 },
    },
  ];
  for (const p of partitions) {
    expect((await call('POST', '/v1/partitions', p)).status).toBe(201);
    await call('POST', `/v1/partitions/${p.id}/start`, { hostId: 'h1' });
  }
  await waitFor('all running', async () => ((await call('GET', '/v1/partitions?state=Running')).body.partitions.length === 4 ? true : undefined));
  await settle();
}, 60_000);

afterAll(async () => {
  await daemon?.close();
  await sim?.close();
  await cp?.close();
});

describe('telemetry through the API', () => {
  it('shows CPU by weight and cap: 4 LPs, c capped at 0.5 LP, a:b = 1:3 of the rest (0.875 / 2.625 / 0.5 LP)', async () => {
    expect(await mean('a', 'cpuLp')).toBeCloseTo(0.875, 1);
    expect(await mean('b', 'cpuLp')).toBeCloseTo(2.625, 1);
    expect(await mean('c', 'cpuLp')).toBeCloseTo(0.5, 1);
    const current = (await call('GET', '/v1/partitions/a/telemetry')).body.current;
    expect(current.cpuEntitlementLp).toBeCloseTo(0.875, 6);
    expect(current.cpuWaitMsPerS).toBeGreaterThan(0);
    const host = (await call('GET', '/v1/hosts/h1/telemetry')).body.current;
    expect(host.cpuUsedLp).toBeCloseTo(4, 1);
  });

  it('shows Dynamic Memory: 1000 MiB committed with a 20 % buffer is assigned 1200 MiB, pressure 83', async () => {
    const d = (await call('GET', '/v1/partitions/d/telemetry')).body.current;
    expect(d.memoryDemandMiB).toBe(1000);
    expect(d.memoryAssignedMiB).toBe(1200);
    expect(d.memoryPressurePct).toBeCloseTo(83.3, 0);
  });

  it('a live PATCH of the weight shows in telemetry within a few ticks', async () => {
    expect((await call('PATCH', '/v1/partitions/b', { processor: { weight: 100 } })).status).toBe(200);
    await waitFor('a and b equal', async () => {
      const { body } = await call('GET', '/v1/partitions/a/telemetry');
      return Math.abs(body.current.cpuEntitlementLp - 1.75) < 1e-6 ? true : undefined;
    }, 10_000);
    await settle(4);
    expect(await mean('a', 'cpuLp', 3)).toBeCloseTo(1.75, 1);
    expect(await mean('b', 'cpuLp', 3)).toBeCloseTo(1.75, 1);
  });

  it('vcp top shows the same figures', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['bin/vcp.js', 'top', '--once', '--url', cp.url], { cwd: repoRoot });
    const lines = stdout.split('\n');
    expect(lines[0]).toMatch(/vcp top: 1 hosts, 4 partitions placed/);
    const rowOf = (id: string) => lines.find((l) => l.startsWith(`${id} `))?.split(/\s+/) ?? [];
    expect(Number(rowOf('c')[5])).toBeCloseTo(0.5, 1);
    expect(rowOf('d')[7]).toBe('1200');
    expect(lines.some((l) => l.startsWith('h1 ') && l.includes('/4'))).toBe(true);
  });
});
