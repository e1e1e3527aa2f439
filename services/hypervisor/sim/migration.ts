/**
 * Pre-copy live migration engine of the simulated hypervisor
 * (../shared/reference/hypervisor-models.md §3 and §4.2; control-planes.md §7 and §10.3).
 *
 * The model (Clark et al., NSDI 2005, §3): round 1 sends all assigned memory; each next round sends
 * what was dirtied during the previous one; the last copy happens with the partition paused
 * (stop-and-copy), then the partition resumes on the destination.
 *
 * - Dirtying. The workload's dirtyMiBps is the rate of distinct pages newly dirtied (a sequential
 *   writer), so by default the closed form of §4.2 holds exactly: V_{i+1} = D·T_i with T_i = V_i/B.
 *   An optional writable working set W bounds the dirty set, as real guests do (Clark §4), and a
 *   page re-dirtied within a round counts once: a round of duration t dirties min(W, D·t). Nothing
 *   can dirty more distinct pages than the partition has, so W is at most the memory M.
 * - Working-set floor. When D·t >= W, a round dirties exactly W; the next round sends W in W/B, and
 *   dirties min(W, D·W/B) = W again iff D >= B. So with D >= B pre-copy plateaus at W: it converges
 *   only if W fits in the downtime limit (W <= B × downtimeMsMax), otherwise it ends by a limit. With
 *   D < B a round at W is transient and the rounds shrink geometrically after it (§4.2).
 * - Switch-over rule: QEMU's (migration.c): switch over as soon as the remaining dirty set can be
 *   sent within the downtime limit, remaining <= B × downtimeMsMax, evaluated at each dirty sync (a
 *   round boundary), including before round 1, so a partition that fits is stopped and copied at
 *   once. As in QEMU the rule ignores the resume cost, so downtime <= downtimeMsMax + resumeCostMs.
 * - Downtime = final copy / B + resumeCostMs (a fixed cost: Clark measured 9 ms for SPECweb99).
 * - Pre-copy caps (Xen xc_domain_save.c): at most roundsMax rounds counting the final copy, and
 *   optionally at most transferredFactorMax × M sent. At a cap the policy onRoundLimit either forces
 *   the switch-over (Xen; Hyper-V after its pass limit) or fails the migration.
 * - Management timeouts (KubeVirt's migration monitor): the completion timeout is a wall-clock
 *   budget of completionTimeoutMsPerGiB per GiB of memory, enforced at the exact instant (a round
 *   that would end later is cut there); the progress timeout fires when the remaining dirty set has
 *   not reached a new low for more than progressTimeoutMs. Remaining is only known at a dirty sync,
 *   so the progress check runs at round boundaries and a long round 1 is never cut short by it (in
 *   QEMU, `remaining` falls while round 1 sends). Both fail the migration; a switch-over, once
 *   started, completes (the guest is paused, and its length is bounded by the rule or the policy).
 * - Auto-converge (QEMU ram.c migration_trigger_throttle): at a dirty sync more than
 *   autoConvergePeriodMsMin after the last evaluated one, if the memory dirtied in the period exceeds
 *   autoConvergeTriggerPct % of what was sent in it, a counter goes up; at the second such period the
 *   throttle steps (to autoConvergeInitialPct, then + autoConvergeStepPct, up to autoConvergeMaxPct)
 *   and the counter resets. The throttle is applied to the partition's vCPUs through the scheduler
 *   (the driver applies each round's throttlePct, which holds from that sync on); the engine assumes the dirty rate scales with vCPU run
 *   time, as QEMU's throttle does (run 10 ms, sleep pct/(1−pct) × 10 ms): D_eff = D × (1 − pct/100).
 *   The working set is not changed by throttling; writes only come slower.
 *
 * The engine is pure and deterministic: no clock, no randomness; time is computed from the sizes
 * and the rates. It is step-wise so the source daemon can drive it live, one round per call,
 * reporting each round as an event and changing the workload's rate or the bandwidth between rounds.
 */

export type RoundLimitPolicy = 'force-switchover' | 'fail';

/**
 * The limits in force for one migration. Record them in the migration's events: defaults drift
 * between releases (KubeVirt's completion timeout went from 800 to 150 s/GiB).
 */
