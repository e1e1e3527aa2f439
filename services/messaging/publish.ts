/**
 * Publish the current schemas: for each event type (and the envelope), command type (and the
 * command result) and host report kind whose current Parsing Canonical Form differs from its
 * latest published version, write the self-contained schema as published/<Type>/v<N+1>.avsc
 * (schemas/published/ for events, schemas/commands/published/ for commands,
 * schemas/host-reports/published/ for host reports). Never rewrites an existing version.
 *
 *   node bin/run-ts.js services/messaging/publish-cli.ts [--check]
 *
 * With --check it writes nothing and exits 1 if anything is unpublished or incompatible.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCommandSchemaSet, commandSchemasDir, loadCommandSchemaSet } from './command-schemas.ts';
import { checkSchemaSet } from './compatibility.ts';
import { checkHostReportSchemaSet, hostReportSchemasDir, loadHostReportSchemaSet } from './host-report-schemas.ts';
import { type AvroType, type PublishedSchema, canonicalForm, expandedSchema, loadSchemaSet, schemasDir } from './schemas.ts';

export type UnpublishedChange = { subject: string; version: number; type: AvroType };

function changesIn(current: ReadonlyMap<string, AvroType>, published: ReadonlyMap<string, readonly PublishedSchema[]>): UnpublishedChange[] {
  const out: UnpublishedChange[] = [];
  for (const [subject, type] of current) {
    const versions = published.get(subject) ?? [];
    const latest = versions.at(-1);
    if (latest !== undefined && canonicalForm(latest.type) === canonicalForm(type)) continue;
    out.push({ subject, version: (latest?.version ?? 0) + 1, type });
  }
  return out;
}

export function unpublishedChanges(dir: string = schemasDir): UnpublishedChange[] {
  const schemas = loadSchemaSet(dir);
  return changesIn(new Map<string, AvroType>([...schemas.events, ['Envelope', schemas.envelope]]), schemas.published);
}

export function unpublishedCommandChanges(dir: string = commandSchemasDir): UnpublishedChange[] {
  const schemas = loadCommandSchemaSet(dir);
  return changesIn(schemas.subjects, schemas.published);
}

export function unpublishedHostReportChanges(dir: string = hostReportSchemasDir): UnpublishedChange[] {
  const schemas = loadHostReportSchemaSet(dir);
  return changesIn(schemas.subjects, schemas.published);
}

export function publishMain(args: readonly string[]): number {
  const check = args.includes('--check');
  const sets = [
    { publishedDir: join(schemasDir, 'published'), changes: unpublishedChanges(), problems: checkSchemaSet(loadSchemaSet()).problems },
    { publishedDir: join(commandSchemasDir, 'published'), changes: unpublishedCommandChanges(), problems: checkCommandSchemaSet(loadCommandSchemaSet()).problems },
    { publishedDir: join(hostReportSchemasDir, 'published'), changes: unpublishedHostReportChanges(), problems: checkHostReportSchemaSet(loadHostReportSchemaSet()).problems },
  ];
  const problems = sets.flatMap((s) => s.problems);
  for (const p of problems) console.error(p.message);
  if (check) {
    for (const c of sets.flatMap((s) => s.changes)) console.error(`${c.subject}: current schema not published (would be v${c.version})`);
    return sets.some((s) => s.changes.length > 0) || problems.length > 0 ? 1 : 0;
  }
  if (problems.length > 0) return 1;
  for (const { publishedDir, changes } of sets) {
    for (const { subject, version, type } of changes) {
      const dir = join(publishedDir, subject);
      const file = join(dir, `v${version}.avsc`);
      if (existsSync(file)) throw new Error(`${file} exists: published versions are immutable`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(file, `${JSON.stringify(expandedSchema(type), null, 2)}\n`);
      console.log(`published ${subject} v${version}`);
    }
  }
  return 0;
}
