/**
 * Confluent schema-registry framing: the codecs over a registry (an in-memory one that behaves as
 * the registry API does, ids and 404s included), and the HTTP client against a local server that
 * answers as a registry does (error bodies, 5xx, auth). The real registry is in
 * schema-registry.kafka.spec.ts.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  NotSingleObjectError,
  SchemaIdNotLoadedError,
  SchemaRegistryError,
  type SchemaRegistryClient,
  SchemaRegistryUnavailableError,
  UnknownSchemaIdError,
  codec as defaultCodec,
  createCodec,
  createCommandCodec,
  createRegistryFraming,
  createSchemaRegistryClient,
  loadCommandSchemaSet,
  loadSchemaSet,
  parseKafkaConfig,
  parseSchema,
  poisonReason,
  readJson,
} from '../../services/messaging/index.ts';
import { examples, recordedExample } from './fixtures/examples.ts';

/** A registry in memory: ids from 1001 up, the same id for the same schema text, 404 for unknown ids. */
function memoryRegistry() {
  const byId = new Map<number, string>();
  const subjects = new Map<string, number[]>();
  const calls = { register: 0, schemaById: 0 };
  let down = false;
  const client: SchemaRegistryClient = {
    async register(subject, schema) {
      calls.register += 1;
      if (down) throw new SchemaRegistryUnavailableError('registry down');
      const existing = [...byId].find(([, text]) => text === schema);
      const id = existing?.[0] ?? 1001 + byId.size;
      byId.set(id, schema);
      subjects.set(subject, [...new Set([...(subjects.get(subject) ?? []), id])]);
      return id;
    },
    async schemaById(id) {
      calls.schemaById += 1;
      if (down) throw new SchemaRegistryUnavailableError('registry down');
      const schema = byId.get(id);
      if (schema === undefined) throw new SchemaRegistryError(`schema ${id} not found`, 404, 40403);
      return schema;
    },
  };
  return {
    client,
    calls,
    subjects,
    /** What another writer registered (a newer or older vcp). */
    put: (schema: unknown) => {
      const id = 1001 + byId.size;
      byId.set(id, JSON.stringify(schema));
      return id;
    },
    setDown: (value: boolean) => {
      down = value;
    },
  };
}

const recorded = recordedExample;

const framed = (id: number, body: Buffer) => {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(id, 1);
  return Buffer.concat([header, body]);
};

