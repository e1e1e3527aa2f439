/**
 * The client commands of `vcp`: a thin layer over the control plane's HTTP API. Tables for
 * people, `--json` (the API's own JSON) for scripts; every failure is one line on stderr.
 */
import { randomUUID } from 'node:crypto';
import type { Static } from 'typebox';
import type * as S from '../control-plane/http/schemas.ts';
import { readSse } from '../shared/sse-client.ts';
import { type CommandSpec, UsageError, intFlag, labelsFlag, stringFlag } from './args.ts';

type Values = Parameters<CommandSpec['run']>[0];
type Host = Static<typeof S.HostView>;
type Partition = Static<typeof S.PartitionView>;
type LogEvent = Static<typeof S.EventView>;
type HostResult = Static<typeof S.HostResult>;
type PartitionResult = Static<typeof S.PartitionResult>;

const defaultUrl = 'http://127.0.0.1:8080';
const requestTimeoutMs = 30_000;
const problemPrefix = 'urn:vcp:problem:';
const partitionStates = ['Off', 'Starting', 'Running', 'Pausing', 'Paused', 'Stopping', 'Saving', 'Saved', 'Failed'];
const memoryMiBMax = 256 * 1024 * 1024;

// ---------------------------------------------------------------- flags

const commonFlags = ['url', 'json'];
const booleanFlags = new Set(['json', 'dynamic', 'static', 'follow', 'no-wait', 'wait', 'auto-converge']);

function optionsFor(names: readonly string[]): CommandSpec['options'] {
  return Object.fromEntries(names.map((n) => [n, { type: booleanFlags.has(n) ? ('boolean' as const) : ('string' as const) }]));
}

const commonHelp = `Common options:
  --url URL                 the control plane (default $VCP_URL, else ${defaultUrl})
  --json                    print the API's JSON instead of a table`;
const idempotencyHelp = `  --idempotency-key K       send K as Idempotency-Key, to retry safely (default: a random UUID)`;

function required(values: Values, ...names: string[]): void {
  for (const name of names) stringFlag(values[name], name);
}

function optInt(values: Values, name: string, min: number, max: number): number | undefined {
  return values[name] === undefined ? undefined : intFlag(values[name], name, min, max, 0);
}

/** Like intFlag, for values that may have a fraction (demand percentages, rates). */
function optNumber(values: Values, name: string, min: number, max: number): number | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  const text = String(value);
  const n = /^-?(\d+\.?\d*|\.\d+)$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${text}"`);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function optChoice<T extends string | number>(values: Values, name: string, choices: readonly T[]): T | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  const found = choices.find((c) => String(c) === String(value));
  if (found === undefined) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${String(value)}"`);
  return found;
}

/** Drops undefined values and objects left empty, so only the flags given are sent. */
function compact(input: Record<string, unknown>): Record<string, unknown> {
  const output: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    const kept = value !== null && typeof value === 'object' ? compact(value as Record<string, unknown>) : value;
    if (kept !== undefined && !(typeof kept === 'object' && kept !== null && Object.keys(kept).length === 0)) output[key] = kept;
  }
  return output;
}

const specFlags = [
  'vcpus', 'memory-mib', 'dynamic', 'static', 'min-mib', 'max-mib', 'buffer-pct', 'memory-weight',
  'reserve-pct', 'limit-pct', 'weight', 'restart', 'priority', 'cpu-demand-pct', 'memory-demand-mib', 'dirty-mibps',
  'cpu-pattern', 'cpu-low-pct', 'cpu-period-ms', 'cpu-duty-pct', 'working-set-mib',
];

/** The partition spec (API shape) from the flags given; nothing for the flags left out. */
function specFromFlags(values: Values): Record<string, unknown> {
  if (values.dynamic && values.static) throw new UsageError('--dynamic and --static exclude each other');
  return compact({
    vcpus: optInt(values, 'vcpus', 1, 2048),
    memory: {
      mode: values.dynamic ? 'dynamic' : values.static ? 'static' : undefined,
      startupMiB: optInt(values, 'memory-mib', 1, memoryMiBMax),
      minMiB: optInt(values, 'min-mib', 1, memoryMiBMax),
      maxMiB: optInt(values, 'max-mib', 1, memoryMiBMax),
      bufferPct: optInt(values, 'buffer-pct', 5, 2000),
      weight: optInt(values, 'memory-weight', 0, 10_000),
    },
    processor: {
      reservePct: optInt(values, 'reserve-pct', 0, 100),
      limitPct: optInt(values, 'limit-pct', 0, 100),
      weight: optInt(values, 'weight', 1, 10_000),
    },
    ha: {
      restart: optChoice(values, 'restart', ['none', 'same-host', 'any-host']),
      priority: optChoice(values, 'priority', [0, 1000, 2000, 3000]),
    },
    workload: {
      cpuDemandPct: optNumber(values, 'cpu-demand-pct', 0, 100),
      cpuPattern: optChoice(values, 'cpu-pattern', ['constant', 'periodic', 'bursty']),
      cpuLowPct: optNumber(values, 'cpu-low-pct', 0, 100),
      cpuPeriodMs: optInt(values, 'cpu-period-ms', 10, 86_400_000),
      cpuDutyPct: optNumber(values, 'cpu-duty-pct', 0, 100),
      memoryDemandMiB: optInt(values, 'memory-demand-mib', 0, memoryMiBMax),
      dirtyMiBps: optNumber(values, 'dirty-mibps', 0, 1_000_000),
      workingSetMiB: optInt(values, 'working-set-mib', 1, memoryMiBMax),
    },
  });
}

