export { defaultNodeDaemonConfig, type NodeDaemonConfig, type NodeDaemonHandle, type Observing, runNodeDaemon } from './daemon.ts';
export { checkpointFileName, readCheckpoint } from './checkpoint.ts';
export {
  type ControlPlaneClient,
  ControlPlaneHttpError,
  createControlPlaneClient,
  type Desired,
  type DesiredPartition,
  type DirectiveMessage,
  type Report,
} from './control-plane-client.ts';
