/**
 * `tandem realserver check`: compares a plan (prepare.ts) with the running system, through a small read-only
 * probe interface (the adapter is system.ts; tests use fakes), and reports one line per requirement: `ok`, or
 * `MISSING` with what was found and the exact command that fixes it. A real server that answers ARP for the VIP,
 * lacks the VIP, or drops decapsulated packets is the most common reason an LVS service gets no traffic.
 */

import { describeRequirement, fixCommand, type Requirement } from './prepare.ts';

/** Read-only view of the system a check needs. */
export interface RealserverProbe {
  /** The integer value of a sysctl (dotted name), or undefined when it does not exist (no such interface). */
  readSysctl(key: string): Promise<number | undefined>;
  /** Addresses on an interface as `address/prefix` (canonical text), or undefined when there is no such interface. */
  addresses(ifname: string): Promise<string[] | undefined>;
  /** Whether an interface exists and whether it is administratively up. */
  link(ifname: string): Promise<{ exists: boolean; up: boolean }>;
  /** UDP ports with a GUE FOU receiver. */
  fouGuePorts(): Promise<number[]>;
}

/** The outcome for one requirement. */
export interface CheckResult {
  requirement: Requirement;
  ok: boolean;
  /** What was found when not ok, e.g. `is 0`, `tunl0 does not exist`. */
  found: string;
  /** The command that fixes it. */
  fix: string;
}

/** Checks one requirement. */
export async function checkRequirement(r: Requirement, probe: RealserverProbe): Promise<CheckResult> {
  const result = (ok: boolean, found: string): CheckResult => ({ requirement: r, ok, found, fix: fixCommand(r) });
  switch (r.kind) {
    case 'sysctl': {
      const v = await probe.readSysctl(r.key);
      if (v === undefined) return result(false, 'does not exist (no such interface?)');
      return result(r.accept.includes(v), `is ${v}`);
    }
    case 'address': {
      const addrs = await probe.addresses(r.ifname);
      if (addrs === undefined) return result(false, `${r.ifname} does not exist`);
      const want = `${r.address}/${r.prefixLength}`;
      if (addrs.includes(want)) return result(true, 'present');
      const other = addrs.find((a) => a.startsWith(`${r.address}/`));
      return result(false, other !== undefined ? `present as ${other}: the prefix must be /${r.prefixLength}` : 'absent');
    }
    case 'link': {
      const l = await probe.link(r.ifname);
      if (!l.exists) return result(false, `${r.ifname} does not exist (module ${r.module} not loaded)`);
      return result(l.up, l.up ? 'up' : `${r.ifname} is down`);
    }
    case 'fou': {
      const ports = await probe.fouGuePorts();
      return result(ports.includes(r.port), ports.length === 0 ? 'no GUE port' : `GUE ports: ${ports.join(', ')}`);
    }
  }
}

/** Checks every requirement, in plan order. */
export async function checkRealserver(reqs: readonly Requirement[], probe: RealserverProbe): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const r of reqs) out.push(await checkRequirement(r, probe));
  return out;
}

/**
 * The report: one line per requirement,
 *   `ok       sysctl net.ipv4.conf.all.arp_ignore = 1 or 2`
 *   `MISSING  address 10.0.0.1/32 on lo: absent; fix: ip addr add 10.0.0.1/32 dev lo`
 * then a summary line.
 */
export function formatCheckReport(results: readonly CheckResult[]): string {
  let out = '';
  for (const r of results) {
    const what = describeRequirement(r.requirement);
    out += r.ok ? `ok       ${what}\n` : `MISSING  ${what}: ${r.found}; fix: ${r.fix}\n`;
  }
  const missing = results.filter((r) => !r.ok).length;
  out += missing === 0 ? `all ${results.length} requirements hold\n` : `${missing} of ${results.length} requirements missing\n`;
  return out;
}