export interface MigrationLimits {
  /** Migration bandwidth. The final copy runs at it too. */
  readonly bandwidthMiBps: number;
  /** Switch over once the remaining dirty set can be sent in this time (QEMU downtime-limit). */
  readonly downtimeMsMax: number;
  /** Most rounds, the final copy included (Xen: 29 pre-copy iterations + 1 = 30). 1 = stop-and-copy. */
  readonly roundsMax: number;
  /** Most memory sent before forcing the end, as a multiple of memoryMiB; null = no cap (Xen: 3). */
  readonly transferredFactorMax: number | null;
  /** What happens at roundsMax or transferredFactorMax while the rest does not fit the downtime limit. */
  readonly onRoundLimit: RoundLimitPolicy;
  /** Fixed cost of resuming on the destination, added to the final copy's time. */
  readonly resumeCostMs: number;
  /** Wall-clock budget of the whole migration, per GiB of memory (KubeVirt completionTimeoutPerGiB). */
  readonly completionTimeoutMsPerGiB: number;
  /** Fail when the remaining dirty set has not reached a new low for longer than this (KubeVirt). */
  readonly progressTimeoutMs: number;
  /** Throttle the partition's vCPUs while the dirty rate outruns the transfer (QEMU auto-converge). */
  readonly autoConverge: boolean;
  /** A period counts as "dirtying too fast" when dirtied > this % of sent (QEMU throttle-trigger-threshold). */
  readonly autoConvergeTriggerPct: number;
  /** First throttle step, % of vCPU time taken away (QEMU cpu-throttle-initial). */
  readonly autoConvergeInitialPct: number;
  /** Each later step adds this (QEMU cpu-throttle-increment). */
  readonly autoConvergeStepPct: number;
  /** Highest throttle (QEMU max-cpu-throttle). */
  readonly autoConvergeMaxPct: number;
}

/**
 * Defaults and their sources (hypervisor-models.md §3.2–3.4, control-planes.md §7 and §10.3):
 * - bandwidthMiBps 128: QEMU max-bandwidth (MAX_THROTTLE = 128 MiB/s since QEMU 5.2). KubeVirt's
 *   default is unlimited, which a simulation cannot use: the line rate must come from the host.
 * - downtimeMsMax 300: QEMU DEFAULT_MIGRATE_SET_DOWNTIME, also KubeVirt's (it leaves QEMU's).
 * - roundsMax 30: Xen DEF_MAX_ITERS = 29 pre-copy iterations, then the last one. QEMU and KubeVirt
 *   have no round cap (their timeouts end a stuck migration); Hyper-V caps at 10 passes (2008 R2)
 *   or 5 (2012 R2 and later).
 * - transferredFactorMax null: Xen's DEF_MAX_FACTOR is 3, but QEMU and KubeVirt have no volume cap,
 *   and reference vector P2 (a converging migration sending 4.97 × M) would be cut by it.
 * - onRoundLimit 'force-switchover': both systems that have a round cap force the blackout when
 *   they reach it (Xen's last iteration; Hyper-V's forced blackout, whose abort is the opt-in
 *   CancelIfBlackoutThresholdExceeded). The forced downtime can far exceed downtimeMsMax: a control
 *   plane that prefers to abort sets 'fail'.
 * - resumeCostMs 9: Clark et al. measured 9 ms for SPECweb99 (40 ms with Quake 3's start-up work).
 *   QEMU has no such parameter. The §4.2 test vectors use 0 (their downtime is V_n / B alone).
 * - completionTimeoutMsPerGiB 150 000 and progressTimeoutMs 150 000: KubeVirt (virt-config.go).
 * - autoConverge false: QEMU capability off by default, KubeVirt allowAutoConverge false.
 * - autoConvergeTriggerPct 50, initial 20, step 10, max 99: QEMU migration/options.c. The trigger
 *   threshold is not in the issue's list; without it the throttle would have no rule for when to
 *   step, and QEMU's is the one the reference gives.
 */
export const defaultMigrationLimits: MigrationLimits = {
  bandwidthMiBps: 128,
  downtimeMsMax: 300,
  roundsMax: 30,
  transferredFactorMax: null,
  onRoundLimit: 'force-switchover',
  resumeCostMs: 9,
  completionTimeoutMsPerGiB: 150_000,
  progressTimeoutMs: 150_000,
  autoConverge: false,
  autoConvergeTriggerPct: 50,
  autoConvergeInitialPct: 20,
  autoConvergeStepPct: 10,
  autoConvergeMaxPct: 99,
};

