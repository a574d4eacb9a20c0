/**
 * The director loop with a FakeClock and recording fakes for its adapters: which effects reach the kernel,
 * in which order and when (announcement bursts, refresh, split-brain re-announce, leftovers, shutdown).
 */

import test from 'ava';
import type { TandemConfig } from '../../src/config/types.ts';
import { Director } from '../../src/director/director.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { MemoryLogger } from '../../src/lib/log.ts';
import { encodeAdvert, decodeAdvert } from '../../src/vrrp/codec.ts';
import type { IngressResult } from '../../src/vrrp/ingress.ts';
import type { VrrpTransport } from '../../src/vrrp/transport.ts';
import type { Advert } from '../../src/vrrp/types.ts';
import type { Announcer, VipManager } from '../../src/vip/index.ts';
import type { VipConfig } from '../../src/config/types.ts';

function config(over: { priority?: number; refreshMs?: number; repeat?: number } = {}): TandemConfig {
  return {
    file: 'test.yaml',
    node: { name: 'dirA', interface: 'eth0', stateDir: '/nonexistent' },
    vrrp: {
      transport: { mode: 'unicast', port: 5112, source: '10.99.0.2', peers: ['10.99.0.3'] },
      auth: undefined,
      maxPeerPriority: 254,
      instances: [
        {
          name: 'VI_1',
          vrid: 51,
          priority: over.priority ?? 150,
          advertIntervalMs: 100,
          preempt: true,
          preemptDelayMs: 0,
          interface: 'eth0',
          vips: [{ address: '10.99.0.100', prefixLength: 32, family: 4, interface: 'eth0' }],
          garp: { repeat: over.repeat ?? 2, intervalMs: 200, refreshMs: over.refreshMs ?? 0 },
        },
      ],
    },
    metrics: { listen: undefined },
  };
}

