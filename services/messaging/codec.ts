/**
 * The Avro codec of vcp's events: Avro single-object encoding (spec 1.11 "Single-object encoding"):
 * bytes C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing
 * Canonical Form, then the Avro binary body. Self-describing with no registry at run time: a
 * reader finds the writer schema by its fingerprint among schemas/ and schemas/published/.
 *
 * The envelope (vcp.Envelope) carries the payload as `bytes` holding the event's own single-object
 * encoding, not as a union of every event record:
 * - each event type evolves on its own: adding an event type or a field changes neither the
 *   envelope's schema nor its fingerprint (a union would change with every event schema, and
 *   adding a branch is not forward compatible: an old reader cannot read the new branch);
 * - a consumer can route or filter on the envelope (type, streamId, positions) without knowing
 *   any payload schema, as the event store keeps metadata and data apart;
 * - the payload keeps its own fingerprint, so old payloads resolve against the current schema
 *   exactly as a bare event does. The cost is 10 bytes and a second decode per event.
 */
import type { RecordedEvent } from '../eventstore/port.ts';
import { fingerprintHex, fingerprintLE } from './crc64.ts';
import {
  CONFLUENT_HEADER_LENGTH,
  CONFLUENT_MAGIC,
  type RegistryFraming,
  SchemaIdNotLoadedError,
  SchemaRegistryError,
  SchemaRegistryUnavailableError,
  UnknownSchemaIdError,
} from './schema-registry.ts';
import { type AvroType, type PublishedSchema, type SchemaSet, fingerprintOf, loadSchemaSet } from './schemas.ts';
import { SchemaMismatchError, fromAvro, invalidPaths, toAvro } from './values.ts';

/** The two marker bytes of single-object encoding, version 1. */
export const SINGLE_OBJECT_MAGIC: readonly [number, number] = [0xc3, 0x01];
export const SINGLE_OBJECT_HEADER_LENGTH = 10;

/** An event as the domain has it (a DomainEvent, or any {type, data} with a schema). */
export type EncodableEvent = { readonly type: string; readonly data: { readonly [key: string]: unknown } };
export type DecodedEvent = { readonly type: string; readonly data: { [key: string]: unknown } };

/** The bytes are not Avro single-object encoding. */
export class NotSingleObjectError extends Error {
  override readonly name = 'NotSingleObjectError';
}

/** The fingerprint names no schema this codec knows (neither current nor published). */
export class UnknownFingerprintError extends Error {
  override readonly name = 'UnknownFingerprintError';
  constructor(
    readonly fingerprint: string,
    where = 'under schemas/events/, schemas/types/ or schemas/published/',
  ) {
    super(`unknown schema fingerprint ${fingerprint} (CRC-64-AVRO, little-endian hex): no schema ${where} has it`);
  }
}

export class UnknownEventTypeError extends Error {
  override readonly name = 'UnknownEventTypeError';
  constructor(readonly eventType: string) {
    super(`no Avro schema for event type ${eventType} (expected schemas/events/${eventType}.avsc)`);
  }
}

export { SchemaMismatchError };

export type EventCodec = {
  readonly schemas: SchemaSet;
  encodeEvent(event: EncodableEvent): Buffer;
  decodeEvent(bytes: Uint8Array): DecodedEvent;
  encodeEnvelope(recorded: RecordedEvent): Buffer;
  decodeEnvelope(bytes: Uint8Array): RecordedEvent;
  /** decodeEnvelope, loading the schema-registry ids it meets first (see SubjectCodec). */
  decodeEnvelopeAsync(bytes: Uint8Array): Promise<RecordedEvent>;
  /** CRC-64-AVRO of the current schema of an event type (or `Envelope`). */
  fingerprint(subject: string): bigint;
  /** Registers the event schemas and the envelope with the schema registry, if there is one. */
  prepare(): Promise<void>;
  readonly framing: WireFraming;
};

