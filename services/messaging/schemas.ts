/**
 * Loading the Avro contracts of schemas/: shared named types (schemas/types/), one record per event
 * type (schemas/events/), and the published versions kept for compatibility
 * (schemas/published/<Type>/v<N>.avsc, each self-contained).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { crc64Avro } from './crc64.ts';

export type AvroType = avro.Type;

/** schemas/ at the repository root. */
export const schemasDir = fileURLToPath(new URL('../../schemas/', import.meta.url));

/** Namespace of every vcp schema. */
export const namespace = 'vcp';

/**
 * timestamp-millis: a long of milliseconds since the epoch on the wire, an ISO-8601 UTC string in
 * TypeScript (RecordedEvent.recordedAt). Accepts a Date too when writing.
 */
class TimestampMillisType extends avro.types.LogicalType {
  protected override _fromValue(val: unknown): unknown {
    return typeof val === 'number' ? new Date(val).toISOString() : val;
  }
  protected override _toValue(val: unknown): unknown {
    const ms = val instanceof Date ? val.getTime() : typeof val === 'string' ? Date.parse(val) : Number.NaN;
    return Number.isSafeInteger(ms) ? ms : undefined;
  }
  protected override _resolve(type: AvroType): unknown {
    if (avro.Type.isType(type, 'long', 'logical:timestamp-millis')) return (val: unknown) => this._fromValue(val);
    return undefined;
  }
}

export type Registry = { [name: string]: AvroType };

/**
 * The options every vcp service must parse the schemas with: equal schemas parsed with other
 * options (union wrapping, logical types) are not interchangeable. Unions of records are wrapped
 * (`{ "vcp.StaticMemory": … }` in avsc's values), `["null", T]` unions are not.
 */
export function typeOptions(registry: Registry = {}) {
  return {
    registry,
    wrapUnions: 'auto' as const,
    assertLogicalTypes: true,
    logicalTypes: { 'timestamp-millis': TimestampMillisType },
  };
}

/** Parse one schema (JSON) with vcp's options and the named types already in `registry`. */
export function parseSchema(schema: unknown, registry: Registry = {}): AvroType {
  return avro.Type.forSchema(schema as avro.Schema, typeOptions(registry));
}

/**
 * The Parsing Canonical Form (Avro spec): full names, only name/type/fields/symbols/items/values/size,
 * no whitespace, each named type spelled out at its first use and by name afterwards. avsc's
 * `schema()` without options yields exactly that (its `toString()` does not: it uses noDeref,
 * which leaves a named type as just its name).
 */
export const canonicalForm = (type: AvroType): string => JSON.stringify(type.schema());

/** CRC-64-AVRO of the Parsing Canonical Form: what single-object encoding puts in its header. */
export const fingerprintOf = (type: AvroType): bigint => crc64Avro(Buffer.from(canonicalForm(type), 'utf8'));

/** The self-contained form of a schema (named types inlined, docs kept), as published under schemas/published/. */
export const expandedSchema = (type: AvroType): unknown => type.schema({ exportAttrs: true });

export type SchemaSet = {
  /** Shared named types by full name (vcp.PartitionSpec, …), the envelope included. */
  readonly shared: ReadonlyMap<string, AvroType>;
  /** One record type per event type, keyed by event type (`HostRegistered`). */
  readonly events: ReadonlyMap<string, AvroType>;
  readonly envelope: AvroType;
  /** Published versions per event type (and `Envelope`), oldest first. */
  readonly published: ReadonlyMap<string, readonly PublishedSchema[]>;
};

export type PublishedSchema = { readonly subject: string; readonly version: number; readonly file: string; readonly type: AvroType };

export const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));
export const avscFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.avsc'))
    .sort();

/**
 * Parse the shared types in dependency order, whatever the file order: a file whose references are
 * not defined yet is retried after the others (each attempt on a copy of the registry, so a failed
 * attempt leaves nothing behind).
 */
export function loadSharedTypes(dir: string, registry: Registry): Map<string, AvroType> {
  const shared = new Map<string, AvroType>();
  let pending = avscFiles(dir).map((name) => ({ name, schema: readJson(join(dir, name)) }));
  while (pending.length > 0) {
    const failed: { name: string; schema: unknown; error: unknown }[] = [];
    for (const item of pending) {
      const attempt: Registry = { ...registry };
      try {
        const type = parseSchema(item.schema, attempt);
        Object.assign(registry, attempt);
        if (type.name !== undefined) shared.set(type.name, type);
      } catch (error) {
        failed.push({ ...item, error });
      }
    }
    if (failed.length === pending.length) {
      const why = failed.map((f) => `${f.name}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join('; ');
      throw new Error(`cannot load the shared schemas of ${dir}: ${why}`);
    }
    pending = failed;
  }
  return shared;
}

export function loadPublishedSchemas(dir: string): Map<string, PublishedSchema[]> {
  const published = new Map<string, PublishedSchema[]>();
  let subjects: string[];
  try {
    subjects = readdirSync(dir).sort();
  } catch {
    return published;
  }
  for (const subject of subjects) {
    const versions: PublishedSchema[] = [];
    for (const name of avscFiles(join(dir, subject))) {
      const match = /^v([1-9][0-9]*)\.avsc$/.exec(name);
      if (!match) throw new Error(`${join(dir, subject, name)}: published files must be named v<N>.avsc`);
      const file = join(dir, subject, name);
      // Published schemas are self-contained: each gets its own registry.
      versions.push({ subject, version: Number(match[1]), file, type: parseSchema(readJson(file)) });
    }
    versions.sort((a, b) => a.version - b.version);
    published.set(subject, versions);
  }
  return published;
}

/** Load every schema of `dir` (schemas/ by default). */
export function loadSchemaSet(dir: string = schemasDir): SchemaSet {
  const registry: Registry = {};
  const shared = loadSharedTypes(join(dir, 'types'), registry);
  const events = new Map<string, AvroType>();
  for (const name of avscFiles(join(dir, 'events'))) {
    const type = parseSchema(readJson(join(dir, 'events', name)), registry);
    const eventType = name.slice(0, -'.avsc'.length);
    if (type.name !== `${namespace}.${eventType}`) throw new Error(`schemas/events/${name} defines ${type.name}, expected ${namespace}.${eventType}`);
    events.set(eventType, type);
  }
  const envelope = shared.get(`${namespace}.Envelope`);
  if (envelope === undefined) throw new Error(`schemas/types/ has no ${namespace}.Envelope`);
  return { shared, events, envelope, published: loadPublishedSchemas(join(dir, 'published')) };
}
