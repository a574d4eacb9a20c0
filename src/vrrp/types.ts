/** Domain types of the election, shared by codec, machine and driver. */

import type { AddressFamily } from '../config/types.ts';

/** RFC 5798 section 5.2.4: priority 255 = address owner, 0 = the master is resigning. */
export const PRIORITY_OWNER = 255;
export const PRIORITY_RESIGN = 0;

/** A decoded advertisement (VRRPv3-shaped, carried in UDP). */
export interface Advert {
  vrid: number;
  priority: number;
  /** Max Advert Interval in centiseconds (RFC 5798 section 5.2.7), 1..4095. */
  advertIntervalCs: number;
  family: AddressFamily;
  /** The sender's primary address, used for the equal-priority tie-break (RFC 5798 section 6.4.3). */
  sender: string;
  /** The VIPs the sender protects, as text. */
  addresses: string[];
}
