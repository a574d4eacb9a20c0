/**
 * Helpers for vm-tier tests (test/vm/*.test.ts), which run inside a VM booted by src/lab/vm.ts. They refuse to
 * run anywhere else: outside the VM they would change the host's IPVS table (or, without IPVS, prove nothing),
 * so a vm test run on the host fails with a message saying how to run it.
 */

import { insideTandemVm } from '../../src/lab/vm.ts';
import type { DestAttrs, DestKey } from '../../src/ipvs/model.ts';

/** Throws (failing the calling test) unless this process runs inside a tandem test VM. */
export function requireVm(): void {
  if (!insideTandemVm()) {
    throw new Error('not inside a tandem test VM (no tandem.vm=1 in /proc/cmdline): run vm tests in the VM: `bash scripts/vm-run -- node_modules/.bin/ava --config ava.vm.config.js [file]`');
  }
}

/** A dest with no thresholds and no tunnel settings unless `extra` says otherwise; the family follows the address. */
export function dest(address: string, port: number, fwd: DestAttrs['fwd'], weight: number, extra: Partial<DestAttrs> = {}): DestKey & DestAttrs {
  return {
    family: address.includes(':') ? 6 : 4,
    address,
    port,
    fwd,
    weight,
    upperThreshold: 0,
    lowerThreshold: 0,
    tunnel: { type: 'ipip', port: 0, flags: 0 },
    ...extra,
  };
}
