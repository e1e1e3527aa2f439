/**
 * Vitest global setup: ONE real Kafka broker (infra/kafka/kafka.sh, KRaft 3.9.2) for the whole
 * `npm test` run, on free ports in a temp dir, stopped in teardown. Tests get its address with
 * `kafkaBrokers()` (test/support/kafka.ts, vitest's provide/inject).
 *
 * - No test file of the run needs Kafka (`*.kafka.spec.ts`): no broker is started.
 * - VCP_KAFKA_TEST_BROKERS=host:port: that broker is used instead of starting one.
 * - The broker cannot start: with CI=true the run fails here; otherwise every Kafka test fails
 *   with the reason (never a silent skip).
 */
import type { TestProject } from 'vitest/node';
import type { KafkaProvided } from './kafka.ts';
import { type KafkaBroker, startKafkaBroker } from './kafka-broker.ts';

let broker: KafkaBroker | null = null;

/** Whether the files this run selected include one that `needs` (when unsure: yes). */
export async function testFilesQueued(project: TestProject, needs: (file: string) => boolean): Promise<boolean> {
  try {
    // The CLI's file filters (`vitest run test/domain`); an internal field, hence the guard.
    const filters = (project.vitest as unknown as { filenamePattern?: unknown }).filenamePattern;
    const { testFiles } = await project.globTestFiles(Array.isArray(filters) ? filters.map(String) : undefined);
    return testFiles.some(needs);
  } catch {
    return true;
  }
}

export async function setup(project: TestProject): Promise<void> {
  const provide = (value: KafkaProvided) => project.provide('kafka', value);
  const given = process.env.VCP_KAFKA_TEST_BROKERS?.trim();
  if (given) {
    provide({ brokers: given });
    return;
  }
  if (!(await testFilesQueued(project, (file) => file.endsWith('.kafka.spec.ts')))) {
    provide({ error: 'no broker was started: the global setup saw no *.kafka.spec.ts file among the selected tests' });
    return;
  }
  const startedMs = Date.now();
  try {
    broker = await startKafkaBroker();
    process.stdout.write(`kafka-global-setup: broker ${broker.brokers} up in ${((Date.now() - startedMs) / 1000).toFixed(1)} s (data ${broker.dataDir})\n`);
    provide({ brokers: broker.brokers });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (process.env.CI === 'true') throw new Error(`the Kafka broker for the tests could not start, and CI=true fails the run: ${reason}`);
    process.stderr.write(`kafka-global-setup: the Kafka broker could not start; every Kafka test will fail.\n${reason}\n`);
    provide({ error: reason });
  }
}

export async function teardown(): Promise<void> {
  await broker?.stop();
  broker = null;
}
