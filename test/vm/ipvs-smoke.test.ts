/**
 * First test of the vm tier, run inside the VM (Debian's kernel, IPVS as modules): the kernel has IPVS and
 * ipvsadm drives it, the `netlink` package resolves the IPVS generic netlink family, and exactly the expected
 * schedulers exist. Outside the VM every test fails (requireVm), never skips: a vm test that did not run in the
 * VM proves nothing, and on a real director it would clear the IPVS table.
 */

import { existsSync, readFileSync } from 'node:fs';
import test from 'ava';
import { createGenericNetlink, genl } from 'netlink';
import { run } from '../../src/lab/netns.ts';
import { requireVm } from './helpers.ts';

/** Every scheduler Debian's 6.1 kernel builds (CONFIG_IP_VS_TWOS is not set there). */
const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'fo', 'ovf', 'mh'] as const;
const SERVICE = '10.0.0.1:80';

// The tests share the kernel's one IPVS table, so they run one after another and each leaves it empty.

test.serial('the kernel has IPVS and ipvsadm adds a service and a real server', async (t) => {
  requireVm();
  await run(['modprobe', 'ip_vs']);
  t.true(existsSync('/proc/net/ip_vs'), '/proc/net/ip_vs exists after modprobe ip_vs');
  try {
    await run(['ipvsadm', '-C']);
    await run(['ipvsadm', '-A', '-t', SERVICE, '-s', 'rr']);
    await run(['ipvsadm', '-a', '-t', SERVICE, '-r', '10.0.0.2:80', '-m']);
    const out = await run(['ipvsadm', '-Ln']);
    t.regex(out, /^TCP\s+10\.0\.0\.1:80 rr\s*$/m, out);
    t.regex(out, /^\s+->\s+10\.0\.0\.2:80\s+Masq\s+1\s/m, out);
    // The kernel's own view agrees (hex address:port in /proc/net/ip_vs).
    const proc = readFileSync('/proc/net/ip_vs', 'utf8');
    t.regex(proc, /TCP\s+0A000001:0050 rr/, proc);
    t.regex(proc, /->\s+0A000002:0050\s+Masq/, proc);
  } finally {
    await run(['ipvsadm', '-C'], { allowFail: true });
  }
  t.notRegex(await run(['ipvsadm', '-Ln']), /10\.0\.0\.1:80/, 'ipvsadm -C cleared the table');
});

test.serial('the netlink package resolves the IPVS generic netlink family', async (t) => {
  requireVm();
  await run(['modprobe', 'ip_vs']);
  const sock = createGenericNetlink();
  try {
    const replies = await sock.ctrlRequest(genl.Commands.GET_FAMILY, { familyName: 'IPVS' }, { timeout: 10_000 });
    t.is(replies.length, 1);
    const family = replies[0];
    t.is(family?.familyName, 'IPVS');
    t.true(typeof family?.familyId === 'number' && family.familyId >= 16, `family id ${String(family?.familyId)} is a dynamic genl id`);
    t.is(family?.version, 1, 'IPVS genl version 1');
    // The controller really answers by name: an unknown family is an error, not an empty success.
    await t.throwsAsync(sock.ctrlRequest(genl.Commands.GET_FAMILY, { familyName: 'NO_SUCH_FAMILY' }, { timeout: 10_000 }));
  } finally {
    sock.socket.close();
  }
});

test.serial('schedulers rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh load, twos does not exist', async (t) => {
  requireVm();
  await run(['modprobe', 'ip_vs']);
  try {
    await run(['ipvsadm', '-C']);
    for (const s of SCHEDULERS) {
      await run(['modprobe', `ip_vs_${s}`]);
      await run(['ipvsadm', '-A', '-t', SERVICE, '-s', s]);
      t.regex(await run(['ipvsadm', '-Ln']), new RegExp(`^TCP\\s+10\\.0\\.0\\.1:80 ${s}\\b`, 'm'), `service with scheduler ${s}`);
      await run(['ipvsadm', '-D', '-t', SERVICE]);
    }
    const modules = readFileSync('/proc/modules', 'utf8');
    for (const s of SCHEDULERS) t.regex(modules, new RegExp(`^ip_vs_${s} `, 'm'), `ip_vs_${s} is loaded`);

    await t.throwsAsync(run(['modprobe', 'ip_vs_twos']), undefined, 'no ip_vs_twos module');
    await t.throwsAsync(run(['ipvsadm', '-A', '-t', SERVICE, '-s', 'twos']), undefined, 'ipvsadm -s twos fails');
    t.notRegex(await run(['ipvsadm', '-Ln']), /10\.0\.0\.1:80/, 'no twos service was created');
  } finally {
    await run(['ipvsadm', '-C'], { allowFail: true });
  }
});