/** Accepted ranges of the inputs; each bound says why it is there. */
export const migrationRanges = {
  /** 256 TiB: far above any real partition, low enough that sums stay exact in a double. */
  memoryMiBMax: 256 * 1024 * 1024,
  /** 1 TiB/s, for both dirty rate and bandwidth: above any memory bus or network. */
  rateMiBpsMax: 1_000_000,
  /** QEMU MAX_MIGRATE_DOWNTIME_SECONDS = 2000. */
  downtimeMsMaxMax: 2_000_000,
  /** Bounds the engine's work per migration; Xen uses 30, Hyper-V 5 or 10. */
  roundsMaxMax: 1000,
  /** Xen uses 3; 100 × memory is already a migration that should have been stopped. */
  transferredFactorMaxMax: 100,
  /** A minute: resuming a partition costs milliseconds (Clark: 9 to 40 ms). */
  resumeCostMsMax: 60_000,
  /** A second per GiB at least (a 1 GiB partition over 10 GbE needs about that), a day at most. */
  completionTimeoutMsPerGiBMin: 1000,
  completionTimeoutMsPerGiBMax: 86_400_000,
  /** A second at least (KubeVirt polls every 400 ms), thirty days at most. */
  progressTimeoutMsMin: 1000,
  progressTimeoutMsMax: 2_592_000_000,
} as const;

/** QEMU evaluates auto-converge only at a dirty sync more than 1000 ms after the previous evaluation. */
export const autoConvergePeriodMsMin = 1000;
/** QEMU steps the throttle at the second "dirtying too fast" period (dirty_rate_high_cnt >= 2). */
export const autoConvergeHighPeriodCount = 2;
/**
 * Sizes closer than a byte are equal. Without it, float noise could flip the switch-over decision
 * for a remaining set that lies exactly on the threshold (e.g. 800 MiB × 0.5³ against 100 MiB), and
 * the engine's product of rounds and the closed form's power would disagree on the round count.
 */
export const sizeEpsilonMiB = 1 / (1024 * 1024);

/** Why a limit set is invalid (naming the field), or null when it is valid. */
export function validateMigrationLimits(limits: MigrationLimits): string | null {
  const r = migrationRanges;
  return (
    numberIn(limits.bandwidthMiBps, 0, r.rateMiBpsMax, 'limits.bandwidthMiBps', true) ??
    numberIn(limits.downtimeMsMax, 0, r.downtimeMsMaxMax, 'limits.downtimeMsMax') ??
    integerIn(limits.roundsMax, 1, r.roundsMaxMax, 'limits.roundsMax') ??
    (limits.transferredFactorMax === null
      ? null
      : numberIn(limits.transferredFactorMax, 1, r.transferredFactorMaxMax, 'limits.transferredFactorMax')) ??
    (limits.onRoundLimit === 'force-switchover' || limits.onRoundLimit === 'fail'
      ? null
      : `limits.onRoundLimit must be 'force-switchover' or 'fail', got ${String(limits.onRoundLimit)}`) ??
    numberIn(limits.resumeCostMs, 0, r.resumeCostMsMax, 'limits.resumeCostMs') ??
    numberIn(
      limits.completionTimeoutMsPerGiB,
      r.completionTimeoutMsPerGiBMin,
      r.completionTimeoutMsPerGiBMax,
      'limits.completionTimeoutMsPerGiB',
    ) ??
    numberIn(limits.progressTimeoutMs, r.progressTimeoutMsMin, r.progressTimeoutMsMax, 'limits.progressTimeoutMs') ??
    (typeof limits.autoConverge === 'boolean'
      ? null
      : `limits.autoConverge must be a boolean, got ${String(limits.autoConverge)}`) ??
    // QEMU's ranges: threshold 1–100, throttle percentages 1–99.
    numberIn(limits.autoConvergeTriggerPct, 1, 100, 'limits.autoConvergeTriggerPct') ??
    numberIn(limits.autoConvergeInitialPct, 1, 99, 'limits.autoConvergeInitialPct') ??
    numberIn(limits.autoConvergeStepPct, 1, 99, 'limits.autoConvergeStepPct') ??
    numberIn(limits.autoConvergeMaxPct, 1, 99, 'limits.autoConvergeMaxPct') ??
    (limits.autoConvergeInitialPct <= limits.autoConvergeMaxPct
      ? null
      : `limits.autoConvergeInitialPct (${limits.autoConvergeInitialPct}) must be <= limits.autoConvergeMaxPct (${limits.autoConvergeMaxPct})`)
  );
}

