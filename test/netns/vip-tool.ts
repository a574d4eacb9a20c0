/**
 * A tiny command-line driver for src/vip, run inside a network namespace by test/netns/vip.test.ts (node cannot
 * change its own namespace, so the test runs `ip netns exec NS node --import tsx test/netns/vip-tool.ts ...`).
 *
 *   vip-tool.ts add ADDRESS/PREFIX IFNAME
 *   vip-tool.ts remove ADDRESS/PREFIX IFNAME
 *   vip-tool.ts list IFNAME
 *   vip-tool.ts announce ADDRESS/PREFIX IFNAME
 *   vip-tool.ts add-announce ADDRESS/PREFIX IFNAME      (add, then announce once)
 *   vip-tool.ts bind ADDRESS                            (bind a UDP socket to it: fails while IPv6 DAD runs)
 *
 * Success prints one JSON line `{"ok":true,...}` on stdout and exits 0; failure prints
 * `{"ok":false,"name","code","message"}` on stdout and exits 1.
 */

import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { VipConfig } from '../../src/config/types.ts';
import { TandemError, messageOf } from '../../src/lib/errors.ts';
import { createAnnouncer, createVipManager } from '../../src/vip/index.ts';

/** Builds a VipConfig from `ADDRESS/PREFIX` and an interface name. */
function vipOf(cidr: string | undefined, ifname: string | undefined): VipConfig {
  if (cidr === undefined || ifname === undefined) throw new Error('usage: vip-tool.ts add|remove|announce|add-announce ADDRESS/PREFIX IFNAME | list IFNAME');
  const [address = '', prefix] = cidr.split('/');
  const family = isIPv6(address) ? 6 : 4;
  return { address, prefixLength: prefix === undefined ? (family === 4 ? 32 : 128) : Number(prefix), family, interface: ifname };
}

/** Binds (and closes) a UDP socket on `address`; rejects with the bind error (EADDRNOTAVAIL for a tentative address). */
function bindOnce(address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
    sock.once('error', (e) => {
      sock.close();
      reject(e);
    });
    sock.bind(0, address, () => {
      sock.close();
      resolve();
    });
  });
}

async function main(argv: string[]): Promise<Record<string, unknown>> {
  const [cmd, a, b] = argv;
  const vips = createVipManager();
  const announcer = createAnnouncer();
  try {
    switch (cmd) {
      case 'add':
        await vips.add(vipOf(a, b));
        return {};
      case 'remove':
        await vips.remove(vipOf(a, b));
        return {};
      case 'list':
        if (a === undefined) throw new Error('usage: vip-tool.ts list IFNAME');
        return { addresses: await vips.list(a) };
      case 'announce':
        await announcer.announce(vipOf(a, b));
        return {};
      case 'add-announce': {
        const vip = vipOf(a, b);
        await vips.add(vip);
        await announcer.announce(vip);
        return {};
      }
      case 'bind':
        if (a === undefined) throw new Error('usage: vip-tool.ts bind ADDRESS');
        await bindOnce(a);
        return {};
      default:
        throw new Error(`unknown command '${cmd ?? ''}': expected add, remove, list, announce or add-announce`);
    }
  } finally {
    vips.close();
    announcer.close();
  }
}

try {
  const result = await main(process.argv.slice(2));
  process.stdout.write(JSON.stringify({ ok: true, ...result }) + '\n');
} catch (e) {
  const name = e instanceof Error ? e.name : 'unknown';
  const errno = (e as NodeJS.ErrnoException).code;
  const code = e instanceof TandemError ? e.code : undefined;
  process.stdout.write(JSON.stringify({ ok: false, name, code: code ?? errno, message: messageOf(e) }) + '\n');
  process.exitCode = 1;
}
