/**
 * Real traffic through IPVS configured by `tandem ipvs apply`, inside the VM (Debian 6.1 kernel). The VM's root
 * namespace is the director; a client and the real servers are network namespaces joined by veths to three
 * bridges the director holds addresses on:
 *
 * ```
 *   client 10.99.0.10 --+                        +-- nat1 10.99.1.21, nat2 10.99.1.22   (default via 10.99.1.1)
 *   dr1 .21  dr2 .22  --+-- ttbr0 10.99.0.1/24   |
 *   ipip1 .31 gue1 .32 -+   VIP 10.99.0.100      +-- ttbr1 10.99.1.1/24
 *   gre1 .33          --+   (the director)       +-- ttbr2 10.99.2.1/24
 *                                                +-- fn1 10.99.2.31, fn2 10.99.2.32     (NO route to the client)
 * ```
 *
 * Each real server runs a tiny TCP server that answers `<its name> <the client address it saw>`. From the
 * client, connections to the VIP reach the real servers in NAT (with port translation), DR (VIP on lo,
 * arp_ignore=1, arp_announce=2), TUN over ipip, GUE and GRE (VIP on the fallback tunnel device, rp_filter off)
 * and FULLNAT: those real servers have no route back to the client, so replies work only because of the
 * source NAT; they see the director's 10.99.2.1 as the client. Deleting the FULLNAT table breaks new
 * connections; a second apply restores it.
 *
 * Few connections and generous timeouts: TCG is slow. Runs inside the VM only (requireVm).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { findNft } from '../../src/ipvs/index.ts';
import { REPO_ROOT } from '../../src/lab/vm.ts';
import { run } from '../../src/lab/netns.ts';
import { requireVm } from './helpers.ts';

const NFT = findNft();
const PYTHON = '/usr/bin/python3';
const VIP = '10.99.0.100';
const CLIENT = '10.99.0.10';
const FULLNAT_SOURCE = '10.99.2.1';

/** Ports of the virtual services, one per forwarding method. */
const PORT = { nat: 80, dr: 81, ipip: 82, gue: 83, gre: 84, fullnat: 85 } as const;
const GUE_PORT = 6080;

interface Host {
  name: string;
  bridge: 'ttbr0' | 'ttbr1' | 'ttbr2';
  address: string;
  gateway?: string;
  /** How the host takes VIP traffic: DR (VIP on lo), a tunnel device, or nothing (NAT, FULLNAT, client). */
  vip?: 'lo' | 'ipip' | 'gue' | 'gre';
  /** Ports its TCP server listens on. */
  ports: number[];
}

const HOSTS: Host[] = [
  { name: 'cli', bridge: 'ttbr0', address: CLIENT, gateway: '10.99.0.1', ports: [] },
  { name: 'nat1', bridge: 'ttbr1', address: '10.99.1.21', gateway: '10.99.1.1', ports: [8080] },
  { name: 'nat2', bridge: 'ttbr1', address: '10.99.1.22', gateway: '10.99.1.1', ports: [8080] },
  { name: 'dr1', bridge: 'ttbr0', address: '10.99.0.21', vip: 'lo', ports: [PORT.dr] },
  { name: 'dr2', bridge: 'ttbr0', address: '10.99.0.22', vip: 'lo', ports: [PORT.dr] },
  { name: 'ipip1', bridge: 'ttbr0', address: '10.99.0.31', vip: 'ipip', ports: [PORT.ipip] },
  { name: 'gue1', bridge: 'ttbr0', address: '10.99.0.32', vip: 'gue', ports: [PORT.gue] },
  { name: 'gre1', bridge: 'ttbr0', address: '10.99.0.33', vip: 'gre', ports: [PORT.gre] },
  // FULLNAT real servers: another subnet and no default route, so nothing reaches the client from here.
  { name: 'fn1', bridge: 'ttbr2', address: '10.99.2.31', ports: [8085] },
  { name: 'fn2', bridge: 'ttbr2', address: '10.99.2.32', ports: [8085] },
];