export interface PreCopyInput {
  /** Memory assigned to the partition: what round 1 sends. */
  readonly memoryMiB: number;
  /** Rate of distinct pages newly dirtied by the workload, before any throttle. */
  readonly dirtyMiBps: number;
  /** Writable working set bounding the dirty set; null = unbounded (a sequential writer). */
  readonly workingSetMiB: number | null;
  /**
   * The limits; a field left out takes its defaultMigrationLimits value (the control plane's
   * migration record carries only the fields it lets users set). The engine's `limits` and the
   * outcome's say what was in force.
   */
  readonly limits: Partial<MigrationLimits>;
}

/** The limits in force: those given, over the defaults. */
export function effectiveMigrationLimits(limits: Partial<MigrationLimits>): MigrationLimits {
  return { ...defaultMigrationLimits, ...limits };
}

/** Why an engine input is invalid (naming the field), or null when it is valid. */
export function validatePreCopyInput(input: PreCopyInput): string | null {
  const r = migrationRanges;
  return (
    numberIn(input.memoryMiB, 0, r.memoryMiBMax, 'memoryMiB', true) ??
    numberIn(input.dirtyMiBps, 0, r.rateMiBpsMax, 'dirtyMiBps') ??
    (input.workingSetMiB === null ? null : numberIn(input.workingSetMiB, 0, r.memoryMiBMax, 'workingSetMiB', true)) ??
    validateMigrationLimits(effectiveMigrationLimits(input.limits))
  );
}

/** One pre-copy round, reported when it ends (at its dirty sync). */
export interface RoundResult {
  readonly kind: 'round';
  /** 1 for the round that sends all memory. */
  readonly round: number;
  readonly sentMiB: number;
  readonly durationMs: number;
  readonly bandwidthMiBps: number;
  /** Distinct memory dirtied during the round: what the next round must send. */
  readonly dirtiedMiB: number;
  /** The dirty set after this round's sync (= dirtiedMiB): QEMU's ram.remaining. */
  readonly remainingMiB: number;
  /** Dirty rate during the round, after the throttle in force then (QEMU dirty-pages-rate). */
  readonly dirtyRateMiBps: number;
  /** Throttle in force during the round, %: dirtyRateMiBps = dirty rate × (1 − throttlePctInRound / 100). */
  readonly throttlePctInRound: number;
  /**
   * Throttle from now on, % (QEMU cpu-throttle-percentage at this sync; auto-converge may just have
   * stepped it): the driver applies it to the partition's vCPUs through the scheduler.
   */
  readonly throttlePct: number;
  /** remainingMiB / bandwidth: QEMU's expected-downtime (without the resume cost). */
  readonly expectedDowntimeMs: number;
  readonly transferredMiBTotal: number;
  readonly elapsedMsTotal: number;
}

export type SwitchoverCause = 'converged' | 'round-limit' | 'transfer-limit';

/** The stop-and-copy: the partition was paused, the rest was sent, it runs on the destination. */
export interface SwitchoverResult {
  readonly kind: 'switchover';
  /** The number of this final round (preCopyRounds + 1). */
  readonly round: number;
  readonly preCopyRounds: number;
  readonly cause: SwitchoverCause;
  readonly finalCopyMiB: number;
  /** finalCopyMiB / bandwidth + resumeCostMs. */
  readonly downtimeMs: number;
  readonly bandwidthMiBps: number;
  /** Throttle that was in force before the pause; it ends with the migration. */
  readonly throttlePct: number;
  readonly transferredMiBTotal: number;
  /** From the start to the partition running on the destination. */
  readonly elapsedMsTotal: number;
  readonly reason: string;
}

export type FailureCause = 'round-limit' | 'transfer-limit' | 'completion-timeout' | 'progress-timeout' | 'cancelled';

/** The migration was abandoned; the partition keeps running on the source. */
export interface FailedResult {
  readonly kind: 'failed';
  readonly cause: FailureCause;
  readonly reason: string;
  readonly preCopyRounds: number;
  /** The dirty set not yet sent when it ended (for a round cut short, the unsent part of its set). */
  readonly remainingMiB: number;
  /** Throttle that was in force; it ends with the migration. */
  readonly throttlePct: number;
  readonly transferredMiBTotal: number;
  readonly elapsedMsTotal: number;
}

export type MigrationEnd = SwitchoverResult | FailedResult;
export type PreCopyStep = RoundResult | MigrationEnd;

