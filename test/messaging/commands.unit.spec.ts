/**
 * The command consumer on a fake Kafka, against the real service, migration and maintenance
 * managers over an in-memory store: validation as HTTP, idempotency by command id, results,
 * poison messages. The same flows against a real broker: commands.kafka.spec.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as S from '../../services/control-plane/http/schemas.ts';
import { type EventStore, openMemoryEventStore } from '../../services/eventstore/index.ts';
import {
  type CommandConsumer,
  type CommandResultValue,
  type CommandTargets,
  type CommandType,
  commandCodec,
  commandHeaders,
  commandResultSubject,
  commandSpecs,
  commandTypes,
  createMemoryCommandOutcomeStore,
  dlqHeaders,
  encodeEnvelope,
  startCommandConsumer,
  topicNames,
} from '../../services/messaging/index.ts';
import { type FakeKafka, fakeKafka } from '../support/fake-kafka.ts';
import { type TestControlPlane, startTestControlPlane } from './fixtures/control-plane.ts';

const topics = topicNames('u.');
const codec = commandCodec();

type Fields = { [key: string]: unknown };
let sequence = 0;
const meta = () => {
  sequence += 1;
  return { commandId: `cmd-${sequence}-${Math.random().toString(36).slice(2)}`, actor: 'user:alice', correlationId: `corr-${sequence}` };
};

describe('commands over Kafka (fake broker, real control plane)', () => {
  let store: EventStore;
  let cp: TestControlPlane;
  let kafka: FakeKafka;
  let consumer: CommandConsumer;

  const start = async (targets: CommandTargets = cp) => {
    consumer = await startCommandConsumer({
      client: kafka.client,
      topics,
      groupId: 'g',
      targets,
      store,
      outcomes: createMemoryCommandOutcomeStore(),
      dispatchRetryDelayMs: 1,
    });
  };

  beforeEach(async () => {
    store = openMemoryEventStore();
    cp = await startTestControlPlane(store);
    kafka = fakeKafka();
    await start();
  });
  afterEach(async () => {
    await consumer.close();
    await cp.close();
    await store.close();
  });

  const results = () => kafka.sent.filter((m) => m.topic === topics.commandResults);
  const dlq = () => kafka.sent.filter((m) => m.topic === topics.dlq);

  /** Sends one command; returns its result (the last one published). */
  async function send(type: CommandType, fields: Fields, ids = meta()): Promise<CommandResultValue> {
    const before = results().length;
    await kafka.deliver(topics.commands, { key: String(fields.partitionId ?? fields.hostId ?? ''), value: codec.encode(type, { ...ids, ...fields }) });
    const published = results().slice(before);
    expect(published).toHaveLength(1);
    const message = published[0]!;
    expect(message.key).toBe(ids.correlationId);
    const decoded = codec.decode(message.value);
    expect(decoded.subject).toBe(commandResultSubject);
    return decoded.value as CommandResultValue;
  }

  const host = (id: string) => ({ hostId: id, logicalProcessors: 16, memoryMiB: 65_536 });

  it('carries out a command and answers with the events it appended', async () => {
    const registered = await send('RegisterHost', host('h1'));
    expect(registered).toMatchObject({ commandType: 'RegisterHost', outcome: 'accepted', resourceId: 'h1', rejection: null, actor: 'user:alice' });
    expect(registered.events.map((e) => e.type)).toEqual(['HostRegistered']);
    cp.connect('h1');

    const created = await send('CreatePartition', { partitionId: 'web-1', vcpus: 2, memory: { startupMiB: 2048 }, ha: { priority: 3000 } });
    expect(created.outcome).toBe('accepted');
    expect(created.events.map((e) => [e.type, e.streamId])).toEqual([['PartitionCreated', 'partition-web-1']]);
    const stored = await store.getEvent(created.events[0]!.eventId);
    expect(stored).toMatchObject({ actor: 'user:alice', correlationId: created.correlationId, type: 'PartitionCreated' });
    expect(cp.service.partition('web-1')?.spec.ha.priority).toBe(3000);

    const started = await send('StartPartition', { partitionId: 'web-1' });
    expect(started.events.map((e) => e.type)).toEqual(['HostCapacityReserved', 'PartitionStartRequested']);
    expect(cp.service.partition('web-1')).toMatchObject({ state: 'Starting', hostId: 'h1' });

    const header = results().at(-1)!.headers;
    expect(header[commandHeaders.outcome]).toBe('accepted');
    expect(header[commandHeaders.commandType]).toBe('StartPartition');
    expect(consumer.stats()).toMatchObject({ received: 3, accepted: 3, rejected: 0, deadLettered: 0 });
  });

  it('refuses input by the HTTP rules, naming the field as a pointer into the command', async () => {
    const zero = await send('CreatePartition', { partitionId: 'web-1', vcpus: 0, memory: { startupMiB: 1024 } });
    expect(zero).toMatchObject({ outcome: 'rejected', events: [] });
    expect(zero.rejection).toMatchObject({ kind: 'invalid', code: 'invalid-input', field: '/vcpus', message: '/vcpus: must be >= 1' });

    const badId = await send('CreatePartition', { partitionId: 'Web_1', vcpus: 1, memory: { startupMiB: 1024 } });
    expect(badId.rejection).toMatchObject({ code: 'invalid-input', field: '/partitionId' });

    // The decider's own rule (as HTTP: buildSpec/validateSpec inside the service).
    const dynamic = await send('CreatePartition', { partitionId: 'db-1', vcpus: 1, memory: { mode: 'dynamic', startupMiB: 1024, minMiB: 2048 } });
    expect(dynamic.rejection).toMatchObject({ kind: 'invalid', code: 'invalid-spec', field: '/memory/minMiB' });

    const mode = await send('CreatePartition', { partitionId: 'db-2', vcpus: 1, memory: { mode: 'elastic', startupMiB: 1024 } });
    expect(mode.rejection).toMatchObject({ code: 'invalid-input', field: '/memory/mode' });

    const actor = await send('CreatePartition', { partitionId: 'db-3', vcpus: 1, memory: { startupMiB: 1024 } }, { ...meta(), actor: 'alice' });
    expect(actor.rejection).toMatchObject({ code: 'invalid-actor', field: '/actor' });

    const missing = await send('StopPartition', { partitionId: 'nope' });
    expect(missing.rejection).toMatchObject({ kind: 'not-found', code: 'partition-not-found' });

    const bandwidth = await send('MigratePartition', { partitionId: 'nope', bandwidthMiBps: -5 });
    expect(bandwidth.rejection).toMatchObject({ code: 'invalid-input', field: '/bandwidthMiBps' });

    expect(await store.headPosition()).toBe(0);
    expect(consumer.stats()).toMatchObject({ rejected: 7, accepted: 0 });
  });

  it('answers a state conflict with the current state, as HTTP does', async () => {
    await send('RegisterHost', host('h1'));
    await send('CreatePartition', { partitionId: 'web-1', vcpus: 1, memory: { startupMiB: 1024 } });
    const paused = await send('PausePartition', { partitionId: 'web-1' });
    expect(paused.rejection).toMatchObject({ kind: 'conflict', code: 'invalid-transition', currentState: 'Off' });
  });

  it('answers a repeated command id with its first result, byte for byte, and writes nothing', async () => {
    await send('RegisterHost', host('h1'));
    const ids = meta();
    const first = await send('CreatePartition', { partitionId: 'web-1', vcpus: 1, memory: { startupMiB: 1024 } }, ids);
    const firstBytes = results().at(-1)!.value;
    const head = await store.headPosition();

    const again = await send('CreatePartition', { partitionId: 'web-1', vcpus: 1, memory: { startupMiB: 1024 } }, ids);
    expect(again).toStrictEqual(first);
    expect(results().at(-1)!.value.equals(firstBytes)).toBe(true);
    expect(results().at(-1)!.headers[commandHeaders.replayed]).toBe('true');
    expect(await store.headPosition()).toBe(head);

    // A rejection is kept as well: the same id gets the same answer even after the state changed.
    const stopIds = meta();
    const refused = await send('StopPartition', { partitionId: 'web-1' }, stopIds);
    expect(refused.outcome).toBe('rejected');
    expect(await send('StopPartition', { partitionId: 'web-1' }, stopIds)).toStrictEqual(refused);

    // The same id with another command is refused, and the first outcome stays.
    const reused = await send('CreatePartition', { partitionId: 'web-2', vcpus: 1, memory: { startupMiB: 1024 } }, ids);
    expect(reused.rejection).toMatchObject({ kind: 'conflict', code: 'command-id-reused', field: '/commandId' });
    expect(cp.service.partition('web-2')).toBeNull();
    expect(await send('CreatePartition', { partitionId: 'web-1', vcpus: 1, memory: { startupMiB: 1024 } }, ids)).toStrictEqual(first);
    expect(consumer.stats()).toMatchObject({ replayed: 3 });
  });

  it('appends nothing twice for a command id whose result was lost (outcome table empty, events stored)', async () => {
    await send('RegisterHost', host('h1'));
    cp.connect('h1');
    await send('CreatePartition', { partitionId: 'web-1', vcpus: 1, memory: { startupMiB: 1024 } });
    const ids = meta();
    const first = await send('StartPartition', { partitionId: 'web-1' }, ids);
    const head = await store.headPosition();
    // A second consumer with an empty outcome table, as after losing the table, or on another replica.
    await consumer.close();
    await start();
    const again = await send('StartPartition', { partitionId: 'web-1' }, ids);
    expect(again.outcome).toBe('accepted');
    expect(again.events.map((e) => e.eventId)).toEqual(first.events.slice(-1).map((e) => e.eventId));
    expect(await store.headPosition()).toBe(head);
  });

  it('reconfigures, clearing a nullable setting through setNull', async () => {
    await send('CreatePartition', { partitionId: 'web-1', vcpus: 1, memory: { startupMiB: 1024 }, workload: { cpuDemandPct: 50 }, ha: { antiAffinityClass: 'web' } });
    expect(cp.service.partition('web-1')?.spec.workload).not.toBeNull();
    const cleared = await send('ReconfigurePartition', { partitionId: 'web-1', processor: { weight: 300 }, setNull: ['/workload', '/ha/antiAffinityClass'] });
    expect(cleared.outcome).toBe('accepted');
    const spec = cp.service.partition('web-1')?.spec;
    expect(spec).toMatchObject({ workload: null, processor: { weight: 300 }, ha: { antiAffinityClass: null } });

    const wrong = await send('ReconfigurePartition', { partitionId: 'web-1', setNull: ['/vcpus'] });
    expect(wrong.rejection).toMatchObject({ code: 'invalid-input', field: '/setNull/0' });
    const nothing = await send('ReconfigurePartition', { partitionId: 'web-1' });
    expect(nothing.rejection).toMatchObject({ code: 'invalid-input' });
  });

  it('migrates, cancels and drains through the same managers as HTTP, answering with their events and ids', async () => {
    await send('RegisterHost', host('h1'));
    await send('RegisterHost', host('h2'));
    cp.connect('h1');
    cp.connect('h2');
    await send('CreatePartition', { partitionId: 'web-1', vcpus: 1, memory: { startupMiB: 1024 } });
    const started = await send('StartPartition', { partitionId: 'web-1', hostId: 'h1' });
    const directive = started.events.find((e) => e.type === 'PartitionStartRequested')!;
    await cp.service.report('h1', [{ reportId: 'r1', partitionId: 'web-1', fact: { type: 'PartitionStarted', incarnation: 1, directiveEventId: directive.eventId, reason: null, code: null, how: null, memoryAssignedMiB: 1024 } }], 'corr-report');
    expect(cp.service.partition('web-1')?.state).toBe('Running');

    const migrate = await send('MigratePartition', { partitionId: 'web-1', targetHostId: 'h2', reason: 'rebalance', downtimeMsMax: 500 });
    expect(migrate.outcome).toBe('accepted');
    expect(migrate.resourceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(migrate.events[0]).toMatchObject({ type: 'MigrationRequested', streamId: `migration-${migrate.resourceId}` });
    const cancel = await send('CancelMigration', { migrationId: migrate.resourceId, reason: 'changed my mind' });
    expect(cancel.outcome === 'accepted' || cancel.rejection?.code === 'invalid-transition').toBe(true);

    const drain = await send('StartMaintenance', { hostId: 'h2', reason: 'firmware' });
    expect(drain.outcome).toBe('accepted');
    expect(drain.events.map((e) => e.type)).toEqual(['HostMaintenanceRequested']);
    expect(drain.resourceId).toMatch(/^[0-9a-f-]{36}$/);
    const end = await send('EndMaintenance', { hostId: 'h2' });
    expect(end.events.map((e) => e.type)).toEqual(['HostMaintenanceExited']);

    expect((await send('CordonHost', { hostId: 'h1' })).events.map((e) => e.type)).toEqual(['HostCordoned']);
    expect((await send('UncordonHost', { hostId: 'h1' })).events.map((e) => e.type)).toEqual(['HostUncordoned']);
    expect((await send('TurnOffPartition', { partitionId: 'web-1' })).events.map((e) => e.type)).toEqual(['PartitionTurnOffRequested']);
  });

  it('sends poison messages to the DLQ with their origin and reason, and goes on with the next message', async () => {
    const poison: [Buffer | null, string][] = [
      [Buffer.from('{"type":"CreatePartition"}'), 'not-avro-single-object'],
      [Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.from('0123456789abcdef', 'hex'), Buffer.from([2, 3])]), 'unknown-schema-fingerprint'],
      [codec.encode('StopPartition', { ...meta(), partitionId: 'web-1' }).subarray(0, 14), 'undecodable'],
      [Buffer.concat([codec.encode('StopPartition', { ...meta(), partitionId: 'web-1' }), Buffer.from([7, 7, 7])]), 'undecodable'],
      [codec.encode(commandResultSubject, { commandId: 'x', commandType: 'X', correlationId: 'c', actor: 'user:a', outcome: 'accepted', resourceId: null, events: [], rejection: null, processedAt: new Date().toISOString() }), 'not-a-command'],
      [codec.encode('StopPartition', { ...meta(), commandId: '', partitionId: 'web-1' }), 'invalid-command-metadata'],
      [null, 'empty-value'],
    ];
    const event = (await store.append('host-h9', [{ eventId: '00000000-0000-4000-8000-000000000009', type: 'HostCordoned', data: { hostId: 'h9', reason: 'x' }, metadata: { actor: 'user:a', causationId: null, correlationId: 'c', schemaVersion: 1 } }], 'any')).events[0]!;
    poison.push([encodeEnvelope(event), 'unknown-schema-fingerprint']);

    for (const [index, [value, reason]] of poison.entries()) {
      const delivered = await kafka.deliver(topics.commands, { key: `k${index}`, value, headers: { 'x-origin': 'test' } });
      const dead = dlq().at(-1)!;
      expect(dead.headers[dlqHeaders.reason], `message ${index}`).toBe(reason);
      expect(dead.headers[dlqHeaders.sourceTopic]).toBe(topics.commands);
      expect(dead.headers[dlqHeaders.sourcePartition]).toBe('0');
      expect(dead.headers[dlqHeaders.sourceOffset]).toBe(delivered.offset);
      expect(dead.headers['x-origin']).toBe('test');
      expect(dead.key).toBe(`k${index}`);
      expect(dead.value.equals(value ?? Buffer.alloc(0))).toBe(true);
    }
    expect(dlq()).toHaveLength(poison.length);
    expect(results()).toHaveLength(0);
    expect(kafka.committed.get(`${topics.commands}/0`)).toBe(String(poison.length));
    // ... and the next good command goes through.
    expect((await send('RegisterHost', host('h1'))).outcome).toBe('accepted');
    expect(consumer.stats()).toMatchObject({ deadLettered: poison.length, accepted: 1 });
  });

  it('answers an internal failure with a failed result after bounded retries, keeps no outcome, and retries on a resend', async () => {
    await consumer.close();
    let calls = 0;
    let broken = true;
    const flaky: CommandTargets = {
      ...cp,
      service: {
        ...cp.service,
        createPartition: () => Promise.reject(new Error('store unavailable')),
        partitionCommand: (...args) => cp.service.partitionCommand(...args),
        reconfigurePartition: (...args) => cp.service.reconfigurePartition(...args),
        startPartition: (...args) => cp.service.startPartition(...args),
        hostCommand: async (...args) => {
          calls += 1;
          if (broken) throw new Error('store unavailable');
          return cp.service.hostCommand(...args);
        },
      },
    };
    await start(flaky);
    const ids = meta();
    const failed = await send('RegisterHost', host('h1'), ids);
    expect(failed).toMatchObject({ outcome: 'failed', events: [], rejection: { kind: 'internal', code: 'internal' } });
    expect(failed.rejection?.message).toMatch(/store unavailable/);
    expect(calls).toBe(3);
    expect(dlq().at(-1)?.headers[dlqHeaders.reason]).toBe('dispatch-failed');
    broken = false;
    const retried = await send('RegisterHost', host('h1'), ids);
    expect(retried.outcome).toBe('accepted');
    expect(consumer.stats()).toMatchObject({ failed: 1, accepted: 1, deadLettered: 1 });
  });
});

