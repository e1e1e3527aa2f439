/**
 * `npm run bench`: prints figures and ratios against baselines measured in the same run.
 * Nothing here is asserted: speed targets are read, not tested, so shared machines cannot flake CI.
 */
import { benchCommands, benchProjectionRebuild } from './control-plane.bench.ts';
import { benchDaemonLatency } from './daemon-kafka.bench.ts';
import { benchDrain } from './drain.bench.ts';
import { benchEventStoreAppend } from './eventstore.bench.ts';
import { benchHaFailover, benchSimulation } from './ha.bench.ts';
import { benchHostReports } from './host-reports.bench.ts';
import { benchEntitlement, benchScheduler } from './hypervisor.bench.ts';
import { benchAvroCodec, benchKafkaRelay } from './kafka.bench.ts';
import { benchMigrationEngine } from './migration.bench.ts';

const suites: Record<string, () => Promise<unknown>> = {
  eventstore: benchEventStoreAppend,
  commands: benchCommands,
  rebuild: benchProjectionRebuild,
  entitlement: benchEntitlement,
  scheduler: benchScheduler,
  'migration-engine': benchMigrationEngine,
  drain: benchDrain,
  ha: benchHaFailover,
  simulation: benchSimulation,
  'kafka-relay': benchKafkaRelay,
  'avro-codec': benchAvroCodec,
  'daemon-kafka': benchDaemonLatency,
  'host-reports': benchHostReports,
};

const only = process.argv.slice(2);
for (const [name, run] of Object.entries(suites)) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.log(`\n== ${name}`);
  await run();
}
