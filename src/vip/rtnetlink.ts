/**
 * Adding and removing VIP addresses through rtnetlink (RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR over the
 * `netlink` package), never by running `ip`. Both operations are idempotent, as a failover may repeat them:
 * adding a present VIP (EEXIST) and removing an absent one (EADDRNOTAVAIL) succeed. IPv6 VIPs are added with
 * IFA_F_NODAD so they are usable at once instead of tentative for the DAD period.
 */

import { getSystemErrorName } from 'node:util';
import { AttrStream, createRtNetlink, parseError, rt, type NetlinkMessage, type RtNetlinkSocket } from 'netlink';
import type { VipConfig } from '../config/types.ts';
import { formatAddress } from '../lib/address.ts';
import { NetlinkError, VipError, errnoName, messageOf } from '../lib/errors.ts';
import { parseIpv4, parseIpv6 } from './frames.ts';
import type { VipManager } from './index.ts';

/** Address families as rtnetlink numbers them. */
const AF = { unspec: 0, inet: 2, inet6: 10 } as const;
/** Netlink message header flags used here (linux/netlink.h). */
const NLM_F = { create: 0x400, excl: 0x200, dump: 0x300 } as const;
/** NLMSG_ERROR: an error or (errno 0) an acknowledgement. */
const NLMSG_ERROR = 2;
/** errno values that make add/remove idempotent. */
const ERRNO = { EEXIST: 17, ENODEV: 19, EADDRNOTAVAIL: 99 } as const;
const RT_SCOPE_UNIVERSE = 0;
const REQUEST_TIMEOUT_MS = 5000;

/** A negative NLMSG_ERROR answer from the kernel, before it is turned into a VipError. */
class KernelRefusal extends Error {
  constructor(readonly errno: number, readonly operation: string, readonly object: string) {
    super(`${operation} ${object}: ${errnoText(errno)}`);
  }
}

/** `EEXIST (errno 17)`. */
function errnoText(errno: number): string {
  let name: string;
  try {
    name = getSystemErrorName(-Math.abs(errno));
  } catch {
    name = errnoName(errno);
  }
  return `${name} (errno ${Math.abs(errno)})`;
}

/** The VIP as `address/prefix`. */
function vipText(vip: VipConfig): string {
  return `${vip.address}/${vip.prefixLength}`;
}

/** The VIP's address bytes, validated against its family and prefix length; throws VipError. */
function vipBytes(vip: VipConfig, op: string): Buffer {
  const max = vip.family === 4 ? 32 : 128;
  if (!Number.isInteger(vip.prefixLength) || vip.prefixLength < 0 || vip.prefixLength > max) {
    throw new VipError(`${op} VIP ${vipText(vip)} on ${vip.interface}: prefix length must be 0-${max}`);
  }
  try {
    return vip.family === 4 ? parseIpv4(vip.address) : parseIpv6(vip.address);
  } catch (e) {
    throw new VipError(`${op} VIP ${vipText(vip)} on ${vip.interface}: ${messageOf(e)} for family ${vip.family}`, { cause: e });
  }
}

/** The rtnetlink VipManager. Opens its netlink socket on first use; close() releases it. */
export class RtnlVipManager implements VipManager {
  private sock: RtNetlinkSocket | undefined;
  private closed = false;

  /** Adds the VIP (IPv6 with IFA_F_NODAD); a VIP already present counts as added. Throws VipError. */
  async add(vip: VipConfig): Promise<void> {
    const addr = vipBytes(vip, 'add');
    const ifindex = await this.ifindexFor(vip, 'add');
    const v6 = vip.family === 6;
    const msg = new AttrStream();
    rt.formatAddressMessage(
      {
        kind: 'address',
        data: { family: v6 ? AF.inet6 : AF.inet, prefixlen: vip.prefixLength, flags: v6 ? { nodad: true } : {}, scope: RT_SCOPE_UNIVERSE, index: ifindex },
        attrs: { local: addr, address: addr, ...(v6 ? { flags: { nodad: true } } : {}) },
      },
      msg,
    );
    try {
      await this.request(rt.MessageType.NEWADDR, msg.bufs, NLM_F.create | NLM_F.excl, 'RTM_NEWADDR', `${vipText(vip)} dev ${vip.interface}`);
    } catch (e) {
      if (e instanceof KernelRefusal && e.errno === ERRNO.EEXIST) return;
      throw this.fail('add', vip, e);
    }
  }

  /** Removes the VIP; a VIP (or interface) not present counts as removed. Throws VipError. */
  async remove(vip: VipConfig): Promise<void> {
    const addr = vipBytes(vip, 'remove');
    let ifindex: number;
    try {
      ifindex = await this.ifindex(vip.interface);
    } catch (e) {
      if (e instanceof KernelRefusal && e.errno === ERRNO.ENODEV) return;
      throw this.fail('remove', vip, e);
    }
    const msg = new AttrStream();
    rt.formatAddressMessage(
      {
        kind: 'address',
        data: { family: vip.family === 6 ? AF.inet6 : AF.inet, prefixlen: vip.prefixLength, scope: RT_SCOPE_UNIVERSE, index: ifindex },
        attrs: { local: addr, address: addr },
      },
      msg,
    );
    try {
      await this.request(rt.MessageType.DELADDR, msg.bufs, 0, 'RTM_DELADDR', `${vipText(vip)} dev ${vip.interface}`);
    } catch (e) {
      if (e instanceof KernelRefusal && (e.errno === ERRNO.EADDRNOTAVAIL || e.errno === ERRNO.ENODEV)) return;
      throw this.fail('remove', vip, e);
    }
  }

