/**
 * A real Confluent-compatible schema registry for tests: Apicurio Registry through
 * infra/schema-registry/registry.sh (built once from Maven Central; its schemas in a database of
 * its own on the machine's PostgreSQL, dropped at the end), started
 * once per run by the global setup (registry-global-setup.ts) when a `*.registry.*spec.ts` file
 * is selected; tests get its URL with schemaRegistryUrl().
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeEach, describe, inject } from 'vitest';
import { ephemeralPort, killOnExit, runScript } from './kafka-broker.ts';

export const registryScript = resolve(import.meta.dirname, '../../infra/schema-registry/registry.sh');
/** The Confluent-compatible API of Apicurio Registry under its base URL. */
export const confluentApiPath = '/apis/ccompat/v7';

/** registry.sh's own readiness wait (a Quarkus start: a few seconds, more on a loaded machine). */
const registryStartTimeoutS = 120;
/** The whole start, with the first build from Maven Central (a few minutes) inside. */
const startCommandTimeoutMs = 900_000;
const stopCommandTimeoutMs = 60_000;

export type SchemaRegistryServer = {
  /** The URL Confluent clients and VCP_SCHEMA_REGISTRY_URL take. */
  readonly url: string;
  readonly dataDir: string;
  stop(): Promise<void>;
};

export async function startSchemaRegistry(): Promise<SchemaRegistryServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'vcp-registry-'));
  const onExit = killOnExit(join(dataDir, 'registry.pid'));
  const database = `vcp_registry_test_${randomUUID().slice(0, 8)}`;
  try {
    const port = await ephemeralPort();
    await runScript(registryScript, ['start', '--port', String(port), '--data', dataDir, '--database', database, '--timeout', String(registryStartTimeoutS)], startCommandTimeoutMs);
    let stopped = false;
    return {
      url: `http://127.0.0.1:${port}${confluentApiPath}`,
      dataDir,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          await runScript(registryScript, ['stop', '--data', dataDir, '--drop-database'], stopCommandTimeoutMs);
        } finally {
          onExit();
          rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    onExit();
    await runScript(registryScript, ['stop', '--data', dataDir, '--drop-database'], stopCommandTimeoutMs).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

export type SchemaRegistryProvided = { readonly url: string } | { readonly error: string };

declare module 'vitest' {
  export interface ProvidedContext {
    schemaRegistry: SchemaRegistryProvided;
  }
}

/** Files that need the registry: `*.registry.spec.ts`, `*.registry.kafka.spec.ts`. */
export const needsSchemaRegistry = (file: string): boolean => /\.registry\.(?:[a-z]+\.)?spec\.ts$/.test(file);

/** The registry's URL; throws (failing the test) with the reason when there is none. */
export function schemaRegistryUrl(): string {
  const provided = inject('schemaRegistry');
  if (provided === undefined) throw new Error('no schema registry: test/support/registry-global-setup.ts is not in vitest.config.ts globalSetup');
  if ('error' in provided) {
    throw new Error(
      `no schema registry for this test: ${provided.error}\n` +
        'The global setup starts one with infra/schema-registry/registry.sh (needs Java 17, and Maven for the first build); ' +
        'or set VCP_TEST_SCHEMA_REGISTRY_URL to use a running Confluent-compatible registry.',
    );
  }
  return provided.url;
}

export function schemaRegistryAvailable(): boolean {
  const provided = inject('schemaRegistry');
  return provided !== undefined && !('error' in provided);
}

/** A describe block whose tests fail with the reason when there is no registry. */
export function describeRegistry(name: string, body: () => void): void {
  describe(name, { timeout: 120_000 }, () => {
    beforeEach(() => {
      schemaRegistryUrl();
    });
    body();
  });
}
