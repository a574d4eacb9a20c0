/**
 * The public surface of src/ipvs: the domain model, the pure diff and derive, the reconciler (driver) with its
 * owned-services store, FULLNAT (pure rules + driver; the nft adapter), and `createIpvsClient` to open the
 * kernel client. Other folders import only this. The netlink adapter's internals (src/ipvs/netlink/) stay
 * private.
 */

import type { IpvsClient } from './model.ts';
import type { NetlinkIpvsClientOptions } from './netlink/index.ts';

export * from './model.ts';
export { applyOps, defaultNetmask, destAttrsEqual, diff, normalizeDestAttrs, normalizeServiceAttrs, serviceAttrsEqual } from './diff.ts';
export type { DiffOptions } from './diff.ts';
export { FORWARDING_TO_FWD, derive, deriveService, members, realServerId, serviceKeyOf, stepQuorum } from './derive.ts';
export type { HealthMap, HealthSnapshot, Member, OverrideMap, QuorumMap, RealServerHealth, RealServerOverride, RealServerStatus } from './derive.ts';
export {
  OP_ERROR_LOG_WINDOW_MS,
  RECONCILE_RETRY_MS,
  Reconciler,
  explainOpError,
  formatOp,
  opObject,
  opServiceKey,
  tableFingerprint,
  timeoutsFromConfig,
} from './reconciler.ts';
export type {
  ExplainContext,
  FullnatSync,
  IpvsOpKind,
  OpOutcome,
  ReconcileReason,
  ReconcileReport,
  ReconcilerDeps,
  ReconcilerEvent,
  TimeoutsOutcome,
} from './reconciler.ts';
export { FileOwnedStore, MemoryOwnedStore, OWNED_FILE, formatOwnedFile, parseOwnedFile } from './owned.ts';
export type { OwnedStore } from './owned.ts';
export {
  FULLNAT_CHAIN,
  FULLNAT_TABLE,
  FullnatReconciler,
  deriveFullnatRules,
  fullnatSysctls,
  parseNftTable,
  planFullnat,
  renderFullnatScript,
  renderFullnatTable,
  ruleSignature,
  ruleStatement,
} from './fullnat.ts';
export type { FullnatHost, FullnatPlan, FullnatReconcilerDeps, FullnatReport, FullnatRule, NftTableState, SysctlOutcome, SysctlSetting } from './fullnat.ts';
export { NFT_PATHS, NftError, createNftHost, findNft, sysctlPath } from './nft.ts';
export type { NetlinkIpvsClientOptions } from './netlink/index.ts';

/**
 * Opens the kernel IPVS client (generic netlink, src/ipvs/netlink). Loaded on first use, so code that only
 * derives, diffs or formats never loads the native netlink binding. Rejects with NetlinkError (ENOENT: the
 * ip_vs module is not loaded; EPERM: CAP_NET_ADMIN is missing).
 */
export async function createIpvsClient(options: NetlinkIpvsClientOptions = {}): Promise<IpvsClient> {
  const netlink = await import('./netlink/index.ts');
  return netlink.createIpvsClient(options);
}
