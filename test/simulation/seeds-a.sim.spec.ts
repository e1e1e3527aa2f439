import { describe } from 'vitest';
import { seedSuite } from './seeds.ts';

describe('deterministic simulation, seeds 1–250', () => seedSuite(1, 250));
