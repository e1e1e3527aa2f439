import { describe, expect, it } from 'vitest';
import { directiveTypes, hostEventTypes, migrationEventTypes, partitionEventTypes, partitionFactTypes } from '../../services/domain/index.ts';
import {
  CRC64_AVRO_EMPTY,
  NotSingleObjectError,
  SchemaMismatchError,
  UnknownEventTypeError,
  UnknownFingerprintError,
  canonicalForm,
  codec,
  crc64Avro,
  decodeEnvelope,
  decodeEvent,
  encodeEnvelope,
  encodeEvent,
  fingerprintHex,
  fingerprintOf,
  loadSchemaSet,
  parseSchema,
} from '../../services/messaging/index.ts';
import { examples, recordedExample } from './fixtures/examples.ts';

const utf8 = (s: string) => Buffer.from(s, 'utf8');
const domainTypes = [...new Set([...hostEventTypes, ...partitionEventTypes, ...directiveTypes, ...partitionFactTypes, ...migrationEventTypes])].sort();

describe('CRC-64-AVRO', () => {
  it('matches the published test vector (reference §4.5, avro-crc64 README)', () => {
    const canonical = '{"name":"Example","type":"record","fields":[{"name":"foobar","type":"string"}]}';
    expect(fingerprintHex(crc64Avro(utf8(canonical)))).toBe('b75d6f7da238cf70');
  });

  it('gives EMPTY for no bytes (the spec starts from it)', () => {
    expect(crc64Avro(new Uint8Array())).toBe(CRC64_AVRO_EMPTY);
  });

  it('fingerprints the Parsing Canonical Form that avsc produces (docs, namespaces and defaults stripped)', () => {
    const type = parseSchema({ type: 'record', name: 'Example', doc: 'dropped', fields: [{ name: 'foobar', type: 'string', doc: 'dropped' }] }, {});
    expect(canonicalForm(type)).toBe('{"name":"Example","type":"record","fields":[{"name":"foobar","type":"string"}]}');
    expect(fingerprintHex(fingerprintOf(type))).toBe('b75d6f7da238cf70');
    const namespaced = parseSchema({ type: 'record', name: 'E', namespace: 'vcp', fields: [{ name: 'x', type: ['null', 'string'], default: null }] }, {});
    expect(canonicalForm(namespaced)).toBe('{"name":"vcp.E","type":"record","fields":[{"name":"x","type":["null","string"]}]}');
  });
});

describe('single-object encoding', () => {
  it('starts with C3 01 then the little-endian fingerprint of the event schema', () => {
    const bytes = encodeEvent(examples.HostCordoned);
    expect([...bytes.subarray(0, 2)]).toEqual([0xc3, 0x01]);
    const fp = codec().fingerprint('HostCordoned');
    expect(bytes.subarray(2, 10).readBigUInt64LE()).toBe(fp);
    expect(bytes.subarray(2, 10).toString('hex')).toBe(fingerprintHex(fingerprintOf(codec().schemas.events.get('HostCordoned') as never)));
  });

  it('gives every event type a distinct fingerprint', () => {
    const fps = domainTypes.map((t) => codec().fingerprint(t));
    expect(new Set(fps).size).toBe(fps.length);
  });
});

