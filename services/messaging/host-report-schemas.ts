/**
 * The Avro contracts of what node daemons report over Kafka (schemas/host-reports/), on
 * vcp.host-reports with key = hostId: one record vcp.report.<Kind> per kind of report, each the
 * body of the HTTP route it stands for plus the reporting hostId (and a correlationId where the
 * report causes events). Same wire format as events and commands: single-object encoding, so the
 * control plane tells the kind by the fingerprint alone, and the same evolution policy
 * (FULL_TRANSITIVE against every published version under published/<Kind>/v<N>.avsc).
 */
import { join } from 'node:path';
import { type SubjectCodec, createSubjectCodec } from './codec.ts';
import type { RegistryFraming } from './schema-registry.ts';
import { withDefaults } from './command-schemas.ts';
import { type CompatibilityProblem, checkSubjects } from './compatibility.ts';
import { type AvroType, type PublishedSchema, type Registry, avscFiles, loadPublishedSchemas, loadSharedTypes, parseSchema, readJson, schemasDir } from './schemas.ts';

export const hostReportNamespace = 'vcp.report';
export const hostReportSchemasDir = join(schemasDir, 'host-reports');

/** Every kind of report, with the HTTP route each stands for. */
export const hostReportKinds = [
  /** POST /v1/hosts/{id}/reports */
  'PartitionReports',
  /** POST /v1/hosts/{id}/migration-reports */
  'MigrationReports',
  /** POST /v1/hosts/{id}/fenced */
  'FencingReport',
  /** POST /v1/hosts/{id}/telemetry */
  'TelemetrySample',
] as const;
export type HostReportKind = (typeof hostReportKinds)[number];

export const isHostReportKind = (subject: string): subject is HostReportKind => (hostReportKinds as readonly string[]).includes(subject);

export type HostReportSchemaSet = {
  readonly shared: ReadonlyMap<string, AvroType>;
  /** One record per kind, keyed by kind (`PartitionReports`). */
  readonly subjects: ReadonlyMap<string, AvroType>;
  readonly published: ReadonlyMap<string, readonly PublishedSchema[]>;
};

export function loadHostReportSchemaSet(dir: string = hostReportSchemasDir): HostReportSchemaSet {
  const registry: Registry = {};
  const shared = loadSharedTypes(join(dir, 'types'), registry);
  const subjects = new Map<string, AvroType>();
  for (const name of avscFiles(dir)) {
    const subject = name.slice(0, -'.avsc'.length);
    if (!isHostReportKind(subject)) throw new Error(`${join(dir, name)}: ${subject} is not a kind of host report (add it to hostReportKinds and to the consumer in host-reports.ts)`);
    const type = parseSchema(readJson(join(dir, name)), registry);
    if (type.name !== `${hostReportNamespace}.${subject}`) throw new Error(`${join(dir, name)} defines ${type.name}, expected ${hostReportNamespace}.${subject}`);
    subjects.set(subject, type);
  }
  for (const kind of hostReportKinds) {
    if (!subjects.has(kind)) throw new Error(`${dir} has no ${kind}.avsc`);
  }
  return { shared, subjects, published: loadPublishedSchemas(join(dir, 'published')) };
}

/** FULL_TRANSITIVE check of every report schema against its published versions. */
export function checkHostReportSchemaSet(set: HostReportSchemaSet): { readonly problems: CompatibilityProblem[]; readonly unpublished: string[] } {
  return checkSubjects(set.subjects, set.published);
}

export class UnknownHostReportKindError extends Error {
  override readonly name = 'UnknownHostReportKindError';
  constructor(readonly subject: string) {
    super(`no Avro schema for host report ${subject} (expected schemas/host-reports/${subject}.avsc)`);
  }
}

export type HostReportCodec = SubjectCodec & { readonly schemas: HostReportSchemaSet };

export function createHostReportCodec(set: HostReportSchemaSet = loadHostReportSchemaSet(), registry: RegistryFraming | null = null): HostReportCodec {
  const subjects = createSubjectCodec(set.subjects, set.published, (subject) => new UnknownHostReportKindError(subject), 'under schemas/host-reports/ or schemas/host-reports/published/', registry);
  return {
    schemas: set,
    ...subjects,
    // Optional fields a writer leaves out take their defaults (null), as with any Avro writer.
    encode: (subject, value) => {
      const type = set.subjects.get(subject);
      return subjects.encode(subject, type === undefined ? value : withDefaults(type, value));
    },
  };
}

let defaultHostReportCodec: HostReportCodec | null = null;
/** The codec over schemas/host-reports/ (loaded once, on first use). */
export const hostReportCodec = (): HostReportCodec => {
  defaultHostReportCodec ??= createHostReportCodec();
  return defaultHostReportCodec;
};