/** Split single-object bytes into the fingerprint (LE hex) and the body. */
export function readHeader(bytes: Uint8Array): { readonly fingerprint: string; readonly body: Buffer } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < SINGLE_OBJECT_HEADER_LENGTH || buf[0] !== SINGLE_OBJECT_MAGIC[0] || buf[1] !== SINGLE_OBJECT_MAGIC[1]) {
    throw new NotSingleObjectError(
      `not Avro single-object encoding: expected the marker c3 01 and an 8-byte fingerprint, got ${buf.subarray(0, SINGLE_OBJECT_HEADER_LENGTH).toString('hex') || 'no bytes'}`,
    );
  }
  return { fingerprint: buf.subarray(2, SINGLE_OBJECT_HEADER_LENGTH).toString('hex'), body: buf.subarray(SINGLE_OBJECT_HEADER_LENGTH) };
}

/**
 * Single-object encoding over any set of named schemas ("subjects": event types and Envelope for
 * events; command types and CommandResult for commands). Data written with a published version
 * is read into the current schema through a resolver.
 *
 * Given a schema registry (schema-registry.ts), it writes Confluent framing instead (`00` + the
 * schema's registry id), once `prepare()` has registered its schemas, and it reads both framings:
 * `decode` reads what it can without the network and throws SchemaIdNotLoadedError for a registry
 * id it has not seen; `decodeAsync` loads such ids and decodes again.
 */
export type SubjectCodec = {
  encode(subject: string, value: unknown): Buffer;
  decode(bytes: Uint8Array): { readonly subject: string; readonly value: unknown };
  decodeAsync(bytes: Uint8Array): Promise<{ readonly subject: string; readonly value: unknown }>;
  fingerprint(subject: string): bigint;
  has(subject: string): boolean;
  /** Registers the current schemas with the registry (at once without one). Encoding waits for nothing: call it first. */
  prepare(): Promise<void>;
  /** `single-object` or `confluent` (with a registry): what encode writes. */
  readonly framing: WireFraming;
};

export type WireFraming = 'single-object' | 'confluent';

/** Runs `decode`, loading from the registry each schema id it lacks (the envelope's, then its payload's). */
export async function decodeLoading<T>(framing: RegistryFraming | null, decode: () => T): Promise<T> {
  for (let loaded = 0; ; loaded++) {
    try {
      return decode();
    } catch (error) {
      if (!(error instanceof SchemaIdNotLoadedError) || framing === null || loaded >= 8) throw error;
      await framing.load(error.id);
    }
  }
}

/** Why a message that cannot be decoded goes to the dead-letter topic. */
export type UndecodableReason = 'not-avro-single-object' | 'unknown-schema-fingerprint' | 'unknown-schema-id' | 'undecodable';

/**
 * Why bytes are a poison message (never decodable, whatever is retried), or null when the failure
 * is transient (the schema registry cannot be reached, or refuses our credentials): the message
 * is then delivered again.
 */
export function poisonReason(error: unknown): { readonly reason: UndecodableReason; readonly detail: string } | null {
  const detail = error instanceof Error ? error.message : String(error);
  if (error instanceof SchemaRegistryUnavailableError) return null;
  if (error instanceof SchemaRegistryError && (error.status === 401 || error.status === 403)) return null;
  if (error instanceof NotSingleObjectError) return { reason: 'not-avro-single-object', detail };
  if (error instanceof UnknownFingerprintError) return { reason: 'unknown-schema-fingerprint', detail };
  if (error instanceof UnknownSchemaIdError || error instanceof SchemaRegistryError) return { reason: 'unknown-schema-id', detail };
  return { reason: 'undecodable', detail: `the Avro body does not decode with its writer schema: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}` };
}

type Reader = {
  readonly subject: string;
  readonly writer: AvroType;
  readonly reader: AvroType;
  readonly resolver: ReturnType<AvroType['createResolver']> | null;
};