const BRIDGES = [
  ['ttbr0', '10.99.0.1/24'],
  ['ttbr1', '10.99.1.1/24'],
  ['ttbr2', '10.99.2.1/24'],
] as const;

const ns = (h: string): string => `tt-${h}`;

const CONFIG = `node: { name: dirA, interface: ttbr0, state_dir: STATE_DIR }
vrrp:
  transport: { mode: unicast, source: 10.99.0.1, peers: [10.99.0.3] }
  instances: [{ name: VI_1, vrid: 51, vips: [${VIP}] }]
ipvs: { reconcile_interval: 5s }
virtual_servers:
  - name: nat
    address: ${VIP}
    port: ${PORT.nat}
    scheduler: rr
    forwarding: nat
    real_servers: [{ address: 10.99.1.21, port: 8080 }, { address: 10.99.1.22, port: 8080 }]
  - name: dr
    address: ${VIP}
    port: ${PORT.dr}
    scheduler: rr
    forwarding: dr
    real_servers: [{ address: 10.99.0.21 }, { address: 10.99.0.22 }]
  - name: ipip
    address: ${VIP}
    port: ${PORT.ipip}
    forwarding: tun
    tunnel: { type: ipip }
    real_servers: [{ address: 10.99.0.31 }]
  - name: gue
    address: ${VIP}
    port: ${PORT.gue}
    forwarding: tun
    tunnel: { type: gue, port: ${GUE_PORT} }
    real_servers: [{ address: 10.99.0.32 }]
  - name: gre
    address: ${VIP}
    port: ${PORT.gre}
    forwarding: tun
    tunnel: { type: gre }
    real_servers: [{ address: 10.99.0.33 }]
  - name: fullnat
    address: ${VIP}
    port: ${PORT.fullnat}
    scheduler: rr
    forwarding: fullnat
    fullnat: { source: ${FULLNAT_SOURCE} }
    real_servers: [{ address: 10.99.2.31, port: 8085 }, { address: 10.99.2.32, port: 8085 }]
`;

/** Each real server: answers every connection with `<name> <peer address>` and closes. */
const SERVER = `
import socket, sys, threading
name = sys.argv[1]
def serve(s):
    while True:
        c, a = s.accept()
        try:
            c.sendall(("%s %s\\n" % (name, a[0])).encode())
        finally:
            c.close()
socks = []
for p in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    s.listen(64)
    socks.append(s)
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
`;

/** The client: N connections to host:port, one line each (the answer, or ERR and the reason). */
const CLIENT_SCRIPT = `
import socket, sys
host, port, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        s.settimeout(timeout)
        data = b""
        while True:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        s.close()
        print(data.decode().strip() or "ERR empty", flush=True)
    except Exception as e:
        print("ERR %s" % e, flush=True)
`;

const servers: ChildProcess[] = [];

async function inNs(host: string, argv: readonly string[], opts: { allowFail?: boolean } = {}): Promise<string> {
  return run(['ip', 'netns', 'exec', ns(host), ...argv], opts);
}

async function sysctl(host: string | undefined, key: string, value: string): Promise<void> {
  const path = `/proc/sys/${key.replace(/\./g, '/')}`;
  const argv = ['sh', '-c', `echo ${value} > ${path}`];
  await (host === undefined ? run(argv) : inNs(host, argv));
}

/** Starts a host's TCP server and waits for it to listen. */
function startServer(h: Host): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns(h.name), PYTHON, '-u', '-c', SERVER, h.name, ...h.ports.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
    servers.push(child);
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server ${h.name} not ready after 60 s: ${err}`)), 60_000);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server ${h.name} exited ${String(code)}: ${err}`));
    });
  });
}

