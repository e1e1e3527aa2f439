/**
 * Confluent schema-registry framing, the option for shops whose Kafka tooling expects it
 * (VCP_SCHEMA_REGISTRY_URL): every Avro object vcp writes is `00` + the 4-byte big-endian
 * registry id of its writer schema + the Avro binary body, instead of single-object encoding.
 * Readers accept both framings at all times, so a topic can switch over without a flag day.
 *
 * Subjects follow the RecordNameStrategy: one subject per record type, named by its full name
 * (`vcp.Envelope`, `vcp.PartitionStarted`, `vcp.command.CreatePartition`, …), the same unit our
 * evolution policy works in (a topic such as vcp.commands carries several record types, which one
 * subject per topic could not). A reader needs only the id: any Confluent-compatible deserializer
 * decodes vcp's messages.
 *
 * The client is our own rather than @kafkajs/confluent-schema-registry (whose releases since 4.0.4
 * need Node >= 22) or @confluentinc/schemaregistry (which brings three clouds' KMS SDKs): the
 * codec already owns Avro encoding, logical types and schema resolution, and the registry part is
 * two REST calls (register, schema by id), made here with Node's fetch, a timeout, retries of
 * what is transient, and basic auth.
 */
import type { AvroType } from './schemas.ts';
import { expandedSchema, fingerprintOf, parseSchema } from './schemas.ts';

/** The first byte of the Confluent wire format, and the header's length (magic + id). */
export const CONFLUENT_MAGIC = 0x00;
export const CONFLUENT_HEADER_LENGTH = 5;

export type SchemaRegistryConfig = {
  /** Base URL of a Confluent-compatible API (`http://registry:8081`, `…/apis/ccompat/v7` for Apicurio). */
  readonly url: string;
  readonly username: string | null;
  readonly password: string | null;
};

/** What the registry said no to: final (a bad schema, an incompatible change, an unknown id, refused credentials). */
export class SchemaRegistryError extends Error {
  override readonly name = 'SchemaRegistryError';
  constructor(
    message: string,
    readonly status: number,
    /** The registry's error_code (40403 schema not found, 409 incompatible, 42201 invalid schema, …). */
    readonly errorCode: number | null,
  ) {
    super(message);
  }
}

/** The registry could not be asked (network, time-out, 5xx, 429): worth trying again later. */
export class SchemaRegistryUnavailableError extends Error {
  override readonly name = 'SchemaRegistryUnavailableError';
}

export type SchemaRegistryClient = {
  /** Registers `schema` under `subject` (a no-op returning the same id when it is there already). */
  register(subject: string, schema: string): Promise<number>;
  /** The schema (JSON text) of a registry id. */
  schemaById(id: number): Promise<string>;
};

export type SchemaRegistryClientOptions = SchemaRegistryConfig & {
  /** Per request (default 10 s). */
  readonly timeoutMs?: number;
  /** Further attempts after a transient failure (default 3), 200 ms apart, doubling. */
  readonly retries?: number;
  readonly fetch?: typeof fetch;
};

