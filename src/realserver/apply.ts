/**
 * `tandem realserver up` and `down`: carries out a plan (prepare.ts) on a host (system.ts, or a fake in tests)
 * and undoes it, touching only what tandem itself changed. What `up` changed is recorded in a state value (kept
 * in a file by the CLI, /run/tandem/realserver.json by default): the sysctls it wrote with their previous
 * values, the addresses it added, the links it brought up, the GUE ports it opened, each with the VIPs that
 * needed it. `down --vip X` drops X from every record and undoes the records no VIP needs any more, in reverse
 * order; a sysctl is restored only if it still holds the value tandem wrote. Whatever was already in place before
 * `up` is never recorded, so never undone. Kernel modules are loaded when needed and never unloaded (other tunnels
 * may use them).
 */

import type { AddressFamily } from '../config/types.ts';
import { VipError, messageOf } from '../lib/errors.ts';
import { checkRequirement, type RealserverProbe } from './check.ts';
import { describeRequirement, requirementId, type Requirement } from './prepare.ts';

/** The changes a host can make. Every method rejects with a TandemError (VipError) naming what failed. */
export interface RealserverActuator {
  writeSysctl(key: string, value: number): Promise<void>;
  addAddress(ifname: string, address: string, prefixLength: number, family: AddressFamily): Promise<void>;
  removeAddress(ifname: string, address: string, prefixLength: number, family: AddressFamily): Promise<void>;
  loadModule(name: string): Promise<void>;
  setLinkUp(ifname: string, up: boolean): Promise<void>;
  addFouGuePort(port: number): Promise<void>;
  removeFouGuePort(port: number): Promise<void>;
}

/** A host: what check reads plus what up/down change. */
export type RealserverHost = RealserverProbe & RealserverActuator;

/** One change tandem made. */
export type StateItem =
  | { kind: 'sysctl'; key: string; previous: number; value: number; owners: string[] }
  | { kind: 'address'; ifname: string; address: string; prefixLength: number; family: AddressFamily; owners: string[] }
  | { kind: 'link'; ifname: string; owners: string[] }
  | { kind: 'fou'; port: number; owners: string[] };

/** Everything tandem changed on this real server, oldest first. */
export interface RealserverState {
  version: 1;
  items: StateItem[];
}

/** A state with no changes recorded. */
export function emptyState(): RealserverState {
  return { version: 1, items: [] };
}

/** The requirement id of a recorded change (same ids as prepare.ts's requirementId). */
export function stateItemId(i: StateItem): string {
  switch (i.kind) {
    case 'sysctl':
      return `sysctl ${i.key}`;
    case 'address':
      return `address ${i.address}/${i.prefixLength} dev ${i.ifname}`;
    case 'link':
      return `link ${i.ifname}`;
    case 'fou':
      return `fou port ${i.port} gue`;
  }
}

/** What up/down did, one line per requirement, and the new state. */
export interface ApplyOutcome {
  state: RealserverState;
  lines: string[];
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])];
}

/** Makes one missing requirement hold; returns the record of what changed (undefined = nothing to undo). */
async function fix(r: Requirement, host: RealserverHost): Promise<StateItem | undefined> {
  switch (r.kind) {
    case 'sysctl': {
      const previous = await host.readSysctl(r.key);
      if (previous === undefined) throw new VipError(`sysctl ${r.key} does not exist (is the interface there?)`);
      await host.writeSysctl(r.key, r.value);
      return { kind: 'sysctl', key: r.key, previous, value: r.value, owners: r.owners };
    }
    case 'address':
      await host.addAddress(r.ifname, r.address, r.prefixLength, r.family);
      return { kind: 'address', ifname: r.ifname, address: r.address, prefixLength: r.prefixLength, family: r.family, owners: r.owners };
    case 'link': {
      let l = await host.link(r.ifname);
      if (!l.exists) {
        await host.loadModule(r.module);
        l = await host.link(r.ifname);
        if (!l.exists) throw new VipError(`module ${r.module} is loaded but ${r.ifname} does not exist`);
      }
      if (l.up) return undefined;
      await host.setLinkUp(r.ifname, true);
      return { kind: 'link', ifname: r.ifname, owners: r.owners };
    }
    case 'fou':
      await host.loadModule('fou');
      await host.addFouGuePort(r.port);
      return { kind: 'fou', port: r.port, owners: r.owners };
  }
}

