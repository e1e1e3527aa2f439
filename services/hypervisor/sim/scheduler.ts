/**
 * The quantum scheduler: dispatches vCPUs onto logical processors in time slices and measures, per
 * vCPU, run time, wait (ready) time and dispatches. computeEntitlements (./entitlement.ts) is the
 * fluid model it is tested against: over a long run its shares converge to the entitlements.
 *
 * The rule [D] (a virtual-time scheduler in the spirit of Xen credit1, hypervisor-models.md §1.5,
 * with Hyper-V's per-VP reserve and cap, §1.1):
 *
 * 1. Work. Every quantum (default 10 ms, Xen credit1's tick, §1.5) each vCPU of a partition receives
 *    demandShare × quantum of work (its workload's demand; the same for every vCPU of the
 *    partition). A vCPU holds at most one quantum of unserved work: a guest that cannot run does not
 *    queue up unbounded work, it just stays runnable. A vCPU with work is ready.
 * 2. Grants. The quantum's LP time (capacity × quantum) is handed out in grants, each to a ready
 *    vCPU of the partition that comes first in this order:
 *      a. partitions with a vCPU below its reserve in this quantum (reservePct % of one LP per
 *         vCPU) first: the reserve is a floor under contention;
 *      b. then the lowest virtual time: a partition's virtual time advances by run time ÷ weight,
 *         so under contention the weights divide the LPs (weighted fair queueing across partitions);
 *      c. then the partition order given by the caller (partition id), so runs replay exactly.
 *    Within the partition: a vCPU below its reserve first, then the one that has run least (so a
 *    partition's vCPUs share its time evenly and none starves while a sibling runs). A grant is
 *    all the work the vCPU has, bounded by its cap allowance, by the LP time left, and (when it was
 *    chosen for its reserve) by what its reserve still lacks; then the partitions are ordered again.
 *    Grants are charged to virtual time at once, reserve grants too, so a reserve lifts a partition
 *    to its floor and the weights only share what is above it: the clamp rule of §1.9,
 *    x = clamp(λ·w, floor, ceiling). A vCPU gets at most one quantum per quantum.
 * 3. Placement. The grants are laid onto the LPs by McNaughton's wrap-around rule over a span T
 *    of each LP, the shortest that holds all grants and is at least the longest one (the quantum
 *    under full load; less on a lightly loaded host, so work spreads over the LPs and no vCPU waits
 *    while an LP idles): LP after LP, each filled from offset 0, vCPUs one after another (those that
 *    were running when the previous quantum ended first, so they go on running; then in grant
 *    order); a grant that does not fit the rest of an LP's span continues at offset 0 of the next.
 *    As no grant exceeds T, the two pieces never overlap in time, so no vCPU ever runs on two LPs
 *    at once, and every LP-ms granted is usable (a greedy dispatch in time order is not: short runs
 *    started in parallel would block a busy partition's vCPUs). Wait and dispatches are measured
 *    on this layout.
 * 4. Caps. A vCPU's cap (min(limitPct, 100 − throttlePct) % of one LP, per VP as in the TLFS) is a
 *    budget per cap period, replenished every capPeriodMs (default 10 ms = one quantum, as Xen
 *    credit2's cap period, §1.6): a vCPU that has used cap × capPeriodMs is parked (not dispatched)
 *    for the rest of the period. A longer capPeriodMs (a whole number of quanta) is enforced as a
 *    sliding window: at the start of each quantum a vCPU may run at most cap × capPeriodMs minus its
 *    run time in the previous capPeriodMs/quantum − 1 quanta; so in every window of capPeriodMs that
 *    starts on a quantum boundary it runs at most cap × capPeriodMs. (Longer windows let a capped
 *    vCPU spend a window's budget in one quantum, crowding out one-vCPU partitions that cannot make
 *    the time up later; the shares then drift from the fluid model, which is why the default is one
 *    quantum.) Limits are enforced always, even on an idle host: they make the scheduler
 *    non-work-conserving for that partition.
 * 5. Idle credit is bounded. A partition cannot bank virtual time while idle: at the end of each
 *    quantum its virtual time is raised to at least (the lowest virtual time among partitions that
 *    had work) − quantum × vcpus ÷ weight, so it gets at most one quantum of all its vCPUs ahead of
 *    the others when it wakes (like CFS placing a waking task near min_vruntime). That slack also
 *    keeps partitions that use less than their fair share (idle-ish or capped) strictly first.
 *
 * Counters: wait time is the time a vCPU had work but no LP, whatever the reason (contention, or
 * parked at its cap: our choice [D], so a capped partition shows the CPU it is denied); a dispatch is a vCPU going from not
 * running to running (a run continued across a quantum boundary is not a new dispatch); wait per
 * dispatch is their ratio (§1.4). With k always-busy single-vCPU partitions on one LP, each vCPU
 * waits (k − 1) quanta per dispatch, the §1.4 cross-check.
 *
 * The parent partition's CPU use (parentCpuLp) is taken off the top: partitions get
 * logicalProcessors − parentCpuLp LPs, the last one fractional (that share of each quantum).
 */

