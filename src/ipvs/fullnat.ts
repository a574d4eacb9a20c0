/**
 * FULLNAT for mainline IPVS, which has none: the service runs in IPVS masquerading (NAT) and netfilter
 * rewrites the source of the forwarded packets to a director address (`fullnat.source`), so real servers may
 * sit in any subnet with no route back to the clients. Replies come back to that address, conntrack undoes the
 * source NAT, and IPVS undoes its own destination NAT on the way out.
 *
 * Why this rule form works (Linux 6.1, net/netfilter/ipvs/ip_vs_xmit.c, ip_vs_nf_conntrack.c):
 *   - with `net.ipv4.vs.conntrack = 1` IPVS keeps the packet's conntrack entry and, on the first packet,
 *     rewrites its reply tuple to RS:rport -> client (ip_vs_update_conntrack); with 0 it marks packets
 *     untracked and no NAT can happen;
 *   - masqueraded packets leave through NF_INET_LOCAL_OUT and POSTROUTING (ip_vs_nat_send_or_cont), where
 *     the packet's destination is already the real server, but the conntrack *original* tuple still says
 *     client -> VIP:port. So the nat rule matches `ct original ip daddr VIP ct original proto-dst PORT` (or the
 *     service's `meta mark` for fwmark services) and does `snat to SOURCE`;
 *   - the reply RS -> SOURCE matches the rewritten reply tuple: conntrack restores the client as destination
 *     in PREROUTING, the packet is forwarded (hence `ip_forward = 1`), IPVS (FORWARD hook) restores the VIP as
 *     source.
 * Proven end to end by test/vm/ipvs-traffic.test.ts (real servers in another subnet with no route back).
 *
 * The rules live in one table tandem owns, `table inet tandem_fullnat`, reconciled like IPVS: the desired
 * ruleset is derived purely (here), the actual one read with `nft -j list table` (nft.ts, the only code that
 * runs nft), compared semantically, and replaced atomically by one `nft -f -` transaction only when they differ.
 */

import type { TandemConfig } from '../config/types.ts';
import { messageOf } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { Protocol } from './model.ts';

/** The nftables table tandem owns for FULLNAT (inet: one table for IPv4 and IPv6; nat in inet needs Linux >= 5.2). */
export const FULLNAT_TABLE = { family: 'inet', name: 'tandem_fullnat' } as const;
/** The one chain of that table. */
export const FULLNAT_CHAIN = 'postrouting';
/** `priority srcnat` as nft reports it. */
const SRCNAT_PRIORITY = 100;
/** Every rule's comment starts with this, followed by the virtual server's name. */
const COMMENT_PREFIX = 'tandem vs ';

/** One source-NAT rule: the packets of one FULLNAT virtual service get `source` as their source address. */
export interface FullnatRule {
  /** The virtual server's name (the rule's comment). */
  name: string;
  family: 4 | 6;
  match: { kind: 'addr'; protocol: Protocol; address: string; port: number } | { kind: 'fwmark'; fwmark: number };
  source: string;
}

/** The FULLNAT rules of a configuration (one per `forwarding: fullnat` virtual server, in configuration order). */
export function deriveFullnatRules(config: Pick<TandemConfig, 'virtualServers'>): FullnatRule[] {
  const rules: FullnatRule[] = [];
  for (const vs of config.virtualServers ?? []) {
    if (vs.forwarding !== 'fullnat' || vs.fullnat === undefined) continue;
    const s = vs.service;
    rules.push({
      name: vs.name,
      family: s.family,
      match: s.kind === 'fwmark' ? { kind: 'fwmark', fwmark: s.fwmark } : { kind: 'addr', protocol: s.protocol, address: s.address, port: s.port },
      source: vs.fullnat.source,
    });
  }
  return rules;
}

/** A sysctl FULLNAT needs, with the reason (for logs and the docs). */
export interface SysctlSetting {
  /** Dotted name, e.g. `net.ipv4.vs.conntrack`. */
  name: string;
  value: string;
  why: string;
}

