/**
 * `tandem ipvs list` and `tandem ipvs save`: the kernel's IPVS tables printed exactly as ipvsadm 1.31 prints
 * them (`ipvsadm -Ln ...`, `ipvsadm -Sn`), read over generic netlink through the IpvsClient. Argument parsing
 * and rendering are pure (parseListArgs, renderList) and unit-tested against captures of the real ipvsadm;
 * cmdIpvsList only fetches what the request needs and prints it.
 *
 *   tandem ipvs list [-n] [--stats|--rate|--thresholds|--persistent-conn|--tun-info] [--exact] [--sort|--nosort]
 *                    [-t|-u|--sctp-service ADDR:PORT | -f MARK [-6]]
 *   tandem ipvs list [-n] --timeout | --daemon
 *   tandem ipvs save [-n]
 *
 * Names are never resolved: with or without -n the output is ipvsadm's -n output. Exit codes: 0 printed,
 * 1 the kernel refused or the service does not exist (ipvsadm's "No such service"), 2 bad arguments.
 */

import type { IpvsClient, IpvsInfo, IpvsTable, IpvsTimeouts, Service, ServiceKey, SyncDaemon } from '../ipvs/model.ts';
import { serviceKeyString } from '../ipvs/model.ts';
import { formatDaemons, formatList, formatListService, formatSave, formatTimeouts, type ListView } from '../ipvs/format.ts';
import { createIpvsClient } from '../ipvs/netlink/index.ts';
import { addressBytes, formatAddress } from '../lib/address.ts';
import { NetlinkError, TandemError, UsageError } from '../lib/errors.ts';
import { fail, ok, type Result } from '../lib/result.ts';

/** What one `tandem ipvs list|save` invocation asks for. */
export type ListRequest =
  | { kind: 'table'; view: ListView; exact: boolean; sort: boolean; service: ServiceKey | undefined }
  | { kind: 'timeout' }
  | { kind: 'daemon' }
  | { kind: 'save' };

/** The kernel state a request is rendered from. */
export interface ListData {
  info: IpvsInfo;
  table: IpvsTable;
  timeouts: IpvsTimeouts;
  daemons: SyncDaemon[];
}

const VIEW_FLAGS: Record<string, ListView> = {
  '--stats': 'stats',
  '--rate': 'rate',
  '--thresholds': 'thresholds',
  '--persistent-conn': 'persistent-conn',
  '--tun-info': 'tun-info',
};
/** ipvsadm's FMT_* precedence when several views are given. */
const VIEW_ORDER: readonly ListView[] = ['stats', 'rate', 'thresholds', 'persistent-conn', 'tun-info'];

const SERVICE_OPTIONS: Record<string, 'tcp' | 'udp' | 'sctp' | 'fwmark'> = {
  '-t': 'tcp',
  '--tcp-service': 'tcp',
  '-u': 'udp',
  '--udp-service': 'udp',
  '--sctp-service': 'sctp',
  '-f': 'fwmark',
  '--fwmark-service': 'fwmark',
};

/** `ADDR[:PORT]` / `[ADDR6][:PORT]` as ipvsadm's -t/-u/--sctp-service take it (numeric only). */
function parseServiceAddr(protocol: 'tcp' | 'udp' | 'sctp', text: string): ServiceKey {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([0-9.]+)(?::(\d+))?$/.exec(text);
  const family = text.startsWith('[') ? 6 : 4;
  const bytes = m === null ? undefined : addressBytes(m[1] ?? '', family);
  const port = m?.[2] === undefined ? 0 : Number(m[2]);
  if (m === null || bytes === undefined || port > 65535) throw new UsageError(`illegal virtual server address[:port] specified: ${text}`);
  return { kind: 'addr', family, protocol, address: formatAddress(bytes, 0, family), port };
}

/** A fwmark as ipvsadm's parse_fwmark accepts it: 1..4294967295. */
function parseFwmark(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new UsageError(`invalid fwmark value \`${text}' specified`);
  return n;
}

/**
 * Parses the arguments after `tandem ipvs list|save` with ipvsadm's rules: each option at most once; --timeout,
 * --daemon and a service are mutually exclusive; --timeout / --daemon conflict with --stats, --rate,
 * --thresholds and --persistent-conn; save takes only -n. Throws UsageError.
 */
