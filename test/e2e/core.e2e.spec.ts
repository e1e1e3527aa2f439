/**
 * The core loop with real processes, as a deployment runs it: `vcp control-plane`, two
 * `vcp sim-host` machines and their `vcp node` daemons. Crashes are kill -9.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type VcpProcess, api, freePort, killAll, spawnVcp, tempDir, waitFor } from '../support/processes.ts';

const root = tempDir('e2e');
let port = 0;
const call = api(() => `http://127.0.0.1:${port}`);
let controlPlane: VcpProcess;
const daemons = new Map<string, VcpProcess>();

const startControlPlane = () => spawnVcp('control-plane', ['control-plane', '--port', String(port), '--data', join(root, 'cp')]);
const startDaemon = (id: string) => {
  // A long lease: this suite is about the core loop, and a control plane restarting slowly on a
  // busy machine must not make the daemons fence themselves (HA has its own suite).
  const daemon = spawnVcp(`node ${id}`, [
    'node', '--host-id', id, '--control-plane', `http://127.0.0.1:${port}`, '--data', join(root, id),
    '--heartbeat-ms', '200', '--lease-ms', '60000', '--margin-ms', '10000',
  ]);
  daemons.set(id, daemon);
  return daemon;
};

async function ready() {
  await waitFor('control plane ready', async () => ((await call('GET', '/readyz')).status === 200 ? true : undefined), 30_000);
}

async function partitionIs(id: string, state: string) {
  return waitFor(`${id} ${state}`, async () => {
    const { body } = await call('GET', `/v1/partitions/${id}`);
    return body.state === state ? body : undefined;
  }, 30_000);
}

async function hostConnected(id: string) {
  await waitFor(`daemon of ${id} connected`, async () => ((await call('GET', `/v1/hosts/${id}`)).body?.daemon?.connected ? true : undefined), 30_000);
}

/** Asks the simulated machine itself what runs there (not the control plane). */
async function runningOn(hostId: string): Promise<string[]> {
  const { createSimHostClient } = await import('../../services/hypervisor/index.ts');
  const client = createSimHostClient({ socketPath: join(root, hostId, 'sim-host.sock') });
  return (await client.list()).map((p) => `${p.partitionId}#${p.incarnation}`).sort();
}

beforeAll(async () => {
  port = await freePort();
  controlPlane = startControlPlane();
  await ready();
  for (const id of ['h1', 'h2']) {
    spawnVcp(`sim-host ${id}`, ['sim-host', '--id', id, '--logical-processors', '8', '--memory-mib', '16384', '--data', join(root, id), '--tick-ms', '200']);
    startDaemon(id);
  }
  await hostConnected('h1');
  await hostConnected('h2');
}, 90_000);

afterAll(async () => {
  await killAll();
});