export interface PreCopyEngine {
  readonly limits: MigrationLimits;
  /**
   * Runs the next step: a pre-copy round, or the end (switch-over or failure). After the end it
   * returns the same end again, so a driver that asks twice gets the same answer.
   */
  nextRound(): PreCopyStep;
  /** The workload's dirty rate changed; applies from the next round. Ignored after the end. */
  setDirtyRate(dirtyMiBps: number): void;
  /** The migration bandwidth changed (QEMU max-bandwidth); applies from the next step. Ignored after the end. */
  setBandwidth(bandwidthMiBps: number): void;
  /**
   * Abandons the migration at the current round boundary (rounds are atomic here: the last round
   * returned counts as sent); returns the end, or the earlier end if there was one.
   */
  cancel(): MigrationEnd;
}

/** Creates the step-wise engine. Throws a RangeError naming the field when the input is invalid. */
export function createPreCopy(input: PreCopyInput): PreCopyEngine {
  const problem = validatePreCopyInput(input);
  if (problem !== null) throw new RangeError(`pre-copy: ${problem}`);
  const { memoryMiB } = input;
  const limits = effectiveMigrationLimits(input.limits);
  const workingSetMiB = Math.min(input.workingSetMiB ?? memoryMiB, memoryMiB);
  const completionDeadlineMs = (limits.completionTimeoutMsPerGiB * memoryMiB) / 1024;

  let dirtyMiBps = input.dirtyMiBps;
  let bandwidthMiBps = limits.bandwidthMiBps;
  let remainingMiB = memoryMiB;
  let preCopyRounds = 0;
  let transferredMiBTotal = 0;
  let elapsedMsTotal = 0;
  let throttlePct = 0;
  let end: MigrationEnd | null = null;
  // Progress: the lowest remaining seen at a sync, and when. Before round 1 all memory remains.
  let remainingMiBLow = memoryMiB;
  let remainingLowAtMs = 0;
  // Auto-converge: the current evaluation period and the count of "too fast" periods.
  let periodStartMs = 0;
  let periodDirtiedMiB = 0;
  let periodSentMiB = 0;
  let highPeriodCount = 0;

  const thresholdMiB = (): number => (bandwidthMiBps * limits.downtimeMsMax) / 1000;

  const finish = <T extends MigrationEnd>(result: T): T => {
    end = result;
    return result;
  };

  const switchover = (cause: SwitchoverCause, why: string): SwitchoverResult => {
    const finalCopyMiB = remainingMiB;
    const downtimeMs = (finalCopyMiB / bandwidthMiBps) * 1000 + limits.resumeCostMs;
    transferredMiBTotal += finalCopyMiB;
    elapsedMsTotal += downtimeMs;
    remainingMiB = 0;
    return finish({
      kind: 'switchover',
      round: preCopyRounds + 1,
      preCopyRounds,
      cause,
      finalCopyMiB,
      downtimeMs,
      bandwidthMiBps,
      throttlePct,
      transferredMiBTotal,
      elapsedMsTotal,
      reason: `${why}; downtime ${fmtMs(downtimeMs)} ms (${fmtMiB(finalCopyMiB)} MiB at ${fmtMiB(bandwidthMiBps)} MiB/s + resumeCostMs ${limits.resumeCostMs})`,
    });
  };

  const fail = (cause: FailureCause, reason: string): FailedResult =>
    finish({
      kind: 'failed',
      cause,
      reason,
      preCopyRounds,
      remainingMiB,
      throttlePct,
      transferredMiBTotal,
      elapsedMsTotal,
    });

  /** Why pre-copy is not getting there, from the rates in force now ('' when it would). */
  const convergenceNote = (): string => {
    const dirtyEffMiBps = dirtyMiBps * (1 - throttlePct / 100);
    const ratio = dirtyEffMiBps / bandwidthMiBps;
    const throttled = throttlePct > 0 ? ` (${fmtMiB(dirtyMiBps)} MiB/s throttled ${throttlePct} %)` : '';
    if (ratio >= 1 && workingSetMiB > thresholdMiB() + sizeEpsilonMiB) {
      return (
        `; pre-copy does not converge: dirty rate ${fmtMiB(dirtyEffMiBps)} MiB/s${throttled} >= bandwidth ` +
        `${fmtMiB(bandwidthMiBps)} MiB/s, so the dirty set stays at ${fmtMiB(workingSetMiB)} MiB, more than the ` +
        `${fmtMiB(thresholdMiB())} MiB that fit in downtimeMsMax ${limits.downtimeMsMax}`
      );
    }
    if (ratio > 0 && ratio < 1) return `; pre-copy converges slowly: dirty rate / bandwidth = ${ratio.toFixed(3)}`;
    return '';
  };

  const atCap = (cause: 'round-limit' | 'transfer-limit', what: string): MigrationEnd => {
    const left = `${what} with ${fmtMiB(remainingMiB)} MiB remaining (more than the ${fmtMiB(thresholdMiB())} MiB that fit in downtimeMsMax ${limits.downtimeMsMax})`;
    if (limits.onRoundLimit === 'force-switchover') {
      return switchover(cause, `${left}; forced switch-over (onRoundLimit 'force-switchover')${convergenceNote()}`);
    }
    return fail(cause, `${left}; onRoundLimit is 'fail'${convergenceNote()}`);
  };

  const nextRound = (): PreCopyStep => {
    if (end !== null) return end;
    if (remainingMiB <= thresholdMiB() + sizeEpsilonMiB) {
      return switchover(
        'converged',
        `converged after ${preCopyRounds} pre-copy rounds: ${fmtMiB(remainingMiB)} MiB remaining fit in downtimeMsMax ${limits.downtimeMsMax} at ${fmtMiB(bandwidthMiBps)} MiB/s`,
      );
    }
    if (preCopyRounds >= limits.roundsMax - 1) {
      return atCap('round-limit', `round limit: ${preCopyRounds} pre-copy rounds done (roundsMax ${limits.roundsMax})`);
    }
    if (limits.transferredFactorMax !== null && transferredMiBTotal > limits.transferredFactorMax * memoryMiB) {
      return atCap(
        'transfer-limit',
        `transfer limit: ${fmtMiB(transferredMiBTotal)} MiB sent > transferredFactorMax ${limits.transferredFactorMax} × ${fmtMiB(memoryMiB)} MiB`,
      );
    }
    const stalledMs = elapsedMsTotal - remainingLowAtMs;
    if (stalledMs > limits.progressTimeoutMs) {
      return fail(
        'progress-timeout',
        `progress timeout: remaining has not gone below ${fmtMiB(remainingMiBLow)} MiB for ${fmtMs(stalledMs)} ms ` +
          `(progressTimeoutMs ${limits.progressTimeoutMs}), ${fmtMiB(remainingMiB)} MiB remaining after ${preCopyRounds} rounds${convergenceNote()}`,
      );
    }

    const sentMiB = remainingMiB;
    const durationMs = (sentMiB / bandwidthMiBps) * 1000;
    if (elapsedMsTotal + durationMs > completionDeadlineMs) {
      // The monitor aborts at the deadline, in the middle of this round.
      const partialMiB = (bandwidthMiBps * (completionDeadlineMs - elapsedMsTotal)) / 1000;
      transferredMiBTotal += partialMiB;
      remainingMiB -= partialMiB;
      elapsedMsTotal = completionDeadlineMs;
      return fail(
        'completion-timeout',
        `completion timeout: ${fmtMs(completionDeadlineMs)} ms for ${fmtMiB(memoryMiB / 1024)} GiB ` +
          `(completionTimeoutMsPerGiB ${limits.completionTimeoutMsPerGiB}) reached in round ${preCopyRounds + 1}, ` +
          `${fmtMiB(remainingMiB)} MiB of the round's ${fmtMiB(sentMiB)} MiB unsent${convergenceNote()}`,
      );
    }

    const throttlePctInRound = throttlePct;
    const dirtyRateMiBps = dirtyMiBps * (1 - throttlePctInRound / 100);
    // A page re-dirtied within the round counts once: at most the working set is dirty.
    const dirtiedMiB = Math.min(workingSetMiB, (dirtyRateMiBps * durationMs) / 1000);
    preCopyRounds += 1;
    transferredMiBTotal += sentMiB;
    elapsedMsTotal += durationMs;
    remainingMiB = dirtiedMiB;
    if (remainingMiB < remainingMiBLow) {
      remainingMiBLow = remainingMiB;
      remainingLowAtMs = elapsedMsTotal;
    }
    periodDirtiedMiB += dirtiedMiB;
    periodSentMiB += sentMiB;
    if (elapsedMsTotal - periodStartMs > autoConvergePeriodMsMin) {
      if (limits.autoConverge && periodDirtiedMiB > (periodSentMiB * limits.autoConvergeTriggerPct) / 100) {
        highPeriodCount += 1;
        if (highPeriodCount >= autoConvergeHighPeriodCount) {
          highPeriodCount = 0;
          throttlePct =
            throttlePct === 0
              ? limits.autoConvergeInitialPct
              : Math.min(throttlePct + limits.autoConvergeStepPct, limits.autoConvergeMaxPct);
        }
      }
      periodStartMs = elapsedMsTotal;
      periodDirtiedMiB = 0;
      periodSentMiB = 0;
    }
    return {
      kind: 'round',
      round: preCopyRounds,
      sentMiB,
      durationMs,
      bandwidthMiBps,
      dirtiedMiB,
      remainingMiB,
      dirtyRateMiBps,
      throttlePctInRound,
      throttlePct,
      expectedDowntimeMs: (remainingMiB / bandwidthMiBps) * 1000,
      transferredMiBTotal,
      elapsedMsTotal,
    };
  };

  return {
    limits,
    nextRound,
    setDirtyRate(rateMiBps: number): void {
      if (end !== null) return;
      const problem = numberIn(rateMiBps, 0, migrationRanges.rateMiBpsMax, 'dirtyMiBps');
      if (problem !== null) throw new RangeError(`pre-copy: ${problem}`);
      dirtyMiBps = rateMiBps;
    },
    setBandwidth(rateMiBps: number): void {
      if (end !== null) return;
      const problem = numberIn(rateMiBps, 0, migrationRanges.rateMiBpsMax, 'bandwidthMiBps', true);
      if (problem !== null) throw new RangeError(`pre-copy: ${problem}`);
      bandwidthMiBps = rateMiBps;
    },
    cancel(): MigrationEnd {
      if (end !== null) return end;
      return fail(
        'cancelled',
        `cancelled after ${preCopyRounds} pre-copy rounds with ${fmtMiB(remainingMiB)} MiB remaining`,
      );
    },
  };
}

