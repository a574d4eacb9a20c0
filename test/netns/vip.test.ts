/**
 * Root-only tests of src/vip against a real kernel: a BridgeLab with director `a` and client `c` on one bridge.
 * VIPs are added and announced by test/netns/vip-tool.ts running inside `a` (node cannot enter a namespace
 * itself); the proof that announcements work is the client's neighbour table changing to a's MAC while the
 * client sends nothing. Not root = failure, not skip: CI runs this tier as root.
 */

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { BridgeLab } from '../../src/lab/netns.ts';
import { VipError } from '../../src/lib/errors.ts';
import { createAnnouncer, createVipManager } from '../../src/vip/index.ts';

const PREFIX = 'tvip';
const TOOL = fileURLToPath(new URL('./vip-tool.ts', import.meta.url));
const WRONG_MAC = '02:de:ad:be:ef:01';
const IS_ROOT = process.getuid?.() === 0;

let lab: BridgeLab | undefined;

/** The lab, or a failure explaining why there is none. */
function theLab(): BridgeLab {
  if (lab === undefined) throw new Error(IS_ROOT ? 'lab was not created (see the before hook)' : 'these tests need root (network namespaces); run them as root');
  return lab;
}

interface ToolResult {
  ok: boolean;
  name?: string;
  code?: string;
  message?: string;
  addresses?: string[];
}

/** Runs vip-tool.ts inside a host's namespace and returns its JSON answer (whatever its exit code). */
function tool(host: string, ...args: string[]): Promise<ToolResult> {
  const ns = theLab().host(host).ns;
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', TOOL, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as ToolResult);
      } catch {
        reject(new Error(`vip-tool ${args.join(' ')} in ${ns}: no JSON answer (${err?.message ?? 'exit 0'}): ${stdout} ${stderr}`));
      }
    });
  });
}