describe('the command contracts', () => {
  /** The HTTP body schema's properties (the first branch of a union such as CancelInput). */
  const httpProperties = (schema: unknown): string[] => {
    const s = schema as { properties?: object; anyOf?: { properties?: object }[] };
    return Object.keys(s.properties ?? s.anyOf?.[0]?.properties ?? {}).sort();
  };
  const avroFields = (type: CommandType): string[] => {
    const record = codec.schemas.subjects.get(type) as unknown as { fields: { name: string }[] };
    return record.fields.map((f) => f.name);
  };

  it('has a schema and a dispatcher for every command type, and nothing else', () => {
    expect(Object.keys(commandSpecs).sort()).toEqual([...commandTypes].sort());
    expect([...codec.schemas.subjects.keys()].sort()).toEqual([...commandTypes, commandResultSubject].sort());
  });

  it.each([...commandTypes])('%s carries exactly the fields of its HTTP request', (type) => {
    const spec = commandSpecs[type];
    const extra = new Set(['commandId', 'actor', 'correlationId', spec.idField, 'setNull']);
    const fields = avroFields(type).filter((f) => !extra.has(f)).sort();
    const http = httpProperties(spec.schema).filter((p) => p !== 'id');
    expect(fields).toEqual(http);
  });

  it('keeps the HTTP schemas it validates with', () => {
    expect(commandSpecs.CreatePartition.schema).toBe(S.PartitionInput);
    expect(commandSpecs.ReconfigurePartition.schema).toBe(S.PartitionPatch);
    expect(commandSpecs.RegisterHost.schema).toBe(S.HostInput);
  });
});