/**
 * Makes every requirement hold, in plan order, and records what it changed. A requirement that already holds is
 * left alone (and, when tandem made it hold earlier, gains the new owners). Stops at the first failure, with the
 * state so far in the error's `state` so the caller can save it.
 */
export async function realserverUp(reqs: readonly Requirement[], host: RealserverHost, state: RealserverState): Promise<ApplyOutcome> {
  const items = state.items.map((i) => ({ ...i, owners: [...i.owners] }));
  const lines: string[] = [];
  for (const r of reqs) {
    const id = requirementId(r);
    const recorded = items.find((i) => stateItemId(i) === id);
    const before = await checkRequirement(r, host);
    if (before.ok) {
      if (recorded !== undefined) recorded.owners = union(recorded.owners, r.owners);
      lines.push(`ok       ${describeRequirement(r)}`);
      continue;
    }
    let item: StateItem | undefined;
    try {
      item = await fix(r, host);
    } catch (e) {
      throw new RealserverApplyError(`${describeRequirement(r)}: ${messageOf(e)}`, { version: 1, items }, e);
    }
    if (item !== undefined) {
      if (recorded !== undefined) items.splice(items.indexOf(recorded), 1, { ...item, owners: union(recorded.owners, item.owners) });
      else items.push(item);
    }
    lines.push(`done     ${describeRequirement(r)} (was: ${before.found}; ${before.fix})`);
  }
  return { state: { version: 1, items }, lines };
}

/** up/down stopped part-way: the message says where; `state` records what was changed before that. */
export class RealserverApplyError extends VipError {
  readonly state: RealserverState;
  constructor(message: string, state: RealserverState, cause: unknown) {
    super(message, { cause });
    this.state = state;
  }
}

/** Undoes one recorded change; returns the line to print. */
async function undo(i: StateItem, host: RealserverHost): Promise<string> {
  switch (i.kind) {
    case 'sysctl': {
      const now = await host.readSysctl(i.key);
      if (now !== i.value) return `kept     sysctl ${i.key} = ${now ?? '(gone)'}: changed since tandem set ${i.value}`;
      await host.writeSysctl(i.key, i.previous);
      return `undone   sysctl ${i.key} = ${i.previous} (tandem had set ${i.value})`;
    }
    case 'address':
      await host.removeAddress(i.ifname, i.address, i.prefixLength, i.family);
      return `undone   address ${i.address}/${i.prefixLength} removed from ${i.ifname}`;
    case 'link': {
      const l = await host.link(i.ifname);
      if (l.exists && l.up) await host.setLinkUp(i.ifname, false);
      return `undone   link ${i.ifname} set down`;
    }
    case 'fou':
      await host.removeFouGuePort(i.port);
      return `undone   GUE receive port ${i.port} removed`;
  }
}

/**
 * Releases `vips`: removes them from every record and undoes, newest first, each change no remaining VIP needs.
 * VIPs tandem never prepared are reported and left alone. Stops at the first failure (RealserverApplyError with
 * the state so far).
 */
export async function realserverDown(vips: readonly string[], host: RealserverHost, state: RealserverState): Promise<ApplyOutcome> {
  const lines: string[] = [];
  const known = new Set(state.items.flatMap((i) => i.owners));
  for (const v of vips) if (!known.has(v)) lines.push(`skipped  ${v}: not prepared by tandem (nothing recorded), left alone`);
  let items = state.items.map((i) => ({ ...i, owners: i.owners.filter((o) => !vips.includes(o)) }));
  for (const i of [...items].reverse()) {
    if (i.owners.length > 0) continue;
    try {
      lines.push(await undo(i, host));
    } catch (e) {
      throw new RealserverApplyError(`undo ${stateItemId(i)}: ${messageOf(e)}`, { version: 1, items }, e);
    }
    items = items.filter((x) => x !== i);
  }
  return { state: { version: 1, items }, lines };
}
