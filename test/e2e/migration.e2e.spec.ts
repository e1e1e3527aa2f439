/**
 * Live migration and maintenance with real processes: `vcp control-plane`, three `vcp sim-host`
 * machines and their `vcp node` daemons. Daemon crashes are kill -9.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimHostClient } from '../../services/hypervisor/index.ts';
import { type VcpProcess, api, freePort, killAll, spawnVcp, tempDir, waitFor } from '../support/processes.ts';

const root = tempDir('e2e-mig');
let port = 0;
const call = api(() => `http://127.0.0.1:${port}`);
const daemons = new Map<string, VcpProcess>();
const hosts = ['h1', 'h2', 'h3'];

const startDaemon = (id: string) => {
  daemons.set(id, spawnVcp(`node ${id}`, ['node', '--host-id', id, '--control-plane', `http://127.0.0.1:${port}`, '--data', join(root, id), '--heartbeat-ms', '200']));
};

async function connected(id: string) {
  await waitFor(`daemon of ${id} connected`, async () => ((await call('GET', `/v1/hosts/${id}`)).body?.daemon?.connected ? true : undefined), 30_000);
}

/** What the simulated machine itself runs (not what the control plane believes). */
async function machine(hostId: string): Promise<string[]> {
  const client = createSimHostClient({ socketPath: join(root, hostId, 'sim-host.sock') });
  return (await client.list()).map((p) => `${p.partitionId}#${p.incarnation}:${p.state}`).sort();
}

async function copiesOf(partitionId: string): Promise<string[]> {
  const all = await Promise.all(hosts.map(async (h) => (await machine(h)).filter((c) => c.startsWith(`${partitionId}#`)).map((c) => `${h}:${c}`)));
  return all.flat();
}

async function ended(id: string) {
  return waitFor(`migration ${id} ended`, async () => {
    const m = (await call('GET', `/v1/migrations/${id}`)).body;
    return ['Completed', 'Failed', 'Cancelled'].includes(m.phase) ? m : undefined;
  }, 60_000);
}

async function phase(id: string, wanted: string) {
  await waitFor(`migration ${id} in ${wanted}`, async () => ((await call('GET', `/v1/migrations/${id}`)).body.phase === wanted ? true : undefined), 30_000);
}

async function runningOn(id: string, hostId: string, memoryMiB: number, dirtyMiBps: number) {
  await call('POST', '/v1/partitions', { id, vcpus: 1, memory: { startupMiB: memoryMiB }, workload: { dirtyMiBps } });
  await call('POST', `/v1/partitions/${id}/start`, { hostId });
  await waitFor(`${id} running`, async () => ((await call('GET', `/v1/partitions/${id}`)).body.state === 'Running' ? true : undefined), 30_000);
}

beforeAll(async () => {
  port = await freePort();
  spawnVcp('control-plane', ['control-plane', '--port', String(port), '--data', join(root, 'cp'), '--migrations-per-host', '2', '--daemon-window-ms', '2000']);
  await waitFor('control plane ready', async () => ((await call('GET', '/readyz')).status === 200 ? true : undefined), 30_000);
  for (const id of hosts) {
    spawnVcp(`sim-host ${id}`, ['sim-host', '--id', id, '--logical-processors', '16', '--memory-mib', '65536', '--data', join(root, id), '--tick-ms', '200']);
    startDaemon(id);
  }
  for (const id of hosts) await connected(id);
}, 120_000);

afterAll(async () => {
  await killAll();
});

