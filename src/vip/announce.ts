/**
 * Announcing a VIP after it moves here, so neighbours (routers, clients) replace the old director's MAC in their
 * ARP / neighbour caches at once instead of when their entries expire: one gratuitous ARP for IPv4, one
 * unsolicited neighbour advertisement (Override set) for IPv6, per announce() call. Repetition and pacing are the
 * caller's business (GarpConfig).
 */

import type { VipConfig } from '../config/types.ts';
import { VipError, messageOf } from '../lib/errors.ts';
import { ALL_NODES_MAC, BROADCAST_MAC, ETH_P_ARP, ETH_P_IPV6, garpFrame, unsolicitedNaFrame } from './frames.ts';
import type { Announcer } from './index.ts';
import { PacketSocket, readInterface } from './packet-socket.ts';

/**
 * The packet-socket Announcer. It caches one packet socket per (interface, EtherType) and re-reads the
 * interface's index and MAC from sysfs on every announce, so a re-created interface or a changed MAC is picked up.
 */
export class PacketAnnouncer implements Announcer {
  private readonly sockets = new Map<string, PacketSocket>();
  private closed = false;

  /** Sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6) for `vip` on `vip.interface`; throws VipError. */
  async announce(vip: VipConfig): Promise<void> {
    const what = `announce ${vip.address} (${vip.family === 4 ? 'gratuitous ARP' : 'unsolicited NA'}) on ${vip.interface}`;
    if (this.closed) throw new VipError(`${what}: announcer is closed`);
    try {
      const iface = await readInterface(vip.interface);
      if (this.closed) throw new VipError('announcer is closed');
      if (vip.family === 4) this.socket(vip.interface, ETH_P_ARP).send(iface, garpFrame(iface.mac, vip.address), BROADCAST_MAC);
      else this.socket(vip.interface, ETH_P_IPV6).send(iface, unsolicitedNaFrame(iface.mac, vip.address), ALL_NODES_MAC);
    } catch (e) {
      throw new VipError(`${what}: ${messageOf(e)}`, { cause: e });
    }
  }

  private socket(ifname: string, ethertype: number): PacketSocket {
    const key = `${ifname}/${ethertype}`;
    let sock = this.sockets.get(key);
    if (sock === undefined) {
      sock = PacketSocket.open(ethertype, ifname);
      this.sockets.set(key, sock);
    }
    return sock;
  }

  /** Closes every cached packet socket; later announce() calls throw. */
  close(): void {
    this.closed = true;
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
