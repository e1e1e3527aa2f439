/**
 * Live migration through the real parts in one process: control plane, two simulated hosts on
 * their Unix sockets, their node daemons. The transfer is modelled at the migration's bandwidth.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlaneHandle, defaultControlPlaneConfig, defaultMigrationConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { type SimHostHandle, createSimHostClient, runSimHost } from '../../services/hypervisor/index.ts';
import { type NodeDaemonHandle, defaultNodeDaemonConfig, runNodeDaemon } from '../../services/node-daemon/index.ts';
import { api, tempDir, waitFor } from '../support/processes.ts';

let cp: ControlPlaneHandle;
const sims = new Map<string, SimHostHandle>();
const daemons = new Map<string, NodeDaemonHandle>();
const dirs = new Map<string, string>();
const call = api(() => cp.url);

async function startDaemon(hostId: string) {
  const daemon = await runNodeDaemon(
    { ...defaultNodeDaemonConfig, hostId, controlPlaneUrl: cp.url, dataDir: dirs.get(hostId)!, heartbeatMs: 100, observationPollMs: 100, telemetryMs: 200 },
    createSimHostClient({ socketPath: sims.get(hostId)!.socketPath }),
    pino({ level: 'silent' }),
  );
  daemons.set(hostId, daemon);
}

async function connected(hostId: string, yes = true) {
  await waitFor(`${hostId} daemon ${yes ? '' : 'dis'}connected`, async () => ((await call('GET', `/v1/hosts/${hostId}`)).body?.daemon?.connected === yes ? true : undefined));
}

async function migrationEnds(id: string) {
  return waitFor(`migration ${id} to end`, async () => {
    const { body } = await call('GET', `/v1/migrations/${id}`);
    return ['Completed', 'Failed', 'Cancelled'].includes(body.phase) ? body : undefined;
  }, 30_000);
}

async function running(hostId: string): Promise<string[]> {
  return (await sims.get(hostId)!.hypervisor.list()).map((p) => `${p.partitionId}#${p.incarnation}:${p.state}`).sort();
}

async function createRunning(id: string, hostId: string, memoryMiB = 512, dirtyMiBps = 20) {
  await call('POST', '/v1/partitions', { id, vcpus: 1, memory: { startupMiB: memoryMiB }, workload: { dirtyMiBps } });
  await call('POST', `/v1/partitions/${id}/start`, { hostId });
  await waitFor(`${id} running`, async () => ((await call('GET', `/v1/partitions/${id}`)).body.state === 'Running' ? true : undefined));
}

beforeAll(async () => {
  cp = await runControlPlane({
    ...defaultControlPlaneConfig,
    port: 0,
    dataDir: tempDir('mig-cp'),
    logLevel: 'silent',
    daemonConnectedWindowMs: 1000,
    migrationTickMs: 100,
    migrations: { ...defaultMigrationConfig, perHostMax: 2, prepareTimeoutMs: 5000 },
  });
  for (const hostId of ['h1', 'h2', 'h3']) {
    dirs.set(hostId, tempDir(`mig-${hostId}`));
    sims.set(hostId, await runSimHost({ hostId, logicalProcessors: 8, memoryMiB: 16_384, parentReserveMiB: 1024, dataDir: dirs.get(hostId)!, tickMs: 100 }));
    await startDaemon(hostId);
  }
  for (const hostId of ['h1', 'h2', 'h3']) await connected(hostId);
});

afterAll(async () => {
  for (const d of daemons.values()) await d.close();
  for (const s of sims.values()) await s.close();
  await cp?.close();
});

describe('live migration', () => {
  it('moves a running partition to the named host: rounds, switch-over, one copy, reservations follow', async () => {
    await createRunning('m1', 'h1');
    const requested = await call('POST', '/v1/partitions/m1/migrations', { targetHostId: 'h2', bandwidthMiBps: 1024, reason: 'rebalance' }, { 'x-vcp-actor': 'user:alice' });
    expect(requested.status).toBe(202);
    const done = await migrationEnds(requested.body.id);
    expect(done).toMatchObject({ phase: 'Completed', sourceHostId: 'h1', targetHostId: 'h2', failureReason: null });
    expect(done.round).toBeGreaterThanOrEqual(2);
    expect(done.downtimeMs).toBeGreaterThan(0);
    expect(done.downtimeMs).toBeLessThanOrEqual(300 + 9);
    const partition = (await call('GET', '/v1/partitions/m1')).body;
    expect(partition).toMatchObject({ state: 'Running', hostId: 'h2', incarnation: 2, migration: null });
    await waitFor('source copy discarded', async () => ((await running('h1')).length === 0 ? true : undefined));
    expect(await running('h2')).toEqual(['m1#2:Running']);
    await waitFor('source reservation released', async () => ((await call('GET', '/v1/hosts/h1')).body.reservations.length === 0 ? true : undefined));
    expect((await call('GET', '/v1/hosts/h2')).body.reservations.map((r: { partitionId: string }) => r.partitionId)).toEqual(['m1']);
    const steps = (await call('GET', `/v1/migrations/${requested.body.id}/events`)).body.events;
    const types = steps.map((e: { type: string }) => e.type);
    expect(types[0]).toBe('MigrationRequested');
    expect(types).toContain('MigrationRoundCompleted');
    expect(types.slice(-2)).toEqual(['MigrationSwitchoverStarted', 'MigrationCompleted']);
    expect(steps[0].actor).toBe('user:alice');
    expect(steps.find((e: { type: string }) => e.type === 'MigrationRoundCompleted').actor).toBe('daemon:h1');
    expect(steps.at(-1).actor).toBe('daemon:h2');
    const history = (await call('GET', '/v1/partitions/m1/events')).body.events.map((e: { type: string }) => e.type);
    expect(history.slice(-2)).toEqual(['PartitionMigrationStarted', 'PartitionMigrated']);
  });

  it('refuses what cannot be migrated, with clear errors', async () => {
    await call('POST', '/v1/partitions', { id: 'off1', vcpus: 1, memory: { startupMiB: 256 } });
    const off = await call('POST', '/v1/partitions/off1/migrations', {});
    expect(off.status).toBe(409);
    expect(off.body.currentState).toBe('Off');
    expect((await call('POST', '/v1/partitions/m1/migrations', { targetHostId: 'h2' })).status).toBe(400);
    expect((await call('POST', '/v1/partitions/m1/migrations', { targetHostId: 'nope' })).status).toBe(404);
    expect((await call('POST', '/v1/partitions/nope/migrations', {})).status).toBe(404);
    const huge = await call('POST', '/v1/partitions/m1/migrations', { bandwidthMiBps: -1 });
    expect(huge.status).toBe(400);
    expect(huge.body.field).toBe('/bandwidthMiBps');
  });

  it('cancel during pre-copy leaves the partition running on the source, the target released', async () => {
    await createRunning('m2', 'h1', 2048, 10);
    const { body } = await call('POST', '/v1/partitions/m2/migrations', { targetHostId: 'h3', bandwidthMiBps: 256 });
    await waitFor('pre-copy under way', async () => ((await call('GET', `/v1/migrations/${body.id}`)).body.phase === 'PreCopy' ? true : undefined));
    expect((await call('POST', '/v1/partitions/m2/stop')).body.type).toBe('urn:vcp:problem:migration-in-progress');
    const cancelled = await call('POST', `/v1/migrations/${body.id}/cancel`, { reason: 'changed my mind' });
    expect(cancelled.status).toBe(202);
    const ended = await migrationEnds(body.id);
    expect(ended).toMatchObject({ phase: 'Cancelled', failureReason: 'changed my mind' });
    await waitFor('partition unlocked', async () => ((await call('GET', '/v1/partitions/m2')).body.migration === null ? true : undefined));
    expect((await call('GET', '/v1/partitions/m2')).body).toMatchObject({ state: 'Running', hostId: 'h1', incarnation: 1 });
    expect(await running('h3')).toEqual([]);
    await waitFor('target reservation released', async () => ((await call('GET', '/v1/hosts/h3')).body.reservations.length === 0 ? true : undefined));
    expect((await call('POST', `/v1/migrations/${body.id}/cancel`, {})).status).toBe(409);
  });

  it('a target daemon lost mid-pre-copy fails the migration; the partition keeps running on the source', async () => {
    const { body } = await call('POST', '/v1/partitions/m2/migrations', { targetHostId: 'h3', bandwidthMiBps: 128 });
    await waitFor('pre-copy under way', async () => ((await call('GET', `/v1/migrations/${body.id}`)).body.phase === 'PreCopy' ? true : undefined));
    await daemons.get('h3')!.close();
    const ended = await migrationEnds(body.id);
    expect(ended.phase).toBe('Failed');
    expect(ended.failureReason).toMatch(/target host h3 was lost/);
    expect(await running('h1')).toContain('m2#1:Running');
    await startDaemon('h3');
    await connected('h3');
    await waitFor('target reservation released', async () => ((await call('GET', '/v1/hosts/h3')).body.reservations.length === 0 ? true : undefined));
    expect(await running('h3')).toEqual([]);
  });

  it('an activation the target refuses at switch-over fails the migration; the source copy resumes', async () => {
    await createRunning('sw', 'h1', 1024, 10);
    const { body } = await call('POST', '/v1/partitions/sw/migrations', { targetHostId: 'h3', bandwidthMiBps: 256 });
    await waitFor('pre-copy under way', async () => ((await call('GET', `/v1/migrations/${body.id}`)).body.phase === 'PreCopy' ? true : undefined));
    // Something outside vcp takes the target machine's memory between prepare and switch-over.
    const squatter = { partitionId: 'squatter', incarnation: 1, vcpus: 1, processor: { reservePct: 0, limitPct: 100, weight: 100 }, memory: { mode: 'static' as const, startupMiB: 15_000 }, workload: null };
    await sims.get('h3')!.hypervisor.start(squatter);
    const ended = await migrationEnds(body.id);
    expect(ended.phase).toBe('Failed');
    expect(ended.failureReason).toMatch(/target host h3: activation failed/);
    const steps = (await call('GET', `/v1/migrations/${body.id}/events`)).body.events.map((e: { type: string }) => e.type);
    expect(steps.slice(-2)).toEqual(['MigrationSwitchoverStarted', 'MigrationFailed']);
    await waitFor('source copy resumed', async () => ((await running('h1')).includes('sw#1:Running') ? true : undefined));
    expect((await running('h3')).filter((c) => c.startsWith('sw#'))).toEqual([]);
    expect((await call('GET', '/v1/partitions/sw')).body).toMatchObject({ state: 'Running', hostId: 'h1', incarnation: 1, migration: null });
    await sims.get('h3')!.hypervisor.turnOff('squatter', 1);
  });

  it('queues migrations beyond the per-host limit, then runs them all', async () => {
    for (const id of ['q1', 'q2', 'q3']) await createRunning(id, 'h3', 512, 10);
    const ids: string[] = [];
    for (const id of ['q1', 'q2', 'q3']) ids.push((await call('POST', `/v1/partitions/${id}/migrations`, { targetHostId: 'h2', bandwidthMiBps: 256 })).body.id);
    const third = await waitFor('third migration queued', async () => {
      const m = (await call('GET', `/v1/migrations/${ids[2]}`)).body;
      return m.phase === 'Queued' ? m : undefined;
    });
    expect(third.queuePosition).toBe(1);
    for (const id of ids) expect((await migrationEnds(id)).phase).toBe('Completed');
    const events = (await call('GET', `/v1/migrations/${ids[2]}/events`)).body.events;
    expect(events.find((e: { type: string }) => e.type === 'MigrationQueued').data.why).toMatch(/limit per host/);
  });

  it('drains a host for maintenance: everything moves, the host enters Maintenance, and leaves it', async () => {
    await createRunning('d1', 'h1', 256, 5);
    await createRunning('d2', 'h1', 256, 5);
    const drain = await call('POST', '/v1/hosts/h1/maintenance', { reason: 'firmware' }, { 'x-vcp-actor': 'user:bob' });
    expect(drain.status).toBe(202);
    const done = await waitFor('h1 in maintenance', async () => {
      const v = (await call('GET', '/v1/hosts/h1/maintenance')).body;
      return v.state === 'InMaintenance' ? v : undefined;
    }, 30_000);
    expect(done.remaining).toBe(0);
    expect(done.migrations.map((m: { partitionId: string }) => m.partitionId).sort()).toEqual(['d1', 'd2', 'm2', 'sw']);
    for (const m of done.migrations) {
      const first = (await call('GET', `/v1/migrations/${m.id}/events`)).body.events[0];
      expect(first.actor).toBe('user:bob');
      expect(first.causationId).not.toBeNull();
    }
    expect((await call('POST', '/v1/partitions/d1/migrations', {})).status).toBe(202);
    expect((await call('GET', '/v1/partitions', undefined)).body.partitions.filter((p: { hostId: string }) => p.hostId === 'h1')).toEqual([]);
    const ended = await call('DELETE', '/v1/hosts/h1/maintenance');
    expect(ended.body.state).toBe('InService');
    expect((await call('GET', '/v1/hosts/h1')).body).toMatchObject({ cordoned: false, maintenance: null });
  });
});
