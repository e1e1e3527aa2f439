import { rejection } from './fixtures/rejection.ts';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createSimHostClient,
  type PartitionConfig,
  runSimHost,
  type SimHostClient,
  type SimHostHandle,
} from '../../services/hypervisor/index.ts';
import { profile } from './fixtures/profile.ts';

function config(partitionId: string, overrides: Partial<PartitionConfig> = {}): PartitionConfig {
  return {
    partitionId,
    incarnation: 1,
    vcpus: 2,
    processor: { reservePct: 0, limitPct: 100, weight: 100 },
    memory: { mode: 'static', startupMiB: 1024 },
    workload: null,
    ...overrides,
  };
}


/** A raw HTTP exchange over the socket, for requests the typed client would never send. */
function raw(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
  contentType = 'application/json',
): Promise<{ status: number; contentType: string; json: unknown }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': contentType };
    const req = request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            json: text.length > 0 ? JSON.parse(text) : undefined,
          });
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function waitFor(check: () => Promise<boolean>, waitMsMax: number): Promise<void> {
  const deadline = Date.now() + waitMsMax;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${waitMsMax} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('sim-host over its Unix socket', () => {
  let dataDir: string;
  let host: SimHostHandle;
  let client: SimHostClient;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vcp-sh-'));
    host = await runSimHost({ hostId: 'h1', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 1024, dataDir, tickMs: 20 });
    client = createSimHostClient({ socketPath: host.socketPath });
  });

  afterEach(async () => {
    await host.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('describes itself in sim-host.json and /info', async () => {
    const descriptor = JSON.parse(await readFile(join(dataDir, 'sim-host.json'), 'utf8')) as unknown;
    expect(descriptor).toEqual({
      hostId: 'h1',
      pid: process.pid,
      socketPath: join(dataDir, 'sim-host.sock'),
      bootId: host.descriptor.bootId,
      logicalProcessors: 4,
      memoryMiB: 8192,
      parentReserveMiB: 1024,
      parentCpuLp: 0,
      limitsPreset: 'modern',
      seed: host.descriptor.seed,
    });
    expect(await client.info()).toEqual({
      hostId: 'h1',
      logicalProcessors: 4,
      memoryMiB: 8192,
      parentReserveMiB: 1024,
      bootId: host.descriptor.bootId,
    });
  });

  it('drives a partition through its whole lifecycle', async () => {
    const started = await client.start(config('web-1'));
    expect(started).toMatchObject({ partitionId: 'web-1', incarnation: 1, state: 'Running', memoryAssignedMiB: 1024 });
    expect(await client.start(config('web-1'))).toEqual(started);
    expect(await client.list()).toEqual([started]);

    expect((await client.pause('web-1', 1)).state).toBe('Paused');
    expect((await client.resume('web-1', 1)).state).toBe('Running');
    const processor = { reservePct: 10, limitPct: 50, weight: 300 };
    expect((await client.setProcessor('web-1', 1, processor)).processor).toEqual(processor);
    expect((await client.setMemory('web-1', 1, { mode: 'static', startupMiB: 2048 })).memoryAssignedMiB).toBe(2048);

    // CPU figures are measured per tick (every 20 ms here): wait for one after the new limit.
    await waitFor(async () => (await client.usage()).partitions[0]?.cpuEntitlementLp === 1, 5000);
    await waitFor(async () => (await client.usage()).partitions[0]?.cpuLp === 1, 5000);
    const usage = await client.usage();
    expect(usage).toMatchObject({ memoryCommittedMiB: 2048, memoryAvailableMiB: 5120, cpuUsedLp: 1, parentCpuLp: 0 });
    expect(usage.partitions).toEqual([
      expect.objectContaining({
        partitionId: 'web-1',
        cpuLp: 1,
        cpuPct: 50,
        cpuWaitMsPerS: 500,
        cpuDemandPct: 100,
        cpuEntitlementLp: 1,
        throttlePct: null,
      }),
    ]);
    // Capped at 50 % per vCPU: each vCPU runs 5 ms of every 10 ms quantum and waits the other 5.
    // This host ticks on the wall clock, and a tick a busy machine delays spans a different number
    // of quanta, so only the bounds are checked here; scheduler.unit checks the exact figures on a
    // virtual clock.
    const perDispatch = usage.partitions[0]?.cpuWaitMsPerDispatch ?? 0;
    expect(perDispatch).toBeGreaterThan(0);
    expect(perDispatch).toBeLessThanOrEqual(10);
    expect(usage.partitions[0]?.dispatchesPerS).toBeGreaterThan(0);

    await client.save('web-1', 1);
    expect(await client.list()).toEqual([]);
    const restored = await client.start(config('web-1', { memory: { mode: 'static', startupMiB: 2048 } }));
    expect(restored.startedAtMs).toBe(started.startedAtMs);

    await client.stop('web-1', 0);
    expect(await client.list()).toHaveLength(1);
    await client.stop('web-1', 1);
    await client.turnOff('web-1', 1);
    expect(await client.list()).toEqual([]);
  });

  it('carries partition ids with slashes, spaces and unicode through the URL', async () => {
    const id = 'tenant/a b?c#d%é';
    expect((await client.start(config(id))).partitionId).toBe(id);
    expect((await client.pause(id, 1)).partitionId).toBe(id);
    await client.crash(id, 'test');
    expect(await client.drainObservations()).toEqual([expect.objectContaining({ partitionId: id })]);
  });

  it('maps refusals back to the same HypervisorError the in-process sim throws', async () => {
    const absent = await rejection(client.pause('nope', 1));
    expect(absent.code).toBe('not-found');
    expect(absent.message).toBe('cannot pause nope: it does not run on host h1');

    await client.start(config('big', { memory: { mode: 'static', startupMiB: 6000 } }));
    const full = await rejection(client.start(config('more', { memory: { mode: 'static', startupMiB: 2000 } })));
    expect(full.code).toBe('insufficient-memory');
    expect(full.message).toMatch(/needs 2000 MiB, host h1 has 1168 MiB available/);

    await client.start(config('a', { incarnation: 3 }));
    expect((await rejection(client.start(config('a', { incarnation: 2 })))).code).toBe('invalid-state');
    expect((await rejection(client.start(config('c', { vcpus: 5 })))).code).toBe('invalid-config');
    expect((await rejection(client.start(config('c', { vcpus: 1.5 })))).code).toBe('invalid-config');
    expect((await rejection(client.setWorkload('c', null))).code).toBe('not-found');
  });

  it('reports crashes and guest shutdowns as observations, drained once', async () => {
    await client.start(config('a', { incarnation: 4 }));
    await client.start(config('b'));
    await client.crash('a', 'triple fault');
    await client.shutdownFromGuest('b');
    const observations = await client.drainObservations();
    expect(observations).toEqual([
      { kind: 'crashed', partitionId: 'a', incarnation: 4, reason: 'triple fault', atMs: expect.any(Number) },
      { kind: 'stopped-by-guest', partitionId: 'b', incarnation: 1, atMs: expect.any(Number) },
    ]);
    expect(await client.drainObservations()).toEqual([]);
    expect(await client.list()).toEqual([]);
  });

  it('ticks on real time: the memory balancer follows a workload change', async () => {
    await client.start(
      config('d', {
        memory: { mode: 'dynamic', startupMiB: 1024, minMiB: 512, maxMiB: 4096, bufferPct: 20, weight: 5000 },
        workload: profile({ cpuDemandPct: 25, memoryDemandMiB: 1500, dirtyMiBps: 0 }),
      }),
    );
    // 1500 MiB × 1.2 = 1800 MiB, reached at the next balancer pass (once a second).
    await waitFor(async () => (await client.list())[0]?.memoryAssignedMiB === 1800, 5000);
    await client.setWorkload('d', profile({ cpuDemandPct: 25, memoryDemandMiB: 100, dirtyMiBps: 0 }));
    await waitFor(async () => (await client.list())[0]?.memoryAssignedMiB === 512, 5000);
    const usage = await client.usage();
    expect(usage.partitions[0]).toMatchObject({ cpuLp: 0.5, memoryBalloonedMiB: 1408 });
    const accounting = host.hypervisor.accounting()[0];
    expect(accounting?.cpuTimeLpMs).toBeGreaterThan(0);
  });

  it('throttles a partition over HTTP (auto-converge hook) and lifts the throttle', async () => {
    await client.start(config('t', { incarnation: 3 }));
    await client.setThrottle('t', 3, 40);
    await waitFor(async () => (await client.usage()).partitions[0]?.cpuLp === 1.2, 5000);
    expect((await client.usage()).partitions[0]).toMatchObject({ throttlePct: 40, cpuPct: 60, cpuEntitlementLp: 1.2 });
    await client.setThrottle('t', 3, null);
    await waitFor(async () => (await client.usage()).partitions[0]?.cpuLp === 2, 5000);
    expect((await client.usage()).partitions[0]?.throttlePct).toBeNull();

    expect((await rejection(client.setThrottle('t', 2, 10))).code).toBe('not-found');
    const outOfRange = await rejection(client.setThrottle('t', 3, 101));
    expect(outOfRange.code).toBe('invalid-config');
    expect(outOfRange.message).toMatch(/throttlePct/);
    const wrongType = await raw(host.socketPath, 'PUT', '/partitions/t/throttle', JSON.stringify({ incarnation: 3, throttlePct: '5' }));
    expect(wrongType.status).toBe(400);
  });

  it('answers bad input with a 4xx JSON problem, never a 500', async () => {
    const socket = host.socketPath;
    const malformed = await raw(socket, 'POST', '/partitions/a/start', '{not json');
    expect(malformed.status).toBe(400);
    expect(malformed.contentType).toContain('application/problem+json');
    expect(malformed.json).toMatchObject({ code: 'invalid-config', status: 400, type: 'urn:vcp:hypervisor:invalid-config' });

    const wrongType = await raw(socket, 'POST', '/partitions/a/start', JSON.stringify({ ...config('a'), vcpus: '2' }));
    expect(wrongType.status).toBe(400);
    expect(wrongType.json).toMatchObject({ code: 'invalid-config' });

    const extraField = await raw(socket, 'POST', '/partitions/a/stop', JSON.stringify({ incarnation: 1, force: true }));
    expect(extraField.status).toBe(400);

    const mismatch = await raw(socket, 'POST', '/partitions/b/start', JSON.stringify(config('a')));
    expect(mismatch.status).toBe(422);
    expect(mismatch.json).toMatchObject({ code: 'invalid-config', message: expect.stringMatching(/does not match/) });

    const notRunning = await raw(socket, 'PUT', '/partitions/a/workload', JSON.stringify({ workload: null }));
    expect(notRunning.status).toBe(404);
    expect(notRunning.json).toMatchObject({ code: 'not-found' });

    const unknownRoute = await raw(socket, 'GET', '/partitions/a/teleport');
    expect(unknownRoute.status).toBe(404);
    expect(unknownRoute.json).toMatchObject({ code: 'not-found' });

    const notJson = await raw(socket, 'POST', '/partitions/a/stop', '<incarnation/>', 'application/xml');
    expect(notJson.status).toBe(415);
    expect(notJson.json).toMatchObject({ code: 'invalid-config' });

    const tooBig = await raw(socket, 'POST', '/partitions/a/crash', JSON.stringify({ reason: 'x'.repeat(100_000) }));
    expect(tooBig.status).toBe(413);
  });

  it('survives arbitrary JSON on every route with a 2xx or 4xx', async () => {
    const routes: [string, string][] = [
      ['POST', '/partitions/p/start'],
      ['POST', '/partitions/p/stop'],
      ['POST', '/partitions/p/turn-off'],
      ['POST', '/partitions/p/pause'],
      ['POST', '/partitions/p/resume'],
      ['POST', '/partitions/p/save'],
      ['PUT', '/partitions/p/processor'],
      ['PUT', '/partitions/p/memory'],
      ['PUT', '/partitions/p/workload'],
      ['PUT', '/partitions/p/throttle'],
      ['POST', '/partitions/p/crash'],
      ['POST', '/watchdog/arm'],
      ['POST', '/watchdog/pet'],
      ['POST', '/watchdog/disarm'],
    ];
    await client.start(config('p'));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.jsonValue(), async ([method, path], body) => {
        const response = await raw(host.socketPath, method, path, JSON.stringify(body));
        expect(response.status).toBeLessThan(500);
        if (response.status >= 400) expect(response.json).toMatchObject({ code: expect.any(String) });
      }),
      { numRuns: 200 },
    );
  });

  it('refuses to start a second sim-host on a live socket, and close() cleans up', async () => {
    await expect(
      runSimHost({ hostId: 'h2', logicalProcessors: 1, memoryMiB: 1024, parentReserveMiB: 0, dataDir }),
    ).rejects.toThrow(/already listening/);
    expect((await client.info()).hostId).toBe('h1');
    await host.close();
    await host.close();
    await expect(stat(join(dataDir, 'sim-host.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(join(dataDir, 'sim-host.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await rejection(client.info())).code).toBe('unavailable');
  });
});

