/**
 * The Avro contracts of what node daemons report over Kafka (schemas/host-reports/), on
 * vcp.host-reports with key = hostId: one record vcp.report.<Kind> per kind of report, each the
 * body of the HTTP route it stands for plus the reporting hostId (and a correlationId where the
 * report causes events). Same wire format as events and commands: single-object encoding, so the
 * control plane tells the kind by the fingerprint alone (or, with a schema registry, Confluent
 * framing, the kind told by the schema id), and the same evolution policy
 * (FULL_TRANSITIVE against every published version under published/<Kind>/v<N>.avsc).
 */
import { join } from 'node:path';
import type { SubjectCodec } from './codec.ts';
import type { CompatibilityProblem } from './compatibility.ts';
import type { RegistryFraming } from './schema-registry.ts';
import { schemasDir } from './schemas.ts';
import { type SubjectSchemaSet, checkSubjectSchemaSet, createDefaultingCodec, loadSubjectSchemaSet } from './subject-schemas.ts';

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

export type HostReportSchemaSet = SubjectSchemaSet;

export function loadHostReportSchemaSet(dir: string = hostReportSchemasDir): HostReportSchemaSet {
  return loadSubjectSchemaSet(dir, hostReportNamespace, hostReportKinds, (subject) =>
    isHostReportKind(subject) ? null : `${subject} is not a kind of host report (add it to hostReportKinds and to the consumer in host-reports.ts)`,
  );
}

/** FULL_TRANSITIVE check of every report schema against its published versions. */
export function checkHostReportSchemaSet(set: HostReportSchemaSet): { readonly problems: CompatibilityProblem[]; readonly unpublished: string[] } {
  return checkSubjectSchemaSet(set);
}

export class UnknownHostReportKindError extends Error {
  override readonly name = 'UnknownHostReportKindError';
  constructor(readonly subject: string) {
    super(`no Avro schema for host report ${subject} (expected schemas/host-reports/${subject}.avsc)`);
  }
}

export type HostReportCodec = SubjectCodec & { readonly schemas: HostReportSchemaSet };

export function createHostReportCodec(set: HostReportSchemaSet = loadHostReportSchemaSet(), registry: RegistryFraming | null = null): HostReportCodec {
  // Optional fields a writer leaves out take their defaults (null), as with any Avro writer.
  return createDefaultingCodec(set, (subject) => new UnknownHostReportKindError(subject), 'under schemas/host-reports/ or schemas/host-reports/published/', registry);
}

let defaultHostReportCodec: HostReportCodec | null = null;
/** The codec over schemas/host-reports/ (loaded once, on first use). */
export const hostReportCodec = (): HostReportCodec => {
  defaultHostReportCodec ??= createHostReportCodec();
  return defaultHostReportCodec;
};
