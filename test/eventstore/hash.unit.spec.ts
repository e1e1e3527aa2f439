import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  chainGenesisHash,
  eventHash,
  type Json,
  type RecordedEvent,
  verifyChain,
} from '../../services/eventstore/index.ts';

const unhashed = {
  eventId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  type: 'PartitionCreated',
  streamId: 'partition-1',
  streamVersion: 1,
  globalPosition: 1,
  recordedAt: '2030-01-01T00:00:00.000Z',
  actor: 'user:alice',
  causationId: null,
  correlationId: 'corr-1',
  schemaVersion: 1,
  data: { name: 'vm-1', memoryMiB: 4096, tags: ['a', 'é'], nested: { z: 1, a: null } },
};

/** [1, <hole>, 3] */
function holey(): unknown[] {
  const array: unknown[] = [];
  array[0] = 1;
  array[2] = 3;
  return array;
}

describe('canonicalJson', () => {
  it('sorts object keys recursively and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,{"x":2,"y":1}]},"b":1}',
    );
  });

  it('gives the same text for values equal as JSON, whatever the key order', () => {
    expect(canonicalJson({ x: 1, y: [true, null] })).toBe(canonicalJson({ y: [true, null], x: 1 }));
  });

  it('writes strings and numbers as JSON.stringify does, and sorts keys by UTF-16 code units', () => {
    expect(canonicalJson(['é\n"', 1e21, -0, 0.1, '\ud800'])).toBe('["é\\n\\"",1e+21,0,0.1,"\\ud800"]');
    expect(canonicalJson({ b: 1, B: 2, é: 3, '10': 4, '9': 5 })).toBe('{"10":4,"9":5,"B":2,"b":1,"é":3}');
  });

  it('refuses what is not JSON, naming where it is', () => {
    const notJson: Array<[unknown, RegExp]> = [
      [{ a: { b: [1, Number.NaN] } }, /\$\.a\.b\[1\]: NaN is not a JSON number/],
      [{ a: undefined }, /\$\.a: a undefined is not JSON/],
      [{ when: new Date(0) }, /\$\.when: only plain objects are JSON \(got Date\)/],
      [holey(), /\$\[1\]: a sparse array hole/],
      [{ n: 10n }, /a bigint is not JSON/],
      [Number.POSITIVE_INFINITY, /Infinity is not a JSON number/],
    ];
    for (const [value, message] of notJson) expect(() => canonicalJson(value as Json)).toThrow(message);
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic as Json)).toThrow(/jsonDepthMax/);
  });
});

describe('eventHash', () => {
  it('is the SHA-256 of the previous hash, a newline and the canonical envelope', () => {
    const expected = createHash('sha256')
      .update(`${chainGenesisHash}\n${canonicalJson(unhashed)}`)
      .digest('hex');
    expect(eventHash(chainGenesisHash, unhashed)).toBe(expected);
  });

  it('is pinned: auditors of old logs depend on these exact bytes', () => {
    expect(eventHash(chainGenesisHash, unhashed)).toBe(PINNED_HASH);
  });

  it('ignores properties outside the envelope, such as the stored hash itself', () => {
    const withExtras = { ...unhashed, hash: 'whatever', extra: 1 };
    expect(eventHash(chainGenesisHash, withExtras)).toBe(eventHash(chainGenesisHash, unhashed));
  });

  it('changes with every field of the envelope and with the previous hash', () => {
    const base = eventHash(chainGenesisHash, unhashed);
    const variants = [
      { ...unhashed, eventId: 'other' },
      { ...unhashed, type: 'Other' },
      { ...unhashed, streamId: 'partition-2' },
      { ...unhashed, streamVersion: 2 },
      { ...unhashed, globalPosition: 2 },
      { ...unhashed, recordedAt: '2030-01-01T00:00:00.001Z' },
      { ...unhashed, actor: 'user:bob' },
      { ...unhashed, causationId: 'cause' },
      { ...unhashed, correlationId: 'corr-2' },
      { ...unhashed, schemaVersion: 2 },
      { ...unhashed, data: { ...unhashed.data, memoryMiB: 4097 } },
    ];
    for (const variant of variants) expect(eventHash(chainGenesisHash, variant)).not.toBe(base);
    expect(eventHash('1'.repeat(64), unhashed)).not.toBe(base);
  });
});

describe('verifyChain', () => {
  function chain(length: number): RecordedEvent[] {
    const events: RecordedEvent[] = [];
    let prevHash = chainGenesisHash;
    for (let index = 0; index < length; index += 1) {
      const event = { ...unhashed, eventId: `e-${index}`, globalPosition: index + 1, data: { index } };
      const hash = eventHash(prevHash, event);
      events.push({ ...event, hash });
      prevHash = hash;
    }
    return events;
  }

  it('accepts an intact chain, an empty one and a slice anchored on its predecessor', () => {
    const events = chain(5);
    expect(verifyChain(events)).toBeNull();
    expect(verifyChain([])).toBeNull();
    expect(verifyChain(events.slice(2), events[1]!)).toBeNull();
  });

  it('reports the first position that breaks the chain', () => {
    const events = chain(5);
    expect(verifyChain(events.slice(2), events[0]!)).toBe(3);
    expect(verifyChain(events.map((e) => (e.globalPosition === 4 ? { ...e, actor: 'user:mallory' } : e)))).toBe(4);
    expect(verifyChain(events.slice(0, 4).concat([{ ...events[4]!, globalPosition: 6 }]))).toBe(6);
  });
});

// Computed independently with Python: sha256(('0'*64 + '\n' + json.dumps(envelope, sort_keys=True,
// separators=(',', ':'), ensure_ascii=False)).encode()).
const PINNED_HASH = 'b9c3f579e043ee4817c57208b06b0797dff6eb9c76958650193a306472a30262';