describe('sim-host watchdog over its Unix socket', () => {
  let dataDir: string;
  let host: SimHostHandle;
  let client: SimHostClient;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vcp-wd-'));
    // A slow accounting tick: fencing must not wait for it.
    host = await runSimHost({ hostId: 'h1', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 1024, dataDir, tickMs: 1000 });
    client = createSimHostClient({ socketPath: host.socketPath });
  });

  afterEach(async () => {
    await host.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('keeps partitions running while petted, and turns them all off promptly once petting stops', async () => {
    await client.start(config('a', { incarnation: 2 }));
    await client.start(config('b'));
    await client.pause('b', 1);
    expect(await client.watchdogStatus()).toEqual({
      armed: false,
      timeoutMs: null,
      expiresAtMs: null,
      firedCount: 0,
      lastFiredAtMs: null,
    });
    const armedAtMs = Date.now();
    const armed = await client.armWatchdog(300);
    expect(armed).toMatchObject({ armed: true, timeoutMs: 300, firedCount: 0 });
    expect(armed.expiresAtMs).toBeGreaterThanOrEqual(armedAtMs + 300);

    // Petted every 100 ms for three timeouts.
    let last = armed;
    while (Date.now() - armedAtMs < 900) {
      await sleep(100);
      last = await client.petWatchdog();
    }
    expect((await client.list()).map((p) => p.partitionId)).toEqual(['a', 'b']);

    // A daemon restarted within the timeout (a new client, after a pause) keeps them running.
    await sleep(150);
    last = await createSimHostClient({ socketPath: host.socketPath }).petWatchdog();
    expect(last.armed).toBe(true);

    // Petting stops: off within timeout + 150 ms of the last pet, not before the expiry.
    const expiresAtMs = last.expiresAtMs ?? Number.NaN;
    expect((await client.list()).length).toBe(2);
    let offAtMs = Number.NaN;
    await waitFor(async () => {
      const gone = (await client.list()).length === 0;
      if (gone) offAtMs = Date.now();
      return gone;
    }, 2000);
    expect(offAtMs).toBeGreaterThanOrEqual(expiresAtMs);
    expect(offAtMs).toBeLessThanOrEqual(expiresAtMs + 150);

    const observations = await client.drainObservations();
    expect(observations).toEqual([
      { kind: 'fenced', partitionId: 'a', incarnation: 2, atMs: expect.any(Number) },
      { kind: 'fenced', partitionId: 'b', incarnation: 1, atMs: expect.any(Number) },
    ]);
    for (const observation of observations) {
      expect(observation.atMs).toBeGreaterThanOrEqual(expiresAtMs);
      expect(observation.atMs).toBeLessThanOrEqual(expiresAtMs + 150);
    }
    const status = await client.watchdogStatus();
    expect(status).toEqual({
      armed: false,
      timeoutMs: null,
      expiresAtMs: null,
      firedCount: 1,
      lastFiredAtMs: observations[0]?.atMs,
    });
  });

  it('fires on its own timer with nobody calling in, and can be re-armed', async () => {
    await client.start(config('a'));
    const armed = await client.armWatchdog(100);
    await sleep(300);
    // The first call after the expiry could fire it too: look behind the HTTP surface instead.
    const status = await host.hypervisor.watchdogStatus();
    expect(status).toMatchObject({ armed: false, firedCount: 1 });
    expect(status.lastFiredAtMs).toBeLessThanOrEqual((armed.expiresAtMs ?? Number.NaN) + 150);

    await client.start(config('a', { incarnation: 2 }));
    expect(await client.armWatchdog(60_000)).toMatchObject({ armed: true, timeoutMs: 60_000, firedCount: 1 });
    expect(await client.disarmWatchdog()).toMatchObject({ armed: false, firedCount: 1 });
    expect((await client.list()).map((p) => p.incarnation)).toEqual([2]);
  });

  it('refuses bad timeouts and pets of a disarmed watchdog with 4xx problems', async () => {
    const socket = host.socketPath;
    for (const timeoutMs of [99, 600_001, 150.5]) {
      const response = await raw(socket, 'POST', '/watchdog/arm', JSON.stringify({ timeoutMs }));
      expect(response.status).toBe(422);
      expect(response.contentType).toContain('application/problem+json');
      expect(response.json).toMatchObject({ code: 'invalid-config', message: expect.stringMatching(/timeoutMs/) });
    }
    for (const body of [{ timeoutMs: '500' }, {}, { timeoutMs: 500, extra: 1 }, null]) {
      const response = await raw(socket, 'POST', '/watchdog/arm', JSON.stringify(body));
      expect(response.status).toBe(400);
      expect(response.json).toMatchObject({ code: 'invalid-config' });
    }
    const error = await rejection(client.armWatchdog(50));
    expect(error.code).toBe('invalid-config');

    const pet = await raw(socket, 'POST', '/watchdog/pet');
    expect(pet.status).toBe(409);
    expect(pet.json).toMatchObject({ code: 'invalid-state', message: expect.stringMatching(/not armed/) });
    expect((await rejection(client.petWatchdog())).code).toBe('invalid-state');
    expect((await client.watchdogStatus()).armed).toBe(false);
  });
});

