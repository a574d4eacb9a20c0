/**
 * A raw AF_PACKET socket for sending whole Ethernet frames (gratuitous ARP, unsolicited NA). Node has no packet
 * sockets, so this is the one place in tandem that calls libc through koffi: socket(2), sendto(2) and close(2).
 * Interface index and MAC come from sysfs (/sys/class/net/<if>/), which `ip netns exec` remounts for the
 * namespace. Failures throw VipError naming the interface and the errno.
 */

import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { getSystemErrorName } from 'node:util';
import koffi from 'koffi';
import { VipError, errnoName } from '../lib/errors.ts';
import { parseMac } from './frames.ts';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const ARPHRD_ETHER = 1;
/** sizeof(struct sockaddr_ll). */
const SOCKADDR_LL_SIZE = 20;
const IFNAMSIZ = 16;
const MAC_TEXT_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number) => number;
  close: (fd: number) => number;
}

let libc: Libc | undefined;

/** Binds the three libc functions on first use (libc is not opened until a socket is needed). */
function getLibc(): Libc {
  if (libc === undefined) {
    const lib = koffi.load('libc.so.6');
    libc = {
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      sendto: lib.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
      close: lib.func('int close(int fd)'),
    };
  }
  return libc;
}

/** `ENETDOWN (errno 100)`: the symbolic name of an errno, for messages. */
export function describeErrno(errno: number): string {
  let name: string;
  try {
    name = getSystemErrorName(-Math.abs(errno));
  } catch {
    name = errnoName(errno);
  }
  return `${name} (errno ${Math.abs(errno)})`;
}

/** Throws VipError unless `ifname` is a plausible Linux interface name (it becomes a sysfs path component). */
export function checkInterfaceName(ifname: string): void {
  if (ifname === '' || ifname.length >= IFNAMSIZ || ifname === '.' || ifname === '..' || /[/\s:]/.test(ifname)) {
    throw new VipError(`invalid interface name '${ifname}': expected a Linux interface name of 1-15 characters without '/', ':' or spaces`);
  }
}

/** What sysfs says about an interface. */
export interface InterfaceInfo {
  ifname: string;
  ifindex: number;
  /** Lower-case `aa:bb:cc:dd:ee:ff`. */
  mac: string;
}

/** Reads an interface's index and MAC from /sys/class/net/<ifname>/; throws VipError naming the interface when it is missing. */
export async function readInterface(ifname: string): Promise<InterfaceInfo> {
  checkInterfaceName(ifname);
  const dir = `/sys/class/net/${ifname}`;
  let ifindexText: string;
  let macText: string;
  let typeText: string;
  try {
    [ifindexText = '', macText = '', typeText = ''] = await Promise.all(['ifindex', 'address', 'type'].map((f) => readFile(`${dir}/${f}`, 'utf8')));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new VipError(`interface ${ifname}: cannot read ${dir} (${code}); is the interface present in this network namespace?`, { cause: e });
  }
  const ifindex = Number(ifindexText.trim());
  const mac = macText.trim().toLowerCase();
  if (!Number.isInteger(ifindex) || ifindex <= 0) throw new VipError(`interface ${ifname}: unexpected ifindex '${ifindexText.trim()}' in ${dir}/ifindex`);
  const hatype = Number(typeText.trim());
  if (hatype !== ARPHRD_ETHER || !MAC_TEXT_RE.test(mac) || mac === '00:00:00:00:00:00') {
    throw new VipError(`interface ${ifname}: not an Ethernet interface (hardware type ${typeText.trim()}, address '${mac}'), cannot send ARP/ND announcements on it`);
  }
  return { ifname, ifindex, mac };
}

/** `struct sockaddr_ll` for sendto: family AF_PACKET, protocol big-endian, the interface index and destination MAC. */
export function sockaddrLl(ethertype: number, ifindex: number, dstMac: string): Buffer {
  const sa = Buffer.alloc(SOCKADDR_LL_SIZE);
  const le = endianness() === 'LE';
  if (le) sa.writeUInt16LE(AF_PACKET, 0);
  else sa.writeUInt16BE(AF_PACKET, 0); // sll_family, host order
  sa.writeUInt16BE(ethertype, 2); // sll_protocol, network order
  if (le) sa.writeInt32LE(ifindex, 4);
  else sa.writeInt32BE(ifindex, 4); // sll_ifindex, host order
  if (le) sa.writeUInt16LE(ARPHRD_ETHER, 8);
  else sa.writeUInt16BE(ARPHRD_ETHER, 8); // sll_hatype, host order
  sa.writeUInt8(0, 10); // sll_pkttype
  sa.writeUInt8(6, 11); // sll_halen
  parseMac(dstMac).copy(sa, 12); // sll_addr[8], first 6 used
  return sa;
}

/**
 * One AF_PACKET SOCK_RAW socket for one EtherType. The socket is opened with protocol 0, so the kernel delivers
 * it no incoming frames (a socket opened with htons(ETH_P_ARP) would queue every ARP frame of every interface
 * until its buffer fills); the EtherType goes in each sendto's sockaddr_ll instead. Sends never block.
 */
export class PacketSocket {
  private fd: number;

  private constructor(readonly ethertype: number, fd: number) {
    this.fd = fd;
  }

  /** Opens the socket; `label` (usually the interface) names it in errors. Needs CAP_NET_RAW. */
  static open(ethertype: number, label: string): PacketSocket {
    const c = getLibc();
    const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      const errno = koffi.errno();
      throw new VipError(`interface ${label}: cannot open packet socket for ethertype 0x${ethertype.toString(16).padStart(4, '0')}: ${describeErrno(errno)}${errno === 1 ? ' (needs CAP_NET_RAW)' : ''}`);
    }
    return new PacketSocket(ethertype, fd);
  }

  /** True once close() has run. */
  get closed(): boolean {
    return this.fd < 0;
  }

  /** Sends one complete Ethernet frame (header included) out of `iface` to `dstMac`; throws VipError on failure. */
  send(iface: InterfaceInfo, frame: Buffer, dstMac: string): void {
    if (this.fd < 0) throw new VipError(`interface ${iface.ifname}: packet socket is closed`);
    const sa = sockaddrLl(this.ethertype, iface.ifindex, dstMac);
    const n = getLibc().sendto(this.fd, frame, frame.length, MSG_DONTWAIT, sa, sa.length);
    if (n < 0) {
      const errno = koffi.errno();
      throw new VipError(`interface ${iface.ifname} (ifindex ${iface.ifindex}, ${iface.mac}): sendto of a ${frame.length}-byte frame failed: ${describeErrno(errno)}`);
    }
    if (n !== frame.length) throw new VipError(`interface ${iface.ifname}: short send, ${n} of ${frame.length} bytes`);
  }

  /** Closes the socket; closing twice does nothing. */
  close(): void {
    if (this.fd < 0) return;
    getLibc().close(this.fd);
    this.fd = -1;
  }
}
