/**
 * The Avro contracts of commands over Kafka (schemas/commands/): one record vcp.command.<Type>
 * per command, vcp.command.CommandResult for the outcome, shared input types in types/, every
 * published version under published/<Type>/v<N>.avsc. Same wire format as events: single-object
 * encoding, so a consumer tells the command type by the fingerprint alone.
 */
import { join } from 'node:path';
import type avro from 'avsc';
import { type SubjectCodec, createSubjectCodec } from './codec.ts';
import type { RegistryFraming } from './schema-registry.ts';
import { checkSubjects, type CompatibilityProblem } from './compatibility.ts';
import {
  type AvroType,
  type PublishedSchema,
  type Registry,
  avscFiles,
  loadPublishedSchemas,
  loadSharedTypes,
  parseSchema,
  readJson,
  schemasDir,
} from './schemas.ts';

export const commandNamespace = 'vcp.command';
export const commandSchemasDir = join(schemasDir, 'commands');

/** Every command type, as the HTTP API offers it. */
export const commandTypes = [
  'CreatePartition',
  'StartPartition',
  'StopPartition',
  'TurnOffPartition',
  'PausePartition',
  'ResumePartition',
  'SavePartition',
  'DeletePartition',
  'ReconfigurePartition',
  'MigratePartition',
  'CancelMigration',
  'RegisterHost',
  'CordonHost',
  'UncordonHost',
  'StartMaintenance',
  'EndMaintenance',
] as const;
export type CommandType = (typeof commandTypes)[number];

export const isCommandType = (subject: string): subject is CommandType => (commandTypes as readonly string[]).includes(subject);

export const commandResultSubject = 'CommandResult';

export type CommandSchemaSet = {
  readonly shared: ReadonlyMap<string, AvroType>;
  /** One record per command type and CommandResult, keyed by subject (`CreatePartition`). */
  readonly subjects: ReadonlyMap<string, AvroType>;
  readonly published: ReadonlyMap<string, readonly PublishedSchema[]>;
};

export function loadCommandSchemaSet(dir: string = commandSchemasDir): CommandSchemaSet {
  const registry: Registry = {};
  const shared = loadSharedTypes(join(dir, 'types'), registry);
  const subjects = new Map<string, AvroType>();
  for (const name of avscFiles(dir)) {
    const subject = name.slice(0, -'.avsc'.length);
    const type = parseSchema(readJson(join(dir, name)), registry);
    if (type.name !== `${commandNamespace}.${subject}`) throw new Error(`${join(dir, name)} defines ${type.name}, expected ${commandNamespace}.${subject}`);
    subjects.set(subject, type);
  }
  for (const subject of [...commandTypes, commandResultSubject]) {
    if (!subjects.has(subject)) throw new Error(`${dir} has no ${subject}.avsc`);
  }
  return { shared, subjects, published: loadPublishedSchemas(join(dir, 'published')) };
}

/** FULL_TRANSITIVE check of every command schema against its published versions. */
export function checkCommandSchemaSet(set: CommandSchemaSet): { readonly problems: CompatibilityProblem[]; readonly unpublished: string[] } {
  return checkSubjects(set.subjects, set.published);
}

export class UnknownCommandTypeError extends Error {
  override readonly name = 'UnknownCommandTypeError';
  constructor(readonly subject: string) {
    super(`no Avro schema for command ${subject} (expected schemas/commands/${subject}.avsc)`);
  }
}

export type CommandCodec = SubjectCodec & { readonly schemas: CommandSchemaSet };

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

export function createCommandCodec(set: CommandSchemaSet = loadCommandSchemaSet(), registry: RegistryFraming | null = null): CommandCodec {
  const subjects = createSubjectCodec(set.subjects, set.published, (subject) => new UnknownCommandTypeError(subject), 'under schemas/commands/ or schemas/commands/published/', registry);
  return {
    schemas: set,
    ...subjects,
    encode: (subject, value) => {
      const type = set.subjects.get(subject);
      return subjects.encode(subject, type === undefined ? value : withDefaults(type, value));
    },
  };
}

let defaultCommandCodec: CommandCodec | null = null;
/** The codec over schemas/commands/ (loaded once, on first use). */
export const commandCodec = (): CommandCodec => {
  defaultCommandCodec ??= createCommandCodec();
  return defaultCommandCodec;
};
