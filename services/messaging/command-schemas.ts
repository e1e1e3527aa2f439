/**
 * The Avro contracts of commands over Kafka (schemas/commands/): one record vcp.command.<Type>
 * per command, vcp.command.CommandResult for the outcome, shared input types in types/, every
 * published version under published/<Type>/v<N>.avsc. Same wire format as events: single-object
 * encoding, so a consumer tells the command type by the fingerprint alone (or, with a schema
 * registry, Confluent framing: by the schema id).
 */
import { join } from 'node:path';
import type { SubjectCodec } from './codec.ts';
import type { CompatibilityProblem } from './compatibility.ts';
import type { RegistryFraming } from './schema-registry.ts';
import { schemasDir } from './schemas.ts';
import { type SubjectSchemaSet, checkSubjectSchemaSet, createDefaultingCodec, loadSubjectSchemaSet } from './subject-schemas.ts';

export { withDefaults } from './subject-schemas.ts';

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

export type CommandSchemaSet = SubjectSchemaSet;

export function loadCommandSchemaSet(dir: string = commandSchemasDir): CommandSchemaSet {
  return loadSubjectSchemaSet(dir, commandNamespace, [...commandTypes, commandResultSubject]);
}

/** FULL_TRANSITIVE check of every command schema against its published versions. */
export function checkCommandSchemaSet(set: CommandSchemaSet): { readonly problems: CompatibilityProblem[]; readonly unpublished: string[] } {
  return checkSubjectSchemaSet(set);
}

export class UnknownCommandTypeError extends Error {
  override readonly name = 'UnknownCommandTypeError';
  constructor(readonly subject: string) {
    super(`no Avro schema for command ${subject} (expected schemas/commands/${subject}.avsc)`);
  }
}

export type CommandCodec = SubjectCodec & { readonly schemas: CommandSchemaSet };

export function createCommandCodec(set: CommandSchemaSet = loadCommandSchemaSet(), registry: RegistryFraming | null = null): CommandCodec {
  return createDefaultingCodec(set, (subject) => new UnknownCommandTypeError(subject), 'under schemas/commands/ or schemas/commands/published/', registry);
}

let defaultCommandCodec: CommandCodec | null = null;
/** The codec over schemas/commands/ (loaded once, on first use). */
export const commandCodec = (): CommandCodec => {
  defaultCommandCodec ??= createCommandCodec();
  return defaultCommandCodec;
};
