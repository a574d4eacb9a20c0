/**
 * Records golden netlink bytes from the real kernel for the unit tier (test/unit/ipvs-netlink-kernel.test.ts):
 * every IPVS command is performed through NetlinkIpvsClient inside the test VM, and the request and reply
 * datagrams are written, one JSON file per scenario, with the client call that produced them. The unit tests
 * replay those bytes through the client and the codecs, so they prove the codec against what the kernel wrote.
 *
 *   # on the host: boots a VM (src/lab/vm.ts), captures, copies the files into test/fixtures/ipvs/
 *   node --import tsx test/vm/capture-golden.ts --update [--to DIR]
 *   # inside the VM (what --update runs): writes the files into OUTDIR
 *   bash scripts/vm-run -- node --import tsx test/vm/capture-golden.ts /run/tandem-results/golden
 *
 * vm-run's results share is a temporary directory it removes, so --update boots the VM itself with a share it
 * keeps (test/vm/init.sh mounts the share at /run/tandem-results). Inside the VM the script starts from an
 * empty IPVS table and leaves one; it refuses to run outside a tandem test VM.
 */

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT, insideTandemVm, runInVm } from '../../src/lab/vm.ts';
import { NetlinkError, messageOf } from '../../src/lib/errors.ts';
import { NetlinkIpvsClient, rawNetlinkTransport } from '../../src/ipvs/netlink/client.ts';
import type { TraceEvent } from '../../src/ipvs/netlink/client.ts';
import { readNlMsgHeader } from '../../src/ipvs/netlink/genl.ts';
import { encodeIpvsRequest, getDestsRequest } from '../../src/ipvs/netlink/ipvs-codec.ts';
import type { IpvsOp, ServiceAttrs, ServiceKey, SyncDaemon } from '../../src/ipvs/model.ts';
import { dest } from './helpers.ts';

/** Where test/vm/init.sh mounts the writable results share inside the VM. */
const VM_RESULTS = '/run/tandem-results';
/** Where the fixtures live in the checkout. */
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'ipvs');

/** One request and the datagrams that answered it (matched by sequence number). */
export interface GoldenExchange {
  seq: number;
  /** Hex of the request datagram. */
  sent: string;
  /** Hex of each reply datagram, in arrival order. */
  received: string[];
}

/** The client call of a scenario, so the unit tier can replay it. */
export type GoldenCall =
  | { method: 'open' | 'info' | 'dump' | 'flush' | 'getTimeouts' | 'listDaemons'; args: [] }
  | { method: 'apply'; args: [IpvsOp[]] }
  | { method: 'listDests'; args: [ServiceKey] }
  | { method: 'zero'; args: [] | [ServiceKey] }
  | { method: 'setTimeouts'; args: [{ tcp: number; tcpFin: number; udp: number }] }
  | { method: 'startDaemon'; args: [SyncDaemon] }
  | { method: 'stopDaemon'; args: ['master' | 'backup'] }
  | { method: 'raw'; args: [] };

/** One fixture file. */
export interface GoldenFixture {
  name: string;
  description: string;
  /** `uname -r` of the kernel that answered. */
  kernel: string;
  /** The IPVS family id the kernel assigned. */
  family: number;
  call: GoldenCall;
  exchanges: GoldenExchange[];
}

// ---------------------------------------------------------------------------------------------- the scenarios

const TCP4: ServiceKey = { kind: 'addr', family: 4, protocol: 'tcp', address: '10.0.0.1', port: 80 };
const UDP6: ServiceKey = { kind: 'addr', family: 6, protocol: 'udp', address: '2001:db8::1', port: 53 };
const SCTP4: ServiceKey = { kind: 'addr', family: 4, protocol: 'sctp', address: '10.0.0.1', port: 3868 };
const SIP4: ServiceKey = { kind: 'addr', family: 4, protocol: 'udp', address: '10.0.0.1', port: 5060 };
const FWM4: ServiceKey = { kind: 'fwmark', family: 4, fwmark: 7 };
const FWM6: ServiceKey = { kind: 'fwmark', family: 6, fwmark: 8 };
const PLAIN: ServiceAttrs = { scheduler: 'wlc', flags: 0, timeoutS: 0, netmask: 0xffffffff, peName: '' };
const MASTER: SyncDaemon = { state: 'master', ifname: 'tdm0', syncId: 9, maxLen: 0, group: '224.0.0.81', port: 8848, ttl: 1 };
const BACKUP: SyncDaemon = { state: 'backup', ifname: 'tdm0', syncId: 9, maxLen: 1400, group: 'ff02::81', port: 8849, ttl: 4 };