export interface MigrationOutcome {
  readonly outcome: 'completed' | 'failed';
  /** The effective limits, to record with the result. */
  readonly limits: MigrationLimits;
  readonly rounds: readonly RoundResult[];
  readonly end: MigrationEnd;
  readonly preCopyRounds: number;
  readonly transferredMiBTotal: number;
  readonly elapsedMsTotal: number;
  /** null when the migration failed (the partition never stopped). */
  readonly downtimeMs: number | null;
}

/** Runs a whole migration at a constant workload and bandwidth (the engine, driven to its end). */
export function simulateMigration(input: PreCopyInput): MigrationOutcome {
  const engine = createPreCopy(input);
  const rounds: RoundResult[] = [];
  // Each call either runs a pre-copy round or ends; at most roundsMax − 1 pre-copy rounds run.
  for (let step = 0; step < engine.limits.roundsMax; step++) {
    const result = engine.nextRound();
    switch (result.kind) {
      case 'round':
        rounds.push(result);
        break;
      case 'switchover':
      case 'failed':
        return {
          outcome: result.kind === 'switchover' ? 'completed' : 'failed',
          limits: engine.limits,
          rounds,
          end: result,
          preCopyRounds: result.preCopyRounds,
          transferredMiBTotal: result.transferredMiBTotal,
          elapsedMsTotal: result.elapsedMsTotal,
          downtimeMs: result.kind === 'switchover' ? result.downtimeMs : null,
        };
      default: {
        const unreachable: never = result;
        throw new Error(`pre-copy: unknown step ${String(unreachable)}`);
      }
    }
  }
  throw new Error(`pre-copy: no end after roundsMax ${engine.limits.roundsMax} steps (engine bug)`);
}

