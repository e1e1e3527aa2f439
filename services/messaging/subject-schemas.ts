/**
 * What the command and host-report contracts share: a folder of one record per subject
 * (`<dir>/<Subject>.avsc`, named `<namespace>.<Subject>`), shared input types in `<dir>/types/`,
 * published versions in `<dir>/published/<Subject>/v<N>.avsc`; the FULL_TRANSITIVE check against
 * them; and a codec that fills in the defaults of fields a writer leaves out, as any Avro writer
 * does (a command needs only the fields its sender sets).
 */
import { join } from 'node:path';
import type avro from 'avsc';
import { type SubjectCodec, createSubjectCodec } from './codec.ts';
import { type CompatibilityProblem, checkSubjects } from './compatibility.ts';
import type { RegistryFraming } from './schema-registry.ts';
import { type AvroType, type PublishedSchema, type Registry, avscFiles, loadPublishedSchemas, loadSharedTypes, parseSchema, readJson } from './schemas.ts';

export type SubjectSchemaSet = {
  readonly shared: ReadonlyMap<string, AvroType>;
  /** One record per subject, keyed by subject (`CreatePartition`, `PartitionReports`). */
  readonly subjects: ReadonlyMap<string, AvroType>;
  readonly published: ReadonlyMap<string, readonly PublishedSchema[]>;
};

/**
 * Loads `dir`. `known` says why a file's subject is not one of the contract's (null: it is);
 * every one of `required` must have its file.
 */
export function loadSubjectSchemaSet(dir: string, namespace: string, required: readonly string[], known: (subject: string) => string | null = () => null): SubjectSchemaSet {
  const registry: Registry = {};
  const shared = loadSharedTypes(join(dir, 'types'), registry);
  const subjects = new Map<string, AvroType>();
  for (const name of avscFiles(dir)) {
    const subject = name.slice(0, -'.avsc'.length);
    const unknown = known(subject);
    if (unknown !== null) throw new Error(`${join(dir, name)}: ${unknown}`);
    const type = parseSchema(readJson(join(dir, name)), registry);
    if (type.name !== `${namespace}.${subject}`) throw new Error(`${join(dir, name)} defines ${type.name}, expected ${namespace}.${subject}`);
    subjects.set(subject, type);
  }
  for (const subject of required) {
    if (!subjects.has(subject)) throw new Error(`${dir} has no ${subject}.avsc`);
  }
  return { shared, subjects, published: loadPublishedSchemas(join(dir, 'published')) };
}

/** FULL_TRANSITIVE check of every schema of the set against its published versions. */
export function checkSubjectSchemaSet(set: SubjectSchemaSet): { readonly problems: CompatibilityProblem[]; readonly unpublished: string[] } {
  return checkSubjects(set.subjects, set.published);
}

type Obj = { [key: string]: unknown };
const isObject = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);

/**
 * The value with every absent field that has a default set to it, through nested records, as
 * any Avro writer does: a command needs only the fields the sender sets (`{ hostId, reason }`).
 */
export function withDefaults(type: AvroType, value: unknown): unknown {
  switch (type.typeName) {
    case 'record': {
      if (!isObject(value)) return value;
      const out: Obj = { ...value };
      for (const field of (type as avro.types.RecordType).fields) {
        const given = value[field.name];
        out[field.name] = given === undefined ? field.defaultValue() : withDefaults(field.type, given);
      }
      return out;
    }
    case 'array':
      return Array.isArray(value) ? value.map((item) => withDefaults((type as avro.types.ArrayType).itemsType, item)) : value;
    case 'union:unwrapped': {
      if (!isObject(value)) return value;
      const branch = (type as avro.types.UnwrappedUnionType).types.find((b) => b.typeName === 'record');
      return branch === undefined ? value : withDefaults(branch, value);
    }
    default:
      return value;
  }
}

/** A codec over the set whose encode fills in defaults (see withDefaults). */
export function createDefaultingCodec<S extends SubjectSchemaSet>(
  set: S,
  unknownSubject: (subject: string) => Error,
  where: string,
  registry: RegistryFraming | null,
): SubjectCodec & { readonly schemas: S } {
  const subjects = createSubjectCodec(set.subjects, set.published, unknownSubject, where, registry);
  return {
    schemas: set,
    ...subjects,
    encode: (subject, value) => {
      const type = set.subjects.get(subject);
      return subjects.encode(subject, type === undefined ? value : withDefaults(type, value));
    },
  };
}