/** The sysctls the rules need (none without rules: tandem does not change forwarding for other modes). */
export function fullnatSysctls(rules: readonly FullnatRule[]): SysctlSetting[] {
  if (rules.length === 0) return [];
  const out: SysctlSetting[] = [
    { name: 'net.ipv4.vs.conntrack', value: '1', why: 'IPVS keeps conntrack entries, so netfilter can source-NAT its masqueraded packets' },
  ];
  if (rules.some((r) => r.family === 4)) out.push({ name: 'net.ipv4.ip_forward', value: '1', why: 'replies are forwarded back to the clients' });
  if (rules.some((r) => r.family === 6)) out.push({ name: 'net.ipv6.conf.all.forwarding', value: '1', why: 'IPv6 replies are forwarded back to the clients' });
  return out;
}

const NFPROTO = { 4: 'ipv4', 6: 'ipv6' } as const;
const IPFAM = { 4: 'ip', 6: 'ip6' } as const;

/** One rule as nft syntax (a line inside the chain). */
export function ruleStatement(r: FullnatRule): string {
  const fam = IPFAM[r.family];
  const match =
    r.match.kind === 'fwmark'
      ? `meta nfproto ${NFPROTO[r.family]} meta mark ${r.match.fwmark}`
      : `meta l4proto ${r.match.protocol} ct original ${fam} daddr ${r.match.address}${r.match.port === 0 ? '' : ` ct original proto-dst ${r.match.port}`}`;
  return `${match} snat ${fam} to ${r.source} comment "${COMMENT_PREFIX}${r.name}"`;
}