interface Scenario {
  name: string;
  description: string;
  call: GoldenCall;
}

/** In order: each scenario runs on the table the previous ones left. */
const SCENARIOS: Scenario[] = [
  { name: 'get-info', description: 'GET_INFO: version 1.2.1 and the connection table size', call: { method: 'info', args: [] } },
  { name: 'flush', description: 'FLUSH an empty table: an ACK', call: { method: 'flush', args: [] } },
  { name: 'new-service-tcp4', description: 'NEW_SERVICE TCP 10.0.0.1:80 wlc', call: { method: 'apply', args: [[{ op: 'addService', service: { key: TCP4, ...PLAIN } }]] } },
  {
    name: 'new-service-udp6-persistent',
    description: 'NEW_SERVICE UDP [2001:db8::1]:53 sh with sh-fallback,sh-port, persistent 300 s, /64',
    call: { method: 'apply', args: [[{ op: 'addService', service: { key: UDP6, scheduler: 'sh', flags: 0x18, timeoutS: 300, netmask: 64, peName: '' } }]] },
  },
  { name: 'new-service-sctp4', description: 'NEW_SERVICE SCTP 10.0.0.1:3868 rr', call: { method: 'apply', args: [[{ op: 'addService', service: { key: SCTP4, ...PLAIN, scheduler: 'rr' } }]] } },
  {
    name: 'new-service-sip-pe',
    description: 'NEW_SERVICE UDP 10.0.0.1:5060 rr persistent 60 with the sip persistence engine (autoloads ip_vs_pe_sip)',
    call: { method: 'apply', args: [[{ op: 'addService', service: { key: SIP4, scheduler: 'rr', flags: 0, timeoutS: 60, netmask: 0xffffffff, peName: 'sip' } }]] },
  },
  { name: 'new-service-fwm4', description: 'NEW_SERVICE FWM 7 IPv4 rr', call: { method: 'apply', args: [[{ op: 'addService', service: { key: FWM4, ...PLAIN, scheduler: 'rr' } }]] } },
  {
    name: 'new-service-fwm6',
    description: 'NEW_SERVICE FWM 8 IPv6 mh with mh-fallback,mh-port, one-packet',
    call: { method: 'apply', args: [[{ op: 'addService', service: { key: FWM6, scheduler: 'mh', flags: 0x4 | 0x8 | 0x10, timeoutS: 0, netmask: 128, peName: '' } }]] },
  },
  {
    name: 'set-service',
    description: 'SET_SERVICE TCP 10.0.0.1:80: rr, persistent 60 s, netmask 255.255.255.0',
    call: { method: 'apply', args: [[{ op: 'editService', service: { key: TCP4, scheduler: 'rr', flags: 0, timeoutS: 60, netmask: 0xffffff00, peName: '' } }]] },
  },
  {
    name: 'new-dests',
    description: 'NEW_DEST pipelined: masq, droute, tunnel ipip, tunnel gue 6080 csum, tunnel gre, weights and thresholds',
    call: {
      method: 'apply',
      args: [
        [
          { op: 'addDest', service: TCP4, dest: dest('10.0.1.1', 8080, 'masq', 1) },
          { op: 'addDest', service: TCP4, dest: dest('10.0.1.2', 80, 'droute', 2, { upperThreshold: 1000, lowerThreshold: 100 }) },
          { op: 'addDest', service: TCP4, dest: dest('10.0.1.3', 80, 'tunnel', 3) },
          { op: 'addDest', service: TCP4, dest: dest('10.0.1.4', 80, 'tunnel', 4, { tunnel: { type: 'gue', port: 6080, flags: 1 } }) },
          { op: 'addDest', service: TCP4, dest: dest('10.0.1.5', 80, 'tunnel', 0, { tunnel: { type: 'gre', port: 0, flags: 2 } }) },
        ],
      ],
    },
  },
  {
    name: 'new-dests-ipv6',
    description: 'NEW_DEST on IPv6 services: an IPv6 droute dest, and an IPv4 tunnel dest of an IPv6 service (mixed family)',
    call: {
      method: 'apply',
      args: [
        [
          { op: 'addDest', service: UDP6, dest: dest('2001:db8::2', 53, 'droute', 5) },
          { op: 'addDest', service: FWM6, dest: dest('10.0.2.1', 0, 'tunnel', 1) },
        ],
      ],
    },
  },
  {
    name: 'set-dest',
    description: 'SET_DEST TCP 10.0.0.1:80 -> 10.0.1.1:8080: weight 7, thresholds 50/10',
    call: { method: 'apply', args: [[{ op: 'editDest', service: TCP4, dest: dest('10.0.1.1', 8080, 'masq', 7, { upperThreshold: 50, lowerThreshold: 10 }) }]] },
  },
  { name: 'get-dests', description: 'GET_DEST dump of TCP 10.0.0.1:80: five dests, newest first, TUN_*, STATS and STATS64', call: { method: 'listDests', args: [TCP4] } },
  { name: 'get-dests-missing-service', description: 'GET_DEST dump of a service that does not exist: just NLMSG_DONE', call: { method: 'listDests', args: [{ ...TCP4, port: 81 }] } },
  { name: 'dump', description: 'dump(): GET_SERVICE dump of six services, then a GET_DEST dump for each', call: { method: 'dump', args: [] } },
  { name: 'zero-service', description: 'ZERO the counters of TCP 10.0.0.1:80', call: { method: 'zero', args: [TCP4] } },
  { name: 'zero-all', description: 'ZERO every counter', call: { method: 'zero', args: [] } },
  { name: 'error-new-service-eexist', description: 'NEW_SERVICE of an existing service: EEXIST', call: { method: 'apply', args: [[{ op: 'addService', service: { key: TCP4, ...PLAIN } }]] } },
  { name: 'error-del-service-esrch', description: 'DEL_SERVICE of a missing service: ESRCH', call: { method: 'apply', args: [[{ op: 'delService', key: { ...TCP4, port: 81 } }]] } },
  { name: 'error-del-dest-enoent', description: 'DEL_DEST of a missing dest: ENOENT', call: { method: 'apply', args: [[{ op: 'delDest', service: TCP4, dest: { family: 4, address: '10.0.9.9', port: 80 } }]] } },
  {
    name: 'error-new-dest-erange',
    description: 'NEW_DEST with l_thresh 10 > u_thresh 5: ERANGE',
    call: { method: 'apply', args: [[{ op: 'addDest', service: TCP4, dest: dest('10.0.1.9', 80, 'droute', 1, { upperThreshold: 5, lowerThreshold: 10 }) }]] },
  },
  {
    name: 'error-new-service-twos',
    description: 'NEW_SERVICE with scheduler twos on Linux 6.1: ENOENT (ip_vs_twos arrived in 6.2)',
    call: { method: 'apply', args: [[{ op: 'addService', service: { key: { ...TCP4, port: 82 }, ...PLAIN, scheduler: 'twos' } }]] },
  },
  { name: 'set-config', description: 'SET_CONFIG timeouts tcp 900 tcpfin 120 udp 60', call: { method: 'setTimeouts', args: [{ tcp: 900, tcpFin: 120, udp: 60 }] } },
  { name: 'get-config', description: 'GET_CONFIG: the timeouts set above', call: { method: 'getTimeouts', args: [] } },
  {
    name: 'error-new-daemon-mixed-family',
    description: 'NEW_DAEMON while an IPv6 service has an IPv4 (tunnel) dest: EINVAL, sync cannot carry mixed families',
    call: { method: 'startDaemon', args: [MASTER] },
  },
  {
    name: 'del-dest-mixed-family',
    description: 'DEL_DEST FWM 8 IPv6 -> 10.0.2.1:0 (an IPv4 dest of an IPv6 service)',
    call: { method: 'apply', args: [[{ op: 'delDest', service: FWM6, dest: { family: 4, address: '10.0.2.1', port: 0 } }]] },
  },
  { name: 'new-daemon-master', description: 'NEW_DAEMON master on tdm0 syncid 9, kernel defaults for maxlen', call: { method: 'startDaemon', args: [MASTER] } },
  { name: 'new-daemon-backup', description: 'NEW_DAEMON backup on tdm0, IPv6 group ff02::81, port 8849, ttl 4, maxlen 1400', call: { method: 'startDaemon', args: [BACKUP] } },
  { name: 'error-new-daemon-eexist', description: 'NEW_DAEMON master while one runs: EEXIST', call: { method: 'startDaemon', args: [MASTER] } },
  { name: 'get-daemons', description: 'GET_DAEMON dump: master then backup, with the values the kernel uses', call: { method: 'listDaemons', args: [] } },
  { name: 'del-daemon-master', description: 'DEL_DAEMON master', call: { method: 'stopDaemon', args: ['master'] } },
  { name: 'error-del-daemon-esrch', description: 'DEL_DAEMON master when none runs: ESRCH', call: { method: 'stopDaemon', args: ['master'] } },
  { name: 'del-daemon-backup', description: 'DEL_DAEMON backup', call: { method: 'stopDaemon', args: ['backup'] } },
  { name: 'del-dest', description: 'DEL_DEST TCP 10.0.0.1:80 -> 10.0.1.5:80', call: { method: 'apply', args: [[{ op: 'delDest', service: TCP4, dest: { family: 4, address: '10.0.1.5', port: 80 } }]] } },
  { name: 'del-service', description: 'DEL_SERVICE SCTP 10.0.0.1:3868', call: { method: 'apply', args: [[{ op: 'delService', key: SCTP4 }]] } },
];

