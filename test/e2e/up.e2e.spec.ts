/**
 * `vcp up` (what `npm start` runs): everything on one machine, clean stop on a signal, and the
 * log survives a restart.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { api, freePort, killAll, spawnVcp, tempDir, waitFor } from '../support/processes.ts';

afterAll(async () => {
  await killAll();
});

describe('vcp up', () => {
  it('runs the whole system, stops cleanly on SIGTERM, and keeps the log across a restart', async () => {
    const port = await freePort();
    const data = tempDir('up');
    const call = api(() => `http://127.0.0.1:${port}`);
    const up = spawnVcp('up', ['up', '--port', String(port), '--data', data, '--hosts', '2']);
    await waitFor('vcp up to print its URLs', () => (up.output().includes('vcp is up') ? true : undefined), 60_000);
    expect(up.output()).toContain(`http://127.0.0.1:${port}/docs`);
    await waitFor('both daemons connected', async () => {
      const hosts = (await call('GET', '/v1/hosts')).body.hosts ?? [];
      return hosts.length === 2 && hosts.every((h: { daemon: { connected: boolean } }) => h.daemon.connected) ? true : undefined;
    }, 60_000);
    await call('POST', '/v1/partitions', { id: 'web-1', vcpus: 2, memory: { startupMiB: 2048 } });
    await call('POST', '/v1/partitions/web-1/start', {});
    await waitFor('web-1 running', async () => ((await call('GET', '/v1/partitions/web-1')).body.state === 'Running' ? true : undefined), 30_000);

    expect(await up.stop()).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();

    const again = spawnVcp('up again', ['up', '--port', String(port), '--data', data, '--hosts', '2']);
    await waitFor('vcp up to come back', () => (again.output().includes('vcp is up') ? true : undefined), 60_000);
    const history = (await call('GET', '/v1/partitions/web-1/events')).body.events.map((e: { type: string }) => e.type);
    expect(history.slice(0, 3)).toEqual(['PartitionCreated', 'PartitionStartRequested', 'PartitionStarted']);
    // The simulated machines powered off with `vcp up`: their daemons report the partition lost.
    await waitFor('web-1 reported lost', async () => ((await call('GET', '/v1/partitions/web-1')).body.state === 'Failed' ? true : undefined), 30_000);
    expect(await again.stop()).toBe(0);
  }, 180_000);

  it('refuses a bad flag with one line and exit code 2', async () => {
    const bad = spawnVcp('bad', ['up', '--hosts', 'many']);
    expect(await bad.exited()).toBe(2);
    expect(bad.output().trim().split('\n')).toEqual(['vcp up: --hosts must be an integer, got "many"']);
  });
});
