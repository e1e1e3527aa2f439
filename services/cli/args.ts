/**
 * Flag parsing shared by every `vcp` command: node's parseArgs, with one-line errors.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A usage error: printed as one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type CommandSpec = {
  readonly name: string;
  readonly summary: string;
  /** Shown by --help after the usage line. */
  readonly help: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly allowPositionals?: boolean;
  readonly run: (values: Record<string, string | boolean | string[] | undefined>, positionals: string[]) => Promise<number>;
};

export function parse(spec: CommandSpec, argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: { ...spec.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: spec.allowPositionals ?? false,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message.split('\n')[0]! : String(error));
  }
}

export function intFlag(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  if (!/^-?\d+$/.test(text)) throw new UsageError(`--${name} must be an integer, got "${text}"`);
  const n = Number(text);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function stringFlag(value: unknown, name: string, fallback?: string): string {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const text = String(value);
  if (text.length === 0) throw new UsageError(`--${name} must not be empty`);
  return text;
}

/** `key=value,key2=value2` → object. */
export function labelsFlag(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  const labels: Record<string, string> = {};
  for (const pair of String(value).split(',').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--labels must look like key=value,key2=value2, got "${pair}"`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}