/** Services for the multi-part dump: enough that the GET_SERVICE dump spans several datagrams. */
const BULK_SERVICES = 120;

// ---------------------------------------------------------------------------------------------- capture

async function capture(outdir: string): Promise<void> {
  if (!insideTandemVm()) throw new Error('capture-golden: not inside a tandem test VM; run it with --update on the host');
  mkdirSync(outdir, { recursive: true });
  const kernel = release();
  sh('modprobe', 'ip_vs');
  sh('modprobe', 'dummy');
  sh('ip', 'link', 'add', 'tdm0', 'type', 'dummy');
  sh('ip', 'link', 'set', 'tdm0', 'up');
  sh('ip', 'addr', 'add', '10.9.0.1/24', 'dev', 'tdm0');
  sh('ipvsadm', '-C');

  let recording: TraceEvent[] | undefined = [];
  const client = await NetlinkIpvsClient.open({ dumpSockets: 1, trace: (e) => recording?.push(e) });
  const family = client.family.id;
  const write = (name: string, description: string, call: GoldenCall, events: TraceEvent[]): void => {
    const fixture: GoldenFixture = { name, description, kernel, family, call, exchanges: exchanges(events) };
    writeFileSync(join(outdir, `${name}.json`), `${JSON.stringify(fixture, null, 1)}\n`);
    console.log(`${name}: ${fixture.exchanges.length} exchange(s), ${fixture.exchanges.reduce((n, x) => n + x.received.length, 0)} reply datagram(s)`);
  };
  write('ctrl-getfamily', 'CTRL_CMD_GETFAMILY "IPVS" -> CTRL_CMD_NEWFAMILY with the family id, version, ops', { method: 'open', args: [] }, recording);

  try {
    for (const s of SCENARIOS) {
      recording = [];
      let outcome: string;
      try {
        const result = await invoke(client, s.call);
        outcome = JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))?.slice(0, 160) ?? 'ok';
      } catch (e) {
        outcome = e instanceof NetlinkError ? `NetlinkError ${e.message}` : `ERROR ${messageOf(e)}`;
      }
      const events = recording;
      recording = undefined;
      write(s.name, s.description, s.call, events);
      console.log(`  -> ${outcome}`);
    }

    // A dump spanning several datagrams.
    recording = undefined;
    await client.flush();
    const bulk: IpvsOp[] = [];
    for (let i = 0; i < BULK_SERVICES; i++) bulk.push({ op: 'addService', service: { key: { kind: 'addr', family: 4, protocol: 'tcp', address: `10.1.${i >> 8}.${i & 0xff}`, port: 80 }, ...PLAIN } });
    const added = await client.apply(bulk);
    if (!added.every((r) => r.ok)) throw new Error('bulk add failed');
    recording = [];
    const table = await client.dump();
    const events = recording;
    recording = undefined;
    write('dump-multipart', `GET_SERVICE dump of ${BULK_SERVICES} services (several datagrams), then their (empty) GET_DEST dumps`, { method: 'dump', args: [] }, events);
    console.log(`  -> ${table.services.length} services`);

    // Two dumps on one socket without reading in between: the kernel refuses the second with EBUSY (the first
    // dump's NLMSG_DONE is only produced on the next recvmsg, so it is still running).
    recording = undefined;
    const setup = await client.apply([
      { op: 'addService', service: { key: TCP4, ...PLAIN } },
      { op: 'addDest', service: TCP4, dest: dest('10.0.1.1', 80, 'droute', 1) },
      { op: 'addDest', service: TCP4, dest: dest('10.0.1.2', 80, 'droute', 1) },
    ]);
    if (!setup.every((r) => r.ok)) throw new Error('setup for the EBUSY capture failed');
    recording = [];
    await rawDoubleDump(family, (e) => recording?.push(e));
    write('error-dump-ebusy', 'two GET_DEST dumps sent on one socket before the first finished: the second gets EBUSY', { method: 'raw', args: [] }, recording);
  } finally {
    recording = undefined;
    await client.flush().catch(() => undefined);
    client.close();
    sh('ipvsadm', '-C');
  }
}

