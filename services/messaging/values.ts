/**
 * Domain JSON ↔ avsc values. They differ in two ways only: unions of records are wrapped in avsc
 * (`{ "vcp.DynamicMemory": {…} }`, the branch chosen by an exact match of the domain value), and
 * decoded records are class instances (turned back into plain objects). Fields the schema does not
 * declare are an error, never silently dropped: that is how a TS type that drifted from its
 * schema shows up at the first encode.
 */
import type avro from 'avsc';

type AvroType = avro.Type;
type Obj = { [key: string]: unknown };

const isObject = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);

export class SchemaMismatchError extends Error {
  override readonly name = 'SchemaMismatchError';
  constructor(
    readonly schema: string,
    readonly path: string,
    message: string,
  ) {
    super(`${schema}: ${path === '' ? 'value' : path}: ${message}`);
  }
}

/** The domain value as avsc's value of `type` (throws SchemaMismatchError on an undeclared field or no matching union branch). */
export function toAvro(type: AvroType, value: unknown, schema: string, path = ''): unknown {
  switch (type.typeName) {
    case 'record':
    case 'error': {
      if (!isObject(value)) return value; // isValid reports it with its path.
      const fields = (type as avro.types.RecordType).fields;
      const declared = new Set(fields.map((f) => f.name));
      for (const key of Object.keys(value)) {
        if (!declared.has(key) && value[key] !== undefined) throw new SchemaMismatchError(schema, join(path, key), `field not declared by ${type.name}`);
      }
      const out: Obj = {};
      for (const field of fields) out[field.name] = toAvro(field.type, value[field.name], schema, join(path, field.name));
      return out;
    }
    case 'array':
      return Array.isArray(value) ? value.map((item, i) => toAvro((type as avro.types.ArrayType).itemsType, item, schema, `${path}[${i}]`)) : value;
    case 'map':
      return isObject(value) ? mapValues(value, (v, k) => toAvro((type as avro.types.MapType).valuesType as AvroType, v, schema, join(path, k))) : value;
    case 'union:unwrapped':
    case 'union:wrapped': {
      const wrapped = type.typeName === 'union:wrapped';
      const branches = (type as avro.types.WrappedUnionType).types;
      if (value === null && branches.some((b) => b.typeName === 'null')) return null;
      for (const branch of branches) {
        if (branch.typeName === 'null') continue;
        // A record branch that lacks one of the value's fields cannot match: skip it without
        // the cost of throwing (this runs for every union value encoded).
        if ((branch.typeName === 'record' || branch.typeName === 'error') && isObject(value) && !declaresAll(branch as avro.types.RecordType, value)) continue;
        let candidate: unknown;
        try {
          candidate = toAvro(branch, value, schema, path);
        } catch {
          continue;
        }
        if (branch.isValid(candidate, { noUndeclaredFields: true })) {
          return wrapped ? { [branch.branchName as string]: candidate } : candidate;
        }
      }
      const names = branches.map((b) => b.branchName).join(' | ');
      throw new SchemaMismatchError(schema, path, `matches no branch of ${names}`);
    }
    default:
      return value;
  }
}

/** avsc's value of `type` as the domain's plain JSON value. */
export function fromAvro(type: AvroType, value: unknown): unknown {
  switch (type.typeName) {
    case 'record':
    case 'error': {
      const out: Obj = {};
      for (const field of (type as avro.types.RecordType).fields) out[field.name] = fromAvro(field.type, (value as Obj)[field.name]);
      return out;
    }
    case 'array':
      return (value as unknown[]).map((item) => fromAvro((type as avro.types.ArrayType).itemsType, item));
    case 'map':
      return mapValues(value as Obj, (v) => fromAvro((type as avro.types.MapType).valuesType as AvroType, v));
    case 'union:wrapped': {
      if (value === null) return null;
      const [branchName, inner] = Object.entries(value as Obj)[0] ?? [];
      const branch = (type as avro.types.WrappedUnionType).types.find((b) => b.branchName === branchName);
      if (branch === undefined) throw new Error(`decoded a union value of unknown branch ${String(branchName)}`);
      return fromAvro(branch, inner);
    }
    case 'union:unwrapped': {
      if (value === null) return null;
      const branch = (type as avro.types.UnwrappedUnionType).types.find((b) => b.typeName !== 'null' && b.isValid(value));
      return branch === undefined ? value : fromAvro(branch, value);
    }
    default:
      return value;
  }
}

const declaresAll = (type: avro.types.RecordType, value: Obj): boolean => {
  for (const key of Object.keys(value)) if (value[key] !== undefined && type.field(key) === undefined) return false;
  return true;
};

const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

function mapValues(obj: Obj, fn: (value: unknown, key: string) => unknown): Obj {
  const out: Obj = {};
  for (const [key, value] of Object.entries(obj)) out[key] = fn(value, key);
  return out;
}

/** Every invalid leaf of `value` for `type`, as `path: value`, for error messages. */
export function invalidPaths(type: AvroType, value: unknown): string[] {
  const problems: string[] = [];
  type.isValid(value, {
    errorHook: (path: string[], any: unknown, leaf: AvroType) => {
      problems.push(`${path.join('.') || 'value'}: ${JSON.stringify(any) ?? 'undefined'} is not a valid ${leaf.branchName ?? leaf.typeName}`);
    },
  });
  return problems;
}