/** `ip -j addr` rows for one address on a host's eth0. */
async function addrInfo(host: string, address: string): Promise<Record<string, unknown> | undefined> {
  const out = await theLab().exec(host, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
  const links = JSON.parse(out) as Array<{ addr_info?: Array<Record<string, unknown>> }>;
  return links.flatMap((l) => l.addr_info ?? []).find((a) => a['local'] === address);
}

/** The client's neighbour entry for `ip` with its probe count (`ip -s -j neigh`). */
async function neighbour(host: string, ip: string): Promise<{ lladdr?: string; state?: string[]; probes?: number } | undefined> {
  const out = await theLab().exec(host, ['ip', '-s', '-j', 'neigh', 'show', 'to', ip, 'dev', 'eth0']);
  const rows = JSON.parse(out === '' ? '[]' : out) as Array<{ lladdr?: string; state?: string[]; probes?: number }>;
  return rows[0];
}

/** Polls the client's neighbour entry until it holds `mac` or `ms` pass; returns the last entry seen. */
async function waitForNeighbour(host: string, ip: string, mac: string, ms: number): Promise<Awaited<ReturnType<typeof neighbour>>> {
  const deadline = performance.now() + ms;
  for (;;) {
    const n = await neighbour(host, ip);
    if (n?.lladdr === mac || performance.now() >= deadline) return n;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test.before(async (t) => {
  t.timeout(60_000);
  if (!IS_ROOT) throw new Error('test/netns/vip.test.ts needs root (network namespaces, CAP_NET_ADMIN, CAP_NET_RAW); CI runs it as root');
  lab = await BridgeLab.create({
    prefix: PREFIX,
    hosts: [
      { name: 'a', cidr: '10.99.50.1/24', cidr6: 'fd00:99:50::1/64' },
      { name: 'c', cidr: '10.99.50.9/24', cidr6: 'fd00:99:50::9/64' },
    ],
  });
});

test.after.always(async () => {
  if (IS_ROOT) await BridgeLab.cleanup(PREFIX);
});

test.serial('IPv4 VIP: add shows in ip addr, add twice is fine, remove removes, remove twice is fine', async (t) => {
  t.timeout(60_000);
  const vip = '10.99.50.100/32';
  t.deepEqual(await tool('a', 'add', vip, 'eth0'), { ok: true });
  t.true((await theLab().addresses('a')).includes(vip));
  t.deepEqual(await tool('a', 'add', vip, 'eth0'), { ok: true }, 'second add (EEXIST) is success');
  t.is((await theLab().addresses('a')).filter((a) => a === vip).length, 1);
  const listed = await tool('a', 'list', 'eth0');
  t.deepEqual(listed.addresses, await theLab().addresses('a'), 'list() agrees with ip addr');
  t.deepEqual(await tool('a', 'remove', vip, 'eth0'), { ok: true });
  t.false((await theLab().addresses('a')).includes(vip));
  t.deepEqual(await tool('a', 'remove', vip, 'eth0'), { ok: true }, 'second remove (EADDRNOTAVAIL) is success');
  t.true((await theLab().addresses('a')).includes('10.99.50.1/24'), 'the host address is untouched');
});

test.serial('IPv6 VIP is added without DAD: not tentative, bindable at once; removal is idempotent', async (t) => {
  t.timeout(60_000);
  // BridgeLab turns DAD off on eth0; turn it back on so a VIP added without IFA_F_NODAD would be tentative.
  await theLab().exec('a', ['sysctl', '-qw', 'net.ipv6.conf.eth0.accept_dad=1']);
  // Control: an address added the ordinary way is tentative and cannot be bound while DAD runs.
  await theLab().exec('a', ['ip', 'addr', 'add', 'fd00:99:50::200/64', 'dev', 'eth0']);
  t.is((await addrInfo('a', 'fd00:99:50::200'))?.['tentative'], true, 'control address is tentative');
  t.like(await tool('a', 'bind', 'fd00:99:50::200'), { ok: false, code: 'EADDRNOTAVAIL' });

  const vip = 'fd00:99:50::100/64';
  t.deepEqual(await tool('a', 'add', vip, 'eth0'), { ok: true });
  const info = await addrInfo('a', 'fd00:99:50::100');
  t.truthy(info);
  t.is(info?.['tentative'], undefined, 'the VIP is not tentative');
  t.is(info?.['nodad'], true);
  t.is(info?.['prefixlen'], 64);
  t.deepEqual(await tool('a', 'bind', 'fd00:99:50::100'), { ok: true }, 'usable at once');
  t.deepEqual(await tool('a', 'add', vip, 'eth0'), { ok: true });
  t.true((await tool('a', 'list', 'eth0')).addresses?.includes(vip) ?? false);
  t.deepEqual(await tool('a', 'remove', vip, 'eth0'), { ok: true });
  t.false((await theLab().addresses('a')).includes(vip));
  t.deepEqual(await tool('a', 'remove', vip, 'eth0'), { ok: true });
  await theLab().exec('a', ['ip', 'addr', 'del', 'fd00:99:50::200/64', 'dev', 'eth0']);
});

test.serial('gratuitous ARP moves the client\'s neighbour entry to the director\'s MAC', async (t) => {
  t.timeout(60_000);
  const vip = '10.99.50.101';
  const aMac = theLab().host('a').mac;
  await theLab().exec('c', ['ip', 'neigh', 'replace', vip, 'lladdr', WRONG_MAC, 'dev', 'eth0', 'nud', 'stale']);
  t.is((await neighbour('c', vip))?.lladdr, WRONG_MAC);

  // Adding the address alone announces nothing (no arp_notify for new addresses)...
  t.deepEqual(await tool('a', 'add', `${vip}/32`, 'eth0'), { ok: true });
  await sleep(300);
  t.is((await neighbour('c', vip))?.lladdr, WRONG_MAC, 'adding the VIP does not update the client by itself');

  // ...our GARP does, within a second, without the client soliciting anything.
  t.deepEqual(await tool('a', 'announce', `${vip}/32`, 'eth0'), { ok: true });
  const n = await waitForNeighbour('c', vip, aMac, 1000);
  t.is(n?.lladdr, aMac);
  t.deepEqual(n?.state, ['STALE'], 'STALE, not REACHABLE: learnt from a broadcast, not from a reply to the client');
  t.is(n?.probes, 0, 'the client sent no ARP request for the VIP');
  t.deepEqual(await tool('a', 'remove', `${vip}/32`, 'eth0'), { ok: true });
});

test.serial('unsolicited NA moves the client\'s IPv6 neighbour entry to the director\'s MAC', async (t) => {
  t.timeout(60_000);
  const vip = 'fd00:99:50::101';
  const aMac = theLab().host('a').mac;
  await theLab().exec('c', ['ip', '-6', 'neigh', 'replace', vip, 'lladdr', WRONG_MAC, 'dev', 'eth0', 'nud', 'stale']);
  t.is((await neighbour('c', vip))?.lladdr, WRONG_MAC);

  t.deepEqual(await tool('a', 'add', `${vip}/64`, 'eth0'), { ok: true });
  await sleep(300);
  t.is((await neighbour('c', vip))?.lladdr, WRONG_MAC, 'adding the VIP (nodad) sends no NA by itself');

  t.deepEqual(await tool('a', 'announce', `${vip}/64`, 'eth0'), { ok: true });
  const n = await waitForNeighbour('c', vip, aMac, 1000);
  t.is(n?.lladdr, aMac, 'the client accepted the NA (hop limit 255, checksum right, Override set)');
  t.deepEqual(n?.state, ['STALE'], 'unsolicited (S clear) NA leaves the entry STALE');
  t.is(n?.probes, 0, 'the client sent no neighbour solicitation for the VIP');
  t.deepEqual(await tool('a', 'remove', `${vip}/64`, 'eth0'), { ok: true });
});

test.serial('bad input: a missing interface is a VipError naming the interface', async (t) => {
  t.timeout(60_000);
  const r = await tool('a', 'add', '10.99.50.102/32', 'nope0');
  t.like(r, { ok: false, name: 'VipError', code: 'ERR_VIP' });
  t.regex(r.message ?? '', /nope0/);
  t.regex(r.message ?? '', /10\.99\.50\.102\/32/);
  t.regex(r.message ?? '', /ENODEV/);
  t.deepEqual(await tool('a', 'remove', '10.99.50.102/32', 'nope0'), { ok: true }, 'removing from a missing interface: nothing to remove');
  const ann = await tool('a', 'announce', '10.99.50.102/32', 'nope0');
  t.like(ann, { ok: false, name: 'VipError' });
  t.regex(ann.message ?? '', /nope0/);

  // In-process as well (read-only lookups in this namespace), to check the error class itself.
  const missing = 'tvip-missing0';
  const vips = createVipManager();
  const announcer = createAnnouncer();
  try {
    const vip = { address: '10.99.50.102', prefixLength: 32, family: 4, interface: missing } as const;
    const e = await t.throwsAsync(vips.add(vip), { instanceOf: VipError });
    t.regex(e?.message ?? '', new RegExp(missing));
    const e2 = await t.throwsAsync(announcer.announce(vip), { instanceOf: VipError });
    t.regex(e2?.message ?? '', new RegExp(missing));
    await t.throwsAsync(vips.add({ ...vip, interface: 'lo', address: '10.99.50.300' }), { instanceOf: VipError, message: /10\.99\.50\.300/ });
  } finally {
    vips.close();
    announcer.close();
  }
});
