/**
 * The public surface of src/ipvs/netlink: the kernel IPVS client over generic netlink. Other folders import
 * only this file; the codecs (genl.ts, ipvs-codec.ts) stay internal to the folder and its tests.
 */

import { NetlinkIpvsClient } from './client.ts';
import type { NetlinkIpvsClientOptions } from './client.ts';
import type { IpvsClient } from '../model.ts';

export { NetlinkIpvsClient, DEFAULT_DUMP_SOCKETS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_REQUEST_TIMEOUT_MS } from './client.ts';
export type { NetlinkIpvsClientOptions, TraceEvent } from './client.ts';

/**
 * Opens the kernel IPVS client: netlink sockets plus the "IPVS" family lookup. Rejects with NetlinkError;
 * ENOENT means the ip_vs module is not loaded (`modprobe ip_vs`), EPERM that CAP_NET_ADMIN is missing.
 */
export function createIpvsClient(options: NetlinkIpvsClientOptions = {}): Promise<IpvsClient> {
  return NetlinkIpvsClient.open(options);
}
