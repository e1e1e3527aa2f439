/**
 * High availability with real processes: a machine killed with kill -9, and a daemon cut off
 * from the control plane while its machine keeps running. Short leases keep the test quick.
 */
import { type Socket, createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimHostClient } from '../../services/hypervisor/index.ts';
import { api, freePort, killAll, spawnVcp, tempDir, waitFor } from '../support/processes.ts';

const root = tempDir('e2e-ha');
let port = 0;
const call = api(() => `http://127.0.0.1:${port}`);
const leaseMs = 3000;
const marginMs = 1000;
const simPids = new Map<string, number>();

/** A TCP proxy between one daemon and the control plane that the test can cut and heal. */
async function cuttableProxy(targetPort: number) {
  const sockets = new Set<Socket>();
  let cut = false;
  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ port: targetPort, host: '127.0.0.1' });
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  const proxyPort = await freePort();
  await new Promise<void>((r) => server.listen(proxyPort, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${proxyPort}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    heal() {
      cut = false;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function startHost(id: string, controlPlaneUrl: string) {
  const sim = spawnVcp(`sim-host ${id}`, ['sim-host', '--id', id, '--logical-processors', '16', '--memory-mib', '32768', '--data', join(root, id), '--tick-ms', '200']);
  simPids.set(id, sim.child.pid!);
  spawnVcp(`node ${id}`, [
    'node', '--host-id', id, '--control-plane', controlPlaneUrl, '--data', join(root, id),
    '--heartbeat-ms', '200', '--lease-ms', String(leaseMs), '--margin-ms', String(marginMs),
  ]);
}

async function machine(hostId: string): Promise<string[]> {
  try {
    const client = createSimHostClient({ socketPath: join(root, hostId, 'sim-host.sock') });
    return (await client.list()).map((p) => `${p.partitionId}#${p.incarnation}`).sort();
  } catch {
    return [];
  }
}

async function state(id: string) {
  return (await call('GET', `/v1/partitions/${id}`)).body;
}

let proxy: Awaited<ReturnType<typeof cuttableProxy>>;

beforeAll(async () => {
  port = await freePort();
  spawnVcp('control-plane', ['control-plane', '--port', String(port), '--data', join(root, 'cp'), '--daemon-window-ms', '1000']);
  await waitFor('control plane ready', async () => ((await call('GET', '/readyz')).status === 200 ? true : undefined), 30_000);
  proxy = await cuttableProxy(port);
  startHost('h1', proxy.url);
  for (const id of ['h2', 'h3', 'h4']) startHost(id, `http://127.0.0.1:${port}`);
  for (const id of ['h1', 'h2', 'h3', 'h4']) {
    await waitFor(`${id} up`, async () => ((await call('GET', `/v1/hosts/${id}`)).body?.state === 'Up' ? true : undefined), 30_000);
  }
}, 120_000);

afterAll(async () => {
  await killAll();
  await proxy?.close();
});

describe('high availability with real processes', () => {
  it('kill -9 of a machine: its protected partitions restart on other hosts, by priority, within lease + margin + a few seconds', async () => {
    const partitions = [
      { id: 'low', priority: 1000 },
      { id: 'high-a', priority: 3000 },
      { id: 'medium', priority: 2000 },
      { id: 'high-b', priority: 3000 },
      { id: 'manual', priority: 0 },
    ];
    for (const p of partitions) {
      await call('POST', '/v1/partitions', { id: p.id, vcpus: 1, memory: { startupMiB: 512 }, ha: { restart: 'any-host', priority: p.priority } });
      await call('POST', `/v1/partitions/${p.id}/start`, { hostId: 'h2' });
    }
    await waitFor('all running on h2', async () => ((await machine('h2')).length === 5 ? true : undefined), 30_000);
    const killedAt = Date.now();
    process.kill(simPids.get('h2')!, 'SIGKILL');
    const protectedIds = ['high-a', 'high-b', 'medium', 'low'];
    for (const id of protectedIds) {
      await waitFor(`${id} running elsewhere`, async () => {
        const p = await state(id);
        return p.state === 'Running' && p.hostId !== 'h2' ? p : undefined;
      }, leaseMs + marginMs + 15_000);
    }
    const elapsedMs = Date.now() - killedAt;
    expect(elapsedMs).toBeLessThan(leaseMs + marginMs + 10_000);
    // Priority 0 = never auto-start: it stays Failed, with the reason.
    expect((await state('manual')).state).toBe('Failed');
    // Restarts were issued in priority order, each caused by the host's failure.
    const log = (await call('GET', '/v1/events?limit=1000')).body.events as { type: string; actor: string; streamId: string; causationId: string; data: { partitionId: string } }[];
    const restarts = log.filter((e) => e.type === 'PartitionStartRequested' && e.actor === 'system:ha').map((e) => e.data.partitionId);
    expect(restarts.slice(0, 4).map((id) => partitions.find((p) => p.id === id)!.priority)).toEqual([3000, 3000, 2000, 1000]);
    const lost = log.find((e) => e.type === 'PartitionHostLost' && e.data.partitionId === 'high-a')!;
    const hostEvent = log.find((e) => (e.type === 'HostFenced' || e.type === 'HostFailed') && e.streamId === 'host-h2');
    expect(lost.causationId).toBe((hostEvent as unknown as { eventId: string }).eventId);
    // Exactly one copy of each, on the machines themselves.
    const everywhere = [...(await machine('h1')), ...(await machine('h3')), ...(await machine('h4'))];
    for (const id of protectedIds) expect(everywhere.filter((c) => c.startsWith(`${id}#`))).toHaveLength(1);
  }, 90_000);

  it('a daemon cut off from the control plane fences itself before any restart elsewhere, and leaves the moved partitions off when back', async () => {
    for (const id of ['cut-a', 'cut-b']) {
      await call('POST', '/v1/partitions', { id, vcpus: 1, memory: { startupMiB: 512 }, ha: { restart: 'any-host', priority: 2000 } });
      await call('POST', `/v1/partitions/${id}/start`, { hostId: 'h1' });
    }
    await waitFor('both running on h1', async () => ((await machine('h1')).filter((c) => c.startsWith('cut-')).length === 2 ? true : undefined), 30_000);
    proxy.cut();
    const cutAt = Date.now();
    let fencedAt = 0;
    while (!fencedAt) {
      if ((await machine('h1')).filter((c) => c.startsWith('cut-')).length === 0) fencedAt = Date.now();
      else await new Promise((r) => setTimeout(r, 50));
      if (Date.now() - cutAt > leaseMs + 10_000) throw new Error('h1 never fenced itself');
    }
    expect(fencedAt - cutAt).toBeLessThan(leaseMs);
    for (const id of ['cut-a', 'cut-b']) {
      await waitFor(`${id} restarted elsewhere`, async () => {
        const p = await state(id);
        return p.state === 'Running' && p.hostId !== 'h1' ? p : undefined;
      }, 20_000);
    }
    const log = (await call('GET', '/v1/events?limit=1000')).body.events as { type: string; actor: string; recordedAt: string; data: { partitionId: string } }[];
    const firstRestart = log.find((e) => e.type === 'PartitionStartRequested' && e.actor === 'system:ha' && e.data.partitionId.startsWith('cut-'))!;
    expect(Date.parse(firstRestart.recordedAt)).toBeGreaterThan(fencedAt);
    proxy.heal();
    await waitFor('h1 back up', async () => ((await call('GET', '/v1/hosts/h1')).body.state === 'Up' ? true : undefined), 20_000);
    const fenced = (await call('GET', '/v1/events?limit=1000')).body.events.find((e: { type: string; streamId: string }) => e.type === 'HostFenced' && e.streamId === 'host-h1');
    expect(fenced.data.how).toBe('self-fence');
    // Everything on h1 was turned off (partitions restarted there by the previous test too).
    expect(fenced.data.turnedOff).toEqual(expect.arrayContaining(['cut-a#1', 'cut-b#1']));
    await new Promise((r) => setTimeout(r, 1500));
    expect((await machine('h1')).filter((c) => c.startsWith('cut-'))).toEqual([]);
    for (const id of ['cut-a', 'cut-b']) expect((await state(id)).hostId).not.toBe('h1');
  }, 90_000);
});
