/**
 * diff(desired, actual) -> the minimal ops that turn the kernel's tables into the desired ones. Pure.
 *
 * Order: destination deletes, service deletes, then service adds and edits, then destination adds and
 * edits — services exist before their destinations are added, and destinations leave before their service
 * or a replacement needs their slot. A service that must go is removed with one DEL_SERVICE (the kernel drops
 * its destinations with it). Attributes that changed are edited with SET_SERVICE / SET_DEST, never by
 * delete + add, so established connections and counters survive.
 */

import {
  SVC_FLAGS,
  destKeyString,
  serviceKeyString,
  type Dest,
  type DestAttrs,
  type DestKey,
  type IpvsOp,
  type IpvsTable,
  type Service,
  type ServiceAttrs,
  type ServiceKey,
} from './model.ts';

export interface DiffOptions {
  /**
   * Whether a service found in the kernel but not desired may be deleted. Services tandem does not own
   * (another tool's) are left alone; the reconciler passes "was desired before" here.
   */
  mayDelete: (key: ServiceKey) => boolean;
}

/** IPv4 netmask / IPv6 prefix the kernel reports for a service that is not persistent. */
export function defaultNetmask(key: ServiceKey): number {
  return key.family === 6 ? 128 : 0xffffffff;
}

/** Service attributes as the kernel reports them, so desired and dumped values compare equal. */
export function normalizeServiceAttrs(s: ServiceAttrs & { key: ServiceKey }): ServiceAttrs {
  const persistent = s.timeoutS > 0;
  // The model never carries HASHED (kernel-internal) or PERSISTENT (implied by timeoutS): the codec folds them
  // away when decoding and sets PERSISTENT from the timeout when encoding.
  return {
    scheduler: s.scheduler,
    flags: s.flags & ~(SVC_FLAGS.HASHED | SVC_FLAGS.PERSISTENT),
    timeoutS: s.timeoutS,
    netmask: persistent ? s.netmask : defaultNetmask(s.key),
    peName: s.peName,
  };
}

/** Destination attributes as the kernel reports them (tunnel fields matter only for tunnel forwarding). */
export function normalizeDestAttrs(d: DestAttrs): DestAttrs {
  return {
    fwd: d.fwd,
    weight: d.weight,
    upperThreshold: d.upperThreshold,
    lowerThreshold: d.lowerThreshold,
    tunnel: d.fwd === 'tunnel' ? { ...d.tunnel, port: d.tunnel.type === 'gue' ? d.tunnel.port : 0 } : { type: 'ipip', port: 0, flags: 0 },
  };
}

export function serviceAttrsEqual(a: ServiceAttrs & { key: ServiceKey }, b: ServiceAttrs & { key: ServiceKey }): boolean {
  const x = normalizeServiceAttrs(a);
  const y = normalizeServiceAttrs(b);
  return x.scheduler === y.scheduler && x.flags === y.flags && x.timeoutS === y.timeoutS && x.netmask === y.netmask && x.peName === y.peName;
}

export function destAttrsEqual(a: DestAttrs, b: DestAttrs): boolean {
  const x = normalizeDestAttrs(a);
  const y = normalizeDestAttrs(b);
  return (
    x.fwd === y.fwd &&
    x.weight === y.weight &&
    x.upperThreshold === y.upperThreshold &&
    x.lowerThreshold === y.lowerThreshold &&
    x.tunnel.type === y.tunnel.type &&
    x.tunnel.port === y.tunnel.port &&
    x.tunnel.flags === y.tunnel.flags
  );
}

// Built field by field, not by spreading the normalized attributes: a cold table is one body per dest, and
// object spreads are the slow path.
function serviceOpBody(s: Service): ServiceAttrs & { key: ServiceKey } {
  const n = normalizeServiceAttrs(s);
  return { key: s.key, scheduler: n.scheduler, flags: n.flags, timeoutS: n.timeoutS, netmask: n.netmask, peName: n.peName };
}

function destOpBody(d: Dest): DestKey & DestAttrs {
  const n = normalizeDestAttrs(d);
  return { family: d.family, address: d.address, port: d.port, fwd: n.fwd, weight: n.weight, upperThreshold: n.upperThreshold, lowerThreshold: n.lowerThreshold, tunnel: n.tunnel };
}

/** The ops that make `actual` equal to `desired` (for the services `desired` names and those `mayDelete` allows). */
export function diff(desired: IpvsTable, actual: IpvsTable, opts: DiffOptions): IpvsOp[] {
  const actualByKey = new Map(actual.services.map((s) => [serviceKeyString(s.key), s]));
  const desiredKeys = new Set(desired.services.map((s) => serviceKeyString(s.key)));
  const delDests: IpvsOp[] = [];
  const delServices: IpvsOp[] = [];
  const services: IpvsOp[] = [];
  const dests: IpvsOp[] = [];

  for (const a of actual.services) {
    if (!desiredKeys.has(serviceKeyString(a.key)) && opts.mayDelete(a.key)) delServices.push({ op: 'delService', key: a.key });
  }
  for (const d of desired.services) {
    const a = actualByKey.get(serviceKeyString(d.key));
    if (a === undefined) {
      services.push({ op: 'addService', service: serviceOpBody(d) });
      for (const dd of d.dests) dests.push({ op: 'addDest', service: d.key, dest: destOpBody(dd) });
      continue;
    }
    if (!serviceAttrsEqual(d, a)) services.push({ op: 'editService', service: serviceOpBody(d) });
    const actualDests = new Map(a.dests.map((x) => [destKeyString(x), x]));
    const wanted = new Set(d.dests.map((x) => destKeyString(x)));
    for (const ad of a.dests) {
      if (!wanted.has(destKeyString(ad))) delDests.push({ op: 'delDest', service: d.key, dest: { family: ad.family, address: ad.address, port: ad.port } });
    }
    for (const dd of d.dests) {
      const ad = actualDests.get(destKeyString(dd));
      if (ad === undefined) dests.push({ op: 'addDest', service: d.key, dest: destOpBody(dd) });
      else if (!destAttrsEqual(dd, ad)) dests.push({ op: 'editDest', service: d.key, dest: destOpBody(dd) });
    }
  }
  return [...delDests, ...delServices, ...services, ...dests];
}

/** Applies ops to a table in memory, as the kernel would (for tests and dry runs). */
export function applyOps(table: IpvsTable, ops: readonly IpvsOp[]): IpvsTable {
  const services = new Map<string, Service>(table.services.map((s) => [serviceKeyString(s.key), { ...s, dests: s.dests.map((d) => ({ ...d })) }]));
  for (const op of ops) {
    switch (op.op) {
      case 'addService':
      case 'editService': {
        const k = serviceKeyString(op.service.key);
        const prev = services.get(k);
        services.set(k, { ...op.service, dests: prev?.dests ?? [] });
        break;
      }
      case 'delService':
        services.delete(serviceKeyString(op.key));
        break;
      case 'addDest':
      case 'editDest': {
        const s = services.get(serviceKeyString(op.service));
        if (s === undefined) break;
        const k = destKeyString(op.dest);
        s.dests = [...s.dests.filter((d) => destKeyString(d) !== k), { ...op.dest }];
        break;
      }
      case 'delDest': {
        const s = services.get(serviceKeyString(op.service));
        if (s === undefined) break;
        const k = destKeyString(op.dest);
        s.dests = s.dests.filter((d) => destKeyString(d) !== k);
        break;
      }
    }
  }
  return { services: [...services.values()] };
}
