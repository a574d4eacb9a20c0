/**
 * Real-time scheduling for the daemon's main thread (the event loop that runs the election). Called once the
 * daemon has started, so only that thread is SCHED_FIFO: helper processes and threads started before (such as
 * the TypeScript loader's transform service) keep normal scheduling and cannot be starved by, or starve, it.
 * Short advert intervals need this under CPU load (see bench:failover). koffi reaches libc's
 * sched_setscheduler; this is the only file of src/lib that uses FFI.
 */

import koffi from 'koffi';
import { TandemError, ERROR_CODES } from './errors.ts';

/** SCHED_FIFO from <sched.h>. */
const SCHED_FIFO = 1;

let setScheduler: ((pid: number, policy: number, param: number[]) => number) | undefined;

/** Puts the calling thread under SCHED_FIFO with `priority` (1..99). Throws TandemError with errno on failure. */
export function setRealtimePriority(priority: number): void {
  if (!Number.isInteger(priority) || priority < 1 || priority > 99) throw new TandemError(ERROR_CODES.usage, `real-time priority must be 1..99, got ${priority}`);
  if (setScheduler === undefined) {
    const libc = koffi.load('libc.so.6');
    // struct sched_param { int sched_priority; } passed as a pointer to one int.
    setScheduler = libc.func('int sched_setscheduler(int pid, int policy, _In_ int *param)') as (pid: number, policy: number, param: number[]) => number;
  }
  // pid 0 = the calling thread (Linux applies scheduling policy per thread).
  if (setScheduler(0, SCHED_FIFO, [priority]) !== 0) {
    const errno = koffi.errno();
    throw new TandemError(ERROR_CODES.usage, `sched_setscheduler(SCHED_FIFO, ${priority}) failed: errno ${errno}${errno === 1 ? ' (EPERM: needs root or CAP_SYS_NICE)' : ''}`);
  }
}
