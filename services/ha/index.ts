export { type FailureKind, type HaRecord, HaLedger, type LoggedEvent } from './ledger.ts';
export { type HaCandidate, type HaConfig, type HaDecision, defaultHaConfig, planRestarts } from './planner.ts';