export interface ClosedFormInput {
  readonly memoryMiB: number;
  readonly dirtyMiBps: number;
  readonly bandwidthMiBps: number;
  readonly downtimeMsMax: number;
  readonly resumeCostMs: number;
  /** Most rounds, the final copy included (as in MigrationLimits). */
  readonly roundsMax: number;
  /** The §4.2 variant V_{i+1} = min(W, D·T_i); null or absent = unbounded (W = memory). */
  readonly workingSetMiB?: number | null;
}

export interface ClosedFormPreCopy {
  /** λ = D / B. */
  readonly lambda: number;
  /** Pre-copy rounds the threshold needs, ignoring roundsMax (Infinity when it is never reached). */
  readonly preCopyRoundsToConverge: number;
  /** Whether roundsMax stops pre-copy before the threshold is reached. */
  readonly roundLimitHit: boolean;
  /** n: rounds 0..n−1 of §4.2 (capped at roundsMax − 1). */
  readonly preCopyRounds: number;
  /** V_n: the stop-and-copy volume (at the round limit, what a forced switch-over sends). */
  readonly stopCopyMiB: number;
  /** V_n / B + T_res. */
  readonly downtimeMs: number;
  /** Σ_{i<n} V_i: sent before the switch-over (all that a migration failing at the limit sends). */
  readonly preCopyMiBTotal: number;
  readonly preCopyMs: number;
  /** V_tot = Σ_{i<=n} V_i. */
  readonly transferredMiBTotal: number;
  /** V_tot / B + T_res. */
  readonly elapsedMsTotal: number;
}

