/**
 * A recording fake IpvsClient for pure-core and driver tests: an in-memory IPVS table changed with applyOps
 * (src/ipvs/diff.ts), answering like the kernel where tests need it (EEXIST for a service that exists, ESRCH
 * for a dest of a missing service, ENOENT for a missing dest or an unknown scheduler) and like the netlink
 * codec (a service op carrying HASHED or PERSISTENT in `flags` fails the whole batch), with injectable errors
 * per op and per dump. Every call is recorded.
 */

import { applyOps } from '../../src/ipvs/diff.ts';
import {
  destKeyString,
  serviceKeyString,
  type Dest,
  type IpvsClient,
  type IpvsInfo,
  type IpvsOp,
  type IpvsTable,
  type IpvsTimeouts,
  type OpResult,
  type ServiceKey,
  type SyncDaemon,
} from '../../src/ipvs/model.ts';
import { CodecError, NetlinkError } from '../../src/lib/errors.ts';

const ENOENT = 2;
const ESRCH = 3;
const EEXIST = 17;

/** Deep copy of a table (so callers never share objects with the fake's state). */
export function cloneTable(t: IpvsTable): IpvsTable {
  return { services: t.services.map((s) => ({ ...s, key: { ...s.key }, dests: s.dests.map((d) => ({ ...d, tunnel: { ...d.tunnel } })) })) };
}

/** A call the fake saw. */
export type FakeCall = { method: 'dump' } | { method: 'apply'; ops: IpvsOp[] } | { method: 'getTimeouts' } | { method: 'setTimeouts'; t: IpvsTimeouts };

export class FakeIpvsClient implements IpvsClient {
  table: IpvsTable;
  timeouts: IpvsTimeouts = { tcp: 900, tcpFin: 120, udp: 300 };
  readonly calls: FakeCall[] = [];
  /** Schedulers the fake kernel lacks (ENOENT on add/edit), like `twos` before Linux 6.2. */
  readonly missingSchedulers = new Set<string>(['twos']);
  /** Per-op error injection: return an errno to fail the op. */
  failOp: (op: IpvsOp) => number | undefined = () => undefined;
  /** Errors for the next dumps (one is used per dump call). */
  readonly dumpErrors: NetlinkError[] = [];
  /** When set, the next apply call rejects as a whole with this error. */
  applyRejects: Error | undefined;
  closed = false;

  constructor(initial: IpvsTable = { services: [] }) {
    this.table = cloneTable(initial);
  }

  /** The ops of every apply call, flattened. */
  get appliedOps(): IpvsOp[] {
    return this.calls.flatMap((c) => (c.method === 'apply' ? c.ops : []));
  }

  /** Number of apply calls (batches). */
  get applyCalls(): number {
    return this.calls.filter((c) => c.method === 'apply').length;
  }

  async info(): Promise<IpvsInfo> {
    return { version: '1.2.1', connTabSize: 4096 };
  }

  async dump(): Promise<IpvsTable> {
    this.calls.push({ method: 'dump' });
    const err = this.dumpErrors.shift();
    if (err !== undefined) throw err;
    return cloneTable(this.table);
  }

  async listDests(service: ServiceKey): Promise<Dest[]> {
    const s = this.table.services.find((x) => serviceKeyString(x.key) === serviceKeyString(service));
    return (s?.dests ?? []).map((d) => ({ ...d }));
  }

  /** Applies ops one by one like the kernel (each answered on its own). */
  async apply(ops: readonly IpvsOp[]): Promise<OpResult[]> {
    this.calls.push({ method: 'apply', ops: [...ops] });
    if (this.applyRejects !== undefined) {
      const e = this.applyRejects;
      this.applyRejects = undefined;
      throw e;
    }
    // Like the netlink codec: a request it cannot encode fails the whole batch before anything is sent.
    for (const op of ops) {
      if ((op.op === 'addService' || op.op === 'editService') && (op.service.flags & 0x3) !== 0) {
        throw new CodecError(`service ${serviceKeyString(op.service.key)}: flags 0x${op.service.flags.toString(16)} include HASHED or PERSISTENT (set through timeoutS)`);
      }
    }
    const results: OpResult[] = [];
    for (const op of ops) {
      const errno = this.failOp(op) ?? this.kernelCheck(op);
      if (errno !== undefined) {
        results.push({ ok: false, error: new NetlinkError(errno, op.op, objectOf(op)) });
        continue;
      }
      // Dumps show what the codec decodes: PERSISTENT and HASHED are folded away, so the table stores ops as given.
      this.table = applyOps(this.table, [op]);
      results.push({ ok: true });
    }
    return results;
  }

  private kernelCheck(op: IpvsOp): number | undefined {
    const find = (k: ServiceKey) => this.table.services.find((s) => serviceKeyString(s.key) === serviceKeyString(k));
    switch (op.op) {
      case 'addService':
        if (find(op.service.key) !== undefined) return EEXIST;
        return this.missingSchedulers.has(op.service.scheduler) ? ENOENT : undefined;
      case 'editService':
        if (find(op.service.key) === undefined) return ESRCH;
        return this.missingSchedulers.has(op.service.scheduler) ? ENOENT : undefined;
      case 'delService':
        return find(op.key) === undefined ? ESRCH : undefined;
      case 'addDest': {
        const s = find(op.service);
        if (s === undefined) return ESRCH;
        return s.dests.some((d) => destKeyString(d) === destKeyString(op.dest)) ? EEXIST : undefined;
      }
      case 'editDest':
      case 'delDest': {
        const s = find(op.service);
        if (s === undefined) return ESRCH;
        return s.dests.some((d) => destKeyString(d) === destKeyString(op.dest)) ? undefined : ENOENT;
      }
    }
  }

  async getTimeouts(): Promise<IpvsTimeouts> {
    this.calls.push({ method: 'getTimeouts' });
    return { ...this.timeouts };
  }

  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    this.calls.push({ method: 'setTimeouts', t: { ...t } });
    this.timeouts = { tcp: t.tcp || this.timeouts.tcp, tcpFin: t.tcpFin || this.timeouts.tcpFin, udp: t.udp || this.timeouts.udp };
  }

  async zero(): Promise<void> {}

  async flush(): Promise<void> {
    this.table = { services: [] };
  }

  async startDaemon(_d: SyncDaemon): Promise<void> {}
  async stopDaemon(_state: 'master' | 'backup'): Promise<void> {}
  async listDaemons(): Promise<SyncDaemon[]> {
    return [];
  }

  close(): void {
    this.closed = true;
  }
}

function objectOf(op: IpvsOp): string {
  const key = op.op === 'delService' ? op.key : op.op === 'addService' || op.op === 'editService' ? op.service.key : op.service;
  return 'dest' in op ? `${serviceKeyString(key)} -> ${destKeyString(op.dest)}` : serviceKeyString(key);
}