describe('sim-host start-up', () => {
  it('replaces a stale socket file left by a dead sim-host', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vcp-sh-'));
    try {
      await writeFile(join(dataDir, 'sim-host.sock'), '');
      const host = await runSimHost({ hostId: 'h', logicalProcessors: 2, memoryMiB: 2048, parentReserveMiB: 256, dataDir });
      try {
        expect((await createSimHostClient({ socketPath: host.socketPath }).info()).hostId).toBe('h');
      } finally {
        await host.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('enforces the host limits preset it was started with', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vcp-sh-'));
    try {
      const host = await runSimHost({
        hostId: 'r2',
        logicalProcessors: 8,
        memoryMiB: 8192,
        parentReserveMiB: 1024,
        parentCpuLp: 0.5,
        limitsPreset: 'r2',
        dataDir,
      });
      try {
        expect(host.descriptor).toMatchObject({ limitsPreset: 'r2', parentCpuLp: 0.5 });
        const client = createSimHostClient({ socketPath: host.socketPath });
        const error = await rejection(client.start(config('wide', { vcpus: 5 })));
        expect(error.code).toBe('invalid-config');
        expect(error.message).toMatch(/vcpusPerPartitionMax/);
        expect((await client.usage()).parentCpuLp).toBe(0.5);
      } finally {
        await host.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses options it cannot honour', async () => {
    const common = { hostId: 'h', logicalProcessors: 2, memoryMiB: 2048, parentReserveMiB: 256 };
    await expect(runSimHost({ ...common, dataDir: `/tmp/${'d'.repeat(120)}` })).rejects.toThrow(/too long for a Unix socket/);
    await expect(runSimHost({ ...common, dataDir: '/tmp/x', tickMs: 0 })).rejects.toThrow(/tickMs/);
    await expect(runSimHost({ ...common, dataDir: '/tmp/x', parentReserveMiB: 4096 })).rejects.toThrow(/parentReserveMiB/);
    await expect(runSimHost({ ...common, dataDir: '/tmp/x', parentCpuLp: 2 })).rejects.toThrow(/parentCpuLp/);
    await expect(runSimHost({ ...common, dataDir: '/tmp/x', logicalProcessors: 65, limitsPreset: 'r2' })).rejects.toThrow(
      /logicalProcessorsMax/,
    );
  });
});

describe('sim-host client failure mapping', () => {
  let dataDir: string;
  let server: Server | null = null;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vcp-cl-'));
  });

  afterEach(async () => {
    const running = server;
    server = null;
    if (running) await new Promise((resolve) => running.close(resolve));
    await rm(dataDir, { recursive: true, force: true });
  });

  /** A fake sim-host answering every request with the given status and body. */
  async function fakeHost(status: number, body: string, delayMs = 0): Promise<string> {
    const socketPath = join(dataDir, 'fake.sock');
    const fake = createServer((_req, res) => {
      setTimeout(() => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(body);
      }, delayMs);
    });
    server = fake;
    await new Promise<void>((resolve) => fake.listen(socketPath, resolve));
    return socketPath;
  }

  it('reports a missing socket as unavailable', async () => {
    const client = createSimHostClient({ socketPath: join(dataDir, 'none.sock') });
    const error = await rejection(client.list());
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/none\.sock is unavailable: GET \/partitions: ENOENT/);
  });

  it('reports a response that does not match its schema as unavailable', async () => {
    const client = createSimHostClient({ socketPath: await fakeHost(200, '{"hostId": 42}') });
    expect((await rejection(client.info())).message).toMatch(/does not match its schema/);
  });

  it('reports a body that is not JSON as unavailable', async () => {
    const client = createSimHostClient({ socketPath: await fakeHost(200, '<html>') });
    expect((await rejection(client.usage())).code).toBe('unavailable');
  });

  it('reports a 5xx as unavailable, even with a known error code', async () => {
    const body = JSON.stringify({ type: 't', title: 't', status: 500, detail: 'boom', code: 'not-found', message: 'boom' });
    const client = createSimHostClient({ socketPath: await fakeHost(500, body) });
    const error = await rejection(client.list());
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/answered 500: boom/);
  });

  it('reports an unknown error code as unavailable', async () => {
    const body = JSON.stringify({ type: 't', title: 't', status: 409, detail: 'x', code: 'surprise', message: 'x' });
    const client = createSimHostClient({ socketPath: await fakeHost(409, body) });
    expect((await rejection(client.pause('a', 1))).code).toBe('unavailable');
  });

  it('gives up after the request timeout', async () => {
    const client = createSimHostClient({ socketPath: await fakeHost(200, '[]', 2000), requestTimeoutMs: 100 });
    const error = await rejection(client.list());
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/no answer within 100 ms/);
  });
});
