/**
 * Root-only: `tandem realserver up|check|down --mode dr` in a network namespace on this machine's kernel, run as
 * an operator would (bin/tandem inside `ip netns exec`). A real server `rs` and a client `cl` share a bridge;
 * `cl` plays the director's part by sending to the VIP at rs's MAC. Proves the three things DR needs:
 * - before `up`, a VIP on lo is answered for over ARP (the bug `up` prevents) and `check` says what is missing;
 * - after `up`, `check` passes, rs ignores ARP for the VIP, and still accepts TCP for the VIP sent to its MAC;
 * - `down` puts back exactly the values that were there (sysctls, addresses) and `check` fails again.
 * TUN needs ipip/gre/fou, which this kernel lacks: test/vm/realserver.test.ts. Not root = failure, not skip.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { BridgeLab } from '../../src/lab/netns.ts';

const PREFIX = 'trsv';
const TANDEM = fileURLToPath(new URL('../../bin/tandem', import.meta.url));
const VIP = '10.97.0.100';
const VIP6 = '2001:db8:97::100';
const IS_ROOT = process.getuid?.() === 0;

let lab: BridgeLab | undefined;
let stateDir = '';

function theLab(): BridgeLab {
  if (lab === undefined) throw new Error(IS_ROOT ? 'lab was not created (see the before hook)' : 'these tests need root (network namespaces); run them as root');
  return lab;
}

/** Runs a command in a host's namespace; resolves with its exit code and output, whatever the code. */
function inNs(host: string, argv: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const ns = theLab().host(host).ns;
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, ...argv], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const tandem = (...args: string[]) => inNs('rs', [TANDEM, 'realserver', ...args, '--state-file', join(stateDir, 'state.json')]);

async function sysctl(key: string): Promise<string> {
  return (await theLab().exec('rs', ['sysctl', '-n', key])).trim();
}

const KEYS = ['all', 'lo', 'eth0'].flatMap((i) => [`net.ipv4.conf.${i}.arp_ignore`, `net.ipv4.conf.${i}.arp_announce`]);

/** Whether rs answers an ARP request for `ip` sent by cl. */
async function arpAnswered(ip: string): Promise<boolean> {
  return (await inNs('cl', ['arping', '-c', '2', '-w', '3', '-I', 'eth0', ip])).code === 0;
}

/** cl connects to VIP:7000 at rs's MAC (what a DR director does) and reads rs's greeting. */
async function tcpViaMac(): Promise<string> {
  const rs = theLab().host('rs');
  const l = theLab();
  await l.exec('cl', ['ip', 'route', 'replace', `${VIP}/32`, 'dev', 'eth0']);
  await l.exec('cl', ['ip', 'neigh', 'replace', VIP, 'lladdr', rs.mac, 'dev', 'eth0', 'nud', 'permanent']);
  const server = l.spawn('rs', [process.execPath, '-e', "require('net').createServer((s)=>s.end('hello from rs\\n')).listen(7000,'0.0.0.0',()=>console.log('listening'))"]);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not start')), 20_000);
      server.stdout?.on('data', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const script = `const c=require('net').connect(7000,'${VIP}');let d='';c.on('data',(x)=>d+=x);c.on('end',()=>{process.stdout.write(d)});c.on('error',(e)=>{console.error(e.message);process.exit(1)});setTimeout(()=>process.exit(2),8000)`;
    const r = await inNs('cl', [process.execPath, '-e', script]);
    return r.stdout;
  } finally {
    server.kill();
    await l.exec('cl', ['ip', 'neigh', 'del', VIP, 'dev', 'eth0'], { allowFail: true });
  }
}

test.before(async () => {
  if (!IS_ROOT) return;
  lab = await BridgeLab.create({ prefix: PREFIX, hosts: [{ name: 'rs', cidr: '10.97.0.2/24' }, { name: 'cl', cidr: '10.97.0.3/24' }] });
  // A default route, so `up` finds the ARP-facing interface itself.
  await lab.exec('rs', ['ip', 'route', 'add', 'default', 'via', '10.97.0.1', 'dev', 'eth0']);
  stateDir = mkdtempSync(join(tmpdir(), 'tandem-rs-'));
});

test.after.always(async () => {
  await lab?.destroy();
  if (stateDir !== '') rmSync(stateDir, { recursive: true, force: true });
});