describe('vcp with real processes', () => {
  it('creates and starts partitions over HTTP; placement spreads them over both hosts', async () => {
    for (const id of ['a', 'b', 'c', 'd']) {
      expect((await call('POST', '/v1/partitions', { id, vcpus: 2, memory: { startupMiB: 2048 } }, { 'idempotency-key': `create-${id}` })).status).toBe(201);
      expect((await call('POST', `/v1/partitions/${id}/start`, {}, { 'idempotency-key': `start-${id}` })).status).toBe(202);
    }
    for (const id of ['a', 'b', 'c', 'd']) await partitionIs(id, 'Running');
    const hosts = (await call('GET', '/v1/partitions')).body.partitions.map((p: { hostId: string }) => p.hostId);
    expect(new Set(hosts)).toEqual(new Set(['h1', 'h2']));
    expect([...(await runningOn('h1')), ...(await runningOn('h2'))].sort()).toEqual(['a#1', 'b#1', 'c#1', 'd#1']);
  });

  it('kill -9 of the control plane loses nothing acknowledged; daemons reconnect', async () => {
    const before = (await call('GET', '/v1/events?limit=1000')).body.events;
    // Acknowledged writes racing the kill: every 2xx answer must survive.
    const acknowledged: string[] = [];
    const writes = (async () => {
      for (let i = 0; i < 200; i++) {
        try {
          const r = await call('POST', '/v1/partitions', { id: `burst-${i}`, vcpus: 1, memory: { startupMiB: 256 } });
          if (r.status === 201) acknowledged.push(`burst-${i}`);
        } catch {
          return;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await controlPlane.kill9();
    await writes;
    expect(acknowledged.length).toBeGreaterThan(0);
    controlPlane = startControlPlane();
    await ready();
    const after = (await call('GET', `/v1/events?limit=1000`)).body.events;
    expect(after.slice(0, before.length)).toEqual(before);
    for (const id of acknowledged) expect((await call('GET', `/v1/partitions/${id}`)).status).toBe(200);
    await hostConnected('h1');
    await hostConnected('h2');
    // The loop works again after the restart.
    await call('POST', '/v1/partitions/a/stop', {});
    await partitionIs('a', 'Off');
  }, 90_000);

  it('kill -9 of a daemon keeps its partitions running, and nothing is applied twice', async () => {
    const onH1 = (await call('GET', '/v1/partitions?hostId=h1&state=Running')).body.partitions.map((p: { id: string }) => p.id);
    expect(onH1.length).toBeGreaterThan(0);
    const machineBefore = await runningOn('h1');
    await daemons.get('h1')!.kill9();
    // The machine does not notice its daemon's death.
    expect(await runningOn('h1')).toEqual(machineBefore);
    // Work for h1 queued while its daemon is down.
    await call('POST', '/v1/partitions', { id: 'queued', vcpus: 1, memory: { startupMiB: 512 } });
    await call('POST', '/v1/partitions/queued/start', { hostId: 'h1' });
    const victim = onH1[0];
    await call('POST', `/v1/partitions/${victim}/pause`, {});
    startDaemon('h1');
    await partitionIs('queued', 'Running');
    await partitionIs(victim, 'Paused');
    for (const id of onH1) {
      const events = (await call('GET', `/v1/partitions/${id}/events`)).body.events;
      const facts = events.filter((e: { type: string }) => e.type === 'PartitionStarted');
      expect(facts).toHaveLength(1);
      expect(events.filter((e: { type: string }) => e.type === 'PartitionCrashed')).toHaveLength(0);
    }
    expect(await runningOn('h1')).toEqual([...machineBefore, 'queued#1'].sort());
  }, 90_000);

  it('kill -9 of a simulated host is a host failure: its partitions restart on the other host; back, it runs nothing', async () => {
    const onH2 = (await call('GET', '/v1/partitions?hostId=h2&state=Running')).body.partitions.map((p: { id: string }) => p.id);
    expect(onH2.length).toBeGreaterThan(0);
    const pid = JSON.parse((await import('node:fs')).readFileSync(join(root, 'h2', 'sim-host.json'), 'utf8')).pid as number;
    process.kill(pid, 'SIGKILL');
    // Its daemon sees the machine gone and says so (fenced: nothing can run there); HA restarts
    // the protected partitions (the default policy) on h1.
    for (const id of onH2) {
      const moved = await waitFor(`${id} restarted on h1`, async () => {
        const p = (await call('GET', `/v1/partitions/${id}`)).body;
        return p.state === 'Running' && p.hostId === 'h1' ? p : undefined;
      }, 30_000);
      expect(moved.incarnation).toBeGreaterThan(1);
      const history = (await call('GET', `/v1/partitions/${id}/events`)).body.events;
      expect(history.find((e: { type: string }) => e.type === 'PartitionHostLost').data.reason).toMatch(/host h2 failed/);
    }
    spawnVcp('sim-host h2 (rebooted)', ['sim-host', '--id', 'h2', '--logical-processors', '8', '--memory-mib', '16384', '--data', join(root, 'h2'), '--tick-ms', '200']);
    await waitFor('h2 up again', async () => ((await call('GET', '/v1/hosts/h2')).body.state === 'Up' ? true : undefined), 30_000);
    expect(await runningOn('h2')).toEqual([]);
  }, 90_000);
});