export const defaultQuantumMs = 10;
/** Caps are replenished every quantum by default, like Xen credit2's 10 ms cap period (§1.6). */
export const defaultCapPeriodMs = defaultQuantumMs;
/** Below this, an amount of work or time is treated as none (float noise). */
const epsilonMs = 1e-9;

export interface SchedulerOptions {
  readonly logicalProcessors: number;
  /** LPs used by the parent partition, 0 <= parentCpuLp < logicalProcessors. */
  readonly parentCpuLp: number;
  readonly quantumMs: number;
  /** Window over which caps are enforced: a whole number (>= 1) of quanta. */
  readonly capPeriodMs: number;
}

/** Per-vCPU state. The counters are cumulative; everything else is the scheduler's own. */
export interface VcpuState {
  runTimeMs: number;
  waitTimeMs: number;
  dispatches: number;
  /** Work ready to run, ms of one LP, at most one quantum. */
  pendingMs: number;
  /** Since when (virtual ms) it has been ready without running; NaN when it has no work or runs. */
  readySinceMs: number;
  /** When its last run ended (virtual ms): running again right then continues that run. */
  lastRunEndMs: number;
  runThisQuantumMs: number;
  capLeftMs: number;
  /** Run time per quantum over the last capPeriodMs, a ring indexed by the quantum number. */
  readonly capWindowMs: Float64Array;
}

/** A partition as the scheduler sees it. The caller sets the four settings before each quantum. */
export interface SchedulerPartition {
  readonly id: string;
  readonly vcpus: readonly VcpuState[];
  /** Relative weight, > 0. */
  weight: number;
  /** Reserve per vCPU, as a share of one LP (0–1). */
  reserveShare: number;
  /** Cap per vCPU, as a share of one LP (0–1): the limit, lowered by any throttle. */
  capShare: number;
  /** Work offered per vCPU per ms of time (0–1): the workload's demand; 0 when paused. */
  demandShare: number;
  /** Virtual time: run time ÷ weight, relative to the lowest among partitions that can run. */
  vtime: number;
  /** Bookkeeping of runQuantum. */
  heapIndex: number;
  hadWork: boolean;
  reserveFirst: boolean;
  order: number;
}

export interface QuantumScheduler {
  readonly quantumMs: number;
  readonly capPeriodMs: number;
  /** LPs left to partitions: logicalProcessors − parentCpuLp. */
  readonly capacityLp: number;
  /** Quanta run so far. */
  quantumCount(): number;
  createPartition(id: string, vcpus: number): SchedulerPartition;
  /**
   * Runs one quantum that starts at startMs (virtual time) over these partitions; their order breaks
   * ties, so pass them in a stable order (the sim uses partition id order).
   */
  runQuantum(partitions: readonly SchedulerPartition[], startMs: number): void;
}

