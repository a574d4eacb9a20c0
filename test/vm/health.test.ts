/**
 * Health checking end to end, inside the VM (real IPVS, Debian 6.1): the real `bin/tandem run` with three
 * virtual servers over HTTP real servers in network namespaces. Killing a real server's HTTP service takes it
 * out of IPVS within fall x interval (+ jitter) + timeout + slack, and no sooner than (fall - 1) intervals
 * (rise/fall counting works); restarting it brings it back within rise x interval (+ jitter) + slack. The same
 * with `inhibit_on_failure` (weight 0 instead of removal), and losing the quorum switches a service to its
 * sorry server and back. The daemon's logs say why (reason `refused`) and its metrics count the transitions.
 *
 * ```
 *   director (VM root ns): hcbr0 10.98.1.1/24, `tandem run`, VIP 10.98.0.100
 *   hc-rs1 10.98.1.21, hc-rs2 10.98.1.22, hc-rs3 10.98.1.23: HTTP on 8080 (/healthz -> 200)
 *   sorry server 10.98.1.30:8080 (never checked; nothing needs to listen there for IPVS to hold it)
 * ```
 *
 * Measured times go to t.log (run ava with --verbose or --tap to see them). Runs inside the VM only.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createIpvsClient } from '../../src/ipvs/index.ts';
import type { IpvsClient, IpvsTable } from '../../src/ipvs/index.ts';
import { REPO_ROOT } from '../../src/lab/vm.ts';
import { run } from '../../src/lab/netns.ts';
import { requireVm } from './helpers.ts';

const PYTHON = '/usr/bin/python3';
const TANDEM = join(REPO_ROOT, 'bin', 'tandem');
const BRIDGE = 'hcbr0';
const VIP = '10.98.0.100';
const METRICS = '127.0.0.1:9112';

/** The check every virtual server uses (one shared probe per real server). */
const INTERVAL_MS = 1000;
const TIMEOUT_MS = 500;
const RISE = 2;
const FALL = 3;
const JITTER = 0.1;
/**
 * Slack over the check timing for what follows a decision under TCG: the triggered reconcile (dump + apply
 * over netlink), this test's 100 ms polling, and a node event loop that runs 10-50x slower than on metal.
 */
const SLACK_MS = 2000;

const SERVERS = { rs1: '10.98.1.21', rs2: '10.98.1.22', rs3: '10.98.1.23' } as const;
type ServerName = keyof typeof SERVERS;
const SORRY = '10.98.1.30';

/** A small HTTP server: 200 `ok` on every GET. */
const HTTP_SERVER = `
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
s = S(("0.0.0.0", 8080), H)
print("ready", flush=True)
s.serve_forever()
`;

const CONFIG = `node: { name: dirA, interface: ${BRIDGE}, state_dir: STATE_DIR }
vrrp:
  transport: { mode: unicast, source: 10.98.1.1, peers: [10.98.1.2] }
  instances: [{ name: VI_1, vrid: 61, vips: [${VIP}] }]
metrics: { listen: "${METRICS}" }
ipvs: { reconcile_interval: 5s }
virtual_servers:
  - name: plain
    address: ${VIP}
    port: 80
    scheduler: rr
    forwarding: nat
    health_check: &check { type: http, path: /healthz, status: [200-299], interval: ${INTERVAL_MS}ms, timeout: ${TIMEOUT_MS}ms, rise: ${RISE}, fall: ${FALL} }
    real_servers: [{ address: ${SERVERS.rs1}, port: 8080 }, { address: ${SERVERS.rs2}, port: 8080 }]
  - name: inhibit
    address: ${VIP}
    port: 81
    scheduler: rr
    forwarding: nat
    inhibit_on_failure: true
    health_check: *check
    real_servers: [{ address: ${SERVERS.rs1}, port: 8080 }, { address: ${SERVERS.rs2}, port: 8080 }]
  - name: quorum
    address: ${VIP}
    port: 82
    scheduler: rr
    forwarding: nat
    health_check: *check
    quorum: { min: 2, hysteresis: 0 }
    sorry_server: { address: ${SORRY}, port: 8080 }
    real_servers: [{ address: ${SERVERS.rs1}, port: 8080 }, { address: ${SERVERS.rs2}, port: 8080 }, { address: ${SERVERS.rs3}, port: 8080 }]
`;

const ns = (name: ServerName): string => `hc-${name}`;
const servers = new Map<ServerName, ChildProcess>();
let daemon: ChildProcess | undefined;
let client: IpvsClient | undefined;
/** The daemon's JSON log records. */
const records: Array<{ ts: string; msg: string } & Record<string, unknown>> = [];