describe('Confluent framing in the codecs', () => {
  it('writes 00 + the big-endian registry id + the same Avro body as single-object encoding', async () => {
    const registry = memoryRegistry();
    const framing = createRegistryFraming(registry.client, 'mem:');
    const c = createCodec(loadSchemaSet(), framing);
    expect(c.framing).toBe('confluent');
    await c.prepare();
    const id = framing.idOf(c.schemas.events.get('HostCordoned') as never);
    expect(id).toBeGreaterThan(1000);
    const bytes = c.encodeEvent(examples.HostCordoned);
    expect(bytes[0]).toBe(0);
    expect(bytes.readUInt32BE(1)).toBe(id);
    expect(bytes.subarray(5)).toEqual(defaultCodec().encodeEvent(examples.HostCordoned).subarray(10));
    // RecordNameStrategy: one subject per record type, each event, the envelope.
    expect(registry.subjects.has('vcp.HostCordoned')).toBe(true);
    expect(registry.subjects.has('vcp.Envelope')).toBe(true);
    expect(registry.subjects.size).toBe(c.schemas.events.size + 1);
  });

  it('refuses to encode before prepare() registered the schema, naming it', () => {
    const c = createCodec(loadSchemaSet(), createRegistryFraming(memoryRegistry().client, 'mem:'));
    expect(() => c.encodeEvent(examples.HostCordoned)).toThrow(/vcp\.HostCordoned has no schema-registry id yet/);
  });

  it('a reader with no ids loaded decodes an envelope and its payload by fetching both ids, once', async () => {
    const registry = memoryRegistry();
    const writer = createCodec(loadSchemaSet(), createRegistryFraming(registry.client, 'mem:'));
    await writer.prepare();
    const r = recorded(examples.PartitionStartRequested);
    const bytes = writer.encodeEnvelope(r);
    expect(bytes[0]).toBe(0);

    const reader = createCodec(loadSchemaSet(), createRegistryFraming(registry.client, 'mem:'));
    expect(() => reader.decodeEnvelope(bytes)).toThrow(SchemaIdNotLoadedError);
    expect(await reader.decodeEnvelopeAsync(bytes)).toStrictEqual(JSON.parse(JSON.stringify(r)));
    expect(registry.calls.schemaById).toBe(2);
    // Cached: the next one needs no request, and the sync path works.
    expect(reader.decodeEnvelope(bytes).eventId).toBe(r.eventId);
    await reader.decodeEnvelopeAsync(bytes);
    expect(registry.calls.schemaById).toBe(2);
  });

  it('reads single-object bytes too, so a topic can switch framing with old messages still in it', async () => {
    const c = createCodec(loadSchemaSet(), createRegistryFraming(memoryRegistry().client, 'mem:'));
    const r = recorded(examples.HostCordoned);
    expect((await c.decodeEnvelopeAsync(defaultCodec().encodeEnvelope(r))).data).toEqual(r.data);
  });

  it('a reader without a registry refuses Confluent bytes as poison, saying what to configure', async () => {
    const registry = memoryRegistry();
    const writer = createCodec(loadSchemaSet(), createRegistryFraming(registry.client, 'mem:'));
    await writer.prepare();
    const bytes = writer.encodeEvent(examples.HostCordoned);
    const error = await defaultCodec()
      .decodeEnvelopeAsync(bytes)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotSingleObjectError);
    expect(String(error)).toMatch(/schema id 100\d.*VCP_SCHEMA_REGISTRY_URL/);
    expect(poisonReason(error)?.reason).toBe('not-avro-single-object');
  });

  it('old readers read new data through the registry: a field added with a default is skipped', async () => {
    const registry = memoryRegistry();
    const current = readJson(new URL('../../schemas/events/HostCordoned.avsc', import.meta.url).pathname) as { fields: unknown[] };
    const newer = { ...current, fields: [...current.fields, { name: 'ticket', type: ['null', 'string'], default: null }] };
    const id = registry.put(newer);
    const bytes = framed(id, parseSchema(newer).toBuffer({ hostId: 'h1', reason: 'disk', ticket: 'CHG-1' }));
    const framing = createRegistryFraming(registry.client, 'mem:');
    const c = createCodec(loadSchemaSet(), framing);
    expect(() => c.decodeEvent(bytes)).toThrow(SchemaIdNotLoadedError);
    await framing.load(id);
    expect(c.decodeEvent(bytes)).toEqual({ type: 'HostCordoned', data: { hostId: 'h1', reason: 'disk' } });
  });

  it('an id whose schema breaks the reader, or names a record it does not know, is poison', async () => {
    const registry = memoryRegistry();
    const breaking = readJson(new URL('./fixtures/HostCordoned.breaking-removed-reason.avsc', import.meta.url).pathname);
    const brokenId = registry.put(breaking);
    const strangerId = registry.put({ type: 'record', name: 'Stranger', namespace: 'elsewhere', fields: [{ name: 'x', type: 'int' }] });
    const c = createCommandCodec(loadCommandSchemaSet(), createRegistryFraming(registry.client, 'mem:'));
    const events = createCodec(loadSchemaSet(), createRegistryFraming(registry.client, 'mem:'));

    const broken = await events.decodeEnvelopeAsync(framed(brokenId, parseSchema(breaking).toBuffer({ hostId: 'h1' }))).catch((e: unknown) => e);
    expect(broken).toBeInstanceOf(UnknownSchemaIdError);
    expect(String(broken)).toMatch(/vcp\.HostCordoned as registered cannot be read as the current schema/);
    expect(poisonReason(broken)?.reason).toBe('unknown-schema-id');

    const stranger = await c.decodeAsync(framed(strangerId, Buffer.from([2]))).catch((e: unknown) => e);
    expect(String(stranger)).toMatch(/elsewhere\.Stranger, which this reader does not know/);
    expect(poisonReason(stranger)?.reason).toBe('unknown-schema-id');

    const missing = await c.decodeAsync(framed(99_999, Buffer.from([2]))).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(UnknownSchemaIdError);
    expect(poisonReason(missing)?.reason).toBe('unknown-schema-id');
  });

  it('a registry out of reach is not the message\'s fault: it is delivered again, never dead-lettered', async () => {
    const registry = memoryRegistry();
    const writer = createCommandCodec(loadCommandSchemaSet(), createRegistryFraming(registry.client, 'mem:'));
    await writer.prepare();
    const bytes = writer.encode('CordonHost', { commandId: 'c1', correlationId: 'k1', actor: 'user:ops', hostId: 'h1', reason: 'disk' });
    registry.setDown(true);
    const reader = createCommandCodec(loadCommandSchemaSet(), createRegistryFraming(registry.client, 'mem:'));
    const error = await reader.decodeAsync(bytes).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaRegistryUnavailableError);
    expect(poisonReason(error)).toBeNull();
    registry.setDown(false);
    expect((await reader.decodeAsync(bytes)).subject).toBe('CordonHost');
  });

  it('prepare() reports the schema the registry refused', async () => {
    const refusing: SchemaRegistryClient = {
      register: async (subject) => {
        throw new SchemaRegistryError(`Schema being registered is incompatible with an earlier schema for subject "${subject}"`, 409, 409);
      },
      schemaById: async () => '',
    };
    const c = createCodec(loadSchemaSet(), createRegistryFraming(refusing, 'mem:'));
    await expect(c.prepare()).rejects.toThrow(/the schema registry refused vcp\.\w+: .*incompatible/);
  });
});