// ---------------------------------------------------------------- HTTP

type Request = { readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; readonly path: string; readonly body?: unknown };

/** A failed call, phrased as one line (the caller adds `vcp <command>: `). */
class ClientError extends Error {
  override readonly name = 'ClientError';
}

function baseUrl(values: Values): string {
  const url = stringFlag(values.url ?? process.env.VCP_URL, 'url', defaultUrl);
  let protocol = '';
  try {
    protocol = new URL(url).protocol;
  } catch {
    // reported below
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL, got "${url}"`);
  return url.replace(/\/+$/, '');
}

function actor(): string {
  const name = (process.env.USER ?? '').replace(/[^A-Za-z0-9._@-]/g, '').slice(0, 100);
  return `user:${name || 'cli'}`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function unreachable(url: string, error: unknown): ClientError {
  const cause = (error as { cause?: { message?: string; code?: string } } | null)?.cause;
  const why =
    error instanceof Error && error.name === 'TimeoutError'
      ? `no answer within ${requestTimeoutMs / 1000} s`
      : cause?.message || cause?.code || (error instanceof Error ? error.message : String(error));
  return new ClientError(`cannot reach the control plane at ${url}: ${oneLine(why)}`);
}

/** `409 invalid-transition: detail (field /x)` from a problem+json body, or the bare status. */
function failure(response: Response, text: string): ClientError {
  let body: { type?: unknown; detail?: unknown; field?: unknown } = {};
  try {
    body = JSON.parse(text) ?? {};
  } catch {
    // not JSON: the status line says it all
  }
  if (typeof body.type !== 'string' || typeof body.detail !== 'string') {
    return new ClientError(oneLine(`${response.status} ${response.statusText || 'error'}`));
  }
  const field = typeof body.field === 'string' ? ` (field ${body.field})` : '';
  return new ClientError(oneLine(`${response.status} ${body.type.replace(problemPrefix, '')}: ${body.detail}${field}`));
}

/** Sends one request; resolves to the response once it is known to be a success. */
async function open(values: Values, req: Request, accept: string, signal: AbortSignal): Promise<Response> {
  const url = baseUrl(values);
  const headers: Record<string, string> = { accept };
  if (req.method !== 'GET') headers['x-vcp-actor'] = actor();
  if (req.method === 'POST') headers['idempotency-key'] = stringFlag(values['idempotency-key'], 'idempotency-key', randomUUID());
  if (req.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(url + req.path, { method: req.method, headers, body: req.body === undefined ? undefined : JSON.stringify(req.body), signal });
  } catch (error) {
    if (error instanceof Error && error.name === 'AbortError') throw error;
    throw unreachable(url, error);
  }
  if (!response.ok) throw failure(response, await response.text().catch(() => ''));
  return response;
}

/** The request helper: one JSON call; failures become ClientError. */
async function request(values: Values, req: Request): Promise<unknown> {
  const response = await open(values, req, 'application/json', AbortSignal.timeout(requestTimeoutMs));
  try {
    return await response.json();
  } catch {
    throw new ClientError(`the control plane at ${baseUrl(values)} sent an incomplete or unreadable answer`);
  }
}

let stdoutGuarded = false;

/** Writes a line to stdout; a reader that went away (`vcp events | head -1`) is not a crash. */
function print(text: string): void {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', () => undefined);
  }
  if (text !== '') process.stdout.write(`${text}\n`);
}

/** Runs a client command: ClientError becomes one line on stderr and exit code 1. */
async function guard(label: string, run: () => Promise<void>): Promise<number> {
  try {
    await run();
    return 0;
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    process.stderr.write(`vcp ${label}: ${error.message}\n`);
    return 1;
  }
}

/** One request, printed as JSON (--json) or through render. */
function call<T>(label: string, values: Values, req: Request, render: (body: T) => string): Promise<number> {
  return guard(label, async () => {
    const body = await request(values, req);
    print(values.json ? JSON.stringify(body, null, 2) : render(body as T));
  });
}

// ---------------------------------------------------------------- rendering

/** Rows of cells in columns padded to the widest cell (or minWidths); the first row may be a header. */
function table(rows: readonly (readonly unknown[])[], minWidths: readonly number[] = []): string {
  const cells = rows.map((row) => row.map((c) => (c === null || c === undefined || c === '' ? '-' : oneLine(String(c)))));
  const widths = minWidths.slice();
  for (const row of cells) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return cells.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function keyValues(pairs: readonly (readonly [string, unknown])[]): string {
  return table(pairs.map(([key, value]) => [`${key}:`, value]));
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');
const eventTypes = (events: readonly { type: string }[]) => events.map((e) => e.type).join(', ') || 'none';

const hostHeader = ['ID', 'LPS', 'MEMORY(MiB)', 'FREE(MiB)', 'RESERVED(vCPUs)', 'PARTITIONS', 'CORDONED', 'DAEMON'];
function hostRow(h: Host): unknown[] {
  const c = h.capacity;
  return [h.id, h.logicalProcessors, h.memoryMiB, c.memoryFreeMiB, `${c.vcpusReserved}/${c.vcpusMax}`, `${c.partitionsReserved}/${c.partitionsMax}`, yesNo(h.cordoned), h.daemon.connected ? 'connected' : 'disconnected'];
}

function showHost(h: Host): string {
  const c = h.capacity;
  const d = h.daemon;
  return keyValues([
    ['id', h.id],
    ['logical processors', h.logicalProcessors],
    ['memory', `${h.memoryMiB} MiB (parent reserve ${h.parentReserveMiB}, usable ${c.memoryUsableMiB}, reserved ${c.memoryReservedMiB}, free ${c.memoryFreeMiB})`],
    ['vCPUs reserved', `${c.vcpusReserved} of ${c.vcpusMax}`],
    ['processor reserved', `${c.processorReservedLp} of ${c.processorReserveLp} LPs`],
    ['partitions', `${c.partitionsReserved} of ${c.partitionsMax}`],
    ['limits', `${h.limitsPreset}: ${Object.entries(h.limits).map(([k, v]) => `${k}=${v}`).join(' ')}`],
    ['labels', Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(',')],
    ['cordoned', h.cordoned ? `yes (${h.cordonReason ?? 'no reason'})` : 'no'],
    ['daemon', `${d.connected ? 'connected' : 'disconnected'}, last seen ${d.lastSeenAt ?? 'never'}, boot ${d.bootId ?? '-'}, checkpoint ${d.checkpointPosition ?? '-'}, ${d.directiveStreams} streams`],
    ...h.reservations.map((r) => ['reservation', `${r.partitionId} #${r.incarnation} ${r.purpose}: ${r.vcpus} vCPUs, ${r.memoryMiB} MiB, ${r.processorReserveLp} LPs`] as const),
    ['version', h.version],
    ['created', h.createdAt],
    ['updated', h.updatedAt],
  ]);
}