function invoke(c: NetlinkIpvsClient, call: GoldenCall): Promise<unknown> {
  switch (call.method) {
    case 'open':
    case 'raw':
      return Promise.resolve(undefined);
    case 'info':
      return c.info();
    case 'dump':
      return c.dump();
    case 'flush':
      return c.flush();
    case 'getTimeouts':
      return c.getTimeouts();
    case 'listDaemons':
      return c.listDaemons();
    case 'apply':
      return c.apply(call.args[0]);
    case 'listDests':
      return c.listDests(call.args[0]);
    case 'zero':
      return c.zero(...call.args);
    case 'setTimeouts':
      return c.setTimeouts(call.args[0]);
    case 'startDaemon':
      return c.startDaemon(call.args[0]);
    case 'stopDaemon':
      return c.stopDaemon(call.args[0]);
  }
}

/** Sends two GET_DEST dumps of TCP4 back to back on one raw socket and waits for both answers. */
async function rawDoubleDump(family: number, trace: (e: TraceEvent) => void): Promise<void> {
  await new Promise<void>((resolveDone, reject) => {
    const timer = setTimeout(() => reject(new Error('raw double dump: no answers within 5 s')), 5000);
    let done = 0;
    const t = rawNetlinkTransport({
      message: (datagram) => {
        trace({ direction: 'recv', socket: 0, datagram });
        // The EBUSY error ends the second request; DONE (type 3) ends the first.
        for (let off = 0; off < datagram.length; ) {
          const h = readNlMsgHeader(datagram, off);
          if (h === undefined || h.len < 16) break;
          if (h.type === 2 || h.type === 3) done++;
          off += (h.len + 3) & ~3;
        }
        if (done >= 2) {
          clearTimeout(timer);
          t.close();
          resolveDone();
        }
      },
      error: (err) => reject(err),
    });
    for (const seq of [900, 901]) {
      const datagram = encodeIpvsRequest(getDestsRequest(TCP4), family, seq);
      trace({ direction: 'send', socket: 0, datagram });
      t.send(datagram, (err) => {
        if (err !== undefined) reject(err);
      });
    }
  });
}

