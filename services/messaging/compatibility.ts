/**
 * Schema evolution checks with avsc's resolver, both ways (FULL compatibility):
 * backward = the current schema reads data written with a published version
 * (`current.createResolver(published)`), forward = a published version reads data written with
 * the current schema (`published.createResolver(current)`). Run against every published version,
 * this is Confluent's FULL_TRANSITIVE.
 */
import type { AvroType, PublishedSchema, SchemaSet } from './schemas.ts';

export type CompatibilityProblem = {
  readonly subject: string;
  readonly version: number;
  readonly direction: 'backward' | 'forward';
  readonly message: string;
};

export function checkCompatibility(subject: string, current: AvroType, published: readonly Pick<PublishedSchema, 'version' | 'type'>[]): CompatibilityProblem[] {
  const problems: CompatibilityProblem[] = [];
  for (const { version, type } of published) {
    const attempts = [
      { direction: 'backward' as const, reader: current, writer: type, what: `the current schema cannot read data written with v${version}` },
      { direction: 'forward' as const, reader: type, writer: current, what: `v${version} readers cannot read data written with the current schema` },
    ];
    for (const { direction, reader, writer, what } of attempts) {
      try {
        reader.createResolver(writer);
      } catch (error) {
        const cause = error instanceof Error ? error.message : String(error);
        problems.push({ subject, version, direction, message: `${subject} ${direction} incompatible with v${version} (${what}): ${cause}` });
      }
    }
  }
  return problems;
}

/** Every current schema against all its published versions, plus schemas that were never published. */
export function checkSchemaSet(schemas: SchemaSet): { readonly problems: CompatibilityProblem[]; readonly unpublished: string[] } {
  return checkSubjects(new Map<string, AvroType>([...schemas.events, ['Envelope', schemas.envelope]]), schemas.published);
}

/** The same check for any set of subjects (events, commands, host reports). */
export function checkSubjects(
  current: ReadonlyMap<string, AvroType>,
  published: ReadonlyMap<string, readonly Pick<PublishedSchema, 'version' | 'type'>[]>,
): { readonly problems: CompatibilityProblem[]; readonly unpublished: string[] } {
  const problems: CompatibilityProblem[] = [];
  const unpublished: string[] = [];
  for (const [subject, type] of current) {
    const versions = published.get(subject) ?? [];
    if (versions.length === 0) unpublished.push(subject);
    problems.push(...checkCompatibility(subject, type, versions));
  }
  return { problems, unpublished };
}
