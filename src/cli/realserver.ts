/**
 * `tandem realserver up|down|check`: prepares a real server for LVS direct routing or tunnelling, undoes that,
 * or checks it (src/realserver). Argument parsing and wiring only.
 *
 *   tandem realserver up|check --vip ADDR [--vip ADDR...] --mode dr|tun [--tunnel ipip|gue|gre] [--gue-port N]
 *                              [--interface IF] [--state-file FILE]
 *   tandem realserver down --vip ADDR [--vip ADDR...] [--state-file FILE]
 *
 * --interface is the interface ARP requests for the VIP arrive on (default: the IPv4 default route's). Exit codes:
 * up/down 0 done, 1 failed part-way (what was done is recorded); check 0 only when every requirement holds, 1
 * otherwise; 2 bad arguments.
 */

import { parseArgs } from 'node:util';
import { TandemError, UsageError, messageOf } from '../lib/errors.ts';
import {
  DEFAULT_STATE_FILE,
  REALSERVER_MODES,
  RealserverApplyError,
  SystemRealserverHost,
  TUNNEL_KINDS,
  checkRealserver,
  defaultRouteInterface,
  formatCheckReport,
  loadState,
  parseVip,
  planRealserver,
  realserverDown,
  realserverUp,
  saveState,
  type RealserverMode,
  type RealserverSpec,
  type TunnelKind,
} from '../realserver/index.ts';

const USAGE = `usage:
  tandem realserver up|check --vip ADDR [--vip ADDR...] --mode dr|tun [--tunnel ipip|gue|gre] [--gue-port N]
                             [--interface IF] [--state-file FILE]
  tandem realserver down --vip ADDR [--vip ADDR...] [--state-file FILE]`;

/** A parsed command line. */
export interface RealserverArgs {
  action: 'up' | 'down' | 'check';
  spec: RealserverSpec;
  /** Whether --interface was given (otherwise the default route's interface is used). */
  interfaceGiven: boolean;
  stateFile: string;
}

/** Parses `tandem realserver` arguments; throws UsageError. */
export function parseRealserverArgs(args: string[]): RealserverArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        vip: { type: 'string', multiple: true },
        mode: { type: 'string' },
        tunnel: { type: 'string' },
        'gue-port': { type: 'string' },
        interface: { type: 'string' },
        'state-file': { type: 'string' },
      },
    });
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
  const { values, positionals } = parsed;
  const [action, ...extra] = positionals;
  if (action !== 'up' && action !== 'down' && action !== 'check') throw new UsageError('expected up, down or check');
  if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0] ?? ''}`);
  const vips = (values.vip ?? []).map(parseVip);
  if (vips.length === 0) throw new UsageError('at least one --vip ADDR is needed');
  const mode = values.mode;
  if (mode === undefined && action !== 'down') throw new UsageError('--mode dr|tun is needed');
  if (mode !== undefined && !(REALSERVER_MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode ${mode}: expected dr or tun`);
  const tunnel = values.tunnel;
  if (tunnel !== undefined && !(TUNNEL_KINDS as readonly string[]).includes(tunnel)) throw new UsageError(`--tunnel ${tunnel}: expected ipip, gue or gre`);
  let guePort: number | undefined;
  if (values['gue-port'] !== undefined) {
    guePort = /^\d+$/.test(values['gue-port']) ? Number(values['gue-port']) : NaN;
    if (!Number.isInteger(guePort) || guePort < 1 || guePort > 65535) throw new UsageError(`--gue-port ${values['gue-port']}: must be 1-65535`);
  }
  const spec: RealserverSpec = {
    vips,
    mode: (mode ?? 'dr') as RealserverMode,
    ...(tunnel !== undefined ? { tunnel: tunnel as TunnelKind } : {}),
    ...(guePort !== undefined ? { guePort } : {}),
    ...(values.interface !== undefined ? { interface: values.interface } : {}),
  };
  // Validate the combination now (down only needs the VIPs, but a wrong combination is still a mistake).
  if (mode !== undefined) planRealserver(spec);
  return { action, spec, interfaceGiven: values.interface !== undefined, stateFile: values['state-file'] ?? DEFAULT_STATE_FILE };
}

/** `tandem realserver ARGS`: returns the exit code. */
export async function cmdRealserver(args: string[]): Promise<number> {
  let a: RealserverArgs;
  try {
    a = parseRealserverArgs(args);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tandem realserver: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    throw e;
  }
  const host = new SystemRealserverHost();
  try {
    let spec = a.spec;
    if (!a.interfaceGiven && a.action !== 'down') {
      const ifname = await defaultRouteInterface();
      if (ifname !== undefined) spec = { ...spec, interface: ifname };
    }
    if (a.action === 'check') {
      const results = await checkRealserver(planRealserver(spec), host);
      process.stdout.write(formatCheckReport(results));
      return results.every((r) => r.ok) ? 0 : 1;
    }
    const state = await loadState(a.stateFile);
    try {
      const outcome =
        a.action === 'up'
          ? await realserverUp(planRealserver(spec), host, state)
          : await realserverDown(
              spec.vips.map((v) => v.address),
              host,
              state,
            );
      await saveState(a.stateFile, outcome.state);
      process.stdout.write(outcome.lines.map((l) => `${l}\n`).join(''));
      return 0;
    } catch (e) {
      if (e instanceof RealserverApplyError) await saveState(a.stateFile, e.state);
      throw e;
    }
  } catch (e) {
    if (!(e instanceof TandemError)) throw e;
    process.stderr.write(`tandem realserver ${a.action}: ${e.message}\n`);
    return 1;
  } finally {
    host.close();
  }
}