describe('live migration with real processes', () => {
  it('migrates a running partition between two machines; exactly one copy runs afterwards', async () => {
    await runningOn('web', 'h1', 1024, 50);
    const { body } = await call('POST', '/v1/partitions/web/migrations', { targetHostId: 'h2', bandwidthMiBps: 512 });
    const done = await ended(body.id);
    expect(done.phase).toBe('Completed');
    expect(done.round).toBeGreaterThanOrEqual(2);
    expect(done.downtimeMs).toBeLessThanOrEqual(309);
    await waitFor('source copy gone', async () => ((await copiesOf('web')).length === 1 ? true : undefined));
    expect(await copiesOf('web')).toEqual(['h2:web#2:Running']);
  }, 90_000);

  it('kill -9 of the target daemon mid-pre-copy rolls back: the partition still runs on the source', async () => {
    await runningOn('db', 'h1', 4096, 20);
    const { body } = await call('POST', '/v1/partitions/db/migrations', { targetHostId: 'h3', bandwidthMiBps: 256 });
    await phase(body.id, 'PreCopy');
    await daemons.get('h3')!.kill9();
    const done = await ended(body.id);
    expect(done.phase).toBe('Failed');
    expect(done.failureReason).toMatch(/target host h3/);
    expect((await call('GET', '/v1/partitions/db')).body).toMatchObject({ state: 'Running', hostId: 'h1', incarnation: 1, migration: null });
    expect(await copiesOf('db')).toEqual(['h1:db#1:Running']);
    startDaemon('h3');
    await connected('h3');
    await waitFor('h3 reservation released', async () => ((await call('GET', '/v1/hosts/h3')).body.reservations.length === 0 ? true : undefined));
  }, 90_000);

  it('kill -9 of the source daemon mid-pre-copy ends by policy with exactly one running copy', async () => {
    const { body } = await call('POST', '/v1/partitions/db/migrations', { targetHostId: 'h3', bandwidthMiBps: 256 });
    await phase(body.id, 'PreCopy');
    await daemons.get('h1')!.kill9();
    const done = await ended(body.id);
    expect(done.phase).toBe('Failed');
    expect(done.failureReason).toMatch(/source host h1/);
    expect(await copiesOf('db')).toEqual(['h1:db#1:Running']);
    startDaemon('h1');
    await connected('h1');
    await new Promise((r) => setTimeout(r, 1000));
    expect(await copiesOf('db')).toEqual(['h1:db#1:Running']);
    expect((await call('GET', '/v1/partitions/db')).body).toMatchObject({ state: 'Running', hostId: 'h1', migration: null });
  }, 90_000);

  it('drains a host with 10 partitions onto two others, never more than 2 migrations per host at once', async () => {
    for (let i = 0; i < 10; i++) await runningOn(`p${i}`, 'h1', 256, 5);
    const drain = await call('POST', '/v1/hosts/h1/maintenance', { reason: 'BIOS update' });
    expect(drain.status).toBe(202);
    const done = await waitFor('h1 in maintenance', async () => {
      const v = (await call('GET', '/v1/hosts/h1/maintenance')).body;
      return v.state === 'InMaintenance' ? v : undefined;
    }, 120_000);
    expect(done.blocked).toEqual([]);
    const partitions = (await call('GET', '/v1/partitions')).body.partitions;
    expect(partitions.filter((p: { hostId: string }) => p.hostId === 'h1')).toEqual([]);
    expect(await machine('h1')).toEqual([]);
    // Replay the log: at no point were more than 2 migrations active on any host.
    const events = (await call('GET', '/v1/events?limit=1000')).body.events as { type: string; data: { migrationId: string; sourceHostId: string; targetHostId: string } }[];
    const active = new Map<string, Set<string>>();
    let most = 0;
    for (const e of events) {
      const id = e.data.migrationId as string;
      if (e.type === 'MigrationTargetReserved') {
        for (const h of [e.data.sourceHostId, e.data.targetHostId]) {
          const set = active.get(h) ?? new Set();
          set.add(id);
          active.set(h, set);
          most = Math.max(most, set.size);
        }
      } else if (['MigrationCompleted', 'MigrationFailed', 'MigrationCancelled'].includes(e.type)) {
        for (const set of active.values()) set.delete(id);
      }
    }
    expect(most).toBe(2);
    const drainMigrations = done.migrations.filter((m: { phase: string }) => m.phase === 'Completed');
    expect(drainMigrations.length).toBeGreaterThanOrEqual(10);
  }, 180_000);
});