/** Starts a real server's HTTP service; resolves when it listens, with the wall time it was ready. */
function startServer(name: ServerName): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns(name), PYTHON, '-u', '-c', HTTP_SERVER], { stdio: ['ignore', 'pipe', 'pipe'] });
    servers.set(name, child);
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server ${name} not ready after 60 s: ${err}`)), 60_000);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('ready')) {
        clearTimeout(timer);
        resolve(Date.now());
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server ${name} exited ${String(code)}: ${err}`));
    });
  });
}

/** Kills a real server's HTTP service (its port then refuses connections); resolves when it is gone. */
async function stopServer(name: ServerName): Promise<number> {
  const child = servers.get(name);
  if (child === undefined) throw new Error(`server ${name} is not running`);
  servers.delete(name);
  child.removeAllListeners('exit');
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  const at = Date.now();
  child.kill('SIGKILL');
  await gone;
  return at;
}

async function teardown(): Promise<void> {
  daemon?.stdin?.end();
  daemon?.kill('SIGTERM');
  daemon = undefined;
  client?.close();
  client = undefined;
  for (const [, s] of servers) {
    s.removeAllListeners('exit');
    s.kill('SIGKILL');
  }
  servers.clear();
  for (const name of Object.keys(SERVERS) as ServerName[]) await run(['ip', 'netns', 'del', ns(name)], { allowFail: true });
  await run(['ip', 'link', 'del', BRIDGE], { allowFail: true });
  await run(['ipvsadm', '-C'], { allowFail: true });
}

/** `address:weight` of each dest of the service on `port`, sorted; undefined when there is no such service. */
function destsOf(table: IpvsTable, port: number): string[] | undefined {
  const s = table.services.find((x) => x.key.kind === 'addr' && x.key.address === VIP && x.key.port === port);
  return s?.dests.map((d) => `${d.address}:${d.weight}`).sort();
}

