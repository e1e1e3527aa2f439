export { defaultNodeDaemonConfig, type NodeDaemonConfig, type NodeDaemonHandle, type Observing, runNodeDaemon } from './daemon.ts';
export { checkpointFileName, readCheckpoint } from './checkpoint.ts';