/**
 * §4.2's geometric-series model, computed independently of the engine (powers and logarithms, no
 * iteration), for validation. V_0 = M, V_1 = min(W, λM), then V_i = V_1 λ^{i−1} when λ < 1, or
 * V_i = W for ever when λ >= 1; without W, V_i = M λ^i: n = ceil(ln(V_thd / M) / ln λ),
 * V_tot = M (1 − λ^{n+1}) / (1 − λ). V_thd = B × downtimeMsMax.
 */
export function closedFormPreCopy(input: ClosedFormInput): ClosedFormPreCopy {
  const { memoryMiB: m, dirtyMiBps: d, bandwidthMiBps: b, downtimeMsMax, resumeCostMs, roundsMax } = input;
  if (!(m > 0) || !(b > 0) || !(d >= 0) || !Number.isInteger(roundsMax) || roundsMax < 1) {
    throw new RangeError(`closed form: needs memoryMiB > 0, bandwidthMiBps > 0, dirtyMiBps >= 0, integer roundsMax >= 1`);
  }
  const w = Math.min(input.workingSetMiB ?? m, m);
  const lambda = d / b;
  const thresholdMiB = (b * downtimeMsMax) / 1000 + sizeEpsilonMiB;
  const v1 = Math.min(w, lambda * m);
  let toConverge: number;
  if (m <= thresholdMiB) toConverge = 0;
  else if (v1 <= thresholdMiB) toConverge = 1;
  else if (lambda >= 1) toConverge = Number.POSITIVE_INFINITY;
  else toConverge = 1 + Math.ceil(Math.log(thresholdMiB / v1) / Math.log(lambda));
  const n = Math.min(toConverge, roundsMax - 1);
  const volume = (i: number): number => (i === 0 ? m : lambda < 1 ? v1 * lambda ** (i - 1) : v1);
  // Σ_{i<k} V_i
  const sumBefore = (k: number): number => {
    if (k === 0) return 0;
    if (lambda < 1) return m + (v1 * (1 - lambda ** (k - 1))) / (1 - lambda);
    return m + (k - 1) * v1;
  };
  const stopCopyMiB = volume(n);
  const preCopyMiBTotal = sumBefore(n);
  const transferredMiBTotal = preCopyMiBTotal + stopCopyMiB;
  return {
    lambda,
    preCopyRoundsToConverge: toConverge,
    roundLimitHit: toConverge > n,
    preCopyRounds: n,
    stopCopyMiB,
    downtimeMs: (stopCopyMiB / b) * 1000 + resumeCostMs,
    preCopyMiBTotal,
    preCopyMs: (preCopyMiBTotal / b) * 1000,
    transferredMiBTotal,
    elapsedMsTotal: (transferredMiBTotal / b) * 1000 + resumeCostMs,
  };
}

function numberIn(value: number, min: number, max: number, field: string, minExclusive = false): string | null {
  const ok = typeof value === 'number' && Number.isFinite(value) && (minExclusive ? value > min : value >= min) && value <= max;
  return ok ? null : `${field} must be a number ${minExclusive ? 'above' : 'from'} ${min} ${minExclusive ? 'and at most' : 'to'} ${max}, got ${String(value)}`;
}

function integerIn(value: number, min: number, max: number, field: string): string | null {
  return Number.isInteger(value) && value >= min && value <= max
    ? null
    : `${field} must be an integer from ${min} to ${max}, got ${String(value)}`;
}

function fmtMiB(value: number): string {
  return Number(value.toFixed(1)).toString();
}

function fmtMs(value: number): string {
  return Math.round(value).toString();
}
