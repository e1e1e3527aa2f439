import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  canonicalForm,
  checkCompatibility,
  checkHostReportSchemaSet,
  checkSchemaSet,
  createCodec,
  encodeEvent,
  expandedSchema,
  hostReportKinds,
  loadHostReportSchemaSet,
  loadSchemaSet,
  parseSchema,
} from '../../services/messaging/index.ts';
import { examples } from './fixtures/examples.ts';

const schemas = loadSchemaSet();
const subjects = [...schemas.events.keys(), 'Envelope'].sort();
const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));

describe('schema evolution (FULL_TRANSITIVE against schemas/published/)', () => {
  it('has at least v1 published for every event type and the envelope', () => {
    expect([...schemas.published.keys()].sort()).toEqual(subjects);
    expect(checkSchemaSet(schemas).unpublished).toEqual([]);
  });

  it.each(subjects)('%s: the current schema and every published version read each other', (subject) => {
    const current = subject === 'Envelope' ? schemas.envelope : schemas.events.get(subject);
    if (current === undefined) throw new Error(`no schema for ${subject}`);
    const versions = schemas.published.get(subject) ?? [];
    expect(versions.length).toBeGreaterThan(0);
    expect(checkCompatibility(subject, current, versions)).toEqual([]);
  });

  it('keeps the latest published version equal to the current schema (publish before you ship)', () => {
    const stale = subjects.filter((subject) => {
      const current = subject === 'Envelope' ? schemas.envelope : schemas.events.get(subject);
      const latest = schemas.published.get(subject)?.at(-1);
      return current === undefined || latest === undefined || canonicalForm(latest.type) !== canonicalForm(current);
    });
    expect(stale).toEqual([]);
  });

  it('catches a field removed without a default, and names it', () => {
    const current = schemas.events.get('HostCordoned');
    if (current === undefined) throw new Error('no HostCordoned schema');
    const breaking = parseSchema(fixture('HostCordoned.breaking-removed-reason.avsc'));
    // As if the breaking schema were the new current one, checked against the published v1.
    const problems = checkCompatibility('HostCordoned', breaking, [{ version: 1, type: current }]);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.direction).toBe('forward');
    expect(problems[0]?.message).toMatch(/HostCordoned forward incompatible with v1/);
    expect(problems[0]?.message).toMatch(/vcp\.HostCordoned\.reason/);
  });

  it('accepts a new field with a default both ways, and decodes old bytes into the new shape', () => {
    const v1 = schemas.events.get('HostCordoned');
    if (v1 === undefined) throw new Error('no HostCordoned schema');
    const v2Schema = expandedSchema(v1) as { fields: object[] };
    v2Schema.fields.push({ name: 'ticket', type: ['null', 'string'], default: null, doc: 'Change ticket.' });
    const v2 = parseSchema(v2Schema);
    expect(checkCompatibility('HostCordoned', v2, [{ version: 1, type: v1 }])).toEqual([]);

    // A codec whose current HostCordoned is v2 and which knows v1 as published reads v1 bytes.
    const events = new Map(schemas.events);
    events.set('HostCordoned', v2);
    const evolved = createCodec({ ...schemas, events, published: new Map([['HostCordoned', [{ subject: 'HostCordoned', version: 1, file: 'v1', type: v1 }]]]) });
    const oldBytes = encodeEvent(examples.HostCordoned);
    expect(evolved.decodeEvent(oldBytes)).toStrictEqual({ type: 'HostCordoned', data: { ...examples.HostCordoned.data, ticket: null } });
  });

  it('reports a renamed field without an alias in both directions', () => {
    const v1 = schemas.events.get('HostSuspected');
    if (v1 === undefined) throw new Error('no HostSuspected schema');
    const renamed = expandedSchema(v1) as { fields: { name: string }[] };
    for (const field of renamed.fields) if (field.name === 'silentMs') field.name = 'quietMs';
    const problems = checkCompatibility('HostSuspected', parseSchema(renamed), [{ version: 1, type: v1 }]);
    expect(problems.map((p) => p.direction).sort()).toEqual(['backward', 'forward']);
    expect(problems.map((p) => p.message).join('\n')).toMatch(/quietMs[\s\S]*silentMs|silentMs[\s\S]*quietMs/);
  });
});

describe('host report schema evolution (FULL_TRANSITIVE against schemas/host-reports/published/)', () => {
  const set = loadHostReportSchemaSet();

  it('has at least v1 published for every kind of report', () => {
    expect([...set.published.keys()].sort()).toEqual([...hostReportKinds].sort());
    expect(checkHostReportSchemaSet(set).unpublished).toEqual([]);
  });

  it.each([...hostReportKinds])('%s: the current schema and every published version read each other, and the latest is the current one', (kind) => {
    const current = set.subjects.get(kind);
    if (current === undefined) throw new Error(`no schema for ${kind}`);
    const versions = set.published.get(kind) ?? [];
    expect(versions.length).toBeGreaterThan(0);
    expect(checkCompatibility(kind, current, versions)).toEqual([]);
    expect(canonicalForm(versions.at(-1)!.type), `${kind}: publish with services/messaging/publish-cli.ts`).toBe(canonicalForm(current));
  });

  it('catches a required field added to a report without a default', () => {
    const v1 = set.subjects.get('FencingReport')!;
    const v2Schema = expandedSchema(v1) as { fields: object[] };
    v2Schema.fields.push({ name: 'epoch', type: 'long', doc: 'Fence epoch.' });
    const problems = checkCompatibility('FencingReport', parseSchema(v2Schema), [{ version: 1, type: v1 }]);
    expect(problems.map((p) => p.direction)).toEqual(['backward']);
  });
});
