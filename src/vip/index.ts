/**
 * The VIP subsystem's public surface: putting VIP addresses on interfaces and taking them off (VipManager, over
 * rtnetlink) and telling the segment the VIP moved (Announcer: gratuitous ARP / unsolicited neighbour
 * advertisement over a packet socket). The election core depends on these interfaces only; tests substitute fakes.
 */

import type { VipConfig } from '../config/types.ts';
import { PacketAnnouncer } from './announce.ts';
import { RtnlVipManager } from './rtnetlink.ts';

/** Adds and removes VIP addresses on interfaces (kernel access behind a small interface). */
export interface VipManager {
  add(vip: VipConfig): Promise<void>;
  remove(vip: VipConfig): Promise<void>;
  list(ifname: string): Promise<string[]>;
  close(): void;
}

/** Sends one gratuitous ARP (IPv4) or unsolicited neighbour advertisement (IPv6) for a VIP. */
export interface Announcer {
  announce(vip: VipConfig): Promise<void>;
  close(): void;
}

/** The rtnetlink VipManager (needs CAP_NET_ADMIN in the VIP's network namespace). */
export function createVipManager(): VipManager {
  return new RtnlVipManager();
}

/** The packet-socket Announcer (needs CAP_NET_RAW). */
export function createAnnouncer(): Announcer {
  return new PacketAnnouncer();
}

/** Frame builders and address helpers (pure; see frames.ts). */
export {
  ALL_NODES_MAC,
  BROADCAST_MAC,
  ETH_P_ARP,
  ETH_P_IPV6,
  GARP_FRAME_LENGTH,
  NA_FRAME_LENGTH,
  formatMac,
  garpFrame,
  icmpv6Checksum,
  parseIpv4,
  parseIpv6,
  parseMac,
  unsolicitedNaFrame,
} from './frames.ts';
/** The concrete adapters, for callers that need more than the interfaces. */
export { PacketAnnouncer } from './announce.ts';
export { RtnlVipManager } from './rtnetlink.ts';
