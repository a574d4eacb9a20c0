/**
 * The sync multicast adapter (the only sync module that imports node:dgram):
 * - `openSyncSender`: the injector's socket. IP_MULTICAST_IF = the sync interface, multicast loop on, TTL 0,
 *   so a datagram reaches this host's own backup sync thread and nothing else (see injector.ts).
 * - `openSyncListener`: a passive listener that co-binds the sync group and port next to the kernel's backup
 *   thread (the kernel sets SO_REUSEADDR on its socket, so both get every datagram) and hands each datagram
 *   on, for counting, malformed-datagram detection and sync lag measurements. It never answers.
 */

import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { messageOf } from '../lib/errors.ts';
import { SyncError } from './errors.ts';
import type { DatagramSink } from './injector.ts';

/** Where the sync datagrams travel. */
export interface SyncGroupAddress {
  interface: string;
  group: string;
  port: number;
}

/** The address that names `ifname` for IP_MULTICAST_IF / IP_ADD_MEMBERSHIP: its IPv4 address, or `::%ifname`. */
export function multicastInterfaceAddress(ifname: string, family: 4 | 6): string {
  if (family === 6) return `::%${ifname}`;
  const addr = (networkInterfaces()[ifname] ?? []).find((a) => a.family === 'IPv4');
  if (addr === undefined) {
    throw new SyncError('bind', `sync interface ${ifname} has no IPv4 address (or does not exist); the kernel sync threads and the injector need one for an IPv4 sync group`);
  }
  return addr.address;
}

function familyOf(group: string): 4 | 6 {
  return isIP(group) === 6 ? 6 : 4;
}

function bound(socket: Socket, port: number, address?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    socket.once('error', onError);
    socket.bind({ port, ...(address !== undefined ? { address } : {}), exclusive: false }, () => {
      socket.removeListener('error', onError);
      resolve();
    });
  });
}

/** Opens the injector's socket: IP_MULTICAST_IF = the sync interface, loop on, TTL 0. Throws SyncError 'bind'. */
export async function openSyncSender(a: SyncGroupAddress): Promise<DatagramSink> {
  const family = familyOf(a.group);
  const ifaceAddr = multicastInterfaceAddress(a.interface, family);
  const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  try {
    await bound(socket, 0, family === 4 ? ifaceAddr : undefined);
    socket.setMulticastInterface(ifaceAddr);
    socket.setMulticastLoopback(true);
    socket.setMulticastTTL(0);
  } catch (e) {
    socket.close();
    throw new SyncError('bind', `cannot open the sync injection socket on ${a.interface}: ${messageOf(e)}`, { cause: e });
  }
  socket.on('error', () => {
    // Reported through the rejected send below; an 'error' event without a listener would crash the daemon.
  });
  return {
    send(datagram: Buffer): Promise<void> {
      return new Promise((resolve, reject) => socket.send(datagram, a.port, a.group, (err) => (err ? reject(err) : resolve())));
    },
    close(): void {
      try {
        socket.close();
      } catch {
        // already closed
      }
    },
  };
}

/** A running listener; `close` stops it. */
export interface SyncListener {
  close(): void;
}

/**
 * Listens on the sync group next to the kernel backup thread and calls `onDatagram` for each datagram with its
 * source address. Throws SyncError 'bind' when it cannot bind or join the group.
 */
export async function openSyncListener(a: SyncGroupAddress, onDatagram: (datagram: Buffer, source: string) => void): Promise<SyncListener> {
  const family = familyOf(a.group);
  const ifaceAddr = multicastInterfaceAddress(a.interface, family);
  const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: true });
  try {
    await bound(socket, a.port, a.group);
    socket.addMembership(a.group, ifaceAddr);
  } catch (e) {
    socket.close();
    throw new SyncError('bind', `cannot listen on the sync group ${a.group}:${a.port} on ${a.interface}: ${messageOf(e)}`, { cause: e });
  }
  socket.on('message', (msg, rinfo) => onDatagram(msg, rinfo.address));
  socket.on('error', () => {
    // A receive error on a passive listener loses one datagram; nothing to do.
  });
  return {
    close(): void {
      try {
        socket.close();
      } catch {
        // already closed
      }
    },
  };
}
