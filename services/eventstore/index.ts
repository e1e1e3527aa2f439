/** Public surface of the event store: the port, its adapters and the hash-chain helpers. */
export {
  type ChainAnchor,
  canonicalJson,
  chainGenesisHash,
  eventHash,
  jsonDepthMax,
  type UnhashedEvent,
  verifyChain,
} from './hash.ts';
export { type MemoryEventStoreOptions, openMemoryEventStore } from './memory.ts';
export {
  type AppendResult,
  EventIdConflictError,
  type EventMetadata,
  type EventStore,
  type ExpectedVersion,
  type Json,
  type NewEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
  type Subscription,
  WrongExpectedVersionError,
} from './port.ts';
export {
  appendEventsCountMax,
  batchSizeMaxDefault,
  eventDataBytesMax,
  idLengthMax,
  pollIntervalMsDefault,
  StoreClosedError,
  streamIdLengthMax,
} from './rules.ts';
export { openSqliteEventStore, type SqliteEventStoreOptions } from './sqlite.ts';
