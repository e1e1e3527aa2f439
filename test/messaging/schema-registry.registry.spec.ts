/**
 * vcp's schemas against a real Confluent-compatible registry (Apicurio Registry's ccompat API,
 * started by the global setup): every schema vcp writes is registered under its record name and
 * gets one id however often it is registered; a reader that knows no id decodes by asking the
 * registry; and a registry whose compatibility rule refuses a change stops vcp with the subject
 * named.
 */
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import {
  type AvroType,
  createCodec,
  createCommandCodec,
  createHostReportCodec,
  createRegistryFraming,
  createSchemaRegistryClient,
  loadCommandSchemaSet,
  loadHostReportSchemaSet,
  loadSchemaSet,
  parseSchema,
  readJson,
} from '../../services/messaging/index.ts';
import { describeRegistry, schemaRegistryUrl } from '../support/schema-registry.ts';
import { examples } from './fixtures/examples.ts';

const framingOn = (url: string) => createRegistryFraming(createSchemaRegistryClient({ url, username: null, password: null }), url);

async function registry(path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${schemaRegistryUrl()}${path}`, {
    method: init.method ?? 'GET',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? null : JSON.parse(text) };
}

describeRegistry('vcp schemas on a real schema registry', () => {
  it('registers every schema vcp writes under its record name, with one id however often', async () => {
    const url = schemaRegistryUrl();
    const events = createCodec(loadSchemaSet(), framingOn(url));
    const commands = createCommandCodec(loadCommandSchemaSet(), framingOn(url));
    const reports = createHostReportCodec(loadHostReportSchemaSet(), framingOn(url));
    await Promise.all([events.prepare(), commands.prepare(), reports.prepare()]);

    const subjects = (await registry('/subjects')).body as string[];
    for (const name of ['vcp.Envelope', 'vcp.PartitionStarted', 'vcp.command.CreatePartition', 'vcp.command.CommandResult', 'vcp.report.PartitionReports']) {
      expect(subjects).toContain(name);
    }
    // A second process registering the same schemas gets the same ids and adds no version.
    const again = framingOn(url);
    await createCodec(loadSchemaSet(), again).prepare();
    const first = events.encodeEvent(examples.HostCordoned).readUInt32BE(1);
    const set = loadSchemaSet();
    expect(again.idOf(set.events.get('HostCordoned') as AvroType)).toBe(first);
    expect((await registry('/subjects/vcp.HostCordoned/versions')).body).toEqual([1]);
    // The registry's copy of the schema is the one vcp ships, docs and logical types included.
    const stored = (await registry(`/schemas/ids/${first}`)).body as { schema: string };
    expect(JSON.parse(stored.schema)).toMatchObject({ name: 'vcp.HostCordoned', doc: 'The host takes no new placements.' });
  });

  it('a reader that never saw an id decodes an envelope and its payload by asking the registry', async () => {
    const url = schemaRegistryUrl();
    const writer = createCodec(loadSchemaSet(), framingOn(url));
    await writer.prepare();
    const recorded = {
      eventId: randomUUID(),
      type: 'PartitionStartRequested',
      streamId: 'partition-web-1',
      streamVersion: 2,
      globalPosition: 17,
      recordedAt: '2026-11-28T12:00:00.000Z',
      actor: 'user:ops',
      causationId: null,
      correlationId: randomUUID(),
      schemaVersion: 1,
      hash: 'b'.repeat(64),
      data: examples.PartitionStartRequested.data,
    } as Parameters<typeof writer.encodeEnvelope>[0];
    const bytes = writer.encodeEnvelope(recorded);
    expect(bytes[0]).toBe(0);
    const reader = createCodec(loadSchemaSet(), framingOn(url));
    expect(await reader.decodeEnvelopeAsync(bytes)).toStrictEqual(JSON.parse(JSON.stringify(recorded)));
  });

  it('a registry that refuses a change (FULL compatibility) stops vcp with the subject and the registry\'s reason', async () => {
    const url = schemaRegistryUrl();
    // A subject of its own, so the other tests' schemas are untouched: the event type renamed.
    const name = `HostCordoned${randomUUID().slice(0, 8)}`;
    const current = { ...(readJson(new URL('../../schemas/events/HostCordoned.avsc', import.meta.url).pathname) as object), name };
    const breaking = { ...(readJson(new URL('./fixtures/HostCordoned.breaking-removed-reason.avsc', import.meta.url).pathname) as object), name };
    const subject = `vcp.${name}`;
    const framing = framingOn(url);
    await framing.register([parseSchema(current)]);
    expect((await registry(`/config/${subject}`, { method: 'PUT', body: { compatibility: 'FULL' } })).status).toBe(200);
    const error = await framing.register([parseSchema(breaking)]).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'SchemaRegistryError', status: 409 });
    expect(String(error)).toMatch(new RegExp(`the schema registry refused ${subject.replace('.', '\\.')}: .*409`));
    // Nothing was added: the subject still has its one version.
    expect((await registry(`/subjects/${subject}/versions`)).body).toEqual([1]);
  });
});
