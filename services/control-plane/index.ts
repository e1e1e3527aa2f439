export { type ControlPlaneConfig, type ControlPlaneHandle, defaultControlPlaneConfig, runControlPlane, version } from './server.ts';
export { ControlPlaneService, type ReportInput, type ReportResult } from './service.ts';
export type { HostView, PartitionView } from './views.ts';
export { type MigrationConfig, MigrationManager, type MigrationView, defaultMigrationConfig } from './migrations.ts';