function hostResult(r: HostResult): string {
  const h = r.host;
  return `host ${h.id}: ${h.logicalProcessors} LPs, ${h.memoryMiB} MiB, ${h.cordoned ? `cordoned (${h.cordonReason ?? 'no reason'})` : 'schedulable'} (events: ${eventTypes(r.events)})`;
}

function memoryText(m: Partition['spec']['memory'], long: boolean): string {
  if (m.mode !== 'dynamic') return `${m.startupMiB} MiB`;
  const range = `${m.startupMiB} MiB dynamic ${m.minMiB}-${m.maxMiB}`;
  return long ? `${range}, buffer ${m.bufferPct} %, weight ${m.weight}` : range;
}

const partitionHeader = ['ID', 'NAME', 'STATE', 'HOST', 'INCARNATION', 'VCPUS', 'MEMORY', 'REASON'];
function partitionRow(p: Partition): unknown[] {
  return [p.id, p.name, p.state, p.hostId, p.incarnation, p.spec.vcpus, memoryText(p.spec.memory, false), p.reason];
}

function showPartition(p: Partition): string {
  const { processor: cpu, ha, workload } = p.spec;
  return keyValues([
    ['id', p.id],
    ['name', p.name],
    ['state', p.state],
    ['host', p.hostId],
    ['last host', p.lastHostId],
    ['incarnation', p.incarnation],
    ['reason', p.reason],
    ['vcpus', p.spec.vcpus],
    ['processor', `reserve ${cpu.reservePct} %, limit ${cpu.limitPct} %, weight ${cpu.weight}`],
    ['memory', memoryText(p.spec.memory, true)],
    ['ha', `restart ${ha.restart}, priority ${ha.priority}, anti-affinity ${ha.antiAffinityClass ?? '-'} (${ha.antiAffinityMode}), preferred ${ha.preferredHostIds.join(',') || '-'}`],
    ['workload', workload ? `cpu ${workload.cpuDemandPct} %, memory ${workload.memoryDemandMiB} MiB, dirty ${workload.dirtyMiBps} MiB/s` : 'none'],
    ['version', p.version],
    ['created', p.createdAt],
    ['updated', p.updatedAt],
  ]);
}

function partitionResult(r: PartitionResult, id: string): string {
  const p = r.partition;
  const state = p ? `${p.state}${p.hostId ? ` on ${p.hostId}` : ''}, incarnation ${p.incarnation}` : 'deleted';
  return `partition ${p?.id ?? id}: ${state} (events: ${eventTypes(r.events)})`;
}

