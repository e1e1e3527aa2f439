/**
 * Vitest global setup: ONE real schema registry (infra/schema-registry/registry.sh, Apicurio
 * Registry's Confluent-compatible API) for the whole `npm test` run, stopped in teardown, started
 * only when a `*.registry.*spec.ts` file is selected. VCP_TEST_SCHEMA_REGISTRY_URL uses a running
 * one instead. Under CI=true a registry that cannot start fails the run (never a silent skip);
 * otherwise each registry test fails with the reason.
 */
import type { TestProject } from 'vitest/node';
import { testFilesQueued } from './kafka-global-setup.ts';
import { type SchemaRegistryProvided, type SchemaRegistryServer, needsSchemaRegistry, startSchemaRegistry } from './schema-registry.ts';

let server: SchemaRegistryServer | null = null;

export async function setup(project: TestProject): Promise<void> {
  const provide = (value: SchemaRegistryProvided) => project.provide('schemaRegistry', value);
  const given = process.env.VCP_TEST_SCHEMA_REGISTRY_URL?.trim();
  if (given) {
    provide({ url: given });
    return;
  }
  if (!(await testFilesQueued(project, needsSchemaRegistry))) {
    provide({ error: 'no registry was started: the global setup saw no *.registry.*spec.ts file among the selected tests' });
    return;
  }
  const startedMs = Date.now();
  try {
    server = await startSchemaRegistry();
    process.stdout.write(`registry-global-setup: schema registry ${server.url} up in ${((Date.now() - startedMs) / 1000).toFixed(1)} s\n`);
    provide({ url: server.url });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (process.env.CI === 'true') throw new Error(`the schema registry for the tests could not start, and CI=true fails the run: ${reason}`);
    process.stderr.write(`registry-global-setup: the schema registry could not start; every registry test will fail.\n${reason}\n`);
    provide({ error: reason });
  }
}

export async function teardown(): Promise<void> {
  await server?.stop();
  server = null;
}