describe('types and schemas cannot drift', () => {
  it('has a schema for every domain event type, and an event type for every schema', () => {
    expect([...codec().schemas.events.keys()].sort()).toEqual(domainTypes);
    expect(Object.keys(examples).sort()).toEqual(domainTypes);
  });

  it.each(Object.entries(examples))('round-trips %s through its schema to equal data', (type, event) => {
    const bytes = encodeEvent(event);
    const decoded = decodeEvent(bytes);
    expect(decoded.type).toBe(type);
    expect(decoded.data).toStrictEqual(JSON.parse(JSON.stringify(event.data)));
  });

  it('puts a doc on every record and field of every schema', () => {
    const missing: string[] = [];
    const walk = (schema: unknown, where: string): void => {
      if (Array.isArray(schema)) {
        schema.forEach((s, i) => {
          walk(s, `${where}[${i}]`);
        });
        return;
      }
      if (typeof schema !== 'object' || schema === null) return;
      const s = schema as { type?: unknown; name?: string; doc?: string; fields?: { name: string; type: unknown; doc?: string }[]; items?: unknown; values?: unknown };
      if (s.type === 'record') {
        if (!s.doc) missing.push(`${where} (record ${s.name})`);
        for (const field of s.fields ?? []) {
          if (!field.doc) missing.push(`${where}.${field.name}`);
          walk(field.type, `${where}.${field.name}`);
        }
      }
      walk(s.items, where);
      walk(s.values, where);
      if (typeof s.type === 'object') walk(s.type, where);
    };
    const set = loadSchemaSet();
    for (const [name, type] of [...set.events, ...set.shared]) walk(type.schema({ exportAttrs: true }), name);
    expect(missing).toEqual([]);
  });

  it('refuses a field the schema does not declare, naming it', () => {
    const event = { type: 'HostCordoned', data: { hostId: 'h1', reason: 'x', urgent: true } };
    expect(() => encodeEvent(event)).toThrow(SchemaMismatchError);
    expect(() => encodeEvent(event)).toThrow(/urgent/);
  });

  it('refuses a value of the wrong type, naming the path', () => {
    const bad = { type: 'HostSuspected', data: { hostId: 'h1', silentMs: 1.5, renewMs: 3000 } };
    expect(() => encodeEvent(bad)).toThrow(/silentMs/);
  });

  it('refuses an event type without a schema', () => {
    expect(() => encodeEvent({ type: 'HostExploded', data: {} })).toThrow(UnknownEventTypeError);
  });
});

describe('decoding errors', () => {
  it('names an unknown fingerprint', () => {
    const bytes = Buffer.from(encodeEvent(examples.HostUncordoned));
    bytes.writeBigUInt64LE(0x0123456789abcdefn, 2);
    expect(() => decodeEvent(bytes)).toThrow(UnknownFingerprintError);
    expect(() => decodeEvent(bytes)).toThrow(/unknown schema fingerprint efcdab8967452301/);
  });

  it('refuses bytes without the C3 01 marker', () => {
    expect(() => decodeEvent(Buffer.from('{"type":"HostCordoned"}'))).toThrow(NotSingleObjectError);
    expect(() => decodeEvent(new Uint8Array([0xc3, 0x01, 0]))).toThrow(NotSingleObjectError);
  });

  it('refuses trailing or truncated bodies', () => {
    const bytes = encodeEvent(examples.HostCordoned);
    expect(() => decodeEvent(Buffer.concat([bytes, Buffer.from([0])]))).toThrow();
    expect(() => decodeEvent(bytes.subarray(0, bytes.length - 2))).toThrow();
  });
});

describe('envelope', () => {
  const recorded = recordedExample;

  it('round-trips a recorded event, payload included', () => {
    const r = recorded(examples.PartitionStartRequested);
    const bytes = encodeEnvelope(r);
    expect(bytes.subarray(2, 10).readBigUInt64LE()).toBe(codec().fingerprint('Envelope'));
    expect(decodeEnvelope(bytes)).toStrictEqual(JSON.parse(JSON.stringify(r)));
    expect(decodeEnvelope(encodeEnvelope({ ...r, causationId: 'c0ffee00-0000-4000-8000-000000000001' })).causationId).toBe('c0ffee00-0000-4000-8000-000000000001');
  });

  it('keeps the payload as the event\'s own single-object bytes', () => {
    const r = recorded(examples.HostCordoned);
    const envelope = codec().schemas.envelope.fromBuffer(encodeEnvelope(r).subarray(10)) as { payload: Buffer; recordedAt: string };
    expect(envelope.payload.equals(encodeEvent(examples.HostCordoned))).toBe(true);
    expect(envelope.recordedAt).toBe('2025-03-01T10:00:00.123Z');
  });

  it('tells envelopes and events apart', () => {
    expect(() => decodeEvent(encodeEnvelope(recorded(examples.HostCordoned)))).toThrow(/decodeEnvelope/);
    expect(() => decodeEnvelope(encodeEvent(examples.HostCordoned))).toThrow(/decodeEvent/);
  });
});