export function parseListArgs(sub: 'list' | 'save', args: readonly string[]): ListRequest {
  const seen = new Set<string>();
  const once = (name: string): void => {
    if (seen.has(name)) throw new UsageError(`multiple '${name}' options specified`);
    seen.add(name);
  };
  const views = new Set<ListView>();
  let exact = false;
  let sort = true;
  let timeout = false;
  let daemon = false;
  let svc: { kind: 'tcp' | 'udp' | 'sctp' | 'fwmark'; text: string } | undefined;
  let v6 = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '-n' || a === '--numeric') {
      once('numeric');
      continue;
    }
    if (sub === 'save') throw new UsageError(`illegal option ${a} with the 'save' command (only -n)`);
    const view = VIEW_FLAGS[a];
    const svcKind = SERVICE_OPTIONS[a];
    if (view !== undefined) {
      once(view);
      views.add(view);
    } else if (a === '--exact' || a === '-X') {
      once('exact');
      exact = true;
    } else if (a === '--nosort') {
      once('nosort');
      sort = false;
    } else if (a === '--sort') {
      // ipvsadm: sorting is the default; accepted for compatibility.
    } else if (a === '--timeout') {
      once('timeout');
      timeout = true;
    } else if (a === '--daemon') {
      once('daemon');
      daemon = true;
    } else if (a === '-6' || a === '--ipv6') {
      if (svc?.kind !== 'fwmark') throw new UsageError('-6 used before -f');
      v6 = true;
    } else if (svcKind !== undefined) {
      once('service-address');
      const text = args[++i];
      if (text === undefined) throw new UsageError(`${a} needs an argument`);
      svc = { kind: svcKind, text };
    } else if (a === '-c' || a === '--connection') {
      throw new UsageError('listing connections (-c) is not supported; read /proc/net/ip_vs_conn');
    } else {
      throw new UsageError(`invalid option \`${a}'`);
    }
  }
  if (sub === 'save') return { kind: 'save' };
  const exclusive = [timeout ? 'timeout' : '', daemon ? 'daemon' : '', svc !== undefined ? 'service-address' : ''].filter((x) => x !== '');
  if (exclusive.length > 1) throw new UsageError(`The option '${exclusive[1]}' conflicts with the '${exclusive[0]}' option in the 'list' command`);
  if ((timeout || daemon) && (views.has('stats') || views.has('rate') || views.has('thresholds') || views.has('persistent-conn'))) {
    throw new UsageError('options conflicts in the list command');
  }
  if (timeout) return { kind: 'timeout' };
  if (daemon) return { kind: 'daemon' };
  let service: ServiceKey | undefined;
  if (svc !== undefined) {
    service = svc.kind === 'fwmark' ? { kind: 'fwmark', family: v6 ? 6 : 4, fwmark: parseFwmark(svc.text) } : parseServiceAddr(svc.kind, svc.text);
  }
  return { kind: 'table', view: VIEW_ORDER.find((v) => views.has(v)) ?? 'plain', exact, sort, service };
}

/** Whether a dumped service is the one a request names. */
function sameService(s: Service, k: ServiceKey): boolean {
  return serviceKeyString(s.key) === serviceKeyString(k);
}

/**
 * The text a request prints, from the kernel state; a named service that does not exist fails with ipvsadm's
 * message ("No such service").
 */
export function renderList(req: ListRequest, data: ListData): Result<string> {
  switch (req.kind) {
    case 'save':
      return ok(formatSave(data.table));
    case 'timeout':
      return ok(formatTimeouts(data.timeouts));
    case 'daemon':
      return ok(formatDaemons(data.daemons));
    case 'table': {
      const opts = { view: req.view, exact: req.exact, sort: req.sort };
      if (req.service === undefined) return ok(formatList(data.table, data.info, opts));
      const key = req.service;
      const s = data.table.services.find((x) => sameService(x, key));
      return s === undefined ? fail('no-such-service', 'No such service') : ok(formatListService(s, opts));
    }
  }
}

/** Reads only what the request prints. */
async function fetchData(client: IpvsClient, req: ListRequest): Promise<ListData> {
  const empty: ListData = { info: { version: '', connTabSize: 0 }, table: { services: [] }, timeouts: { tcp: 0, tcpFin: 0, udp: 0 }, daemons: [] };
  switch (req.kind) {
    case 'timeout':
      return { ...empty, timeouts: await client.getTimeouts() };
    case 'daemon':
      return { ...empty, daemons: await client.listDaemons() };
    case 'save':
      return { ...empty, table: await client.dump() };
    case 'table': {
      const [info, table] = await Promise.all([client.info(), client.dump()]);
      return { ...empty, info, table };
    }
  }
}

/** `tandem ipvs list|save ARGS`: prints the tables like ipvsadm; returns the exit code. */
export async function cmdIpvsList(sub: 'list' | 'save', args: string[]): Promise<number> {
  let req: ListRequest;
  try {
    req = parseListArgs(sub, args);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tandem ipvs ${sub}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let client: IpvsClient | undefined;
  try {
    client = await createIpvsClient();
    const out = renderList(req, await fetchData(client, req));
    if (!out.ok) {
      process.stderr.write(`${out.detail}\n`);
      return 1;
    }
    process.stdout.write(out.value);
    return 0;
  } catch (e) {
    if (!(e instanceof TandemError)) throw e;
    const hint = e instanceof NetlinkError && e.errno === 1 ? ' (needs root: CAP_NET_ADMIN)' : '';
    process.stderr.write(`tandem ipvs ${sub}: ${e.message}${hint}\n`);
    return 1;
  } finally {
    client?.close();
  }
}
