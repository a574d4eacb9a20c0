/**
 * Kernel refusals of IPVS requests turned into NetlinkError (src/lib/errors.ts) whose message says what
 * happened and how to fix it: `NEW_SERVICE TCP 10.0.0.1:80: ENOENT (errno 2): scheduler "twos" does not exist
 * on this kernel ...`. Pure code: the kernel release is passed in by the client. Meanings of each errno per
 * command come from net/netfilter/ipvs/ip_vs_ctl.c.
 */

import { getSystemErrorName } from 'node:util';
import { NetlinkError, errnoName } from '../../lib/errors.ts';
import type { IpvsCmdName, RequestContext } from './ipvs-codec.ts';

/** errno values the IPVS client produces or explains (asm-generic/errno-base.h, errno.h). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EBADF: 9,
  ENOMEM: 12,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ERANGE: 34,
  EBADMSG: 74,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
} as const;

/** `ENOENT`, from node's table when it knows the number, else from lib/errors.ts. */
function nameOf(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return errnoName(errno);
  }
}

/**
 * A NetlinkError (errno, operation, object kept as given) whose message is
 * `OPERATION OBJECT: ENAME (errno N): hint`.
 */
export function ipvsNetlinkError(errno: number, operation: string, object: string, hint?: string, cause?: unknown): NetlinkError {
  const e = new NetlinkError(errno, operation, object, cause === undefined ? undefined : { cause });
  e.message = `${operation} ${object}: ${nameOf(errno)} (errno ${Math.abs(errno)})${hint === undefined ? '' : `: ${hint}`}`;
  return e;
}

/** `6.1.0-26-amd64` -> [6, 1]; undefined when the release does not start with major.minor. */
export function kernelVersion(release: string): readonly [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m === null ? undefined : [Number(m[1]), Number(m[2])];
}

/** The first kernel with each scheduler added after the oldest kernels tandem supports. */
const SCHEDULER_SINCE: Readonly<Record<string, readonly [number, number]>> = { mh: [4, 18], twos: [6, 2] };

const SERVICE_SCOPED = new Set<IpvsCmdName>(['SET_SERVICE', 'DEL_SERVICE', 'NEW_DEST', 'SET_DEST', 'DEL_DEST', 'ZERO']);

/**
 * Why the kernel refused `cmd` with `errno`, and what to do; undefined when there is nothing to add to the
 * errno name. `kernelRelease` is `uname -r` of the machine that answered.
 */
export function explainIpvsErrno(cmd: IpvsCmdName, context: RequestContext, errno: number, kernelRelease: string): string | undefined {
  const kernel = `Linux ${kernelRelease}`;
  switch (errno) {
    case ERRNO.EPERM:
      return 'IPVS needs CAP_NET_ADMIN, for reads too: run as root or grant the capability (AmbientCapabilities=CAP_NET_ADMIN)';
    case ERRNO.ENOENT:
      if (cmd === 'NEW_SERVICE' || cmd === 'SET_SERVICE') {
        const s = context.scheduler ?? '';
        const since = SCHEDULER_SINCE[s];
        const have = kernelVersion(kernelRelease);
        if (since !== undefined && have !== undefined && (have[0] < since[0] || (have[0] === since[0] && have[1] < since[1]))) {
          return `scheduler "${s}" does not exist on this kernel (${kernel}): ip_vs_${s} arrived in Linux ${since[0]}.${since[1]}; choose another scheduler or upgrade the kernel`;
        }
        const pe = context.peName === undefined ? '' : ` or persistence engine "${context.peName}" (module ip_vs_pe_${context.peName})`;
        return `the kernel (${kernel}) could not load scheduler "${s}" (module ip_vs_${s})${pe}: check the name and that the module is installed`;
      }
      if (cmd === 'SET_DEST' || cmd === 'DEL_DEST') return 'the destination does not exist in this service';
      return undefined;
    case ERRNO.ESRCH:
      if (cmd === 'DEL_DAEMON') return `no ${context.daemonState ?? 'master or backup'} sync daemon is running`;
      if (SERVICE_SCOPED.has(cmd)) return 'the virtual service does not exist';
      return undefined;
    case ERRNO.EEXIST:
      if (cmd === 'NEW_SERVICE') return 'the virtual service already exists (use SET_SERVICE to change it)';
      if (cmd === 'NEW_DEST') return 'the destination already exists in this service (use SET_DEST to change it)';
      if (cmd === 'NEW_DAEMON') return `a ${context.daemonState ?? 'master or backup'} sync daemon is already running: stop it first`;
      return undefined;
    case ERRNO.ERANGE:
      if (cmd === 'NEW_DEST' || cmd === 'SET_DEST') {
        const { lowerThreshold: l, upperThreshold: u } = context;
        if (l !== undefined && u !== undefined && l > u) return `the lower connection threshold (${l}) is above the upper one (${u})`;
        return 'the weight must be 0..2147483647 and the lower threshold at most the upper one';
      }
      return undefined;
    case ERRNO.EINVAL:
      if ((cmd === 'NEW_DEST' || cmd === 'SET_DEST') && context.mixedFamily === true) {
        return 'a destination of another address family than its service needs tunnel forwarding, and no sync daemon may run';
      }
      if (cmd === 'NEW_DAEMON') return 'the group must be a multicast address, and no service may have destinations of another address family';
      if (cmd === 'NEW_SERVICE' || cmd === 'SET_SERVICE') return 'the kernel rejected the service attributes (an IPv6 netmask must be a prefix length 1..128)';
      return undefined;
    case ERRNO.ENODEV:
      if (cmd === 'NEW_DAEMON') return `interface "${context.ifname ?? ''}" does not exist`;
      return undefined;
    case ERRNO.EAFNOSUPPORT:
      return 'the kernel does not support this address family for IPVS (IPv6 disabled or IPVS built without IPv6)';
    case ERRNO.EOPNOTSUPP:
      return 'the kernel does not support this command in this form (a dump-only command sent without NLM_F_DUMP, or the reverse)';
    case ERRNO.EBUSY:
      return 'a dump was already running on this netlink socket (the kernel allows one per socket)';
    default:
      return undefined;
  }
}

/** The hint for a family lookup that found no "IPVS": the module is not loaded. */
export const IPVS_MODULE_HINT =
  'the IPVS generic netlink family is not registered: the ip_vs kernel module is not loaded. Load it with `modprobe ip_vs` as root (and list ip_vs in /etc/modules-load.d/ so it loads at boot)';
