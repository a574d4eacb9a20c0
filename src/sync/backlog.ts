/**
 * How full the kernel backup sync thread's socket is: the injector's flow control. The backup thread drains one
 * UDP socket; datagrams that arrive while it is full are dropped by the kernel without a trace at the sender.
 * Its fill level (rx_queue) and drop count are in /proc/net/udp (udp6 for an IPv6 group), on the line of the
 * socket bound to the sync group and port, which is the kernel's own socket and not one of this process's
 * (tandem's passive listener is bound to the same address). Its capacity follows from the sysctls the kernel
 * applied when it made the socket (ip_vs_sync.c set_sock_size: 2 x clamp(sync_sock_size, ..., rmem_max), or
 * rmem_default when sync_sock_size is 0).
 *
 * Codec (parseProcUdp, procUdpAddress) and capacity rule are pure; openBacklogProbe is the adapter.
 */

import { readdir, readFile, readlink } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { endianness as hostEndianness } from 'node:os';
import { sysctlPath } from '../ipvs/index.ts';
import { addressLength, writeAddressBytes } from './conn.ts';

/** One socket line of /proc/net/udp or /proc/net/udp6. */
export interface ProcUdpSocket {
  /** Local address:port as the file prints it (hex, address in the kernel's byte order). */
  local: string;
  /** Bytes queued for reading (sk_rmem_alloc: the datagrams' true sizes). */
  rxQueue: number;
  inode: number;
  /** Datagrams the kernel dropped on this socket (sk_drops). */
  drops: number;
}

/** The sockets of a /proc/net/udp(6) text; lines that do not parse are left out. */
export function parseProcUdp(text: string): ProcUdpSocket[] {
  const out: ProcUdpSocket[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if (f.length < 13 || !/^\d+:$/.test(f[0]!)) continue;
    const queues = f[4]!.split(':');
    const rx = Number.parseInt(queues[1] ?? '', 16);
    const inode = Number(f[9]);
    const drops = Number(f[12]);
    if (!Number.isFinite(rx) || !Number.isInteger(inode) || !Number.isInteger(drops)) continue;
    out.push({ local: f[1]!.toUpperCase(), rxQueue: rx, inode, drops });
  }
  return out;
}

/**
 * `address:port` as /proc/net/udp(6) prints a local address: each 32-bit word of the address as the host reads
 * it (`endianness`; little-endian on x86), the port as a number.
 */
export function procUdpAddress(address: string, port: number, endianness: 'LE' | 'BE' = hostEndianness()): string {
  const family = isIPv4(address) ? 4 : 6;
  const b = Buffer.alloc(addressLength(family));
  if (!writeAddressBytes(address, family, b, 0)) throw new RangeError(`${address} is not an IP address`);
  let hex = '';
  for (let i = 0; i < b.length; i += 4) hex += (endianness === 'LE' ? b.readUInt32LE(i) : b.readUInt32BE(i)).toString(16).toUpperCase().padStart(8, '0');
  return `${hex}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The backup socket's receive buffer: what set_sock_size gives for sync_sock_size (0: rmem_default). */
export function backupSocketCapacity(syncSockSize: number, rmemMax: number, rmemDefault: number): number {
  if (syncSockSize <= 0) return rmemDefault;
  const minHalf = 1152; // (SOCK_MIN_RCVBUF + 1) / 2 on 64-bit kernels, near enough
  return 2 * Math.min(Math.max(syncSockSize, minHalf), rmemMax);
}

/** The backup thread's socket right now. */
export interface SocketBacklog {
  queuedBytes: number;
  capacityBytes: number;
  drops: number;
}

/** Reads the backup thread's socket fill level; undefined when its socket is not found. */
export interface BacklogProbe {
  read(): Promise<SocketBacklog | undefined>;
}

async function sysctlNumber(name: string): Promise<number | undefined> {
  const n = Number((await readFile(sysctlPath(name), 'utf8').catch(() => '')).trim());
  return Number.isFinite(n) ? n : undefined;
}

/** This process's socket inodes (from /proc/self/fd). */
async function ownSocketInodes(): Promise<Set<number>> {
  const out = new Set<number>();
  const fds = await readdir('/proc/self/fd').catch(() => [] as string[]);
  for (const fd of fds) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m !== null) out.add(Number(m[1]));
  }
  return out;
}

/**
 * The probe of the backup thread bound to `group`:`port` in this network namespace. The capacity is read from
 * the sysctls once, here: start the backup thread first (the kernel applies sync_sock_size when it starts).
 */
export async function openBacklogProbe(group: string, port: number): Promise<BacklogProbe> {
  const file = isIPv4(group) ? '/proc/net/udp' : '/proc/net/udp6';
  const local = procUdpAddress(group, port);
  const capacity = backupSocketCapacity(
    (await sysctlNumber('net.ipv4.vs.sync_sock_size')) ?? 0,
    (await sysctlNumber('net.core.rmem_max')) ?? 212_992,
    (await sysctlNumber('net.core.rmem_default')) ?? 212_992,
  );
  // Inodes known to be this process's sockets (the passive listener) or the kernel's.
  let own = new Set<number>();
  const kernel = new Set<number>();
  return {
    async read(): Promise<SocketBacklog | undefined> {
      const text = await readFile(file, 'utf8').catch(() => '');
      const candidates = parseProcUdp(text).filter((s) => s.local === local);
      if (candidates.some((s) => !own.has(s.inode) && !kernel.has(s.inode))) {
        own = await ownSocketInodes();
        for (const s of candidates) if (!own.has(s.inode)) kernel.add(s.inode);
      }
      const k = candidates.find((s) => kernel.has(s.inode));
      return k === undefined ? undefined : { queuedBytes: k.rxQueue, capacityBytes: capacity, drops: k.drops };
    },
  };
}