/** The whole table in nft syntax. */
export function renderFullnatTable(rules: readonly FullnatRule[]): string {
  const lines = [
    `table ${FULLNAT_TABLE.family} ${FULLNAT_TABLE.name} {`,
    `\tchain ${FULLNAT_CHAIN} {`,
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    ...rules.map((r) => `\t\t${ruleStatement(r)}`),
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The `nft -f -` script that makes the table exactly `rules` in one transaction: declare the table (a no-op
 * when it exists, so the delete cannot fail), delete it, create it anew. With no rules the table is deleted.
 */
export function renderFullnatScript(rules: readonly FullnatRule[]): string {
  const t = `${FULLNAT_TABLE.family} ${FULLNAT_TABLE.name}`;
  const head = `table ${t}\ndelete table ${t}\n`;
  return rules.length === 0 ? head : head + renderFullnatTable(rules);
}

// ---------------------------------------------------------------------------------------------------------
// Comparing with what nft reports

/** The canonical text of one desired rule, as `ruleSignatureOf` computes it from nft's JSON. */
export function ruleSignature(r: FullnatRule): string {
  const fam = IPFAM[r.family];
  const parts =
    r.match.kind === 'fwmark'
      ? [`nfproto=${NFPROTO[r.family]}`, `mark=${r.match.fwmark}`]
      : [`l4proto=${r.match.protocol}`, `ct.original.${fam}.daddr=${r.match.address}`, ...(r.match.port === 0 ? [] : [`ct.original.proto-dst=${r.match.port}`])];
  return [...parts, `snat=${fam} ${r.source}`, `comment=${COMMENT_PREFIX}${r.name}`].join(' ');
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** One nft JSON expression as a signature part; unknown forms keep their JSON so they never compare equal. */
function exprSignature(e: unknown): string {
  const unknown = `?${JSON.stringify(e)}`;
  if (!isRecord(e)) return unknown;
  const m = e['match'];
  if (isRecord(m)) {
    if (m['op'] !== '==') return unknown;
    const left = m['left'];
    const right = m['right'];
    if (!isRecord(left) || (typeof right !== 'string' && typeof right !== 'number')) return unknown;
    const meta = left['meta'];
    if (isRecord(meta)) {
      if (meta['key'] === 'l4proto' || meta['key'] === 'nfproto' || meta['key'] === 'mark') return `${String(meta['key'])}=${String(right)}`;
      return unknown;
    }
    const ct = left['ct'];
    if (isRecord(ct) && ct['dir'] === 'original' && typeof ct['key'] === 'string') {
      // nft 1.0.6 writes `"key": "ip daddr"`; other versions may split the family out.
      const key = typeof ct['family'] === 'string' ? `${ct['family']} ${ct['key']}` : ct['key'];
      return `ct.original.${key.replace(' ', '.')}=${String(right)}`;
    }
    return unknown;
  }
  const snat = e['snat'];
  if (isRecord(snat)) {
    const keys = Object.keys(snat).sort().join(',');
    if (keys !== 'addr,family' || typeof snat['addr'] !== 'string') return unknown;
    return `snat=${String(snat['family'])} ${snat['addr']}`;
  }
  return unknown;
}

/** What `nft -j list table inet tandem_fullnat` says, reduced to what tandem compares. */
export interface NftTableState {
  /** True when the table holds exactly one chain with tandem's hook, type, priority and policy, and nothing else. */
  shapeOk: boolean;
  /** Rule signatures in chain order. */
  rules: string[];
  /** Why shapeOk is false (for logs). */
  problems: string[];
}

/** Reduces nft's JSON output of the table to an NftTableState; anything unexpected makes it differ. */
export function parseNftTable(json: unknown): NftTableState {
  const problems: string[] = [];
  const rules: string[] = [];
  const items = isRecord(json) && Array.isArray(json['nftables']) ? (json['nftables'] as unknown[]) : undefined;
  if (items === undefined) return { shapeOk: false, rules, problems: ['nft output has no `nftables` array'] };
  let chains = 0;
  for (const item of items) {
    if (!isRecord(item)) continue;
    const [kind] = Object.keys(item);
    const body = kind === undefined ? undefined : item[kind];
    if (kind === 'metainfo' || kind === 'table') continue;
    if (kind === 'chain' && isRecord(body)) {
      chains++;
      const ok =
        body['name'] === FULLNAT_CHAIN && body['type'] === 'nat' && body['hook'] === 'postrouting' && body['prio'] === SRCNAT_PRIORITY && body['policy'] === 'accept';
      if (!ok) problems.push(`unexpected chain ${JSON.stringify(body)}`);
      continue;
    }
    if (kind === 'rule' && isRecord(body)) {
      if (body['chain'] !== FULLNAT_CHAIN) problems.push(`rule in chain ${String(body['chain'])}`);
      const exprs = Array.isArray(body['expr']) ? (body['expr'] as unknown[]) : [];
      const comment = typeof body['comment'] === 'string' ? ` comment=${body['comment']}` : '';
      rules.push(exprs.map(exprSignature).join(' ') + comment);
      continue;
    }
    problems.push(`unexpected ${kind ?? 'object'} in the table`);
  }
  if (chains !== 1) problems.push(`${chains} chains (expected 1)`);
  return { shapeOk: problems.length === 0, rules, problems };
}

/** What to do about the table. */
export type FullnatPlan =
  | { action: 'none'; reason: string }
  | { action: 'replace' | 'delete'; reason: string; script: string };

/**
 * Compares the desired rules with the table's state (undefined = the table does not exist) and returns the
 * transaction that fixes it, if any.
 */
export function planFullnat(desired: readonly FullnatRule[], actual: NftTableState | undefined): FullnatPlan {
  if (desired.length === 0) {
    return actual === undefined ? { action: 'none', reason: 'no FULLNAT services and no table' } : { action: 'delete', reason: 'no FULLNAT services: the table goes', script: renderFullnatScript([]) };
  }
  if (actual === undefined) return { action: 'replace', reason: 'the table does not exist', script: renderFullnatScript(desired) };
  const want = desired.map(ruleSignature);
  const same = actual.shapeOk && actual.rules.length === want.length && actual.rules.every((r, i) => r === want[i]);
  if (same) return { action: 'none', reason: 'the table matches' };
  const why = !actual.shapeOk ? actual.problems.join('; ') : `rules differ (${actual.rules.length} in the kernel, ${want.length} wanted)`;
  return { action: 'replace', reason: why, script: renderFullnatScript(desired) };
}

// ---------------------------------------------------------------------------------------------------------
// Driver

/** The host side FULLNAT needs: nft and sysctls (the real one is nft.ts `createNftHost`). */
export interface FullnatHost {
  /** `nft -j list table inet tandem_fullnat` as parsed JSON; undefined when the table does not exist. */
  listTable(): Promise<unknown>;
  /** Runs an nft script as one transaction (`nft -f -`). */
  runScript(script: string): Promise<void>;
  /** A sysctl's value (trimmed), or undefined when it does not exist. */
  readSysctl(name: string): Promise<string | undefined>;
  writeSysctl(name: string, value: string): Promise<void>;
}

/** One sysctl looked at in a run. */
export interface SysctlOutcome {
  name: string;
  from: string | undefined;
  to: string;
  status: 'ok' | 'set' | 'planned' | 'failed';
  error?: string;
}

/** What one FULLNAT run found and did. */
export interface FullnatReport {
  /** `none`: the table was right; `replace` / `delete`: it was (or, in a dry run, would be) changed. */
  action: FullnatPlan['action'];
  /** True when nothing was changed because it was a dry run. */
  dryRun: boolean;
  rules: number;
  reason: string;
  sysctls: SysctlOutcome[];
  /** Set when reading or writing the table (or a sysctl) failed. */
  error: string | undefined;
}

export interface FullnatReconcilerDeps {
  host: FullnatHost;
  logger: Logger;
  desired: () => FullnatRule[];
}

/** Reconciles the FULLNAT table and its sysctls; one run at a time is the caller's job (the IPVS reconciler). */
export class FullnatReconciler {
  constructor(private readonly deps: FullnatReconcilerDeps) {}

  /** Sysctls first (so connections made once the rules exist carry conntrack), then the table. Never throws. */
  async reconcileOnce(opts: { dryRun?: boolean } = {}): Promise<FullnatReport> {
    const dryRun = opts.dryRun === true;
    const { host, logger } = this.deps;
    let rules: FullnatRule[];
    try {
      rules = this.deps.desired();
    } catch (e) {
      return { action: 'none', dryRun, rules: 0, reason: 'desired rules unavailable', sysctls: [], error: messageOf(e) };
    }
    const errors: string[] = [];
    const sysctls: SysctlOutcome[] = [];
    for (const s of fullnatSysctls(rules)) {
      let from: string | undefined;
      try {
        from = await host.readSysctl(s.name);
      } catch (e) {
        sysctls.push({ name: s.name, from, to: s.value, status: 'failed', error: messageOf(e) });
        errors.push(`cannot read ${s.name}: ${messageOf(e)}`);
        continue;
      }
      if (from === s.value) {
        sysctls.push({ name: s.name, from, to: s.value, status: 'ok' });
        continue;
      }
      if (from === undefined) {
        const hint = s.name.startsWith('net.ipv4.vs.') ? ' (the ip_vs module is not loaded)' : '';
        sysctls.push({ name: s.name, from, to: s.value, status: 'failed', error: `does not exist${hint}` });
        errors.push(`${s.name} does not exist${hint}`);
        continue;
      }
      if (dryRun) {
        sysctls.push({ name: s.name, from, to: s.value, status: 'planned' });
        continue;
      }
      try {
        await host.writeSysctl(s.name, s.value);
        sysctls.push({ name: s.name, from, to: s.value, status: 'set' });
        logger.log('info', 'sysctl set for FULLNAT', { sysctl: s.name, from, to: s.value, why: s.why });
      } catch (e) {
        sysctls.push({ name: s.name, from, to: s.value, status: 'failed', error: messageOf(e) });
        errors.push(`cannot set ${s.name}=${s.value}: ${messageOf(e)}`);
      }
    }
    let state: NftTableState | undefined;
    try {
      const json = await host.listTable();
      state = json === undefined ? undefined : parseNftTable(json);
    } catch (e) {
      errors.push(`cannot read table ${FULLNAT_TABLE.family} ${FULLNAT_TABLE.name}: ${messageOf(e)}`);
      return { action: 'none', dryRun, rules: rules.length, reason: 'table unreadable', sysctls, error: errors.join('; ') };
    }
    const plan = planFullnat(rules, state);
    if (plan.action !== 'none' && !dryRun) {
      try {
        await host.runScript(plan.script);
        logger.log('info', `FULLNAT table ${plan.action === 'delete' ? 'deleted' : 'replaced'}`, { table: `${FULLNAT_TABLE.family} ${FULLNAT_TABLE.name}`, rules: rules.length, reason: plan.reason });
      } catch (e) {
        errors.push(`cannot ${plan.action} table ${FULLNAT_TABLE.family} ${FULLNAT_TABLE.name}: ${messageOf(e)}`);
      }
    }
    return { action: plan.action, dryRun, rules: rules.length, reason: plan.reason, sysctls, error: errors.length === 0 ? undefined : errors.join('; ') };
  }
}
