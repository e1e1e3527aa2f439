export * from './capacity.ts';
export * from './decision.ts';
export * from './events.ts';
export * from './host.ts';
export * from './limits.ts';
export * from './partition.ts';
export * from './placement.ts';
export * from './spec.ts';