describe('schema registry HTTP client', () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(null));
    server = null;
  });

  type Seen = { method: string; url: string; contentType: string | undefined; authorization: string | undefined; body: string };
  /** A local server answering each request with the next of `answers`. */
  async function serve(answers: { status: number; body: unknown }[]): Promise<{ url: string; seen: Seen[] }> {
    const seen: Seen[] = [];
    const listening = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString('utf8');
      });
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], authorization: req.headers.authorization, body });
        const answer = answers.shift() ?? { status: 500, body: { error_code: 50001, message: 'no more answers' } };
        res.writeHead(answer.status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
        res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
      });
    });
    server = listening;
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(listening.address() as AddressInfo).port}/apis/ccompat/v7/`, seen };
  }

  it('registers with the registry media type and basic auth under the base path, and reads a schema by id', async () => {
    const { url, seen } = await serve([
      { status: 200, body: { id: 7 } },
      { status: 200, body: { schema: '{"type":"string"}' } },
    ]);
    const client = createSchemaRegistryClient({ url, username: 'vcp', password: 's3cret', retries: 0 });
    expect(await client.register('vcp.HostCordoned', '{"type":"string"}')).toBe(7);
    expect(await client.schemaById(7)).toBe('{"type":"string"}');
    expect(seen[0]).toMatchObject({
      method: 'POST',
      url: '/apis/ccompat/v7/subjects/vcp.HostCordoned/versions',
      contentType: 'application/vnd.schemaregistry.v1+json',
      authorization: `Basic ${Buffer.from('vcp:s3cret').toString('base64')}`,
    });
    expect(JSON.parse(seen[0]?.body ?? '')).toEqual({ schema: '{"type":"string"}', schemaType: 'AVRO' });
    expect(seen[1]).toMatchObject({ method: 'GET', url: '/apis/ccompat/v7/schemas/ids/7' });
  });

  it('tries a 5xx again, and gives the registry\'s own error code and message for a refusal', async () => {
    const { url, seen } = await serve([
      { status: 503, body: 'busy' },
      { status: 409, body: { error_code: 409, message: 'Schema being registered is incompatible with an earlier schema' } },
    ]);
    const client = createSchemaRegistryClient({ url, username: null, password: null, retries: 2 });
    const error = await client.register('vcp.X', '{}').catch((e: unknown) => e);
    expect(seen).toHaveLength(2);
    expect(seen[0]?.authorization).toBeUndefined();
    expect(error).toBeInstanceOf(SchemaRegistryError);
    expect(error).toMatchObject({ status: 409, errorCode: 409 });
    expect(String(error)).toMatch(/answered 409 \(error 409\): Schema being registered is incompatible/);
  });

  it('a 404 for an id is final; a registry that does not answer is transient', async () => {
    const { url } = await serve([{ status: 404, body: { error_code: 40403, message: 'Schema 5 not found' } }]);
    const missing = await createSchemaRegistryClient({ url, username: null, password: null, retries: 0 })
      .schemaById(5)
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ name: 'SchemaRegistryError', status: 404, errorCode: 40403 });

    const closedPort = new URL(url).port;
    await new Promise((resolve) => server?.close(resolve));
    server = null;
    const down = await createSchemaRegistryClient({ url: `http://127.0.0.1:${closedPort}`, username: null, password: null, retries: 1 })
      .register('vcp.X', '{}')
      .catch((e: unknown) => e);
    expect(down).toBeInstanceOf(SchemaRegistryUnavailableError);
    expect(String(down)).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/subjects\/vcp\.X\/versions failed/);
  });
});