async function teardown(): Promise<void> {
  for (const s of servers.splice(0)) s.kill('SIGKILL');
  for (const h of HOSTS) await run(['ip', 'netns', 'del', ns(h.name)], { allowFail: true });
  for (const [br] of BRIDGES) await run(['ip', 'link', 'del', br], { allowFail: true });
  await run(['ipvsadm', '-C'], { allowFail: true });
  await run([NFT, 'delete', 'table', 'inet', 'tandem_fullnat'], { allowFail: true });
}

async function setup(): Promise<void> {
  await teardown();
  for (const m of ['ipip', 'ip_gre', 'fou']) await run(['modprobe', m]);
  for (const [br, cidr] of BRIDGES) {
    await run(['ip', 'link', 'add', br, 'type', 'bridge']);
    await run(['ip', 'addr', 'add', cidr, 'dev', br]);
    await run(['ip', 'link', 'set', br, 'up']);
  }
  await run(['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'ttbr0']);
  // NAT replies are forwarded back by the director (FULLNAT's reconciler sets this too).
  await sysctl(undefined, 'net.ipv4.ip_forward', '1');
  for (const h of HOSTS) {
    const n = ns(h.name);
    await run(['ip', 'netns', 'add', n]);
    await run(['ip', 'link', 'add', `${n}-h`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n]);
    await run(['ip', 'link', 'set', `${n}-h`, 'master', h.bridge, 'up']);
    await inNs(h.name, ['ip', 'link', 'set', 'lo', 'up']);
    await inNs(h.name, ['ip', 'addr', 'add', `${h.address}/24`, 'dev', 'eth0']);
    await inNs(h.name, ['ip', 'link', 'set', 'eth0', 'up']);
    if (h.gateway !== undefined) await inNs(h.name, ['ip', 'route', 'add', 'default', 'via', h.gateway]);
    if (h.vip !== undefined) {
      // Never answer ARP for the VIP, never announce it: only the director does.
      await sysctl(h.name, 'net.ipv4.conf.all.arp_ignore', '1');
      await sysctl(h.name, 'net.ipv4.conf.all.arp_announce', '2');
      const dev = h.vip === 'lo' ? 'lo' : h.vip === 'gre' ? 'gre0' : 'tunl0';
      if (dev !== 'lo') {
        // Decapsulated packets come from the client but arrive on the tunnel device: no reverse-path check.
        await sysctl(h.name, 'net.ipv4.conf.all.rp_filter', '0');
        await sysctl(h.name, `net.ipv4.conf.${dev}.rp_filter`, '0');
        await inNs(h.name, ['ip', 'link', 'set', dev, 'up']);
      }
      if (h.vip === 'gue') await inNs(h.name, ['ip', 'fou', 'add', 'port', String(GUE_PORT), 'gue']);
      await inNs(h.name, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', dev]);
    }
  }
  await Promise.all(HOSTS.filter((h) => h.ports.length > 0).map(startServer));
}

/** Runs `tandem ipvs apply -c file` from the checkout. */
function apply(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli', 'main.ts'), 'ipvs', 'apply', '-c', file], { cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** N connections from the client to VIP:port; the answers (or ERR lines). */
async function connect(port: number, n: number, timeoutS = 8): Promise<string[]> {
  const out = await inNs('cli', [PYTHON, '-c', CLIENT_SCRIPT, VIP, String(port), String(n), String(timeoutS)]);
  return out.split('\n').filter((l) => l !== '');
}

let configFile = '';

test.before(async () => {
  if (process.getuid?.() !== 0) return;
  try {
    requireVm();
  } catch {
    return; // each test fails with requireVm's message
  }
  await setup();
  const dir = mkdtempSync('/tmp/tandem-traffic-');
  configFile = join(dir, 'traffic.yaml');
  writeFileSync(configFile, CONFIG.replace('STATE_DIR', join(dir, 'state')));
});

test.after.always(async () => {
  if (configFile !== '') await teardown();
});

test.serial('tandem ipvs apply sets up every service of the traffic lab', async (t) => {
  requireVm();
  const r = await apply(configFile);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /^ipvs apply: 15 ops, 15 applied, 0 failed, fullnat replaced$/m);
  t.is(readFileSync('/proc/sys/net/ipv4/vs/conntrack', 'utf8').trim(), '1', 'IPVS keeps conntrack so the source NAT can apply');
  t.regex(await run(['ipvsadm', '-Ln']), /TCP\s+10\.99\.0\.100:85 rr/);
});

test.serial('NAT: the real servers answer through the VIP, with port translation, and see the client', async (t) => {
  requireVm();
  const answers = await connect(PORT.nat, 4);
  t.deepEqual([...new Set(answers)].sort(), [`nat1 ${CLIENT}`, `nat2 ${CLIENT}`], answers.join('\n'));
});

test.serial('DR: real servers with the VIP on lo (arp_ignore=1, arp_announce=2) answer the client directly', async (t) => {
  requireVm();
  const answers = await connect(PORT.dr, 4);
  t.deepEqual([...new Set(answers)].sort(), [`dr1 ${CLIENT}`, `dr2 ${CLIENT}`], answers.join('\n'));
  // The client learned the director's MAC for the VIP, never a real server's.
  const neigh = await inNs('cli', ['ip', 'neigh', 'show', VIP]);
  const directorMac = (await run(['cat', '/sys/class/net/ttbr0/address'])).trim();
  t.true(neigh.includes(directorMac), `${neigh} (director ${directorMac})`);
});

test.serial('TUN ipip: the real server decapsulates on tunl0 and answers the client directly', async (t) => {
  requireVm();
  t.deepEqual(await connect(PORT.ipip, 2), [`ipip1 ${CLIENT}`, `ipip1 ${CLIENT}`]);
});

test.serial('TUN gue: GUE on UDP 6080 (ip fou ... gue) into tunl0', async (t) => {
  requireVm();
  t.deepEqual(await connect(PORT.gue, 2), [`gue1 ${CLIENT}`, `gue1 ${CLIENT}`]);
});

test.serial('TUN gre: the real server decapsulates on gre0', async (t) => {
  requireVm();
  t.deepEqual(await connect(PORT.gre, 2), [`gre1 ${CLIENT}`, `gre1 ${CLIENT}`]);
});

test.serial('FULLNAT: real servers with no route to the client answer through the source NAT', async (t) => {
  requireVm();
  // The premise: from the FULLNAT real servers the client is unreachable.
  const route = await inNs('fn1', ['ip', 'route', 'get', CLIENT], { allowFail: true });
  t.notRegex(route, new RegExp(CLIENT.replace(/\./g, '\\.') + ' (via|dev)'), `fn1 must have no route to the client: ${route}`);
  const answers = await connect(PORT.fullnat, 4);
  t.deepEqual([...new Set(answers)].sort(), [`fn1 ${FULLNAT_SOURCE}`, `fn2 ${FULLNAT_SOURCE}`], answers.join('\n'));
});

test.serial('FULLNAT: without the nftables table new connections fail; the next apply restores it', async (t) => {
  requireVm();
  await run([NFT, 'delete', 'table', 'inet', 'tandem_fullnat']);
  const broken = await connect(PORT.fullnat, 1, 4);
  t.regex(broken[0] ?? '', /^ERR /, `without source NAT the real server's reply has no way back: ${broken.join(' ')}`);
  const r = await apply(configFile);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /^~ nft table inet tandem_fullnat \(1 rule\): the table does not exist$/m);
  t.regex(r.stdout, /^ipvs apply: 0 ops, 0 applied, 0 failed, fullnat replaced$/m);
  const answers = await connect(PORT.fullnat, 2);
  t.deepEqual([...new Set(answers)].sort(), [`fn1 ${FULLNAT_SOURCE}`, `fn2 ${FULLNAT_SOURCE}`], answers.join('\n'));
});
