/**
 * VM tier: `tandem realserver up|check|down --mode tun` for each encapsulation IPVS has (ipip, gre, gue), on
 * Debian's kernel (this machine's lacks ipip/gre/fou). Three namespaces on a bridge: a director `dir` holding the
 * VIP with an IPVS service that tunnels to `rs`, a real server `rs` prepared by bin/tandem, and a client `cl`.
 * For every tunnel type: before `up` the client gets nothing (and `check` says what is missing), after `up`
 * `check` passes and the client's TCP connection to the VIP is answered by rs (replying directly, as TUN does),
 * after `down` everything tandem changed is back (rp_filter included) and the service is dead again.
 * Run: bash scripts/vm-run -- npx ava --config ava.vm.config.js test/vm/realserver.test.ts
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { BridgeLab } from '../../src/lab/netns.ts';

const TANDEM = fileURLToPath(new URL('../../bin/tandem', import.meta.url));
const IN_VM = process.env['TANDEM_VM'] === '1';
const VIP = '10.96.0.100';
const RS = '10.96.0.2';
const PORT = 7000;

let lab: BridgeLab | undefined;
let stateDir = '';

function theLab(): BridgeLab {
  if (lab === undefined) throw new Error(IN_VM ? 'lab was not created (see the before hook)' : 'run this file in the VM: bash scripts/vm-run -- npx ava --config ava.vm.config.js test/vm/realserver.test.ts');
  return lab;
}

function inNs(host: string, argv: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const ns = theLab().host(host).ns;
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, ...argv], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** bin/tandem realserver in rs, with one state file per tunnel type so a failed case cannot leak into the next. */
const tandem = (tunnel: string, ...args: string[]) => inNs('rs', [TANDEM, 'realserver', ...args, '--state-file', join(stateDir, `${tunnel}.json`)]);

/** The client's TCP connection to VIP:PORT: rs's greeting, or '' when nothing answered within 5 s. */
async function clientGets(): Promise<string> {
  const script = `const c=require('net').connect(${PORT},'${VIP}');let d='';c.on('data',(x)=>d+=x);c.on('end',()=>{process.stdout.write(d);process.exit(0)});c.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),5000)`;
  return (await inNs('cl', [process.execPath, '-e', script])).stdout;
}

test.before(async () => {
  if (!IN_VM) return;
  lab = await BridgeLab.create({
    prefix: 'tvrs',
    hosts: [
      { name: 'dir', cidr: '10.96.0.1/24' },
      { name: 'rs', cidr: `${RS}/24` },
      { name: 'cl', cidr: '10.96.0.3/24' },
    ],
  });
  await lab.exec('dir', ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'eth0']);
  await lab.exec('cl', ['ip', 'route', 'add', `${VIP}/32`, 'dev', 'eth0']);
  await lab.exec('rs', ['ip', 'route', 'add', 'default', 'via', '10.96.0.1', 'dev', 'eth0']);
  // Strict reverse-path filtering, as many distributions ship: `up` must relax it and `down` put it back.
  await lab.exec('rs', ['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=1']);
  stateDir = mkdtempSync(join(tmpdir(), 'tandem-rs-'));
});

test.after.always(async () => {
  await lab?.destroy();
  if (stateDir !== '') rmSync(stateDir, { recursive: true, force: true });
});

const CASES = [
  { tunnel: 'ipip', ipvsadm: ['--tun-type', 'ipip'], extra: [] as string[] },
  // gre0 (the fallback device) takes GRE without checksums only: the director must use --tun-nocsum (default).
  { tunnel: 'gre', ipvsadm: ['--tun-type', 'gre', '--tun-nocsum'], extra: [] as string[] },
  { tunnel: 'gue', ipvsadm: ['--tun-type', 'gue', '--tun-port', '6080', '--tun-csum'], extra: ['--gue-port', '6080'] },
] as const;

for (const c of CASES) {
  test.serial(`TUN ${c.tunnel}: nothing before up, served after up, back to before after down`, async (t) => {
    const l = theLab();
    await l.exec('dir', ['ipvsadm', '-C']);
    await l.exec('dir', ['ipvsadm', '-A', '-t', `${VIP}:${PORT}`, '-s', 'rr']);
    await l.exec('dir', ['ipvsadm', '-a', '-t', `${VIP}:${PORT}`, '-r', RS, '-i', ...c.ipvsadm]);
    const server = l.spawn('rs', [process.execPath, '-e', `require('net').createServer((s)=>s.end('hello over ${c.tunnel}\\n')).listen(${PORT},'0.0.0.0',()=>console.log('listening'))`]);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('rs server did not start')), 60_000);
        server.stdout?.on('data', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const args = ['--vip', VIP, '--mode', 'tun', '--tunnel', c.tunnel, ...c.extra];
      const before = (await l.exec('rs', ['sysctl', '-n', 'net.ipv4.conf.all.rp_filter'])).trim();

      t.is(await clientGets(), '', 'no answer before up');
      const check0 = await tandem(c.tunnel, 'check', ...args);
      t.is(check0.code, 1);
      t.regex(check0.stdout, /^MISSING  address 10\.96\.0\.100\/32 on (tunl0|gre0): /m);

      const up = await tandem(c.tunnel, 'up', ...args);
      t.is(up.code, 0, up.stdout + up.stderr);
      const check1 = await tandem(c.tunnel, 'check', ...args);
      t.is(check1.code, 0, check1.stdout);
      t.is(await clientGets(), `hello over ${c.tunnel}\n`);
      t.is((await l.exec('rs', ['sysctl', '-n', 'net.ipv4.conf.all.rp_filter'])).trim(), '0');
      if (c.tunnel === 'gue') t.regex(await l.exec('rs', ['ip', 'fou', 'show']), /port 6080 gue/);

      const down = await tandem(c.tunnel, 'down', '--vip', VIP);
      t.is(down.code, 0, down.stdout + down.stderr);
      t.is((await l.exec('rs', ['sysctl', '-n', 'net.ipv4.conf.all.rp_filter'])).trim(), before);
      t.is((await tandem(c.tunnel, 'check', ...args)).code, 1);
      t.is(await clientGets(), '', 'no answer after down');
      if (c.tunnel === 'gue') t.notRegex(await l.exec('rs', ['ip', 'fou', 'show'], { allowFail: true }), /port 6080/);
    } finally {
      server.kill();
      await tandem(c.tunnel, 'down', '--vip', VIP);
    }
  });
}