describe('VCP_SCHEMA_REGISTRY_* settings', () => {
  const brokers = { VCP_KAFKA_BROKERS: 'kafka:9092' };

  it('are optional; given, they switch the framing and keep the password out of the description', () => {
    expect(parseKafkaConfig(brokers)).toMatchObject({ ok: true, config: { schemaRegistry: null } });
    const result = parseKafkaConfig({ ...brokers, VCP_SCHEMA_REGISTRY_URL: 'https://registry:8081/', VCP_SCHEMA_REGISTRY_USERNAME: 'vcp', VCP_SCHEMA_REGISTRY_PASSWORD: 'pw' });
    expect(result).toMatchObject({ ok: true, config: { schemaRegistry: { url: 'https://registry:8081', username: 'vcp', password: 'pw' } }, warnings: [] });
    expect(parseKafkaConfig({ ...brokers, VCP_SCHEMA_REGISTRY_URL: 'http://r:8081', VCP_SCHEMA_REGISTRY_USERNAME: 'vcp', VCP_SCHEMA_REGISTRY_PASSWORD: 'pw' })).toMatchObject({
      ok: true,
      warnings: [expect.stringMatching(/clear text/)],
    });
  });

  it.each([
    [{ VCP_SCHEMA_REGISTRY_URL: 'http://r:8081' }, 'VCP_KAFKA_BROKERS', /required when VCP_SCHEMA_REGISTRY_URL is set/],
    [{ ...brokers, VCP_SCHEMA_REGISTRY_URL: 'registry:8081' }, 'VCP_SCHEMA_REGISTRY_URL', /must be http: or https:|is not a URL/],
    [{ ...brokers, VCP_SCHEMA_REGISTRY_URL: 'ftp://r' }, 'VCP_SCHEMA_REGISTRY_URL', /must be http: or https:/],
    [{ ...brokers, VCP_SCHEMA_REGISTRY_URL: 'http://u:p@r:8081' }, 'VCP_SCHEMA_REGISTRY_URL', /must not carry credentials/],
    [{ ...brokers, VCP_SCHEMA_REGISTRY_URL: 'http://r:8081?x=1' }, 'VCP_SCHEMA_REGISTRY_URL', /no query/],
    [{ ...brokers, VCP_SCHEMA_REGISTRY_USERNAME: 'vcp' }, 'VCP_SCHEMA_REGISTRY_URL', /required when VCP_SCHEMA_REGISTRY_USERNAME is set/],
    [{ ...brokers, VCP_SCHEMA_REGISTRY_URL: 'http://r:8081', VCP_SCHEMA_REGISTRY_USERNAME: 'vcp' }, 'VCP_SCHEMA_REGISTRY_PASSWORD', /required with VCP_SCHEMA_REGISTRY_USERNAME/],
  ])('refuses %j, naming %s', (env, setting, message) => {
    const result = parseKafkaConfig(env);
    expect(result).toMatchObject({ ok: false, setting });
    expect(result.ok ? '' : result.message).toMatch(message);
  });
});