/** Groups traced datagrams into request/answer exchanges by sequence number. */
function exchanges(events: readonly TraceEvent[]): GoldenExchange[] {
  const out: GoldenExchange[] = [];
  const bySeq = new Map<number, GoldenExchange>();
  for (const e of events) {
    const seq = readNlMsgHeader(e.datagram)?.seq ?? -1;
    if (e.direction === 'send') {
      const x: GoldenExchange = { seq, sent: e.datagram.toString('hex'), received: [] };
      out.push(x);
      bySeq.set(seq, x);
    } else {
      const x = bySeq.get(seq);
      if (x === undefined) throw new Error(`a reply with seq ${seq} matches no request`);
      x.received.push(e.datagram.toString('hex'));
    }
  }
  return out;
}

function sh(...argv: [string, ...string[]]): void {
  execFileSync(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Host side: boots a VM that captures into a share kept here, then copies the fixtures into `to`. */
async function update(to: string): Promise<void> {
  const share = mkdtempSync(join(tmpdir(), 'tandem-golden-'));
  try {
    const r = await runInVm({
      command: ['node', '--import', 'tsx', 'test/vm/capture-golden.ts', `${VM_RESULTS}/golden`],
      timeoutMs: 600_000,
      shareDir: share,
      onOutput: (stream, chunk) => (stream === 'stdout' ? process.stdout : process.stderr).write(chunk),
    });
    if (r.exitCode !== 0) throw new Error(`capture in the VM exited with ${r.exitCode}`);
    mkdirSync(to, { recursive: true });
    const files = readdirSync(join(share, 'golden')).filter((f) => f.endsWith('.json'));
    for (const f of files) copyFileSync(join(share, 'golden', f), join(to, f));
    console.log(`capture-golden: ${files.length} fixtures copied to ${to}`);
  } finally {
    rmSync(share, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
try {
  if (argv[0] === '--update') {
    const toIdx = argv.indexOf('--to');
    await update(toIdx === -1 ? FIXTURES : resolve(argv[toIdx + 1] ?? FIXTURES));
  } else if (argv[0] !== undefined && !argv[0].startsWith('-')) {
    await capture(argv[0]);
  } else {
    console.error('usage: capture-golden.ts --update [--to DIR]   (host)\n       capture-golden.ts OUTDIR               (inside the test VM)');
    process.exitCode = 2;
  }
} catch (e) {
  console.error(`capture-golden: ${messageOf(e)}`);
  process.exitCode = 1;
}
