/**
 * Every route and every error kind of the HTTP API, against a real control plane (SQLite store,
 * HTTP on loopback). Daemon facts are posted to the daemon's report route directly, so the
 * lifecycle can be driven without a host.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlaneHandle, defaultControlPlaneConfig, runControlPlane } from '../../services/control-plane/index.ts';
import { readSse } from '../../services/shared/sse-client.ts';
import { api, tempDir } from '../support/processes.ts';

let cp: ControlPlaneHandle;
const call = api(() => cp.url);
let reportSeq = 0;

async function fact(hostId: string, partitionId: string, type: string, incarnation: number, extra: Record<string, unknown> = {}) {
  const { status, body } = await call('POST', `/v1/hosts/${hostId}/reports`, {
    reports: [{ reportId: `r${++reportSeq}`, partitionId, type, incarnation, directiveEventId: null, ...extra }],
  });
  expect(status).toBe(200);
  return body.results[0];
}

async function beat(hostId: string) {
  expect((await call('POST', `/v1/hosts/${hostId}/heartbeat`, { bootId: 'b1', checkpointPosition: 0 })).status).toBe(200);
}

function expectProblem(response: { status: number; body: any }, status: number, code: string, field?: string) {
  expect(response.status).toBe(status);
  expect(response.body).toMatchObject({ type: `urn:vcp:problem:${code}`, status });
  expect(typeof response.body.detail).toBe('string');
  if (field !== undefined) expect(response.body.field).toBe(field);
}

let beating: NodeJS.Timeout;

beforeAll(async () => {
  cp = await runControlPlane({ ...defaultControlPlaneConfig, port: 0, dataDir: tempDir('api'), logLevel: 'silent' });
  await call('POST', '/v1/hosts', { id: 'h1', logicalProcessors: 8, memoryMiB: 16384, parentReserveMiB: 1024 });
  await call('POST', '/v1/hosts', { id: 'h2', logicalProcessors: 4, memoryMiB: 8192, parentReserveMiB: 1024 });
  await beat('h1');
  await beat('h2');
  // Stand-ins for the two hosts' daemons: they renew their leases, so HA leaves them Up.
  beating = setInterval(() => {
    for (const h of ['h1', 'h2']) void call('POST', `/v1/hosts/${h}/heartbeat`, { bootId: 'b1', checkpointPosition: 0 }).catch(() => undefined);
  }, 500);
});

afterAll(async () => {
  clearInterval(beating);
  await cp.close();
});

describe('health', () => {
  it('answers healthz and readyz', async () => {
    expect((await call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
  });

  it('serves OpenAPI with every route', async () => {
    const { body } = await call('GET', '/docs/json');
    for (const path of ['/v1/hosts', '/v1/hosts/{id}', '/v1/partitions', '/v1/partitions/{id}', '/v1/partitions/{id}/start', '/v1/partitions/{id}/events', '/v1/events', '/v1/events/stream']) {
      expect(Object.keys(body.paths)).toContain(path);
    }
  });

  it('answers an unknown route with a problem', async () => {
    expectProblem(await call('GET', '/v1/nothing'), 404, 'no-route');
  });
});

describe('hosts', () => {
  it('registers a host, lists it, shows capacity and the daemon state', async () => {
    const listed = (await call('GET', '/v1/hosts')).body.hosts.map((h: { id: string }) => h.id);
    expect(listed).toEqual(['h1', 'h2']);
    const h1 = (await call('GET', '/v1/hosts/h1')).body;
    expect(h1).toMatchObject({ id: 'h1', logicalProcessors: 8, limitsPreset: 'modern', capacity: { memoryUsableMiB: 15360, memoryFreeMiB: 15360 }, daemon: { connected: true, bootId: 'b1' } });
  });

  it('re-registering the same machine changes nothing; other capacity is a 409', async () => {
    const again = await call('POST', '/v1/hosts', { id: 'h1', logicalProcessors: 8, memoryMiB: 16384, parentReserveMiB: 1024 });
    expect(again.status).toBe(201);
    expect(again.body.events).toEqual([]);
    expectProblem(await call('POST', '/v1/hosts', { id: 'h1', logicalProcessors: 16, memoryMiB: 16384, parentReserveMiB: 1024 }), 409, 'host-exists');
  });

  it('refuses bad host input, naming the field', async () => {
    expectProblem(await call('POST', '/v1/hosts', { id: 'H_1', logicalProcessors: 8, memoryMiB: 1024 }), 400, 'invalid-input', '/id');
    expectProblem(await call('POST', '/v1/hosts', { id: 'hx', memoryMiB: 1024 }), 400, 'invalid-input', '/logicalProcessors');
    expectProblem(await call('POST', '/v1/hosts', { id: 'hx', logicalProcessors: 65, memoryMiB: 1024, limitsPreset: 'r2' }), 400, 'invalid-host', '/logicalProcessors');
    expectProblem(await call('POST', '/v1/hosts', { id: 'hx', logicalProcessors: 4, memoryMiB: 1024, parentReserveMiB: 1024 }), 400, 'invalid-host', '/parentReserveMiB');
    expect((await call('GET', '/v1/hosts/hx')).status).toBe(404);
  });

  it('cordons and uncordons; unknown hosts are 404', async () => {
    const cordoned = await call('POST', '/v1/hosts/h2/cordon', { reason: 'firmware update' });
    expect(cordoned.status).toBe(200);
    expect(cordoned.body.host).toMatchObject({ cordoned: true, cordonReason: 'firmware update' });
    expect((await call('POST', '/v1/hosts/h2/uncordon')).body.host.cordoned).toBe(false);
    expectProblem(await call('POST', '/v1/hosts/nope/cordon', {}), 404, 'host-not-found');
    expectProblem(await call('GET', '/v1/hosts/nope'), 404, 'host-not-found');
  });
});

describe('partitions', () => {
  it('creates a partition with defaults filled in, and lists and filters it', async () => {
    const created = await call('POST', '/v1/partitions', { id: 'p1', vcpus: 2, memory: { startupMiB: 2048 } });
    expect(created.status).toBe(201);
    expect(created.body.partition).toMatchObject({
      id: 'p1',
      name: 'p1',
      state: 'Off',
      hostId: null,
      incarnation: 0,
      spec: { vcpus: 2, processor: { reservePct: 0, limitPct: 100, weight: 100 }, memory: { mode: 'static', startupMiB: 2048 }, ha: { restart: 'any-host', priority: 2000 } },
    });
    expect(created.body.events.map((e: { type: string }) => e.type)).toEqual(['PartitionCreated']);
    expect((await call('GET', '/v1/partitions?state=Off')).body.partitions.map((p: { id: string }) => p.id)).toContain('p1');
    expect((await call('GET', '/v1/partitions?state=Running')).body.partitions).toEqual([]);
    expectProblem(await call('GET', '/v1/partitions?state=Sleeping'), 400, 'invalid-input', '/querystring/state');
  });

  it('refuses bad partition input with 400 naming the field, and writes nothing', async () => {
    const head = (await call('GET', '/v1/events?limit=1000')).body.next;
    expectProblem(await call('POST', '/v1/partitions', { id: 'bad', memory: { startupMiB: 1 } }), 400, 'invalid-input', '/vcpus');
    expectProblem(await call('POST', '/v1/partitions', { id: 'bad', vcpus: '2', memory: { startupMiB: 1 } }), 400, 'invalid-input', '/vcpus');
    expectProblem(await call('POST', '/v1/partitions', { id: 'bad', vcpus: 2, memory: { startupMiB: 1 }, colour: 'red' }), 400, 'invalid-input', '/colour');
    expectProblem(await call('POST', '/v1/partitions', { id: 'bad', vcpus: 2, memory: { mode: 'dynamic', startupMiB: 1024, minMiB: 2048 } }), 400, 'invalid-spec', '/memory/minMiB');
    expectProblem(await call('POST', '/v1/partitions', { id: 'bad', vcpus: 2, memory: { startupMiB: 1024 }, processor: { reservePct: 50, limitPct: 10 } }), 400, 'invalid-spec', '/processor/limitPct');
    expectProblem(await call('POST', '/v1/partitions', { id: 'bad', vcpus: 2, memory: { startupMiB: 1024, bufferPct: 20 } }), 400, 'invalid-spec', '/memory/bufferPct');
    expectProblem(await call('POST', '/v1/partitions', '{"id": "bad",'), 400, 'invalid-json');
    const wrongType = await fetch(`${cp.url}/v1/partitions`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
    expect(wrongType.status).toBe(415);
    expect(wrongType.headers.get('content-type')).toContain('application/problem+json');
    expect((await call('GET', '/v1/events?limit=1000')).body.next).toBe(head);
  });

  it('refuses a duplicate id with 409', async () => {
    expectProblem(await call('POST', '/v1/partitions', { id: 'p1', vcpus: 1, memory: { startupMiB: 512 } }), 409, 'partition-exists');
  });

  it('starts through placement, recording scores and rejected hosts', async () => {
    const started = await call('POST', '/v1/partitions/p1/start', {});
    expect(started.status).toBe(202);
    expect(started.body.partition).toMatchObject({ state: 'Starting', hostId: 'h1', incarnation: 1 });
    expect(started.body.events.map((e: { type: string }) => e.type)).toEqual(['HostCapacityReserved', 'PartitionStartRequested']);
    const history = (await call('GET', '/v1/partitions/p1/events')).body.events;
    const placement = history.at(-1).data.placement;
    expect(placement.chosenHostId).toBe('h1');
    expect(placement.scores.map((s: { hostId: string }) => s.hostId).sort()).toEqual(['h1', 'h2']);
    const h1 = (await call('GET', '/v1/hosts/h1')).body;
    expect(h1.reservations).toHaveLength(1);
    expect(h1.capacity).toMatchObject({ vcpusReserved: 2, memoryReservedMiB: 2048 });
  });

  it('answers start errors: 404 partition, 404 host, 409 transition, 422 capacity with reasons', async () => {
    expectProblem(await call('POST', '/v1/partitions/nope/start', {}), 404, 'partition-not-found');
    await call('POST', '/v1/partitions', { id: 'p2', vcpus: 1, memory: { startupMiB: 1024 } });
    expectProblem(await call('POST', '/v1/partitions/p2/start', { hostId: 'h9' }), 404, 'host-not-found');
    const again = await call('POST', '/v1/partitions/p1/start', {});
    expectProblem(again, 409, 'invalid-transition');
    expect(again.body.currentState).toBe('Starting');
    await call('POST', '/v1/partitions', { id: 'huge', vcpus: 2, memory: { startupMiB: 100_000 } });
    const full = await call('POST', '/v1/partitions/huge/start', {});
    expectProblem(full, 422, 'no-capacity');
    expect(full.body.details.placement.rejected.map((r: { hostId: string }) => r.hostId).sort()).toEqual(['h1', 'h2']);
    expect(JSON.stringify(full.body.details.placement.rejected)).toContain('MiB of memory');
    expectProblem(await call('POST', '/v1/partitions/p2/start', { hostId: 'BAD' }), 400, 'invalid-input', '/hostId');
  });

  it('drives the lifecycle with facts: running, pause, resume, save, restore, turn-off', async () => {
    expect((await fact('h1', 'p1', 'PartitionStarted', 1, { memoryAssignedMiB: 2048 })).outcome).toBe('recorded');
    expect((await call('GET', '/v1/partitions/p1')).body.state).toBe('Running');
    for (const [action, intermediate, reported, final] of [
      ['pause', 'Pausing', 'PartitionPaused', 'Paused'],
      ['resume', 'Starting', 'PartitionResumed', 'Running'],
      ['save', 'Saving', 'PartitionSaved', 'Saved'],
    ] as const) {
      const response = await call('POST', `/v1/partitions/p1/${action}`);
      expect(response.status).toBe(202);
      expect(response.body.partition.state).toBe(intermediate);
      await fact('h1', 'p1', reported, 1);
      expect((await call('GET', '/v1/partitions/p1')).body.state).toBe(final);
    }
    expectProblem(await call('POST', '/v1/partitions/p1/start', { hostId: 'h2' }), 409, 'saved-on-another-host');
    const restored = await call('POST', '/v1/partitions/p1/start', {});
    expect(restored.body.partition).toMatchObject({ state: 'Starting', hostId: 'h1', incarnation: 2 });
    expectProblem(await call('POST', '/v1/partitions/p1/stop'), 409, 'invalid-transition');
    expect((await call('POST', '/v1/partitions/p1/turn-off')).body.partition.state).toBe('Stopping');
    await fact('h1', 'p1', 'PartitionStopped', 2, { how: 'turn-off' });
    expect((await call('GET', '/v1/partitions/p1')).body).toMatchObject({ state: 'Off', hostId: null, lastHostId: 'h1' });
  });

  it('rejects bodies on bodiless actions and bad transitions with 409 and the current state', async () => {
    expectProblem(await call('POST', '/v1/partitions/p1/pause', { now: true }), 400, 'invalid-input');
    const paused = await call('POST', '/v1/partitions/p1/pause');
    expectProblem(paused, 409, 'invalid-transition');
    expect(paused.body.currentState).toBe('Off');
    expectProblem(await call('POST', '/v1/partitions/p1/resume'), 409, 'invalid-transition');
    expectProblem(await call('POST', '/v1/partitions/p1/save'), 409, 'invalid-transition');
    expectProblem(await call('POST', '/v1/partitions/p1/turn-off'), 409, 'invalid-transition');
    expectProblem(await call('POST', '/v1/partitions/nope/stop'), 404, 'partition-not-found');
  });

  it('records daemon reports: stale incarnations are kept as ignored, retries once', async () => {
    const stale = await fact('h1', 'p1', 'PartitionStarted', 1);
    expect(stale.outcome).toBe('ignored');
    expect(stale.reason).toMatch(/not live|stale/);
    const body = { reports: [{ reportId: 'same', partitionId: 'p1', type: 'PartitionCrashed', incarnation: 2, directiveEventId: null, reason: 'x' }] };
    expect((await call('POST', '/v1/hosts/h1/reports', body)).body.results[0].outcome).toBe('ignored');
    expect((await call('POST', '/v1/hosts/h1/reports', body)).body.results[0].outcome).toBe('duplicate');
    expectProblem(await call('POST', '/v1/hosts/nope/reports', body), 404, 'host-not-found');
    expectProblem(await call('POST', '/v1/hosts/h1/reports', { reports: [] }), 400, 'invalid-input', '/reports');
  });

  it('reconfigures by state: live processor changes adjust the reservation; startup memory needs Off', async () => {
    await call('POST', '/v1/partitions', { id: 'live', vcpus: 2, memory: { mode: 'dynamic', startupMiB: 1024, minMiB: 512, maxMiB: 4096 } });
    expect((await call('PATCH', '/v1/partitions/live', { vcpus: 4, memory: { startupMiB: 2048 } })).body.partition.spec).toMatchObject({ vcpus: 4, memory: { startupMiB: 2048 } });
    await call('POST', '/v1/partitions/live/start', { hostId: 'h1' });
    expectProblem(await call('PATCH', '/v1/partitions/live', { processor: { weight: 300 } }), 409, 'invalid-transition');
    await fact('h1', 'live', 'PartitionStarted', 1);
    // Another partition reserves 6 of h1's 8 logical processors.
    await call('POST', '/v1/partitions', { id: 'hog', vcpus: 8, processor: { reservePct: 75 }, memory: { startupMiB: 512 } });
    expect((await call('POST', '/v1/partitions/hog/start', { hostId: 'h1' })).status).toBe(202);
    const changed = await call('PATCH', '/v1/partitions/live', { processor: { reservePct: 50, weight: 300 }, memory: { maxMiB: 8192 } });
    expect(changed.status).toBe(200);
    const reconfigured = changed.body.events.find((e: { type: string }) => e.type === 'PartitionReconfigured');
    expect(reconfigured).toBeDefined();
    const event = (await call('GET', '/v1/partitions/live/events')).body.events.at(-1);
    expect(event.data.hostId).toBe('h1');
    expect(event.data.changes.map((c: { field: string }) => c.field).sort()).toEqual(['/memory/maxMiB', '/processor/reservePct', '/processor/weight']);
    const reservation = (await call('GET', '/v1/hosts/h1')).body.reservations.find((r: { partitionId: string }) => r.partitionId === 'live');
    expect(reservation.processorReserveLp).toBe(2);
    expectProblem(await call('PATCH', '/v1/partitions/live', { memory: { startupMiB: 4096 } }), 409, 'not-changeable-now', '/memory/startupMiB');
    expectProblem(await call('PATCH', '/v1/partitions/live', { memory: { maxMiB: 1024 } }), 400, 'invalid-spec');
    expectProblem(await call('PATCH', '/v1/partitions/live', { vcpus: 1 }), 409, 'not-changeable-now', '/vcpus');
    const over = await call('PATCH', '/v1/partitions/live', { processor: { reservePct: 100, limitPct: 100 } });
    expectProblem(over, 422, 'insufficient-capacity');
    expect(over.body.details.reasons[0]).toMatch(/processor reserve would reach 10 LPs/);
    expect((await call('GET', '/v1/partitions/live')).body.spec.processor.reservePct).toBe(50);
    await call('POST', '/v1/partitions/hog/turn-off');
    expectProblem(await call('PATCH', '/v1/partitions/live', {}), 400, 'invalid-input');
    expectProblem(await call('PATCH', '/v1/partitions/nope', { vcpus: 1 }), 404, 'partition-not-found');
  });

  it('deletes only Off, Saved or Failed partitions; the history stays', async () => {
    expectProblem(await call('DELETE', '/v1/partitions/live'), 409, 'invalid-transition');
    const deleted = await call('DELETE', '/v1/partitions/p2');
    expect(deleted.status).toBe(200);
    expect(deleted.body.partition).toBeNull();
    expect((await call('GET', '/v1/partitions/p2')).status).toBe(404);
    expect((await call('GET', '/v1/partitions/p2/events')).body.events.at(-1).type).toBe('PartitionDeleted');
    expectProblem(await call('POST', '/v1/partitions', { id: 'p2', vcpus: 1, memory: { startupMiB: 512 } }), 409, 'partition-exists');
    expectProblem(await call('DELETE', '/v1/partitions/p2'), 404, 'partition-not-found');
  });

  it('releases a stopped partition\'s reservation', async () => {
    await call('POST', '/v1/partitions/live/turn-off');
    await fact('h1', 'live', 'PartitionStopped', 1, { how: 'turn-off' });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const host = (await call('GET', '/v1/hosts/h1')).body;
      if (!host.reservations.some((r: { partitionId: string }) => r.partitionId === 'live')) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('reservation of live was not released');
  });

  it('tells the daemon what should run on its host', async () => {
    const desired = (await call('GET', '/v1/hosts/h1/desired')).body;
    expect(desired.position).toBeGreaterThan(0);
    expect(desired.partitions.find((p: { partitionId: string }) => p.partitionId === 'p1')).toMatchObject({ state: 'Off', hostId: null });
    expectProblem(await call('GET', '/v1/hosts/nope/desired'), 404, 'host-not-found');
  });
});

describe('idempotency, actor, correlation', () => {
  it('replays the first response for a retried key and writes nothing new', async () => {
    const headers = { 'idempotency-key': 'create-idem-1', 'x-vcp-actor': 'user:alice' };
    const first = await call('POST', '/v1/partitions', { id: 'idem', vcpus: 1, memory: { startupMiB: 512 } }, headers);
    const head = (await call('GET', '/v1/events?limit=1000')).body.next;
    const second = await call('POST', '/v1/partitions', { id: 'idem', vcpus: 1, memory: { startupMiB: 512 } }, headers);
    expect(second.status).toBe(first.status);
    expect(second.body).toEqual(first.body);
    expect((await call('GET', '/v1/events?limit=1000')).body.next).toBe(head);
    expectProblem(await call('POST', '/v1/partitions', { id: 'idem', vcpus: 2, memory: { startupMiB: 512 } }, headers), 422, 'idempotency-key-reused');
    const event = (await call('GET', '/v1/partitions/idem/events')).body.events[0];
    expect(event.actor).toBe('user:alice');
  });

  it('a retried start with the same key does not start twice', async () => {
    const headers = { 'idempotency-key': 'start-idem-1' };
    const first = await call('POST', '/v1/partitions/idem/start', {}, headers);
    const second = await call('POST', '/v1/partitions/idem/start', {}, headers);
    expect(first.status).toBe(202);
    expect(second.body).toEqual(first.body);
    const starts = (await call('GET', '/v1/partitions/idem/events')).body.events.filter((e: { type: string }) => e.type === 'PartitionStartRequested');
    expect(starts).toHaveLength(1);
  });

  it('refuses a bad actor and a bad key, and records the correlation id', async () => {
    expectProblem(await call('POST', '/v1/partitions', { id: 'who', vcpus: 1, memory: { startupMiB: 512 } }, { 'x-vcp-actor': 'alice' }), 400, 'invalid-actor', '/headers/x-vcp-actor');
    expectProblem(await call('POST', '/v1/partitions', { id: 'who', vcpus: 1, memory: { startupMiB: 512 } }, { 'idempotency-key': 'k'.repeat(300) }), 400, 'invalid-idempotency-key');
    const response = await fetch(`${cp.url}/v1/partitions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-correlation-id': 'corr-42' },
      body: JSON.stringify({ id: 'who', vcpus: 1, memory: { startupMiB: 512 } }),
    });
    expect(response.headers.get('x-correlation-id')).toBe('corr-42');
    expect((await call('GET', '/v1/partitions/who/events')).body.events[0].correlationId).toBe('corr-42');
  });
});

describe('the global log', () => {
  it('pages through all events in order', async () => {
    const all: { globalPosition: number }[] = [];
    let after = 0;
    for (;;) {
      const page = (await call('GET', `/v1/events?after=${after}&limit=7`)).body;
      if (page.events.length === 0) break;
      all.push(...page.events);
      after = page.next;
    }
    expect(all.map((e) => e.globalPosition)).toEqual(all.map((_, i) => i + 1));
    expectProblem(await call('GET', '/v1/events?limit=0'), 400, 'invalid-input', '/querystring/limit');
    expectProblem(await call('GET', '/v1/events?after=-1'), 400, 'invalid-input', '/querystring/after');
  });

  it('streams events over SSE, resuming after Last-Event-ID, then live', async () => {
    const abort = new AbortController();
    const response = await fetch(`${cp.url}/v1/events/stream`, { headers: { 'last-event-id': '3' }, signal: abort.signal });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const messages = readSse(response.body!);
    const first = await messages.next();
    expect(first.value?.id).toBe('4');
    const head = (await call('GET', '/v1/events?after=0&limit=1000')).body.next;
    let last = Number(first.value?.id);
    while (last < head) last = Number((await messages.next()).value?.id);
    await call('POST', '/v1/partitions', { id: 'streamed', vcpus: 1, memory: { startupMiB: 512 } });
    const live = await messages.next();
    expect(live.value).toMatchObject({ id: String(head + 1), event: 'PartitionCreated' });
    abort.abort();
    expectProblem(await call('GET', '/v1/events/stream', undefined, { 'last-event-id': 'abc' }), 400, 'invalid-input');
  });

  it('verifies as a hash chain', async () => {
    const { verifyChain } = await import('../../services/eventstore/index.ts');
    const events = (await call('GET', '/v1/events?limit=1000')).body.events;
    expect(verifyChain(events)).toBeNull();
  });
});

describe('telemetry', () => {
  const sample = (sampledAtMs: number, incarnation: number) => ({
    bootId: 'b1',
    sampledAtMs,
    host: { logicalProcessors: 8, cpuUsedLp: 1.5, memoryAvailableMiB: 9000 },
    partitions: [{ partitionId: 'idem', incarnation, cpuPct: 75, cpuLp: 0.75, memoryAssignedMiB: 512, memoryDemandMiB: 256, memoryPressurePct: 50 }],
  });

  it('keeps the samples daemons send, serves current values and a bounded history', async () => {
    const idem = (await call('GET', '/v1/partitions/idem')).body;
    expect(idem.hostId).not.toBeNull();
    for (let i = 1; i <= 3; i++) expect((await call('POST', `/v1/hosts/${idem.hostId}/telemetry`, sample(1000 * i, idem.incarnation))).status).toBe(204);
    const host = (await call('GET', `/v1/hosts/${idem.hostId}/telemetry?limit=2`)).body;
    expect(host.current).toMatchObject({ cpuUsedLp: 1.5, sampledAtMs: 3000 });
    expect(host.history.map((h: { sampledAtMs: number }) => h.sampledAtMs)).toEqual([2000, 3000]);
    expect(host.partitions).toEqual([expect.objectContaining({ partitionId: 'idem', cpuPct: 75 })]);
    const partition = (await call('GET', '/v1/partitions/idem/telemetry')).body;
    expect(partition.current).toMatchObject({ cpuPct: 75, memoryPressurePct: 50, hostId: idem.hostId, incarnation: idem.incarnation });
    expect(partition.history).toHaveLength(3);
  });

  it('a sample of an older incarnation is history, not current', async () => {
    await call('POST', '/v1/hosts/h1/telemetry', sample(5000, 0));
    const partition = (await call('GET', '/v1/partitions/idem/telemetry')).body;
    expect(partition.current === null || partition.current.incarnation !== 0).toBe(true);
  });

  it('refuses bad samples and unknown ids', async () => {
    expectProblem(await call('POST', '/v1/hosts/h1/telemetry', { ...sample(1, 1), partitions: [{ partitionId: 'x' }] }), 400, 'invalid-input', '/partitions/0/incarnation');
    expectProblem(await call('POST', '/v1/hosts/h1/telemetry', { ...sample(1, 1), host: { cpu: { nested: true } } }), 400, 'invalid-input');
    expectProblem(await call('POST', '/v1/hosts/nope/telemetry', sample(1, 1)), 404, 'host-not-found');
    expectProblem(await call('GET', '/v1/hosts/nope/telemetry'), 404, 'host-not-found');
    expectProblem(await call('GET', '/v1/partitions/nope/telemetry'), 404, 'partition-not-found');
  });

  it('streams telemetry messages on the event stream when asked', async () => {
    const abort = new AbortController();
    const head = (await call('GET', '/v1/events?limit=1000')).body.next;
    const response = await fetch(`${cp.url}/v1/events/stream?after=${head}&telemetry=true`, { signal: abort.signal });
    const messages = readSse(response.body!);
    await new Promise((r) => setTimeout(r, 100));
    await call('POST', '/v1/hosts/h1/telemetry', sample(9000, 1));
    const message = await messages.next();
    expect(message.value?.event).toBe('telemetry');
    expect(message.value?.id).toBeNull();
    expect(JSON.parse(message.value!.data)).toMatchObject({ hostId: 'h1', sampledAtMs: 9000 });
    abort.abort();
  });
});

describe('GET /v1/kafka', () => {
  it('is a problem naming VCP_KAFKA_BROKERS when the control plane runs without Kafka', async () => {
    const { status, body } = await call('GET', '/v1/kafka');
    expect(status).toBe(404);
    expect(body).toMatchObject({ status: 404, detail: expect.stringMatching(/VCP_KAFKA_BROKERS/) });
  });
});

describe('robustness', () => {
  it('no input produces a 500', async () => {
    const routes = [
      ['POST', '/v1/partitions'],
      ['POST', '/v1/hosts'],
      ['PATCH', '/v1/partitions/idem'],
      ['POST', '/v1/partitions/idem/start'],
      ['POST', '/v1/hosts/h1/reports'],
      ['POST', '/v1/hosts/h1/heartbeat'],
    ] as const;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.anything({ withObjectString: true, withNullPrototype: false }), async ([method, path], body) => {
        const text = JSON.stringify(body) ?? 'null';
        const response = await fetch(cp.url + path, { method, headers: { 'content-type': 'application/json' }, body: text });
        await response.arrayBuffer();
        return response.status < 500;
      }),
      { numRuns: 150 },
    );
  });
});