const contentType = 'application/vnd.schemaregistry.v1+json';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createSchemaRegistryClient(options: SchemaRegistryClientOptions): SchemaRegistryClient {
  const base = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retries = options.retries ?? 3;
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> = { accept: `${contentType}, application/json` };
  if (options.username !== null) headers.authorization = `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}`;

  const request = async (method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> => {
    const what = `${method} ${base}${path}`;
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await doFetch(`${base}${path}`, {
          method,
          headers: body === undefined ? headers : { ...headers, 'content-type': contentType },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        const why = error instanceof Error ? (error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message) : String(error);
        if (attempt < retries) {
          await sleep(200 * 2 ** attempt);
          continue;
        }
        throw new SchemaRegistryUnavailableError(`schema registry: ${what} failed: ${why}`);
      }
      const text = await response.text().catch(() => '');
      if (response.ok) {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new SchemaRegistryError(`schema registry: ${what} answered ${response.status} with no JSON: ${text.slice(0, 200)}`, response.status, null);
        }
      }
      const transient = response.status >= 500 || response.status === 429 || response.status === 408;
      if (transient && attempt < retries) {
        await sleep(200 * 2 ** attempt);
        continue;
      }
      let errorCode: number | null = null;
      let message = text.slice(0, 500);
      try {
        const parsed = JSON.parse(text) as { error_code?: unknown; message?: unknown };
        if (typeof parsed.error_code === 'number') errorCode = parsed.error_code;
        if (typeof parsed.message === 'string') message = parsed.message;
      } catch {
        // Not JSON (a proxy's page): the text itself is the message.
      }
      const line = `schema registry: ${what} answered ${response.status}${errorCode === null ? '' : ` (error ${errorCode})`}: ${message}`;
      if (transient) throw new SchemaRegistryUnavailableError(line);
      throw new SchemaRegistryError(line, response.status, errorCode);
    }
  };

  return {
    async register(subject, schema) {
      const answer = (await request('POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema, schemaType: 'AVRO' })) as { id?: unknown };
      if (typeof answer?.id !== 'number' || !Number.isSafeInteger(answer.id)) throw new SchemaRegistryError(`schema registry: registering ${subject} answered no id`, 200, null);
      return answer.id;
    },
    async schemaById(id) {
      const answer = (await request('GET', `/schemas/ids/${id}`)) as { schema?: unknown; schemaType?: unknown };
      if (answer?.schemaType !== undefined && answer.schemaType !== 'AVRO') throw new SchemaRegistryError(`schema registry: schema id ${id} is ${String(answer.schemaType)}, not Avro`, 200, null);
      if (typeof answer?.schema !== 'string') throw new SchemaRegistryError(`schema registry: schema id ${id} came without its schema`, 200, null);
      return answer.schema;
    },
  };
}

/** A registry id whose schema this process has not loaded yet (decodeAsync loads it and decodes again). */
export class SchemaIdNotLoadedError extends Error {
  override readonly name = 'SchemaIdNotLoadedError';
  constructor(readonly id: number) {
    super(`schema id ${id} is not loaded from the schema registry yet`);
  }
}

/** The registry has no schema under this id, or one this codec cannot read as any of its types. */
export class UnknownSchemaIdError extends Error {
  override readonly name = 'UnknownSchemaIdError';
  constructor(
    readonly id: number,
    why: string,
  ) {
    super(`schema id ${id}: ${why}`);
  }
}

/**
 * The ids of the schemas this process writes (registered by `register`) and the writer schemas of
 * the ids it has read, shared by every codec of the process.
 */
export type RegistryFraming = {
  readonly url: string;
  /** Registers each type under its full name; resolves once all have their ids. */
  register(types: Iterable<AvroType>): Promise<void>;
  /** The id of exactly this schema, if registered by this process. */
  idOf(type: AvroType): number | undefined;
  /** The writer schema of an id, if loaded. */
  writerOf(id: number): AvroType | undefined;
  /** Fetches (once) and parses the schema of an id. */
  load(id: number): Promise<AvroType>;
};

export function createRegistryFraming(client: SchemaRegistryClient, url: string): RegistryFraming {
  const ids = new Map<bigint, number>();
  const writers = new Map<number, AvroType>();
  const loading = new Map<number, Promise<AvroType>>();

  const registerOne = async (type: AvroType): Promise<void> => {
    const fingerprint = fingerprintOf(type);
    if (ids.has(fingerprint)) return;
    const subject = type.name;
    if (subject === undefined) throw new Error('only named (record) schemas are registered');
    let id: number;
    try {
      id = await client.register(subject, JSON.stringify(expandedSchema(type)));
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      if (error instanceof SchemaRegistryUnavailableError) throw new SchemaRegistryUnavailableError(`cannot register ${subject}: ${why}`);
      throw new SchemaRegistryError(`the schema registry refused ${subject}: ${why}`, error instanceof SchemaRegistryError ? error.status : 0, error instanceof SchemaRegistryError ? error.errorCode : null);
    }
    ids.set(fingerprint, id);
    if (!writers.has(id)) writers.set(id, type);
  };

  return {
    url,
    async register(types) {
      // One at a time: the first refusal (an incompatible change) is the one reported, and a
      // registry serialises writes anyway (Apicurio's in-memory store stalls under parallel ones).
      for (const type of types) await registerOne(type);
    },
    idOf: (type) => ids.get(fingerprintOf(type)),
    writerOf: (id) => writers.get(id),
    load(id) {
      const known = writers.get(id);
      if (known !== undefined) return Promise.resolve(known);
      let pending = loading.get(id);
      if (pending === undefined) {
        pending = (async () => {
          let text: string;
          try {
            text = await client.schemaById(id);
          } catch (error) {
            if (error instanceof SchemaRegistryError && error.status === 404) throw new UnknownSchemaIdError(id, `the schema registry has no such schema (${error.message})`);
            throw error;
          }
          let type: AvroType;
          try {
            type = parseSchema(JSON.parse(text));
          } catch (error) {
            throw new UnknownSchemaIdError(id, `the registry's schema does not parse as Avro: ${error instanceof Error ? error.message : String(error)}`);
          }
          writers.set(id, type);
          return type;
        })().finally(() => loading.delete(id));
        loading.set(id, pending);
      }
      return pending;
    },
  };
}

/** The registry framing of `config` (null without a registry). */
export function registryFraming(config: SchemaRegistryConfig | null): RegistryFraming | null {
  return config === null ? null : createRegistryFraming(createSchemaRegistryClient(config), config.url);
}
