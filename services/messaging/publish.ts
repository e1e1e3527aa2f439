/**
 * Publish the current schemas: for each event type (and the envelope) whose current Parsing
 * Canonical Form differs from its latest published version, write the self-contained schema as
 * schemas/published/<Type>/v<N+1>.avsc. Never rewrites an existing version.
 *
 *   node bin/run-ts.js services/messaging/publish-cli.ts [--check]
 *
 * With --check it writes nothing and exits 1 if anything is unpublished or incompatible.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkSchemaSet } from './compatibility.ts';
import { type AvroType, canonicalForm, expandedSchema, loadSchemaSet, schemasDir } from './schemas.ts';

export function unpublishedChanges(dir: string = schemasDir): { subject: string; version: number; type: AvroType }[] {
  const schemas = loadSchemaSet(dir);
  const current = new Map<string, AvroType>([...schemas.events, ['Envelope', schemas.envelope]]);
  const out: { subject: string; version: number; type: AvroType }[] = [];
  for (const [subject, type] of current) {
    const versions = schemas.published.get(subject) ?? [];
    const latest = versions.at(-1);
    if (latest !== undefined && canonicalForm(latest.type) === canonicalForm(type)) continue;
    out.push({ subject, version: (latest?.version ?? 0) + 1, type });
  }
  return out;
}

export function publishMain(args: readonly string[]): number {
  const check = args.includes('--check');
  const changes = unpublishedChanges();
  const { problems } = checkSchemaSet(loadSchemaSet());
  for (const p of problems) console.error(p.message);
  if (check) {
    for (const c of changes) console.error(`${c.subject}: current schema not published (would be v${c.version})`);
    return changes.length > 0 || problems.length > 0 ? 1 : 0;
  }
  if (problems.length > 0) return 1;
  for (const { subject, version, type } of changes) {
    const dir = join(schemasDir, 'published', subject);
    const file = join(dir, `v${version}.avsc`);
    if (existsSync(file)) throw new Error(`${file} exists: published versions are immutable`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(expandedSchema(type), null, 2)}\n`);
    console.log(`published ${subject} v${version}`);
  }
  return 0;
}