class FakeTransport implements VrrpTransport {
  sent: Advert[] = [];
  deliver: (d: Buffer, src: string) => void = () => {};
  async start(onDatagram: (d: Buffer, s: string) => void): Promise<void> {
    this.deliver = onDatagram;
  }
  send(d: Buffer): void {
    const r = decodeAdvert(d);
    if (r.ok) this.sent.push(r.value.advert);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

class RecordingVips implements VipManager, Announcer {
  log: string[] = [];
  constructor(private readonly clock: FakeClock) {}
  async add(v: VipConfig): Promise<void> {
    this.log.push(`${this.clock.now()} add ${v.address}`);
  }
  async remove(v: VipConfig): Promise<void> {
    this.log.push(`${this.clock.now()} remove ${v.address}`);
  }
  async list(): Promise<string[]> {
    return [];
  }
  async announce(v: VipConfig): Promise<void> {
    this.log.push(`${this.clock.now()} announce ${v.address}`);
  }
  close(): void {}
}

/** Accepts everything that decodes (authentication has its own tests). */
const passIngress = {
  accept(d: Buffer): IngressResult {
    const r = decodeAdvert(d);
    return r.ok ? { ok: true, advert: r.value.advert, senderId: undefined, authenticated: false } : { ok: false, reason: 'malformed', detail: r.detail };
  },
};

async function setup(over: Parameters<typeof config>[0] = {}) {
  const clock = new FakeClock(1000);
  const transport = new FakeTransport();
  const vips = new RecordingVips(clock);
  const logger = new MemoryLogger();
  const director = new Director({
    config: config(over),
    clock,
    logger,
    transport,
    vips,
    announcer: vips,
    ingress: passIngress,
    sign: (f) => f,
    readLink: () => ({ up: true, state: 'up' }),
  });
  await director.start();
  const settle = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  const advance = async (ms: number) => {
    const end = clock.now() + ms;
    while (clock.now() < end) {
      clock.advance(Math.min(10, end - clock.now()));
      await settle();
    }
  };
  return { clock, transport, vips, logger, director, advance, settle };
}

const peerAdvert = (priority: number): Buffer =>
  encodeAdvert({ vrid: 51, priority, advertIntervalCs: 10, family: 4, sender: '10.99.0.3', addresses: ['10.99.0.100'] });

test('start removes VIPs left by an earlier run before the election starts', async (t) => {
  const { vips, director } = await setup();
  t.deepEqual(vips.log, ['1000 remove 10.99.0.100']);
  t.is(director.status()[0]?.state, 'BACKUP');
});

test('becoming master: VIP added, first announcement at once, then `repeat` more at `interval`', async (t) => {
  const { vips, advance, director } = await setup({ repeat: 2 });
  vips.log = [];
  await advance(400); // master-down for priority 150 at 100 ms: 341.4 ms
  t.is(director.status()[0]?.state, 'MASTER');
  const becameAt = Number(vips.log[0]?.split(' ')[0]);
  t.deepEqual(vips.log.map((l) => l.split(' ').slice(1).join(' ')), ['add 10.99.0.100', 'announce 10.99.0.100']);
  t.true(becameAt >= 1341 && becameAt <= 1351);
  await advance(500);
  t.deepEqual(vips.log.map((l) => Number(l.split(' ')[0]) - becameAt), [0, 0, 200, 400]);
});

test('adverts are sent every interval while master, with the configured priority', async (t) => {
  const { transport, advance } = await setup();
  await advance(350);
  transport.sent = [];
  await advance(1000);
  t.true(transport.sent.length >= 9 && transport.sent.length <= 11, `${transport.sent.length} adverts in 1 s`);
  t.true(transport.sent.every((a) => a.priority === 150 && a.vrid === 51 && a.sender === '10.99.0.2' && a.advertIntervalCs === 10));
});

test('periodic refresh re-announces while master and stops when the node steps down', async (t) => {
  const { vips, transport, advance, director } = await setup({ repeat: 0, refreshMs: 1000 });
  await advance(350);
  vips.log = [];
  await advance(2100);
  t.is(vips.log.filter((l) => l.includes('announce')).length, 2);
  transport.deliver(peerAdvert(200), '10.99.0.3');
  await advance(10);
  vips.log = [];
  // The higher-priority master keeps advertising, so this node stays backup.
  for (let i = 0; i < 30; i++) {
    transport.deliver(peerAdvert(200), '10.99.0.3');
    await advance(100);
  }
  t.is(director.status()[0]?.state, 'BACKUP');
  t.deepEqual(vips.log.filter((l) => l.includes('announce')), []);
});

test('split brain: a lower-priority advert makes the master advertise at once and re-announce', async (t) => {
  const { vips, transport, advance, logger } = await setup({ repeat: 0 });
  await advance(350);
  vips.log = [];
  transport.sent = [];
  transport.deliver(peerAdvert(100), '10.99.0.3');
  await advance(0);
  await Promise.resolve();
  await advance(1);
  t.is(transport.sent.length, 1);
  t.deepEqual(vips.log.map((l) => l.split(' ').slice(1).join(' ')), ['announce 10.99.0.100']);
  t.true(logger.records.some((r) => r.msg.includes('re-announcing')));
});

test('a higher-priority advert makes the master step down and remove its VIP', async (t) => {
  const { vips, transport, advance, director } = await setup();
  await advance(350);
  vips.log = [];
  transport.deliver(peerAdvert(200), '10.99.0.3');
  await advance(10);
  t.is(director.status()[0]?.state, 'BACKUP');
  t.is(director.status()[0]?.master, '10.99.0.3');
  t.deepEqual(vips.log.map((l) => l.split(' ').slice(1).join(' ')), ['remove 10.99.0.100']);
});

test('stop: a master resigns with priority 0 and removes its VIP', async (t) => {
  const { vips, transport, advance, director } = await setup();
  await advance(350);
  vips.log = [];
  transport.sent = [];
  await director.stop();
  t.deepEqual(transport.sent.map((a) => a.priority), [0]);
  t.deepEqual(vips.log.map((l) => l.split(' ').slice(1).join(' ')), ['remove 10.99.0.100']);
});

test('malformed datagrams are dropped and reported, never reaching the machine', async (t) => {
  const { transport, director, advance } = await setup();
  const events: string[] = [];
  director.events.on((e) => events.push(e.type === 'advert_dropped' ? `${e.type}:${e.reason}` : e.type));
  transport.deliver(Buffer.from('garbage'), '10.99.0.9');
  await advance(10);
  t.true(events.includes('advert_dropped:malformed'));
  t.is(director.status()[0]?.state, 'BACKUP');
});

test('preemption hold: a higher-priority director follows the lower-priority master until the hold is released', async (t) => {
  const { transport, director, advance } = await setup({ priority: 150 });
  const holds: boolean[] = [];
  director.events.on((e) => {
    if (e.type === 'preempt_hold') holds.push(e.hold);
  });
  director.setPreemptHold(true, 'resync pending');
  // The peer (priority 100) is master and keeps advertising every 100 ms for 2 s: no preemption.
  for (let i = 0; i < 20; i++) {
    transport.deliver(peerAdvert(100), '10.99.0.3');
    await advance(100);
  }
  t.is(director.status()[0]?.state, 'BACKUP');
  t.is(director.status()[0]?.master, '10.99.0.3');
  director.setPreemptHold(false, 'resync complete');
  for (let i = 0; i < 6; i++) {
    transport.deliver(peerAdvert(100), '10.99.0.3');
    await advance(100);
  }
  t.is(director.status()[0]?.state, 'MASTER', 'released: preempts within Master_Down_Interval');
  t.deepEqual(holds, [true, false]);
});