function summary(data: Record<string, unknown>): string {
  const text = Object.entries(data)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

const eventHeader = ['POS', 'TIME', 'STREAM', 'TYPE', 'ACTOR'];
const eventWidths = [6, 24, 24, 24];
const eventRow = (e: LogEvent) => [e.globalPosition, e.recordedAt, e.streamId, e.type, e.actor];

// ---------------------------------------------------------------- migrations

type Migration = Static<typeof S.MigrationView>;
type Drain = Static<typeof S.DrainView>;
const endedPhases = ['Completed', 'Failed', 'Cancelled'];
const drainPollMs = 500;

function bar(fraction: number, width = 24): string {
  const done = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${String(Math.round(fraction * 100)).padStart(3)}%`;
}

/** One line per migration: a progress bar over the memory still to send, and what it costs. */
function migrationLine(m: Migration): string {
  const remaining = m.remainingMiB ?? m.memoryMiB;
  const fraction = m.phase === 'Completed' ? 1 : m.memoryMiB > 0 ? 1 - remaining / m.memoryMiB : 0;
  const downtime =
    m.downtimeMs !== null ? `downtime ${m.downtimeMs.toFixed(0)} ms` : m.expectedDowntimeMs !== null ? `expected downtime ${m.expectedDowntimeMs.toFixed(0)} ms` : '';
  const queue = m.queuePosition !== null ? `queued #${m.queuePosition}` : '';
  const failure = m.failureReason ? `: ${m.failureReason}` : '';
  return oneLine(
    `${m.partitionId.padEnd(16)} ${m.sourceHostId} -> ${m.targetHostId ?? '?'} ${bar(fraction)} ${m.phase.padEnd(10)} round ${m.round} ` +
      `sent ${m.transferredMiB.toFixed(0)} MiB ${downtime} ${queue}${failure}`,
  );
}

const migrationHeader = ['ID', 'PARTITION', 'FROM', 'TO', 'PHASE', 'ROUND', 'SENT(MiB)', 'REMAINING(MiB)', 'DIRTY(MiB/s)', 'EXP.DOWNTIME(ms)', 'DOWNTIME(ms)', 'QUEUE', 'REASON'];
const migrationRow = (m: Migration) => [
  m.id,
  m.partitionId,
  m.sourceHostId,
  m.targetHostId,
  m.phase,
  m.round,
  m.transferredMiB.toFixed(0),
  m.remainingMiB?.toFixed(0),
  m.dirtyRateMiBps?.toFixed(1),
  m.expectedDowntimeMs?.toFixed(0),
  m.downtimeMs?.toFixed(0),
  m.queuePosition,
  m.failureReason ?? m.reason,
];

function showMigration(m: Migration): string {
  return keyValues([
    ['id', m.id],
    ['partition', m.partitionId],
    ['from', m.sourceHostId],
    ['to', m.targetHostId],
    ['phase', m.phase],
    ['progress', migrationLine(m)],
    ['dirty rate', m.dirtyRateMiBps === null ? null : `${m.dirtyRateMiBps.toFixed(1)} MiB/s (throttle ${m.throttlePct} %)`],
    ['limits', `bandwidth ${m.limits.bandwidthMiBps} MiB/s, downtime ≤ ${m.limits.downtimeMsMax} ms, ≤ ${m.limits.roundsMax} rounds, auto-converge ${m.limits.autoConverge ? 'on' : 'off'}, ${m.limits.perHostMax} per host, ${m.limits.perClusterMax} per cluster`],
    ['reason', m.reason],
    ['failure', m.failureReason],
  ]);
}

/** Polls until `done` says so, redrawing on a terminal, printing changes otherwise. */
async function poll<T>(values: Values, path: string, render: (body: T) => string, done: (body: T) => boolean): Promise<T> {
  const tty = process.stdout.isTTY === true && !values.json;
  let shownLines = 0;
  let last = '';
  for (;;) {
    const body = (await request(values, get(path))) as T;
    const text = values.json ? JSON.stringify(body) : render(body);
    if (tty) {
      if (shownLines > 0) process.stdout.write(`\x1b[${shownLines}F\x1b[J`);
      print(text);
      shownLines = text.split('\n').length;
    } else if (text !== last) {
      print(text);
    }
    last = text;
    if (done(body)) return body;
    await new Promise((r) => setTimeout(r, drainPollMs));
  }
}

function drainText(d: Drain): string {
  const lines = [`host ${d.hostId}: ${d.state}${d.reason ? ` (${d.reason})` : ''}, ${d.remaining} partitions still placed`];
  for (const m of d.migrations) lines.push(`  ${migrationLine(m)}`);
  for (const b of d.blocked) lines.push(`  ${b.partitionId.padEnd(16)} cannot move: ${b.reason}`);
  return lines.join('\n');
}

/** A drain is over when the host is in maintenance, or when all that is left cannot move. */
function drainSettled(d: Drain): boolean {
  if (d.state !== 'Draining') return true;
  const moving = d.migrations.some((m) => !endedPhases.includes(m.phase));
  return !moving && d.blocked.length > 0 && d.blocked.length >= d.remaining;
}

// ---------------------------------------------------------------- commands

/** One action of `vcp host|partition <action> <id>`. */
type Action = {
  readonly flags: readonly string[];
  readonly request: (id: string, values: Values) => Request;
  readonly render: (body: unknown, id: string) => string;
  /** For actions that do more than one call (drain, migrate --wait): replaces request/render. */
  readonly custom?: (label: string, id: string, values: Values) => Promise<number>;
};

function action<T>(flags: readonly string[], req: (id: string, values: Values) => Request, render: (body: T, id: string) => string): Action {
  return { flags, request: req, render: render as (body: unknown, id: string) => string };
}

function resourceCommand(name: string, summary: string, help: string, actions: Record<string, Action>): CommandSpec {
  const verbs = Object.keys(actions);
  return {
    name,
    summary,
    help: `${help}\n\n${commonHelp}\n${idempotencyHelp}`,
    options: optionsFor([...commonFlags, ...new Set(Object.values(actions).flatMap((a) => a.flags))]),
    allowPositionals: true,
    run(values, positionals) {
      const [verb, id, ...extra] = positionals;
      if (verb === undefined) throw new UsageError(`give an action: ${verbs.join(', ')}`);
      const act = Object.hasOwn(actions, verb) ? actions[verb] : undefined;
      if (!act) throw new UsageError(`unknown action "${verb}" (one of ${verbs.join(', ')})`);
      if (id === undefined) throw new UsageError(`${name} ${verb} needs a ${name} id`);
      if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
      const stray = Object.keys(values).find((f) => f !== 'help' && !commonFlags.includes(f) && !act.flags.includes(f));
      if (stray) throw new UsageError(`--${stray} does not apply to ${name} ${verb}`);
      if (act.custom) return act.custom(`${name} ${verb}`, id, values);
      return call(`${name} ${verb}`, values, act.request(id, values), (body) => act.render(body, id));
    },
  };
}

const enc = encodeURIComponent;
const get = (path: string): Request => ({ method: 'GET', path });

const hostCommand = resourceCommand(
  'host',
  'Show, register, cordon or uncordon one host',
  `Usage: vcp host <action> <id> [options]

Actions:
  show <id>                 capacity, reservations, cordon and daemon state
  create <id>               register a host (its node daemon also does this)
      --logical-processors N    (required)
      --memory-mib M            (required)
      --parent-reserve-mib R    memory kept for the parent partition (default 2048 or 10 %)
      --labels k=v,...          host labels
      --limits-preset P         modern (default) or r2 (Hyper-V 2008 R2 limits)
  cordon <id> [--reason R]  stop placing partitions on it
  uncordon <id>             allow placements again
  drain <id> [--reason R] [--no-wait]
                            maintenance: cordon it and live-migrate every partition away,
                            with a progress bar per migration; returns when the host is in
                            maintenance (exit 0) or what is left cannot move (exit 1)
  undrain <id>              end maintenance: placements allowed again`,
  {
    show: action([], (id) => get(`/v1/hosts/${enc(id)}`), showHost),
    create: action(
      ['logical-processors', 'memory-mib', 'parent-reserve-mib', 'labels', 'limits-preset', 'idempotency-key'],
      (id, v) => {
        required(v, 'logical-processors', 'memory-mib');
        const memoryMiB = intFlag(v['memory-mib'], 'memory-mib', 1, Number.MAX_SAFE_INTEGER, 0);
        return {
          method: 'POST',
          path: '/v1/hosts',
          body: compact({
            id,
            logicalProcessors: intFlag(v['logical-processors'], 'logical-processors', 1, 4096, 0),
            memoryMiB,
            parentReserveMiB: optInt(v, 'parent-reserve-mib', 0, memoryMiB - 1),
            labels: v.labels === undefined ? undefined : labelsFlag(v.labels),
            limitsPreset: optChoice(v, 'limits-preset', ['modern', 'r2']),
          }),
        };
      },
      hostResult,
    ),
    cordon: action(['reason', 'idempotency-key'], (id, v) => ({ method: 'POST', path: `/v1/hosts/${enc(id)}/cordon`, body: compact({ reason: v.reason }) }), hostResult),
    uncordon: action(['idempotency-key'], (id) => ({ method: 'POST', path: `/v1/hosts/${enc(id)}/uncordon`, body: {} }), hostResult),
    drain: {
      flags: ['reason', 'no-wait', 'idempotency-key'],
      request: (id) => get(`/v1/hosts/${enc(id)}/maintenance`),
      render: (body) => drainText(body as Drain),
      custom: (label, id, values) =>
        guard(label, async () => {
          const started = (await request(values, { method: 'POST', path: `/v1/hosts/${enc(id)}/maintenance`, body: compact({ reason: values.reason }) })) as Drain;
          if (values['no-wait']) return print(values.json ? JSON.stringify(started) : drainText(started));
          const final = await poll<Drain>(values, `/v1/hosts/${enc(id)}/maintenance`, drainText, drainSettled);
          if (final.state !== 'InMaintenance') {
            throw new ClientError(`${final.blocked.length} partitions cannot leave ${id}; it stays Draining (vcp host show ${id})`);
          }
        }),
    },
    undrain: action(['idempotency-key'], (id) => ({ method: 'DELETE', path: `/v1/hosts/${enc(id)}/maintenance` }), (d: Drain) => drainText(d)),
  },
);

/** The partition actions that are a bare POST: [action, what it does]. */
const simplePartitionActions = [
  ['stop', 'shut down gracefully (Running only)'],
  ['turn-off', 'power off at once (any live state)'],
  ['pause', 'pause a Running partition'],
  ['resume', 'resume a Paused partition'],
  ['save', 'save its state and release the host (Running or Paused)'],
] as const;

const partitionCommand = resourceCommand(
  'partition',
  'Create, show, start, stop, reconfigure or delete one partition; its history',
  `Usage: vcp partition <action> <id> [options]

Actions:
  create <id> --vcpus N --memory-mib M [--name NAME] [spec options]
                            create it (Off)
  show <id>                 its state and spec
  start <id> [--host H]     start or restore it, on H or where placement chooses
${simplePartitionActions.map(([verb, what]) => `  ${`${verb} <id>`.padEnd(24)}  ${what}`).join('\n')}
  set <id> [spec options]   reconfigure it: only the options given change
  migrate <id> [--to H] [--reason R] [--bandwidth-mibps B] [--downtime-ms-max D]
          [--rounds-max N] [--auto-converge] [--wait]
                            live-migrate it; --wait follows it with a progress bar
  delete <id>               delete an Off, Saved or Failed partition
  events <id>               its whole history

Spec options:
  --vcpus N                 virtual processors, 1-2048
  --memory-mib M            startup memory
  --dynamic | --static      memory mode (default static)
  --min-mib M, --max-mib M  dynamic memory bounds (default: the startup memory)
  --buffer-pct P            dynamic memory buffer, 5-2000 (default 20)
  --memory-weight W         dynamic memory weight, 0-10000 (default 5000)
  --reserve-pct P           guaranteed share of its vCPUs, whole percent 0-100 (default 0)
  --limit-pct P             cap on its vCPUs, whole percent 0-100 (default 100)
  --weight W                processor weight, 1-10000 (default 100)
  --restart R               none, same-host or any-host (default any-host)
  --priority P              0 (never auto-start), 1000, 2000 (default) or 3000
  --cpu-demand-pct P        simulated workload: CPU demand when busy, 0-100 (fractions allowed)
  --cpu-pattern P           constant (default), periodic or bursty
  --cpu-low-pct P           demand when not busy (periodic, bursty; default 0)
  --cpu-period-ms T         cycle length (default 10000)
  --cpu-duty-pct P          share of the cycle spent busy (default 50)
  --memory-demand-mib M     simulated workload: committed memory the guest wants
  --dirty-mibps R           simulated workload: memory dirtied per second
  --working-set-mib M       simulated workload: writable working set (bounds the dirty set)`,
  {
    create: action(
      [...specFlags, 'name', 'idempotency-key'],
      (id, v) => {
        required(v, 'vcpus', 'memory-mib');
        return { method: 'POST', path: '/v1/partitions', body: { id, ...compact({ name: v.name === undefined ? undefined : stringFlag(v.name, 'name') }), ...specFromFlags(v) } };
      },
      partitionResult,
    ),
    show: action([], (id) => get(`/v1/partitions/${enc(id)}`), showPartition),
    start: action(['host', 'idempotency-key'], (id, v) => ({ method: 'POST', path: `/v1/partitions/${enc(id)}/start`, body: compact({ hostId: v.host }) }), partitionResult),
    ...Object.fromEntries(
      simplePartitionActions.map(([verb]) => [verb, action(['idempotency-key'], (id) => ({ method: 'POST', path: `/v1/partitions/${enc(id)}/${verb}`, body: {} }), partitionResult)]),
    ),
    set: action(
      specFlags,
      (id, v) => {
        const body = specFromFlags(v);
        if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give at least one spec option (vcp partition --help)');
        return { method: 'PATCH', path: `/v1/partitions/${enc(id)}`, body };
      },
      partitionResult,
    ),
    delete: action([], (id) => ({ method: 'DELETE', path: `/v1/partitions/${enc(id)}` }), partitionResult),
    migrate: {
      flags: ['to', 'reason', 'bandwidth-mibps', 'downtime-ms-max', 'rounds-max', 'auto-converge', 'wait', 'idempotency-key'],
      request: (id) => get(`/v1/partitions/${enc(id)}`),
      render: (body) => showMigration(body as Migration),
      custom: (label, id, values) =>
        guard(label, async () => {
          const body = compact({
            targetHostId: values.to,
            reason: values.reason,
            bandwidthMiBps: optNumber(values, 'bandwidth-mibps', 0.001, 1_000_000),
            downtimeMsMax: optInt(values, 'downtime-ms-max', 1, 2_000_000),
            roundsMax: optInt(values, 'rounds-max', 1, 1000),
            autoConverge: values['auto-converge'] ? true : undefined,
          });
          const started = (await request(values, { method: 'POST', path: `/v1/partitions/${enc(id)}/migrations`, body })) as Migration;
          if (!values.wait) return print(values.json ? JSON.stringify(started, null, 2) : showMigration(started));
          const final = await poll<Migration>(values, `/v1/migrations/${enc(started.id)}`, migrationLine, (m) => endedPhases.includes(m.phase));
          if (final.phase !== 'Completed') throw new ClientError(`migration ${final.id} ${final.phase.toLowerCase()}: ${final.failureReason ?? ''}`);
        }),
    },
    events: action([], (id) => get(`/v1/partitions/${enc(id)}/events`), (b: { events: LogEvent[] }) =>
      table([['POS', 'TIME', 'TYPE', 'ACTOR', 'DATA'], ...b.events.map((e) => [e.globalPosition, e.recordedAt, e.type, e.actor, summary(e.data)])]),
    ),
  },
);

const hostsCommand: CommandSpec = {
  name: 'hosts',
  summary: 'List hosts: capacity, reservations, cordon and daemon state',
  help: `Usage: vcp hosts [options]\n\n${commonHelp}`,
  options: optionsFor(commonFlags),
  run: (values) => call('hosts', values, get('/v1/hosts'), (b: { hosts: Host[] }) => table([hostHeader, ...b.hosts.map(hostRow)])),
};

const partitionsCommand: CommandSpec = {
  name: 'partitions',
  summary: 'List partitions, optionally of one host or in one state',
  help: `Usage: vcp partitions [options]

  --host H                  only the partitions on host H
  --state S                 only those in state S (${partitionStates.join(', ')})

${commonHelp}`,
  options: optionsFor([...commonFlags, 'host', 'state']),
  run(values) {
    const query = new URLSearchParams(compact({ hostId: values.host, state: optChoice(values, 'state', partitionStates) }) as Record<string, string>);
    const path = `/v1/partitions${query.size > 0 ? `?${query}` : ''}`;
    return call('partitions', values, get(path), (b: { partitions: Partition[] }) => table([partitionHeader, ...b.partitions.map(partitionRow)]));
  },
};

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/** Tails the global log until Ctrl-C; on a lost stream, reconnects after the last event printed. */
async function follow(values: Values, after: number): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.stdout.once('error', onSignal);
  let position = after;
  let connected = false;
  let failures = 0;
  try {
    if (!values.json) print(table([eventHeader], eventWidths));
    while (!stop.signal.aborted) {
      let why = 'the server closed it';
      try {
        const response = await open(values, get(`/v1/events/stream?after=${position}`), 'text/event-stream', stop.signal);
        if (failures > 0) process.stderr.write(`vcp events: reconnected, resuming after position ${position}\n`);
        connected = true;
        failures = 0;
        for await (const message of readSse(response.body!)) {
          const event = JSON.parse(message.data) as LogEvent;
          position = event.globalPosition;
          print(values.json ? JSON.stringify(event) : table([eventRow(event)], eventWidths));
        }
      } catch (error) {
        if (stop.signal.aborted) break;
        if (!connected) throw error;
        why = error instanceof ClientError ? error.message : 'the connection dropped';
      }
      if (stop.signal.aborted) break;
      if (failures === 0) process.stderr.write(`vcp events: lost the event stream (${why}); reconnecting\n`);
      await sleep(Math.min(5000, 250 * 2 ** failures++), stop.signal);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.off('error', onSignal);
  }
}

const eventsCommand: CommandSpec = {
  name: 'events',
  summary: 'Print the global event log, a page at a time or followed live',
  help: `Usage: vcp events [options]

  --after N                 start after global position N (default 0)
  --limit N                 at most N events, 1-1000 (default 100; not with --follow)
  --follow                  keep printing new events until Ctrl-C (reconnects if the stream drops);
                            with --json, one event per line

${commonHelp}`,
  options: optionsFor([...commonFlags, 'after', 'limit', 'follow']),
  run(values) {
    const after = intFlag(values.after, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
    if (values.follow) {
      if (values.limit !== undefined) throw new UsageError('--limit does not apply with --follow');
      return guard('events', () => follow(values, after));
    }
    const limit = intFlag(values.limit, 'limit', 1, 1000, 100);
    return call('events', values, get(`/v1/events?after=${after}&limit=${limit}`), (b: { events: LogEvent[]; next: number }) => {
      const more = b.events.length === limit ? `\n(more: vcp events --after ${b.next})` : '';
      return table([eventHeader, ...b.events.map(eventRow)]) + more;
    });
  },
};


// ---------------------------------------------------------------- top

type Sample = Record<string, number | string | null>;
type HostTelemetry = { current: Sample | null; partitions?: Sample[] };

const fixed = (value: unknown, digits: number) => (typeof value === 'number' ? value.toFixed(digits) : '-');

/** One screen of `vcp top`: hosts, then every partition that runs, from the latest samples. */
async function topFrame(values: Values): Promise<{ text: string; json: unknown }> {
  const { hosts } = (await request(values, { method: 'GET', path: '/v1/hosts' })) as { hosts: Host[] };
  const { partitions } = (await request(values, { method: 'GET', path: '/v1/partitions' })) as { partitions: Partition[] };
  const telemetry = await Promise.all(
    hosts.map(async (h) => [h.id, (await request(values, { method: 'GET', path: `/v1/hosts/${enc(h.id)}/telemetry?limit=1` })) as HostTelemetry] as const),
  );
  const byHost = new Map(telemetry);
  const hostRows = hosts.map((h) => {
    const t = byHost.get(h.id)?.current;
    return [
      h.id,
      `${fixed(t?.cpuUsedLp, 2)}/${h.logicalProcessors}`,
      fixed(t?.memoryAvailableMiB, 0),
      fixed(t?.memoryCommittedMiB, 0),
      h.parentReserveMiB,
      h.daemon.connected ? 'connected' : 'DISCONNECTED',
    ];
  });
  const live = partitions.filter((p) => p.hostId !== null);
  const partitionRows = live.map((p) => {
    const sample = byHost.get(p.hostId!)?.partitions?.find((s) => s.partitionId === p.id && s.incarnation === p.incarnation);
    return [
      p.id,
      p.hostId,
      p.state,
      p.spec.vcpus,
      fixed(sample?.cpuPct, 1),
      fixed(sample?.cpuLp, 2),
      fixed(sample?.cpuWaitMsPerS, 0),
      fixed(sample?.memoryAssignedMiB, 0),
      fixed(sample?.memoryDemandMiB, 0),
      fixed(sample?.memoryPressurePct, 0),
      fixed(sample?.memoryBalloonedMiB, 0),
    ];
  });
  const text = [
    `vcp top: ${hosts.length} hosts, ${live.length} partitions placed, ${new Date().toISOString().slice(11, 19)} UTC`,
    '',
    table([['HOST', 'CPU(LP)', 'MEM AVAIL(MiB)', 'COMMITTED(MiB)', 'PARENT(MiB)', 'DAEMON'], ...hostRows]),
    '',
    table([['PARTITION', 'HOST', 'STATE', 'VCPUS', 'CPU%', 'CPU(LP)', 'WAIT(ms/s)', 'ASSIGNED(MiB)', 'DEMAND(MiB)', 'PRESSURE%', 'BALLOONED(MiB)'], ...partitionRows]),
  ].join('\n');
  return { text, json: { hosts: Object.fromEntries(telemetry), partitions: live } };
}

const topCommand: CommandSpec = {
  name: 'top',
  summary: 'Live view of hosts and partitions: CPU, wait, memory assigned/demand/pressure',
  help: `Usage: vcp top [--interval-ms T] [--once]

Redraws every interval (default 1000 ms) until Ctrl-C. CPU% is of the partition's vCPUs;
WAIT is the time its vCPUs were ready but not running, in ms per second; PRESSURE is
100 × demand ÷ assigned memory (above 100: short of memory).
  --interval-ms T           redraw period (default 1000)
  --once                    print one frame and exit
${commonHelp}`,
  options: { ...optionsFor(['url', 'json', 'interval-ms']), once: { type: 'boolean' } },
  run(values) {
    const intervalMs = intFlag(values['interval-ms'], 'interval-ms', 100, 60_000, 1000);
    return guard('top', async () => {
      const tty = process.stdout.isTTY === true && !values.once && !values.json;
      let stopped = false;
      const stop = () => {
        stopped = true;
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        while (!stopped) {
          const frame = await topFrame(values);
          if (values.json) print(JSON.stringify(frame.json));
          else print(tty ? `\x1b[H\x1b[2J${frame.text}` : frame.text);
          if (values.once) return;
          await new Promise((r) => setTimeout(r, intervalMs));
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
  },
};

const migrationsCommand: CommandSpec = {
  name: 'migrations',
  summary: 'List live migrations: phase, round, sent, remaining, dirty rate, downtime',
  help: `Usage: vcp migrations [--partition P] [--host H] [--phase PHASE]\n\n${commonHelp}`,
  options: optionsFor([...commonFlags, 'partition', 'host', 'phase']),
  run(values) {
    const query = new URLSearchParams(compact({ partitionId: values.partition, hostId: values.host, phase: values.phase }) as Record<string, string>).toString();
    return call('migrations', values, get(`/v1/migrations${query ? `?${query}` : ''}`), (b: { migrations: Migration[] }) =>
      table([migrationHeader, ...b.migrations.map(migrationRow)]),
    );
  },
};

const migrationCommand = resourceCommand(
  'migration',
  'Show, follow or cancel one live migration; its every step',
  `Usage: vcp migration <action> <id> [options]

Actions:
  show <id>                 phase, progress, limits in force, failure reason
  cancel <id> [--reason R]  cancel it before its switch-over (the partition stays on the source)
  events <id>               every step, with who reported it`,
  {
    show: action([], (id) => get(`/v1/migrations/${enc(id)}`), showMigration),
    cancel: action(['reason', 'idempotency-key'], (id, v) => ({ method: 'POST', path: `/v1/migrations/${enc(id)}/cancel`, body: compact({ reason: v.reason }) }), showMigration),
    events: action([], (id) => get(`/v1/migrations/${enc(id)}/events`), (b: { events: LogEvent[] }) =>
      table([['POS', 'TIME', 'TYPE', 'ACTOR', 'DATA'], ...b.events.map((e) => [e.globalPosition, e.recordedAt, e.type, e.actor, summary(e.data)])]),
    ),
  },
);

export const clientCommands: CommandSpec[] = [
  hostsCommand,
  hostCommand,
  partitionsCommand,
  partitionCommand,
  migrationsCommand,
  migrationCommand,
  eventsCommand,
  topCommand,
];
