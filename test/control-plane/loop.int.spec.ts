/**
 * The core loop in one process, with the real parts: control plane (SQLite store, HTTP), a
 * simulated host served on its Unix socket, and a node daemon driving it through the client.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlaneHandle, defaultControlPlaneConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { type SimHostHandle, createSimHostClient, runSimHost } from '../../services/hypervisor/index.ts';
import { type NodeDaemonHandle, defaultNodeDaemonConfig, runNodeDaemon } from '../../services/node-daemon/index.ts';
import { api, tempDir, waitFor } from '../support/processes.ts';

let cp: ControlPlaneHandle;
let sim: SimHostHandle;
let daemon: NodeDaemonHandle;
const call = api(() => cp.url);
const hostDir = tempDir('loop-host');

async function startDaemon(): Promise<NodeDaemonHandle> {
  return runNodeDaemon(
    { ...defaultNodeDaemonConfig, hostId: 'h1', controlPlaneUrl: cp.url, dataDir: hostDir, heartbeatMs: 100, observationPollMs: 100 },
    createSimHostClient({ socketPath: sim.socketPath }),
    pino({ level: 'silent' }),
  );
}

async function stateOf(id: string, state: string) {
  return waitFor(`${id} to be ${state}`, async () => {
    const { body } = await call('GET', `/v1/partitions/${id}`);
    return body.state === state ? body : undefined;
  });
}

beforeAll(async () => {
  cp = await runControlPlane({ ...defaultControlPlaneConfig, port: 0, dataDir: tempDir('loop-cp'), logLevel: 'silent' });
  sim = await runSimHost({ hostId: 'h1', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 1024, dataDir: hostDir, tickMs: 100 });
  daemon = await startDaemon();
  await waitFor('host registered and daemon connected', async () => {
    const { status, body } = await call('GET', '/v1/hosts/h1');
    return status === 200 && body.daemon.connected ? body : undefined;
  });
});

afterAll(async () => {
  await daemon?.close();
  await sim?.close();
  await cp?.close();
});

describe('the core loop', () => {
  it('registers the host with the capacity its hypervisor reports', async () => {
    const { body } = await call('GET', '/v1/hosts/h1');
    expect(body).toMatchObject({ id: 'h1', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 1024 });
  });

  it('starts, pauses, resumes, saves, restores and stops a partition through the daemon', async () => {
    expect((await call('POST', '/v1/partitions', { id: 'vm1', vcpus: 2, memory: { startupMiB: 1024 } })).status).toBe(201);
    expect((await call('POST', '/v1/partitions/vm1/start', {})).status).toBe(202);
    const running = await stateOf('vm1', 'Running');
    expect(running).toMatchObject({ hostId: 'h1', incarnation: 1 });
    expect((await sim.hypervisor.list()).map((p) => [p.partitionId, p.incarnation, p.state])).toEqual([['vm1', 1, 'Running']]);

    await call('POST', '/v1/partitions/vm1/pause');
    await stateOf('vm1', 'Paused');
    expect((await sim.hypervisor.list())[0]?.state).toBe('Paused');
    await call('POST', '/v1/partitions/vm1/resume');
    await stateOf('vm1', 'Running');

    await call('POST', '/v1/partitions/vm1/save');
    await stateOf('vm1', 'Saved');
    expect(await sim.hypervisor.list()).toEqual([]);
    await waitFor('reservation released after save', async () => ((await call('GET', '/v1/hosts/h1')).body.reservations.length === 0 ? true : undefined));

    await call('POST', '/v1/partitions/vm1/start', {});
    const restored = await stateOf('vm1', 'Running');
    expect(restored.incarnation).toBe(2);
    await call('POST', '/v1/partitions/vm1/stop');
    await stateOf('vm1', 'Off');
    expect(await sim.hypervisor.list()).toEqual([]);
    await waitFor('reservation released after stop', async () => ((await call('GET', '/v1/hosts/h1')).body.reservations.length === 0 ? true : undefined));

    const history = (await call('GET', '/v1/partitions/vm1/events')).body.events.map((e: { type: string }) => e.type);
    expect(history).toEqual([
      'PartitionCreated',
      'PartitionStartRequested',
      'PartitionStarted',
      'PartitionPauseRequested',
      'PartitionPaused',
      'PartitionResumeRequested',
      'PartitionResumed',
      'PartitionSaveRequested',
      'PartitionSaved',
      'PartitionStartRequested',
      'PartitionStarted',
      'PartitionStopRequested',
      'PartitionStopped',
    ]);
  });

  it('reports a start the hypervisor refuses as PartitionStartFailed with the reason, and releases the reservation', async () => {
    // Reservations count startup memory; a dynamic partition that grows past it takes the room
    // the control plane still counts as free, so the hypervisor refuses the next start.
    await call('POST', '/v1/partitions', {
      id: 'grower',
      vcpus: 1,
      memory: { mode: 'dynamic', startupMiB: 1024, minMiB: 512, maxMiB: 6656, bufferPct: 5 },
      workload: { memoryDemandMiB: 6300 },
    });
    await call('POST', '/v1/partitions/grower/start', {});
    await stateOf('grower', 'Running');
    await waitFor('grower to grow', async () => {
      const usage = await sim.hypervisor.usage();
      return usage.memoryAvailableMiB < 2048 ? usage : undefined;
    });
    await call('POST', '/v1/partitions', { id: 'victim', vcpus: 1, memory: { startupMiB: 2048 } });
    expect((await call('POST', '/v1/partitions/victim/start', {})).status).toBe(202);
    const failed = await stateOf('victim', 'Failed');
    expect(failed.reason).toMatch(/start failed: .*MiB/);
    const events = (await call('GET', '/v1/partitions/victim/events')).body.events;
    const failedAt = events.findIndex((e: { type: string }) => e.type === 'PartitionStartFailed');
    expect(events[failedAt]).toMatchObject({ actor: 'daemon:h1', data: { code: 'insufficient-memory' } });
    expect(events[failedAt].causationId).toBe(events[failedAt - 1].eventId);
    // HA (the default policy protects it) plans a restart after the first backoff, with the cause.
    await waitFor('HA plans a restart', async () => {
      const all = (await call('GET', '/v1/partitions/victim/events')).body.events;
      return all.find((e: { type: string }) => e.type === 'PartitionRestartPlanned');
    });
    const plan = (await call('GET', '/v1/partitions/victim/events')).body.events.find((e: { type: string }) => e.type === 'PartitionRestartPlanned');
    expect(plan).toMatchObject({ actor: 'system:ha', causationId: events[failedAt].eventId, data: { causeType: 'PartitionStartFailed', delayMs: 10_000, attempt: 1 } });
    await waitFor('victim reservation released', async () => {
      const host = (await call('GET', '/v1/hosts/h1')).body;
      return host.reservations.some((r: { partitionId: string }) => r.partitionId === 'victim') ? undefined : true;
    });
    await call('POST', '/v1/partitions/grower/turn-off');
    await stateOf('grower', 'Off');
  });

  it('reports a guest crash observed on the host', async () => {
    await call('POST', '/v1/partitions', { id: 'crashy', vcpus: 1, memory: { startupMiB: 512 } });
    await call('POST', '/v1/partitions/crashy/start', {});
    await stateOf('crashy', 'Running');
    sim.hypervisor.crashPartition('crashy', 'guest bugcheck 0x0000007E');
    const failed = await stateOf('crashy', 'Failed');
    expect(failed.reason).toContain('bugcheck');
  });

  it('a restarted daemon neither skips nor re-applies directives, and reconciles what runs', async () => {
    await call('POST', '/v1/partitions', { id: 'keep', vcpus: 1, memory: { startupMiB: 512 } });
    await call('POST', '/v1/partitions/keep/start', {});
    await stateOf('keep', 'Running');
    await daemon.close();
    // While the daemon is down a start is requested; it must be applied after the restart.
    await call('POST', '/v1/partitions', { id: 'later', vcpus: 1, memory: { startupMiB: 512 } });
    await call('POST', '/v1/partitions/later/start', { hostId: 'h1' });
    daemon = await startDaemon();
    await stateOf('later', 'Running');
    const keep = (await call('GET', '/v1/partitions/keep')).body;
    expect(keep).toMatchObject({ state: 'Running', incarnation: 1 });
    const started = (await call('GET', '/v1/partitions/keep/events')).body.events.filter((e: { type: string }) => e.type === 'PartitionStarted');
    expect(started).toHaveLength(1);
  });
});