/** Polls the kernel (netlink dump every 100 ms) until `ok` holds; resolves with the wall time it first held. */
async function until(t: ExecutionContext, what: string, ok: (table: IpvsTable) => boolean, timeoutMs: number): Promise<number> {
  const c = client;
  if (c === undefined) throw new Error('no IPVS client');
  const deadline = Date.now() + timeoutMs;
  let last: IpvsTable | undefined;
  for (;;) {
    last = await c.dump();
    if (ok(last)) return Date.now();
    if (Date.now() > deadline) {
      t.log(`kernel table: ${JSON.stringify([80, 81, 82].map((p) => [p, destsOf(last ?? { services: [] }, p)]))}`);
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The wall time of the first daemon log record after `since` matching `match`. */
function logTime(since: number, match: (r: (typeof records)[number]) => boolean): number | undefined {
  const r = records.find((x) => Date.parse(x.ts) >= since - 5 && match(x));
  return r === undefined ? undefined : Date.parse(r.ts);
}

async function metricsText(): Promise<string> {
  const res = await fetch(`http://${METRICS}/metrics`);
  return res.text();
}

const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** Bounds of the leave and return times (module header). */
const LEAVE_MIN_MS = (FALL - 1) * INTERVAL_MS * (1 - JITTER);
const LEAVE_MAX_MS = FALL * INTERVAL_MS * (1 + JITTER) + TIMEOUT_MS + SLACK_MS;
const RETURN_MIN_MS = (RISE - 1) * INTERVAL_MS * (1 - JITTER);
const RETURN_MAX_MS = RISE * INTERVAL_MS * (1 + JITTER) + SLACK_MS;

const ALL_UP = {
  80: [`${SERVERS.rs1}:1`, `${SERVERS.rs2}:1`],
  81: [`${SERVERS.rs1}:1`, `${SERVERS.rs2}:1`],
  82: [`${SERVERS.rs1}:1`, `${SERVERS.rs2}:1`, `${SERVERS.rs3}:1`],
} as const;

function allUp(table: IpvsTable): boolean {
  return ([80, 81, 82] as const).every((p) => JSON.stringify(destsOf(table, p)) === JSON.stringify(ALL_UP[p]));
}

test.before(async () => {
  requireVm();
  await teardown();
  for (const m of ['ip_vs', 'ip_vs_rr']) await run(['modprobe', m]);
  await run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
  await run(['ip', 'addr', 'add', '10.98.1.1/24', 'dev', BRIDGE]);
  await run(['ip', 'link', 'set', BRIDGE, 'up']);
  for (const [name, address] of Object.entries(SERVERS) as Array<[ServerName, string]>) {
    const n = ns(name);
    await run(['ip', 'netns', 'add', n]);
    await run(['ip', 'link', 'add', `${n}-h`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n]);
    await run(['ip', 'link', 'set', `${n}-h`, 'master', BRIDGE, 'up']);
    await run(['ip', 'netns', 'exec', n, 'ip', 'link', 'set', 'lo', 'up']);
    await run(['ip', 'netns', 'exec', n, 'ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    await run(['ip', 'netns', 'exec', n, 'ip', 'link', 'set', 'eth0', 'up']);
  }
  await Promise.all((Object.keys(SERVERS) as ServerName[]).map(startServer));
  const dir = mkdtempSync('/tmp/tandem-health-');
  const file = join(dir, 'tandem.yaml');
  writeFileSync(file, CONFIG.replace('STATE_DIR', join(dir, 'state')));
  client = await createIpvsClient();
  const d = spawn(TANDEM, ['run', '-c', file, '--exit-with-stdin'], { stdio: ['pipe', 'pipe', 'pipe'] });
  daemon = d;
  let buf = '';
  d.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        records.push(JSON.parse(line) as (typeof records)[number]);
      } catch {
        records.push({ ts: new Date().toISOString(), msg: `(not JSON) ${line}` });
      }
    }
  });
  let stderr = '';
  d.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  d.on('exit', (code) => {
    if (daemon === d) records.push({ ts: new Date().toISOString(), msg: `daemon exited ${String(code)}: ${stderr}` });
  });
});

test.after.always(async () => {
  await teardown();
});

test.serial('tandem run programs every virtual server once its checks run, and IPVS holds all real servers', async (t) => {
  const start = Date.now();
  await until(t, 'all three services with every real server', allUp, 120_000).catch((e: unknown) => {
    t.log(records.slice(-20).map((r) => JSON.stringify(r)).join('\n'));
    throw e;
  });
  t.log(`daemon start to a complete IPVS table: ${fmt(Date.now() - start)}`);
  // Checks are running (a cycle of each probe has completed) before the timed tests start.
  await until(t, 'two check intervals', () => Date.now() - start > 2 * INTERVAL_MS + 500, 10_000);
  const m = await metricsText();
  t.regex(m, /tandem_healthcheck_checks_total\{check="http",result="ok"\} \d+/);
  t.regex(m, /tandem_realserver_up\{virtual_server="quorum",real_server="10\.98\.1\.23:8080"\} 1/);
  t.regex(m, /tandem_virtual_server_quorum\{virtual_server="quorum"\} 1/);
  t.truthy(records.find((r) => r.msg === 'health checking started' && r['watches'] === 7 && r['probes'] === 3), 'seven watches share three probes');
});

test.serial('a stopped real server leaves IPVS within fall x interval + timeout, and returns within rise x interval once restarted; inhibit_on_failure sets weight 0', async (t) => {
  const killedAt = await stopServer('rs2');
  const goneAt = await until(t, 'rs2 out of plain', (tb) => JSON.stringify(destsOf(tb, 80)) === JSON.stringify([`${SERVERS.rs1}:1`]), LEAVE_MAX_MS + 10_000);
  const zeroAt = await until(t, 'rs2 weight 0 in inhibit', (tb) => JSON.stringify(destsOf(tb, 81)) === JSON.stringify([`${SERVERS.rs1}:1`, `${SERVERS.rs2}:0`]), 10_000);
  const quorumNow = destsOf(await (client as IpvsClient).dump(), 82);
  const leave = goneAt - killedAt;
  const inhibitLeave = zeroAt - killedAt;
  const decided = logTime(killedAt, (r) => r.msg === 'real server down' && r['virtual_server'] === 'plain' && r['real_server'] === `${SERVERS.rs2}:8080`);
  t.log(`leave: rs2 killed -> out of IPVS (plain) ${fmt(leave)}; weight 0 (inhibit) ${fmt(inhibitLeave)}; bounds ${fmt(LEAVE_MIN_MS)}..${fmt(LEAVE_MAX_MS)}`);
  if (decided !== undefined) t.log(`leave: killed -> 'real server down' logged ${fmt(decided - killedAt)}, logged -> out of IPVS (incl. 100 ms polling) ${fmt(goneAt - decided)}`);
  t.true(leave >= LEAVE_MIN_MS, `left after ${leave} ms: sooner than ${FALL - 1} intervals means fall is not counted`);
  t.true(leave <= LEAVE_MAX_MS, `left after ${leave} ms, bound ${LEAVE_MAX_MS} ms`);
  t.true(inhibitLeave <= LEAVE_MAX_MS, `weight 0 after ${inhibitLeave} ms, bound ${LEAVE_MAX_MS} ms`);
  t.deepEqual(quorumNow, [`${SERVERS.rs1}:1`, `${SERVERS.rs3}:1`], 'quorum 2 still held with two up servers: no sorry server');
  const down = records.find((r) => r.msg === 'real server down' && r['virtual_server'] === 'inhibit');
  t.like(down, { reason: 'refused', action: 'weight 0 (inhibit_on_failure)' });

  const readyAt = await startServer('rs2');
  const backAt = await until(t, 'rs2 back everywhere', allUp, RETURN_MAX_MS + 10_000);
  const back = backAt - readyAt;
  t.log(`return: rs2 listening again -> back in IPVS (plain, inhibit weight 1, quorum) ${fmt(back)}; bounds ${fmt(RETURN_MIN_MS)}..${fmt(RETURN_MAX_MS)}`);
  t.true(back >= RETURN_MIN_MS, `back after ${back} ms: sooner than ${RISE - 1} interval means rise is not counted`);
  t.true(back <= RETURN_MAX_MS, `back after ${back} ms, bound ${RETURN_MAX_MS} ms`);
  const m = await metricsText();
  t.regex(m, /tandem_healthcheck_transitions_total\{virtual_server="plain",to="down",reason="refused"\} 1/);
  t.regex(m, /tandem_healthcheck_transitions_total\{virtual_server="plain",to="up",reason="ok"\} 1/);
  t.regex(m, /tandem_healthcheck_checks_total\{check="http",result="refused"\} [1-9]/);
  t.regex(m, /tandem_realserver_up\{virtual_server="plain",real_server="10\.98\.1\.22:8080"\} 1/);
});

test.serial('losing the quorum switches a service to its sorry server, and regaining it switches back', async (t) => {
  const killedAt = await stopServer('rs1');
  await stopServer('rs2');
  const sorryAt = await until(t, 'quorum service on the sorry server alone', (tb) => JSON.stringify(destsOf(tb, 82)) === JSON.stringify([`${SORRY}:1`]), LEAVE_MAX_MS + 10_000);
  const loss = sorryAt - killedAt;
  t.log(`quorum loss: rs1 and rs2 killed -> sorry server alone ${fmt(loss)}; bound ${fmt(LEAVE_MAX_MS)}`);
  t.true(loss >= LEAVE_MIN_MS && loss <= LEAVE_MAX_MS, `sorry server after ${loss} ms`);
  t.deepEqual(destsOf(await (client as IpvsClient).dump(), 80), [], 'plain has no sorry server: its service stays, empty');
  const lost = records.find((r) => r.msg === 'virtual server lost quorum' && r['virtual_server'] === 'quorum');
  t.like(lost, { up_weight: 1, quorum: 2, action: 'sorry server in service' });
  // plain (default quorum 1, no sorry server) lost its quorum too: logged, nothing put in.
  t.like(records.find((r) => r.msg === 'virtual server lost quorum' && r['virtual_server'] === 'plain'), { up_weight: 0, action: 'no sorry server: the up real servers stay' });
  t.regex(await metricsText(), /tandem_virtual_server_sorry_active\{virtual_server="quorum"\} 1/);

  const [r1, r2] = await Promise.all([startServer('rs1'), startServer('rs2')]);
  const readyAt = Math.max(r1, r2);
  const regainAt = await until(t, 'every real server back, sorry server out', allUp, RETURN_MAX_MS + 10_000);
  const regain = regainAt - readyAt;
  t.log(`quorum regain: rs1 and rs2 listening again -> real servers back, sorry server out ${fmt(regain)}; bound ${fmt(RETURN_MAX_MS)}`);
  t.true(regain <= RETURN_MAX_MS, `regained after ${regain} ms`);
  const m = await metricsText();
  t.regex(m, /tandem_virtual_server_quorum_changes_total\{virtual_server="quorum",to="lost"\} 1/);
  t.regex(m, /tandem_virtual_server_quorum_changes_total\{virtual_server="quorum",to="held"\} 1/);
  t.regex(m, /tandem_virtual_server_quorum\{virtual_server="quorum"\} 1/);
});