export function createSubjectCodec(
  current: ReadonlyMap<string, AvroType>,
  published: ReadonlyMap<string, readonly PublishedSchema[]>,
  unknownSubject: (subject: string) => Error = (subject) => new UnknownEventTypeError(subject),
  /** Where the known schemas live, for the unknown-fingerprint message. */
  where?: string,
  /** Given: Confluent framing with this registry's ids. */
  registry: RegistryFraming | null = null,
): SubjectCodec {
  const headers = new Map<string, Buffer>();
  const fingerprints = new Map<string, bigint>();
  /** Readers by fingerprint (the header's 8 bytes read as a little-endian integer). */
  const readers = new Map<bigint, Reader>();
  /** Confluent headers per subject, once the registry gave the id. */
  const registryHeaders = new Map<string, Buffer>();
  /** Readers per registry id, as they are met. */
  const registryReaders = new Map<number, Reader>();
  const subjectsByName = new Map<string, string>();
  for (const [subject, type] of current) if (type.name !== undefined) subjectsByName.set(type.name, subject);

  const registryHeader = (subject: string, type: AvroType): Buffer => {
    const known = registryHeaders.get(subject);
    if (known !== undefined) return known;
    const id = registry?.idOf(type);
    if (id === undefined) throw new Error(`${type.name ?? subject} has no schema-registry id yet: the codec's prepare() must finish before it encodes`);
    const header = Buffer.alloc(CONFLUENT_HEADER_LENGTH);
    header.writeUInt8(CONFLUENT_MAGIC, 0);
    header.writeUInt32BE(id, 1);
    registryHeaders.set(subject, header);
    return header;
  };

  const registryReader = (id: number): Reader => {
    const known = registryReaders.get(id);
    if (known !== undefined) return known;
    if (registry === null) {
      throw new NotSingleObjectError(`Confluent schema-registry framing (schema id ${id}), but no schema registry is configured (VCP_SCHEMA_REGISTRY_URL)`);
    }
    const writer = registry.writerOf(id);
    if (writer === undefined) throw new SchemaIdNotLoadedError(id);
    const subject = writer.name === undefined ? undefined : subjectsByName.get(writer.name);
    const reader = subject === undefined ? undefined : current.get(subject);
    if (subject === undefined || reader === undefined) throw new UnknownSchemaIdError(id, `it is ${writer.name ?? 'an unnamed schema'}, which this reader does not know ${where ?? ''}`.trimEnd());
    let resolver: Reader['resolver'] = null;
    if (fingerprintOf(writer) !== fingerprintOf(reader)) {
      try {
        resolver = reader.createResolver(writer);
      } catch (error) {
        throw new UnknownSchemaIdError(id, `${writer.name} as registered cannot be read as the current schema: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    const found: Reader = { subject, writer, reader, resolver };
    registryReaders.set(id, found);
    return found;
  };
  for (const [subject, type] of current) {
    const fp = fingerprintOf(type);
    fingerprints.set(subject, fp);
    headers.set(subject, Buffer.concat([Buffer.from(SINGLE_OBJECT_MAGIC), fingerprintLE(fp)]));
    readers.set(fp, { subject, writer: type, reader: type, resolver: null });
  }
  for (const [subject, versions] of published) {
    const reader = current.get(subject);
    if (reader === undefined) continue;
    for (const { type } of versions) {
      const key = fingerprintOf(type);
      if (!readers.has(key)) readers.set(key, { subject, writer: type, reader, resolver: reader.createResolver(type) });
    }
  }
  const decode = (bytes: Uint8Array): { readonly subject: string; readonly value: unknown } => {
    let found: Reader | undefined;
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let body: Buffer;
    if (buf.length >= CONFLUENT_HEADER_LENGTH && buf[0] === CONFLUENT_MAGIC) {
      found = registryReader(buf.readUInt32BE(1));
      body = buf.subarray(CONFLUENT_HEADER_LENGTH);
    } else {
      if (buf.length < SINGLE_OBJECT_HEADER_LENGTH || buf[0] !== SINGLE_OBJECT_MAGIC[0] || buf[1] !== SINGLE_OBJECT_MAGIC[1]) readHeader(buf); // throws, saying why
      const fingerprint = buf.readBigUInt64LE(2);
      found = readers.get(fingerprint);
      if (found === undefined) throw new UnknownFingerprintError(fingerprintHex(fingerprint), where);
      body = buf.subarray(SINGLE_OBJECT_HEADER_LENGTH);
    }
    const raw = found.resolver === null ? found.reader.fromBuffer(body) : found.reader.fromBuffer(body, found.resolver);
    return { subject: found.subject, value: fromAvro(found.reader, raw) };
  };

  return {
    encode: (subject, value) => {
      const type = current.get(subject);
      const header = headers.get(subject);
      if (type === undefined || header === undefined) throw unknownSubject(subject);
      const avroValue = toAvro(type, value, type.name ?? subject);
      // The plain check is the fast path; the paths are worked out only for the error message.
      if (!type.isValid(avroValue)) {
        throw new SchemaMismatchError(type.name ?? subject, '', `does not match the schema: ${invalidPaths(type, avroValue).join('; ')}`);
      }
      return Buffer.concat([registry === null ? header : registryHeader(subject, type), type.toBuffer(avroValue)]);
    },
    decode,
    decodeAsync: (bytes) => decodeLoading(registry, () => decode(bytes)),
    prepare: async () => {
      if (registry !== null) await registry.register(current.values());
    },
    framing: registry === null ? 'single-object' : 'confluent',
    fingerprint: (subject) => {
      const fp = fingerprints.get(subject);
      if (fp === undefined) throw unknownSubject(subject);
      return fp;
    },
    has: (subject) => current.has(subject),
  };
}

export function createCodec(schemas: SchemaSet = loadSchemaSet(), registry: RegistryFraming | null = null): EventCodec {
  const subjects = createSubjectCodec(new Map<string, AvroType>([...schemas.events, ['Envelope', schemas.envelope]]), schemas.published, undefined, undefined, registry);
  const encode = subjects.encode;
  const decode = subjects.decode;

  const decodeEvent = (bytes: Uint8Array): DecodedEvent => {
    const { subject, value } = decode(bytes);
    if (subject === 'Envelope') throw new NotSingleObjectError('these bytes hold a vcp.Envelope, not an event: use decodeEnvelope');
    return { type: subject, data: value as DecodedEvent['data'] };
  };

  const decodeEnvelope = (bytes: Uint8Array): RecordedEvent => {
    const { subject, value } = decode(bytes);
    if (subject !== 'Envelope') throw new NotSingleObjectError(`these bytes hold a vcp.${subject} event, not a vcp.Envelope: use decodeEvent`);
    const { payload, ...meta } = value as { payload: Buffer } & Omit<RecordedEvent, 'data'>;
    const event = decodeEvent(payload);
    if (event.type !== meta.type) throw new Error(`envelope of type ${meta.type} carries a vcp.${event.type} payload`);
    return { ...meta, data: event.data as RecordedEvent['data'] };
  };

  return {
    schemas,
    encodeEvent: (event) => {
      if (event.type === 'Envelope' || !schemas.events.has(event.type)) throw new UnknownEventTypeError(event.type);
      return encode(event.type, event.data);
    },
    decodeEvent,
    encodeEnvelope: (recorded) => {
      const { data, ...meta } = recorded;
      const payload = encode(recorded.type, data);
      if (!schemas.events.has(recorded.type)) throw new UnknownEventTypeError(recorded.type);
      return encode('Envelope', { ...meta, payload });
    },
    decodeEnvelope,
    decodeEnvelopeAsync: (bytes) => decodeLoading(registry, () => decodeEnvelope(bytes)),
    fingerprint: (subject) => subjects.fingerprint(subject),
    prepare: () => subjects.prepare(),
    framing: subjects.framing,
  };
}

let defaultCodec: EventCodec | null = null;
/** The codec over schemas/ (loaded once, on first use). */
export const codec = (): EventCodec => {
  defaultCodec ??= createCodec();
  return defaultCodec;
};

export const encodeEvent = (event: EncodableEvent): Buffer => codec().encodeEvent(event);
export const decodeEvent = (bytes: Uint8Array): DecodedEvent => codec().decodeEvent(bytes);
export const encodeEnvelope = (recorded: RecordedEvent): Buffer => codec().encodeEnvelope(recorded);
export const decodeEnvelope = (bytes: Uint8Array): RecordedEvent => codec().decodeEnvelope(bytes);