test.serial('before up: a VIP on lo alone is answered for over ARP, and check lists what is missing', async (t) => {
  const l = theLab();
  await l.exec('rs', ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  t.true(await arpAnswered(VIP), 'with arp_ignore=0 rs answers ARP for an address on lo: the DR bug');
  const c = await tandem('check', '--vip', VIP, '--mode', 'dr');
  t.is(c.code, 1, c.stdout + c.stderr);
  t.regex(c.stdout, /^ok {7}address 10\.97\.0\.100\/32 on lo$/m);
  t.regex(c.stdout, /^MISSING  sysctl net\.ipv4\.conf\.all\.arp_ignore = 1 or 2: is 0; fix: sysctl -w net\.ipv4\.conf\.all\.arp_ignore=1$/m);
  t.regex(c.stdout, /^MISSING  sysctl net\.ipv4\.conf\.eth0\.arp_announce = 2: is 0; fix: sysctl -w net\.ipv4\.conf\.eth0\.arp_announce=2$/m);
  t.regex(c.stdout, /^6 of 7 requirements missing$/m);
  await l.exec('rs', ['ip', 'addr', 'del', `${VIP}/32`, 'dev', 'lo']);
});

test.serial('up: check passes, ARP for the VIP is ignored, TCP to the VIP at rs\'s MAC is served; down restores', async (t) => {
  const l = theLab();
  await l.exec('rs', ['sysctl', '-qw', 'net.ipv4.conf.lo.arp_announce=2']); // already right: must survive down
  const before = await Promise.all(KEYS.map(sysctl));

  const up = await tandem('up', '--vip', VIP, '--vip', VIP6, '--mode', 'dr');
  t.is(up.code, 0, up.stdout + up.stderr);
  t.regex(up.stdout, /^done {5}address 10\.97\.0\.100\/32 on lo/m);
  t.regex(up.stdout, /^ok {7}sysctl net\.ipv4\.conf\.lo\.arp_announce = 2$/m);
  const check = await tandem('check', '--vip', VIP, '--vip', VIP6, '--mode', 'dr');
  t.is(check.code, 0, check.stdout);
  t.regex(check.stdout, /^all 8 requirements hold$/m);
  t.deepEqual(await Promise.all(KEYS.map(sysctl)), ['1', '2', '1', '2', '1', '2']);
  const lo = await l.exec('rs', ['ip', '-br', 'addr', 'show', 'dev', 'lo']);
  t.true(lo.includes(`${VIP}/32`) && lo.includes(`${VIP6}/128`), lo);

  t.false(await arpAnswered(VIP), 'rs must not answer ARP for the VIP');
  t.true(await arpAnswered('10.97.0.2'), 'rs still answers for its own address');
  t.is(await tcpViaMac(), 'hello from rs\n');

  const again = await tandem('up', '--vip', VIP, '--vip', VIP6, '--mode', 'dr');
  t.is(again.code, 0);
  t.false(again.stdout.includes('done'), 'a second up has nothing to do');

  const down = await tandem('down', '--vip', VIP, '--vip', VIP6);
  t.is(down.code, 0, down.stdout + down.stderr);
  t.deepEqual(await Promise.all(KEYS.map(sysctl)), before);
  t.is(await sysctl('net.ipv4.conf.lo.arp_announce'), '2');
  const lo2 = await l.exec('rs', ['ip', '-br', 'addr', 'show', 'dev', 'lo']);
  t.false(lo2.includes(VIP) || lo2.includes(VIP6), lo2);
  t.is((await tandem('check', '--vip', VIP, '--mode', 'dr')).code, 1);
});

test.serial('bad arguments exit 2 with usage; down of a VIP tandem never prepared leaves it alone', async (t) => {
  const l = theLab();
  const bad = await tandem('up', '--vip', VIP, '--mode', 'tun', '--tunnel', 'gue');
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--gue-port/);
  await l.exec('rs', ['ip', 'addr', 'add', '10.97.0.200/32', 'dev', 'lo']);
  const down = await tandem('down', '--vip', '10.97.0.200');
  t.is(down.code, 0);
  t.regex(down.stdout, /skipped {2}10\.97\.0\.200: not prepared by tandem/);
  t.true((await l.exec('rs', ['ip', '-br', 'addr', 'show', 'dev', 'lo'])).includes('10.97.0.200/32'));
  await l.exec('rs', ['ip', 'addr', 'del', '10.97.0.200/32', 'dev', 'lo']);
});
