#!/usr/bin/env node
// Runs a TypeScript entry point through tsx's loader, so the same sources run on
// Node 20 (no native type stripping) and on Node 22/24 without a build step.
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const entry = process.argv[2];
if (!entry) {
  process.stderr.write('usage: run-ts.js <file.ts> [args...]\n');
  process.exit(2);
}
register();
process.argv.splice(2, 1);
await import(pathToFileURL(resolve(entry)).href);
