/**
 * Real-server preparation for LVS direct routing and tunnelling: the plan (prepare.ts), the check (check.ts),
 * up/down with a record of what tandem changed (apply.ts) and the system adapter (system.ts).
 */

export {
  REALSERVER_MODES,
  TUNNEL_DEVICES,
  TUNNEL_KINDS,
  confKey,
  describeRequirement,
  fixCommand,
  parseVip,
  planRealserver,
  requirementId,
  sysctlPath,
} from './prepare.ts';
export type { RealserverMode, RealserverSpec, RealserverVip, Requirement, TunnelKind } from './prepare.ts';
export { checkRealserver, checkRequirement, formatCheckReport } from './check.ts';
export type { CheckResult, RealserverProbe } from './check.ts';
export { RealserverApplyError, emptyState, realserverDown, realserverUp, stateItemId } from './apply.ts';
export type { ApplyOutcome, RealserverActuator, RealserverHost, RealserverState, StateItem } from './apply.ts';
export { DEFAULT_STATE_FILE, SystemRealserverHost, defaultRouteInterface, loadState, saveState } from './system.ts';