/** Drops a partition's unserved work (it was paused): it neither runs nor waits until it has work again. */
export function dropPendingWork(partition: SchedulerPartition): void {
  for (const vcpu of partition.vcpus) {
    vcpu.pendingMs = 0;
    vcpu.readySinceMs = Number.NaN;
  }
}

export interface PartitionCounters {
  readonly runTimeMs: number;
  readonly waitTimeMs: number;
  readonly dispatches: number;
}

/** Σ of the partition's vCPU counters. */
export function partitionCounters(partition: SchedulerPartition): PartitionCounters {
  let runTimeMs = 0;
  let waitTimeMs = 0;
  let dispatches = 0;
  for (const vcpu of partition.vcpus) {
    runTimeMs += vcpu.runTimeMs;
    waitTimeMs += vcpu.waitTimeMs;
    dispatches += vcpu.dispatches;
  }
  return { runTimeMs, waitTimeMs, dispatches };
}

export function createQuantumScheduler(options: SchedulerOptions): QuantumScheduler {
  const { logicalProcessors, parentCpuLp, quantumMs, capPeriodMs } = options;
  if (!Number.isInteger(logicalProcessors) || logicalProcessors < 1) {
    throw new RangeError(`logicalProcessors must be a positive integer, got ${logicalProcessors}`);
  }
  if (!Number.isFinite(parentCpuLp) || parentCpuLp < 0 || parentCpuLp >= logicalProcessors) {
    throw new RangeError(`parentCpuLp must be a number from 0 to below logicalProcessors (${logicalProcessors}), got ${parentCpuLp}`);
  }
  if (!Number.isFinite(quantumMs) || quantumMs <= 0) throw new RangeError(`quantumMs must be > 0, got ${quantumMs}`);
  const capPeriodQuanta = capPeriodMs / quantumMs;
  if (!Number.isInteger(capPeriodQuanta) || capPeriodQuanta < 1) {
    throw new RangeError(`capPeriodMs must be a whole number (>= 1) of quanta of ${quantumMs} ms, got ${capPeriodMs}`);
  }
  const capacityLp = logicalProcessors - parentCpuLp;

  // LP k runs partitions for lpLengthMs[k] of each quantum: whole LPs for the full quantum, then the
  // parent's leftover on the last one (last, so that no grant wraps from it: see place()).
  const wholeLps = Math.floor(capacityLp);
  const partialMs = (capacityLp - wholeLps) * quantumMs;
  const lpCount = wholeLps + (partialMs > epsilonMs ? 1 : 0);
  const lpLengthMs = new Float64Array(lpCount).fill(quantumMs);
  if (lpCount > wholeLps) lpLengthMs[wholeLps] = partialMs;
  const poolMsPerQuantum = capacityLp * quantumMs;

  const ready: SchedulerPartition[] = [];
  /** vCPUs granted time in this quantum, in placement order: those continuing a run first. */
  const continuing: VcpuState[] = [];
  const granted: VcpuState[] = [];
  let quantumIndex = 0;

  // ---- the ready heap: partitions with a vCPU that can take a grant, best first -----------------
  const before = (a: SchedulerPartition, b: SchedulerPartition): boolean =>
    a.reserveFirst !== b.reserveFirst ? a.reserveFirst : a.vtime !== b.vtime ? a.vtime < b.vtime : a.order < b.order;
  const put = (p: SchedulerPartition, index: number): void => {
    ready[index] = p;
    p.heapIndex = index;
  };
  const siftUp = (start: number): void => {
    let index = start;
    const p = ready[index];
    if (p === undefined) return;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = ready[parentIndex];
      if (parent === undefined || !before(p, parent)) break;
      put(parent, index);
      index = parentIndex;
    }
    put(p, index);
  };
  const siftDown = (start: number): void => {
    let index = start;
    const p = ready[index];
    if (p === undefined) return;
    const size = ready.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= size) break;
      const leftP = ready[left];
      const rightP = ready[left + 1];
      let child = left;
      let childP = leftP;
      if (rightP !== undefined && leftP !== undefined && before(rightP, leftP)) {
        child = left + 1;
        childP = rightP;
      }
      if (childP === undefined || !before(childP, p)) break;
      put(childP, index);
      index = child;
    }
    put(p, index);
  };
  const removeReady = (p: SchedulerPartition): void => {
    const index = p.heapIndex;
    p.heapIndex = -1;
    const last = ready.pop();
    if (last === undefined || last === p) return;
    put(last, index);
    siftUp(index);
    siftDown(last.heapIndex);
  };

  const canTakeGrant = (vcpu: VcpuState): boolean => vcpu.pendingMs > epsilonMs && vcpu.capLeftMs > epsilonMs;

  /** Re-evaluates whether and where p belongs in the ready heap after one of its vCPUs changed. */
  const refresh = (p: SchedulerPartition): void => {
    let eligible = false;
    let reserveFirst = false;
    const reserveMs = p.reserveShare * quantumMs;
    for (const vcpu of p.vcpus) {
      if (!canTakeGrant(vcpu)) continue;
      eligible = true;
      if (reserveMs - vcpu.runThisQuantumMs > epsilonMs) reserveFirst = true;
    }
    p.reserveFirst = reserveFirst;
    if (!eligible) {
      if (p.heapIndex >= 0) removeReady(p);
      return;
    }
    if (p.heapIndex < 0) {
      ready.push(p);
      p.heapIndex = ready.length - 1;
    }
    siftUp(p.heapIndex);
    siftDown(p.heapIndex);
  };

  /** The vCPU of p to grant next: below its reserve first, then the one that has run least, then by index. */
  const pickVcpu = (p: SchedulerPartition): VcpuState | null => {
    const reserveMs = p.reserveShare * quantumMs;
    let best: VcpuState | null = null;
    let bestBelowReserve = false;
    for (const vcpu of p.vcpus) {
      if (!canTakeGrant(vcpu)) continue;
      const belowReserve = reserveMs - vcpu.runThisQuantumMs > epsilonMs;
      if (
        best === null ||
        (belowReserve && !bestBelowReserve) ||
        (belowReserve === bestBelowReserve && vcpu.runTimeMs < best.runTimeMs)
      ) {
        best = vcpu;
        bestBelowReserve = belowReserve;
      }
    }
    return best;
  };

  /** One run of vcpu from fromMs to toMs (offsets into the quantum that starts at startMs). */
  const run = (vcpu: VcpuState, startMs: number, fromMs: number, toMs: number): void => {
    const atMs = startMs + fromMs;
    // A run that starts where the last one ended continues it; NaN (never ran) compares false.
    if (!(Math.abs(vcpu.lastRunEndMs - atMs) <= epsilonMs)) vcpu.dispatches += 1;
    vcpu.waitTimeMs += atMs - vcpu.readySinceMs;
    vcpu.readySinceMs = startMs + toMs;
    vcpu.lastRunEndMs = startMs + toMs;
  };

  /**
   * McNaughton's wrap-around rule over the first spanMs of each LP. A grant that does not fit the
   * rest of LP k runs [offset, end of k) there and [0, rest) on LP k + 1: rest = grant − (end −
   * offset) <= offset because grant <= spanMs (the length of LP k; only the last LP can be shorter,
   * and nothing wraps from the last).
   */
  const place = (
    vcpus: readonly VcpuState[],
    state: { lp: number; offsetMs: number },
    spanMs: number,
    startMs: number,
  ): void => {
    for (const vcpu of vcpus) {
      const grantMs = vcpu.runThisQuantumMs;
      const lengthMs = Math.min(spanMs, lpLengthMs[state.lp] ?? quantumMs);
      const fits = state.offsetMs + grantMs <= lengthMs + epsilonMs || state.lp >= lpCount - 1;
      if (fits) {
        run(vcpu, startMs, state.offsetMs, Math.min(lengthMs, state.offsetMs + grantMs));
        state.offsetMs += grantMs;
        if (state.offsetMs >= lengthMs - epsilonMs && state.lp < lpCount - 1) {
          state.lp += 1;
          state.offsetMs = 0;
        }
      } else {
        const restMs = grantMs - (lengthMs - state.offsetMs);
        if (restMs >= state.offsetMs - epsilonMs) {
          run(vcpu, startMs, 0, lengthMs); // the two pieces meet: one run that moves to another LP
        } else {
          run(vcpu, startMs, 0, restMs);
          run(vcpu, startMs, state.offsetMs, lengthMs);
        }
        state.lp += 1;
        state.offsetMs = restMs;
      }
      if (vcpu.pendingMs <= epsilonMs) vcpu.readySinceMs = Number.NaN;
    }
  };

  /** The smallest span T >= longestMs with Σ_k min(T, length of LP k) >= totalMs (at most the quantum). */
  const layoutSpanMs = (totalMs: number, longestMs: number): number => {
    const partialLpMs = lpCount > wholeLps ? (lpLengthMs[wholeLps] ?? 0) : 0;
    // With T <= the partial LP every LP offers T; above it the partial one offers only its length.
    let spanMs = totalMs / lpCount;
    if (partialLpMs > 0 && spanMs > partialLpMs) spanMs = wholeLps > 0 ? (totalMs - partialLpMs) / wholeLps : quantumMs;
    return Math.min(quantumMs, Math.max(longestMs, spanMs));
  };

  return {
    quantumMs,
    capPeriodMs,
    capacityLp,
    quantumCount: () => quantumIndex,

    createPartition(id: string, vcpus: number): SchedulerPartition {
      return {
        id,
        vcpus: Array.from({ length: vcpus }, () => ({
          runTimeMs: 0,
          waitTimeMs: 0,
          dispatches: 0,
          pendingMs: 0,
          readySinceMs: Number.NaN,
          lastRunEndMs: Number.NaN,
          runThisQuantumMs: 0,
          capLeftMs: 0,
          capWindowMs: new Float64Array(capPeriodQuanta),
        })),
        weight: 100,
        reserveShare: 0,
        capShare: 1,
        demandShare: 0,
        vtime: 0,
        heapIndex: -1,
        hadWork: false,
        reserveFirst: false,
        order: 0,
      };
    },

    runQuantum(partitions: readonly SchedulerPartition[], startMs: number): void {
      const slot = quantumIndex % capPeriodQuanta;
      const endMs = startMs + quantumMs;

      // 1. New work, cap allowances, and whether anything can run.
      let vtimeMin = Number.POSITIVE_INFINITY;
      for (let order = 0; order < partitions.length; order += 1) {
        const p = partitions[order];
        if (p === undefined) continue;
        p.order = order;
        p.heapIndex = -1;
        const arrivalMs = p.demandShare * quantumMs;
        const capMs = p.capShare * capPeriodMs;
        let eligible = false;
        for (const vcpu of p.vcpus) {
          const window = vcpu.capWindowMs;
          window[slot] = 0;
          let windowMs = 0;
          for (let i = 0; i < capPeriodQuanta; i += 1) windowMs += window[i] ?? 0;
          vcpu.capLeftMs = capMs - windowMs;
          vcpu.runThisQuantumMs = 0;
          const pendingMs = Math.min(quantumMs, vcpu.pendingMs + arrivalMs);
          if (pendingMs > epsilonMs) {
            vcpu.pendingMs = pendingMs;
            if (Number.isNaN(vcpu.readySinceMs)) vcpu.readySinceMs = startMs;
            if (vcpu.capLeftMs > epsilonMs) eligible = true;
          } else {
            vcpu.pendingMs = 0;
            vcpu.readySinceMs = Number.NaN;
          }
        }
        p.hadWork = eligible;
        if (eligible && p.vtime < vtimeMin) vtimeMin = p.vtime;
      }

      // 2. Fill the ready heap and grant the pool.
      ready.length = 0;
      continuing.length = 0;
      granted.length = 0;
      if (vtimeMin !== Number.POSITIVE_INFINITY) {
        for (const p of partitions) {
          const reserveMs = p.reserveShare * quantumMs;
          let eligible = false;
          let reserveFirst = false;
          for (const vcpu of p.vcpus) {
            if (!canTakeGrant(vcpu)) continue;
            eligible = true;
            if (reserveMs > epsilonMs) reserveFirst = true;
          }
          p.reserveFirst = reserveFirst;
          if (eligible) put(p, ready.length);
        }
        for (let index = (ready.length >> 1) - 1; index >= 0; index -= 1) siftDown(index);
      }
      let poolMs = poolMsPerQuantum;
      let longestGrantMs = 0;
      while (poolMs > epsilonMs) {
        const p = ready[0];
        if (p === undefined) break;
        const vcpu = pickVcpu(p);
        if (vcpu === null) throw new Error(`scheduler: partition ${p.id} is ready without a vCPU to run`);
        const reserveLeftMs = p.reserveShare * quantumMs - vcpu.runThisQuantumMs;
        let grantMs = Math.min(vcpu.pendingMs, vcpu.capLeftMs, poolMs);
        if (reserveLeftMs > epsilonMs) grantMs = Math.min(grantMs, reserveLeftMs);
        if (vcpu.runThisQuantumMs === 0) {
          if (Math.abs(vcpu.lastRunEndMs - startMs) <= epsilonMs) continuing.push(vcpu);
          else granted.push(vcpu);
        }
        vcpu.pendingMs -= grantMs;
        vcpu.capLeftMs -= grantMs;
        vcpu.runThisQuantumMs += grantMs;
        if (vcpu.runThisQuantumMs > longestGrantMs) longestGrantMs = vcpu.runThisQuantumMs;
        vcpu.runTimeMs += grantMs;
        p.vtime += grantMs / p.weight;
        poolMs -= grantMs;
        refresh(p);
      }

      // 3. Lay the grants onto the LPs; this is where wait and dispatches are measured. The span is
      // the shortest that holds them all (>= the longest grant), so work spreads over all LPs and
      // nothing waits for an LP while another is idle; under full load it is the quantum.
      const cursor = { lp: 0, offsetMs: 0 };
      const spanMs = layoutSpanMs(poolMsPerQuantum - poolMs, longestGrantMs);
      place(continuing, cursor, spanMs, startMs);
      place(granted, cursor, spanMs, startMs);

      // 4. Close the quantum: wait of vCPUs still ready, the cap windows, and idle credit. Virtual
      // times are kept relative to the lowest among partitions that had work (small numbers), and
      // none falls more than a quantum of its vCPUs behind it.
      let activeVtimeMin = Number.POSITIVE_INFINITY;
      for (const p of partitions) {
        if (p.hadWork && p.vtime < activeVtimeMin) activeVtimeMin = p.vtime;
      }
      for (const p of partitions) {
        p.heapIndex = -1;
        if (activeVtimeMin !== Number.POSITIVE_INFINITY) {
          p.vtime = Math.max(p.vtime, activeVtimeMin - (quantumMs * p.vcpus.length) / p.weight) - activeVtimeMin;
        }
        for (const vcpu of p.vcpus) {
          if (vcpu.pendingMs > epsilonMs) {
            vcpu.waitTimeMs += endMs - vcpu.readySinceMs;
            vcpu.readySinceMs = endMs;
          } else {
            vcpu.pendingMs = 0;
            vcpu.readySinceMs = Number.NaN;
          }
          vcpu.capWindowMs[slot] = vcpu.runThisQuantumMs;
        }
      }
      ready.length = 0;
      quantumIndex += 1;
    },
  };
}
