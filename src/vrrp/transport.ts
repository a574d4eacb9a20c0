/**
 * The election's datagram transport: UDP over node:dgram, to configured unicast peers or to a multicast group.
 * This is the only module of src/vrrp that does network I/O.
 */

import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { TransportConfig } from '../config/types.ts';
import { ERROR_CODES, TandemError, messageOf } from '../lib/errors.ts';

/** Sends and receives advert datagrams. */
export interface VrrpTransport {
  /** Binds and starts delivering datagrams to `onDatagram`; send failures go to `onError`. */
  start(onDatagram: (datagram: Buffer, source: string) => void, onError: (message: string) => void): Promise<void>;
  /** Sends one datagram to every peer (unicast) or to the group (multicast). Never throws. */
  send(datagram: Buffer): void;
  /** Resolves when every datagram handed to `send` so far has left the socket. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** node:dgram transport for unicast peers or a multicast group. */
export class UdpTransport implements VrrpTransport {
  private socket: dgram.Socket | undefined;
  private inFlight = 0;
  private drained: Array<() => void> = [];
  private onError: (message: string) => void = () => {};

  constructor(private readonly cfg: TransportConfig, private readonly ifname: string) {}

  private get destinations(): string[] {
    return this.cfg.mode === 'unicast' ? this.cfg.peers : [this.cfg.group];
  }

  async start(onDatagram: (datagram: Buffer, source: string) => void, onError: (message: string) => void): Promise<void> {
    this.onError = onError;
    const cfg = this.cfg;
    const family = isIP(cfg.mode === 'unicast' ? cfg.source : cfg.group) === 6 ? 6 : 4;
    const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', reuseAddr: cfg.mode === 'multicast' });
    this.socket = socket;
    socket.on('message', (msg, rinfo) => onDatagram(msg, rinfo.address));
    socket.on('error', (e) => onError(`vrrp socket: ${messageOf(e)}`));
    // Unicast binds to the configured source so only datagrams for this node arrive; multicast binds the
    // wildcard address (a socket bound to a unicast address does not receive group traffic).
    const bindAddress = cfg.mode === 'unicast' ? cfg.source : family === 6 ? '::' : '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new TandemError(ERROR_CODES.transport, `cannot bind the election socket to ${bindAddress}:${cfg.port}: ${e.message} (is another tandem running, or is the address missing from ${this.ifname}?)`, { cause: e }));
      socket.once('error', fail);
      socket.bind({ address: bindAddress, port: cfg.port, exclusive: cfg.mode === 'unicast' }, () => {
        socket.off('error', fail);
        resolve();
      });
    });
    if (cfg.mode === 'multicast') {
      const iface = family === 6 ? `::%${this.ifname}` : cfg.source;
      try {
        socket.addMembership(cfg.group, iface);
        if (iface !== undefined) socket.setMulticastInterface(iface);
        socket.setMulticastTTL(cfg.ttl);
        socket.setMulticastLoopback(false);
      } catch (e) {
        throw new TandemError(ERROR_CODES.transport, `cannot join multicast group ${cfg.group} on ${this.ifname}: ${messageOf(e)}`, { cause: e });
      }
    }
  }

  send(datagram: Buffer): void {
    const socket = this.socket;
    if (socket === undefined) return;
    for (const dest of this.destinations) {
      this.inFlight++;
      try {
        socket.send(datagram, this.cfg.port, dest, (e) => {
          if (e) this.onError(`advert to ${dest}:${this.cfg.port}: ${e.message}`);
          this.settle();
        });
      } catch (e) {
        this.onError(`advert to ${dest}:${this.cfg.port}: ${messageOf(e)}`);
        this.settle();
      }
    }
  }

  private settle(): void {
    this.inFlight--;
    if (this.inFlight === 0) {
      const waiters = this.drained;
      this.drained = [];
      for (const w of waiters) w();
    }
  }

  flush(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