  /** Every address on `ifname` (both families, link-local included) as `address/prefix`, in kernel order. */
  async list(ifname: string): Promise<string[]> {
    let ifindex: number;
    let msgs: NetlinkMessage[];
    try {
      ifindex = await this.ifindex(ifname);
      const msg = new AttrStream();
      rt.formatAddressMessage({ kind: 'address', data: { family: AF.unspec }, attrs: {} }, msg);
      msgs = await this.request(rt.MessageType.GETADDR, msg.bufs, NLM_F.dump, 'RTM_GETADDR', `dump (${ifname})`);
    } catch (e) {
      throw new VipError(`list addresses on ${ifname}: ${describe(e, ifname)}`, { cause: toCause(e) });
    }
    const out: string[] = [];
    for (const m of msgs) {
      if (m.type !== rt.MessageType.NEWADDR) continue;
      const parsed = rt.parseMessage(m.type, m.data);
      if (parsed.kind !== 'address' || parsed.data.index !== ifindex) continue;
      const bytes = parsed.attrs.local ?? parsed.attrs.address;
      if (bytes === undefined) continue;
      if (parsed.data.family === AF.inet && bytes.length === 4) out.push(`${formatAddress(bytes, 0, 4)}/${parsed.data.prefixlen ?? 32}`);
      else if (parsed.data.family === AF.inet6 && bytes.length === 16) out.push(`${formatAddress(bytes, 0, 6)}/${parsed.data.prefixlen ?? 128}`);
    }
    return out;
  }

  /** Closes the netlink socket; later calls throw VipError. */
  close(): void {
    this.closed = true;
    const sock = this.sock;
    this.sock = undefined;
    sock?.socket.close();
  }

  /**
   * The netlink socket, opened on first use. A socket error event would crash the process if unhandled: the
   * broken socket is dropped instead (its pending requests time out and fail) and the next call opens a new one.
   * Note: the netlink 0.3 addon aborts the process on a receive-buffer overflow (ENOBUFS) in native code, which no
   * handler catches; this socket joins no multicast group and has one request in flight, so it cannot overflow.
   */
  private socket(): RtNetlinkSocket {
    if (this.closed) throw new VipError('VIP manager is closed');
    if (this.sock === undefined) {
      const sock = createRtNetlink();
      sock.socket.on('error', () => {
        if (this.sock === sock) this.sock = undefined;
        try {
          sock.socket.close();
        } catch {
          // already closed
        }
      });
      this.sock = sock;
    }
    return this.sock;
  }

  /** The interface index for the VIP's interface, or a VipError naming the interface. */
  private async ifindexFor(vip: VipConfig, op: string): Promise<number> {
    try {
      return await this.ifindex(vip.interface);
    } catch (e) {
      throw this.fail(op, vip, e);
    }
  }

  /** RTM_GETLINK by IFLA_IFNAME; rejects with KernelRefusal ENODEV when there is no such interface. */
  private async ifindex(ifname: string): Promise<number> {
    const msg = new AttrStream();
    rt.formatLinkMessage({ kind: 'link', data: {}, attrs: { ifname } }, msg);
    const msgs = await this.request(rt.MessageType.GETLINK, msg.bufs, 0, 'RTM_GETLINK', ifname);
    for (const m of msgs) {
      if (m.type !== rt.MessageType.NEWLINK) continue;
      const parsed = rt.parseMessage(m.type, m.data);
      if (parsed.kind === 'link' && parsed.data.index !== undefined) return parsed.data.index;
    }
    throw new VipError(`RTM_GETLINK ${ifname}: the kernel answered without a link`);
  }

  /**
   * Sends one request (REQUEST|ACK plus `flags`) and returns the answer's messages; an NLMSG_ERROR with a
   * negative errno rejects with KernelRefusal, an acknowledgement (errno 0) resolves with no messages.
   */
  private async request(type: number, payload: Uint8Array[], flags: number, operation: string, object: string): Promise<NetlinkMessage[]> {
    const [msgs] = await this.socket().socket.request(type, payload, { flags, checkError: false, timeout: REQUEST_TIMEOUT_MS });
    const first = msgs[0];
    if (first !== undefined && first.type === NLMSG_ERROR) {
      const { errno } = parseError(first.data, first.flags);
      if (errno !== 0) throw new KernelRefusal(-errno, operation, object);
      return [];
    }
    return msgs;
  }

  /** A VipError naming the VIP, interface, operation and errno, with the kernel's answer as cause. */
  private fail(op: string, vip: VipConfig, e: unknown): VipError {
    return new VipError(`${op} VIP ${vipText(vip)} on ${vip.interface}: ${describe(e, vip.interface)}`, { cause: toCause(e) });
  }
}

/** Explains a failure; ENODEV becomes "interface X not found". */
function describe(e: unknown, ifname: string): string {
  if (e instanceof KernelRefusal) {
    if (e.errno === ERRNO.ENODEV) return `interface ${ifname} not found (${e.operation}: ${errnoText(e.errno)})`;
    const hint = e.errno === 1 ? ' (needs CAP_NET_ADMIN)' : '';
    return `${e.operation} failed: ${errnoText(e.errno)}${hint}`;
  }
  return messageOf(e);
}

/** Kernel refusals become NetlinkError (lib/errors.ts) so callers can read `errno`; anything else is kept. */
function toCause(e: unknown): unknown {
  return e instanceof KernelRefusal ? new NetlinkError(e.errno, e.operation, e.object) : e;
}
