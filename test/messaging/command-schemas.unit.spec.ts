import { describe, expect, it } from 'vitest';
import {
  canonicalForm,
  checkCommandSchemaSet,
  commandCodec,
  commandResultSubject,
  commandTypes,
  fingerprintHex,
  loadCommandSchemaSet,
  parseSchema,
  withDefaults,
} from '../../services/messaging/index.ts';

const set = loadCommandSchemaSet();
const subjects = [...commandTypes, commandResultSubject].sort();

describe('command schemas (schemas/commands/)', () => {
  it('has one record vcp.command.<Type> per command type, and the result', () => {
    expect([...set.subjects.keys()].sort()).toEqual(subjects);
    for (const [subject, type] of set.subjects) expect(type.name).toBe(`vcp.command.${subject}`);
  });

  it('gives every command the metadata fields first: commandId, actor, correlationId', () => {
    for (const type of commandTypes) {
      const fields = (set.subjects.get(type) as unknown as { fields: { name: string }[] }).fields.map((f) => f.name);
      expect(fields.slice(0, 3)).toEqual(['commandId', 'actor', 'correlationId']);
    }
  });

  it('documents every record and field', () => {
    for (const [subject, type] of set.subjects) {
      const schema = type.schema({ exportAttrs: true }) as { doc?: string; fields: { name: string; doc?: string }[] };
      expect(schema.doc, subject).toBeTruthy();
      for (const field of schema.fields) expect(field.doc, `${subject}.${field.name}`).toBeTruthy();
    }
  });

  it('has v1 published for each and stays FULL_TRANSITIVE compatible with every published version', () => {
    expect([...set.published.keys()].sort()).toEqual(subjects);
    const { problems, unpublished } = checkCommandSchemaSet(set);
    expect(problems).toEqual([]);
    expect(unpublished).toEqual([]);
    for (const subject of subjects) {
      const latest = set.published.get(subject)?.at(-1);
      expect(latest && canonicalForm(latest.type), `${subject}: publish with services/messaging/publish-cli.ts`).toBe(canonicalForm(set.subjects.get(subject)!));
    }
  });

  it('gives every subject its own fingerprint, and each published file parses on its own', () => {
    const fps = subjects.map((s) => fingerprintHex(commandCodec().fingerprint(s)));
    expect(new Set(fps).size).toBe(subjects.length);
    for (const versions of set.published.values()) for (const v of versions) expect(() => parseSchema(JSON.parse(JSON.stringify(v.type.schema({ exportAttrs: true }))))).not.toThrow();
  });

  it('round-trips a command given only its required fields (defaults filled in, as any Avro writer does)', () => {
    const bytes = commandCodec().encode('MigratePartition', { commandId: 'c-1', actor: 'service:ci', correlationId: 'k-1', partitionId: 'web-1', autoConverge: true });
    expect([...bytes.subarray(0, 2)]).toEqual([0xc3, 0x01]);
    expect(commandCodec().decode(bytes)).toStrictEqual({
      subject: 'MigratePartition',
      value: { commandId: 'c-1', actor: 'service:ci', correlationId: 'k-1', partitionId: 'web-1', targetHostId: null, reason: null, bandwidthMiBps: null, downtimeMsMax: null, roundsMax: null, autoConverge: true },
    });
    const nested = withDefaults(set.subjects.get('ReconfigurePartition')!, { commandId: 'c', actor: 'user:a', correlationId: 'k', partitionId: 'p', processor: { weight: 5 } });
    expect(nested).toMatchObject({ processor: { reservePct: null, limitPct: null, weight: 5 }, setNull: [], memory: null });
  });

  it('refuses a command missing a required field, naming it', () => {
    expect(() => commandCodec().encode('CreatePartition', { commandId: 'c', actor: 'user:a', correlationId: 'k', partitionId: 'p', memory: { startupMiB: 1 } })).toThrow(/vcpus/);
  });
});
