/**
 * Tests of the IPVS reconciler (driver) against a recording fake IpvsClient and FakeClock: one pipelined batch
 * per run, convergence (a second run is a no-op), per-op kernel errors that do not stop the rest (twos on Linux
 * 6.1 with its explanation), ownership (foreign services left alone, owned ones deleted, persisted atomically),
 * periodic drift healing counted as drift, re-dump after failures and ENOBUFS, coalesced triggers, stop, dry
 * runs, timeouts, FULLNAT wiring, events and the op text.
 */

import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FileOwnedStore,
  MemoryOwnedStore,
  OWNED_FILE,
  RECONCILE_RETRY_MS,
  Reconciler,
  explainOpError,
  formatOp,
  formatOwnedFile,
  parseOwnedFile,
  tableFingerprint,
  timeoutsFromConfig,
} from '../../src/ipvs/index.ts';
import type { Dest, FullnatReport, IpvsOp, IpvsTable, IpvsTimeouts, ReconcileReport, ReconcilerEvent, Service, ServiceKey } from '../../src/ipvs/index.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { NetlinkError } from '../../src/lib/errors.ts';
import { MemoryLogger } from '../../src/lib/log.ts';
import { FakeIpvsClient } from '../fakes/ipvs-client.ts';

const INTERVAL = 5000;
const WEB: ServiceKey = { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 80 };
const API: ServiceKey = { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 8080 };
const TWOS: ServiceKey = { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 91 };
const FOREIGN: ServiceKey = { kind: 'addr', family: 4, protocol: 'udp', address: '10.0.0.1', port: 53 };
const MARK6: ServiceKey = { kind: 'fwmark', family: 6, fwmark: 8 };

function dest(address: string, over: Partial<Dest> = {}): Dest {
  return { family: 4, address, port: 80, fwd: 'droute', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnel: { type: 'ipip', port: 0, flags: 0 }, ...over };
}

function service(key: ServiceKey, dests: Dest[], over: Partial<Service> = {}): Service {
  return { key, scheduler: 'wlc', flags: 0, timeoutS: 0, netmask: key.family === 6 ? 128 : 0xffffffff, peName: '', dests, ...over };
}

function desiredTable(): IpvsTable {
  return {
    services: [
      service(WEB, [dest('10.99.1.21', { weight: 3 }), dest('10.99.1.22')]),
      service(API, [dest('10.99.1.21', { port: 8080, fwd: 'masq' })], { scheduler: 'rr' }),
      service(TWOS, [dest('10.99.1.21', { port: 91 }), dest('10.99.1.22', { port: 91 })], { scheduler: 'twos' }),
    ],
  };
}

interface Harness {
  client: FakeIpvsClient;
  clock: FakeClock;
  logger: MemoryLogger;
  owned: MemoryOwnedStore;
  events: ReconcilerEvent[];
  r: Reconciler;
  setDesired(t: IpvsTable): void;
}

function harness(opts: { initial?: IpvsTable; desired?: IpvsTable; manage?: 'owned' | 'all'; owned?: string[]; timeouts?: IpvsTimeouts; fullnat?: () => Promise<FullnatReport> } = {}): Harness {
  const client = new FakeIpvsClient(opts.initial);
  const clock = new FakeClock(1000);
  const logger = new MemoryLogger();
  const owned = new MemoryOwnedStore(opts.owned ?? []);
  let desired = opts.desired ?? desiredTable();
  const events: ReconcilerEvent[] = [];
  const fullnatFn = opts.fullnat;
  const r = new Reconciler({
    client,
    clock,
    logger,
    desired: () => desired,
    owned,
    intervalMs: INTERVAL,
    manage: opts.manage ?? 'owned',
    kernelRelease: '6.1.0-27-amd64',
    ...(opts.timeouts === undefined ? {} : { timeouts: () => opts.timeouts }),
    ...(fullnatFn === undefined ? {} : { fullnat: { reconcileOnce: () => fullnatFn() } }),
  });
  r.events.on((e) => events.push(e));
  return { client, clock, logger, owned, events, r, setDesired: (t) => (desired = t) };
}

/** Lets the fake client's promises and the reconciler's chain run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((res) => setImmediate(res));
}

const lines = (rep: ReconcileReport): string[] => rep.ops.map((o) => formatOp(o.op));

// ---------------------------------------------------------------------------------------------------------
// One run

test('a first run applies every op in one pipelined batch; twos fails with its reason and the rest applies', async (t) => {
  const h = harness();
  const rep = await h.r.reconcileOnce();
  t.is(h.client.applyCalls, 1, 'one apply call: the ops are pipelined');
  t.deepEqual(lines(rep), [
    '+ service TCP 10.99.0.100:80 wlc',
    '+ service TCP 10.99.0.100:8080 rr',
    '+ service TCP 10.99.0.100:91 twos',
    '+ dest TCP 10.99.0.100:80 -> 10.99.1.21:80 route w3',
    '+ dest TCP 10.99.0.100:80 -> 10.99.1.22:80 route w1',
    '+ dest TCP 10.99.0.100:8080 -> 10.99.1.21:8080 masq w1',
    '+ dest TCP 10.99.0.100:91 -> 10.99.1.21:91 route w1',
    '+ dest TCP 10.99.0.100:91 -> 10.99.1.22:91 route w1',
  ]);
  t.is(rep.applied, 5);
  t.is(rep.failed, 3);
  t.false(rep.ok);
  const twos = rep.ops.find((o) => o.op.op === 'addService' && o.op.service.scheduler === 'twos');
  t.is(twos?.status, 'failed');
  t.is(twos?.error?.errno, 2);
  t.is(twos?.message, 'scheduler twos needs Linux >= 6.2 (this kernel is 6.1.0-27-amd64); pick another scheduler for this service or upgrade the kernel');
  const twosDests = rep.ops.filter((o) => o.op.op === 'addDest' && o.op.service.kind === 'addr' && o.op.service.port === 91);
  t.deepEqual(twosDests.map((o) => o.message), ['its service TCP 10.99.0.100:91 could not be created (see that error)', 'its service TCP 10.99.0.100:91 could not be created (see that error)']);
  // Every other service is in the kernel.
  t.deepEqual(h.client.table.services.map((s) => s.key.kind === 'addr' && s.key.port), [80, 8080]);
  // The error is logged with errno and object; events count it by errno.
  const logged = h.logger.records.find((x) => x.msg === 'IPVS op failed' && x['object'] === 'TCP 10.99.0.100:91');
  t.like(logged, { level: 'error', errno: 2, error: 'ENOENT' });
  t.deepEqual(
    h.events.filter((e) => e.type === 'ipvsOpFailed').map((e) => (e.type === 'ipvsOpFailed' ? [e.kind, e.errnoName] : [])),
    [
      ['addService', 'ENOENT'],
      ['addDest', 'ESRCH'],
      ['addDest', 'ESRCH'],
    ],
  );
  t.deepEqual(
    h.events.filter((e) => e.type === 'ipvsOpsApplied'),
    [
      { type: 'ipvsOpsApplied', kind: 'addService', count: 2 },
      { type: 'ipvsOpsApplied', kind: 'addDest', count: 3 },
    ],
  );
});

test('a second run with nothing changed is a no-op (only the failing twos is retried)', async (t) => {
  const h = harness({ desired: { services: desiredTable().services.slice(0, 2) } });
  const first = await h.r.reconcileOnce();
  t.true(first.ok);
  const second = await h.r.reconcileOnce();
  t.deepEqual(second.ops, []);
  t.true(second.ok);
  t.is(h.client.applyCalls, 1, 'no apply call for an empty diff');
});

test('one weight change is exactly one SET_DEST', async (t) => {
  const h = harness();
  await h.r.reconcileOnce();
  const next = desiredTable();
  const web = next.services[0];
  if (web?.dests[1] !== undefined) web.dests[1].weight = 7;
  h.setDesired(next);
  const rep = await h.r.reconcileOnce();
  const isTwos = (op: IpvsOp): boolean => op.op === 'addService' || (op.op === 'addDest' && op.service.kind === 'addr' && op.service.port === 91);
  const nonTwos = rep.ops.filter((o) => !isTwos(o.op));
  t.deepEqual(nonTwos.map((o) => formatOp(o.op)), ['~ dest TCP 10.99.0.100:80 -> 10.99.1.22:80 route w7']);
  t.is(rep.drift, 0, 'a configuration change is not drift');
});

test('a failed dump applies nothing, is reported, and the next run (soon) re-dumps and converges', async (t) => {
  const h = harness({ desired: { services: desiredTable().services.slice(0, 1) } });
  h.client.dumpErrors.push(new NetlinkError(105, 'dump', 'services'));
  h.r.start();
  await settle();
  t.is(h.client.applyCalls, 0);
  const failed = h.events.find((e) => e.type === 'ipvsDumpFailed');
  t.deepEqual(failed, { type: 'ipvsDumpFailed', errno: 105, message: 'dump services: ENOBUFS (errno 105)' });
  t.is(h.clock.nextDeadline(), 1000 + RECONCILE_RETRY_MS, 'retry after RECONCILE_RETRY_MS, not a whole interval');
  h.clock.advance(RECONCILE_RETRY_MS);
  await settle();
  t.is(h.client.table.services.length, 1);
  t.is(h.clock.nextDeadline(), 1000 + RECONCILE_RETRY_MS + INTERVAL, 'back to the interval once a run succeeded');
  await h.r.stop();
});

test('ENOBUFS on an op schedules a quick re-dump; a batch that fails as a whole applies on the next run', async (t) => {
  const h = harness({ desired: { services: desiredTable().services.slice(0, 1) } });
  let once = true;
  h.client.failOp = (op) => (op.op === 'addDest' && once ? ((once = false), 105) : undefined);
  h.r.start();
  await settle();
  t.is(h.client.table.services[0]?.dests.length, 1);
  t.is(h.clock.nextDeadline(), 1000 + RECONCILE_RETRY_MS);
  h.clock.advance(RECONCILE_RETRY_MS);
  await settle();
  t.is(h.client.table.services[0]?.dests.length, 2);
  await h.r.stop();

  const h2 = harness({ desired: { services: desiredTable().services.slice(0, 1) } });
  h2.client.applyRejects = new Error('socket closed');
  const rep = await h2.r.reconcileOnce();
  t.is(rep.failed, 3);
  t.is(rep.applied, 0);
  t.is(h2.client.table.services.length, 0);
  t.deepEqual(h2.owned.keys(), [], 'a service whose add did not happen is not owned');
  const again = await h2.r.reconcileOnce();
  t.true(again.ok);
  t.is(h2.client.table.services.length, 1);
});

test('persistent services reach the client without PERSISTENT in flags, and then compare equal', async (t) => {
  const sticky = service(WEB, [dest('10.99.1.21')], { timeoutS: 300, netmask: 0xffffff00, flags: 0x8 });
  const h = harness({ desired: { services: [sticky] } });
  const rep = await h.r.reconcileOnce();
  t.true(rep.ok, rep.ops.map((o) => o.message).join('; '));
  const sent = h.client.appliedOps[0];
  t.is(sent?.op === 'addService' ? sent.service.flags : -1, 0x8, 'PERSISTENT is implied by timeoutS');
  t.is(formatOp(rep.ops[0]?.op as IpvsOp), '+ service TCP 10.99.0.100:80 wlc flags flag-1 persistent 300s mask 255.255.255.0');
  t.deepEqual((await h.r.reconcileOnce()).ops, []);
});

test('a batch the client refuses as a whole is reported on every op with the reason, and retried soon', async (t) => {
  const h = harness({ desired: { services: desiredTable().services.slice(0, 1) } });
  h.client.applyRejects = new Error('socket closed');
  h.r.start();
  await settle();
  const rep = h.events.find((e) => e.type === 'ipvsReconciled');
  t.like(rep, { ok: false, failed: 3, applied: 0 });
  t.true(h.logger.records.some((x) => x.msg === 'IPVS batch failed' && x['error'] === 'socket closed'));
  t.is(h.clock.nextDeadline(), 1000 + RECONCILE_RETRY_MS);
  h.clock.advance(RECONCILE_RETRY_MS);
  await settle();
  t.is(h.client.table.services[0]?.dests.length, 2);
  await h.r.stop();
});

// ---------------------------------------------------------------------------------------------------------
// Ownership

test('manage owned: a foreign service is left alone; an owned one that left the configuration is deleted', async (t) => {
  const foreign = service(FOREIGN, [dest('10.0.0.2', { port: 53 })], { scheduler: 'rr' });
  const h = harness({ initial: { services: [foreign] }, desired: { services: desiredTable().services.slice(0, 2) } });
  await h.r.reconcileOnce();
  t.deepEqual(h.owned.keys(), ['TCP 10.99.0.100:80', 'TCP 10.99.0.100:8080']);
  h.setDesired({ services: desiredTable().services.slice(0, 1) });
  const rep = await h.r.reconcileOnce();
  t.deepEqual(lines(rep), ['- service TCP 10.99.0.100:8080']);
  t.deepEqual(h.owned.keys(), ['TCP 10.99.0.100:80']);
  t.true(h.client.table.services.some((s) => s.key.kind === 'addr' && s.key.protocol === 'udp'), 'the foreign service is still there');
});

test('manage all: services not in the configuration are deleted, foreign ones too', async (t) => {
  const foreign = service(FOREIGN, [dest('10.0.0.2', { port: 53 })]);
  const h = harness({ initial: { services: [foreign] }, desired: { services: desiredTable().services.slice(0, 1) }, manage: 'all' });
  const rep = await h.r.reconcileOnce();
  t.deepEqual(lines(rep).slice(0, 2), ['- service UDP 10.0.0.1:53', '+ service TCP 10.99.0.100:80 wlc']);
  t.deepEqual(h.client.table.services.map((s) => s.key), [WEB]);
});

test('a configured service that already exists is adopted (owned) and edited, not re-created', async (t) => {
  const existing = service(WEB, [dest('10.99.1.21', { weight: 3 })], { scheduler: 'rr' });
  const h = harness({ initial: { services: [existing] }, desired: { services: desiredTable().services.slice(0, 1) } });
  const rep = await h.r.reconcileOnce();
  t.deepEqual(lines(rep), ['~ service TCP 10.99.0.100:80 wlc', '+ dest TCP 10.99.0.100:80 -> 10.99.1.22:80 route w1']);
  t.deepEqual(h.owned.keys(), ['TCP 10.99.0.100:80']);
});

test('the owned set survives a restart in state_dir, written atomically with mode 0600', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-owned-'));
  try {
    const stateDir = join(dir, 'state');
    const { store, warning } = await FileOwnedStore.load(stateDir);
    t.is(warning, undefined, 'a missing file is a first start, not a problem');
    store.add(WEB);
    store.add(MARK6);
    t.is(await store.save(), undefined);
    const text = readFileSync(join(stateDir, OWNED_FILE), 'utf8');
    t.deepEqual(parseOwnedFile(text), ['FWM 8 IPv6', 'TCP 10.99.0.100:80']);
    t.is(text, formatOwnedFile(['TCP 10.99.0.100:80', 'FWM 8 IPv6']));
    t.deepEqual(readdirSync(stateDir), [OWNED_FILE], 'no temporary file left behind');
    const reloaded = (await FileOwnedStore.load(stateDir)).store;
    t.true(reloaded.has(WEB));
    t.true(reloaded.has(MARK6));
    t.false(reloaded.has(API));
    // A corrupt file is an empty set with a warning: nothing unconfigured gets deleted.
    writeFileSync(join(stateDir, OWNED_FILE), '{"version": 1, "services": [7]}');
    const corrupt = await FileOwnedStore.load(stateDir);
    t.deepEqual(corrupt.store.keys(), []);
    t.regex(corrupt.warning ?? '', /is not a tandem owned-services file/);
    // A failed write is a warning, and the set stays in memory.
    if (process.getuid?.() !== 0) {
      const ro = join(dir, 'ro');
      mkdirSync(ro);
      const { store: s2 } = await FileOwnedStore.load(ro);
      chmodSync(ro, 0o500);
      s2.add(WEB);
      t.regex((await s2.save()) ?? '', /cannot write/);
      t.true(s2.has(WEB));
      chmodSync(ro, 0o700);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Periodic runs, drift, triggers

test('periodic runs heal hand-made changes and count them as drift; a foreign service stays', async (t) => {
  const h = harness();
  h.r.start();
  await settle();
  t.is(h.client.applyCalls, 1);
  // Hand-made changes: a weight edit, a deleted real server, a foreign service.
  const web = h.client.table.services.find((s) => s.key.kind === 'addr' && s.key.port === 80);
  if (web?.dests[0] !== undefined) web.dests[0].weight = 9;
  if (web !== undefined) web.dests = web.dests.filter((d) => d.address !== '10.99.1.22');
  h.client.table.services.push(service(FOREIGN, [], { scheduler: 'rr' }));
  h.clock.advance(INTERVAL);
  await settle();
  const reconciled = h.events.filter((e) => e.type === 'ipvsReconciled');
  t.is(reconciled.length, 2);
  t.like(reconciled[1], { reason: 'periodic', drift: 2 });
  t.deepEqual(h.events.filter((e) => e.type === 'ipvsDriftHealed'), [{ type: 'ipvsDriftHealed', ops: 2 }]);
  const healed = h.client.table.services.find((s) => s.key.kind === 'addr' && s.key.port === 80);
  t.deepEqual(healed?.dests.map((d) => [d.address, d.weight]).sort(), [
    ['10.99.1.21', 3],
    ['10.99.1.22', 1],
  ]);
  t.true(h.client.table.services.some((s) => s.key.kind === 'addr' && s.key.protocol === 'udp'), 'foreign service left alone');
  // The ever-failing twos ops are not drift.
  h.clock.advance(INTERVAL);
  await settle();
  t.like(h.events.filter((e) => e.type === 'ipvsReconciled')[2], { reason: 'periodic', drift: 0, failed: 3 });
  t.is(h.logger.records.filter((x) => x.msg === 'IPVS op failed').length, 3, 'a recurring failure is logged once per window');
  await h.r.stop();
});

test('trigger runs at once; triggers during a run coalesce into one more run', async (t) => {
  const h = harness({ desired: { services: desiredTable().services.slice(0, 1) } });
  const dumps = (): number => h.client.calls.filter((c) => c.method === 'dump').length;
  h.r.trigger();
  h.r.trigger();
  h.r.trigger();
  await settle();
  t.is(dumps(), 1, 'triggers before the run started are one run');
  t.is(h.clock.pendingCount, 0, 'trigger does not start periodic runs');
  // Hold the next dump open, trigger three times while that run is in progress.
  let release = (): void => undefined;
  const gate = new Promise<void>((res) => (release = res));
  const dump = h.client.dump.bind(h.client);
  h.client.dump = async () => {
    const table = await dump();
    await gate;
    return table;
  };
  h.r.trigger();
  await settle();
  t.is(dumps(), 2, 'the run is in progress');
  h.r.trigger();
  h.r.trigger();
  h.r.trigger();
  release();
  await settle();
  t.is(dumps(), 3, 'three triggers during a run: exactly one more run');
  h.r.start();
  await settle();
  h.r.trigger();
  await settle();
  t.is(dumps(), 5);
  t.is(h.clock.pendingCount, 1, 'one periodic timer armed');
  await h.r.stop();
  t.is(h.clock.pendingCount, 0, 'stop cancels the timer');
  h.clock.advance(INTERVAL * 3);
  h.r.trigger();
  await settle();
  t.is(dumps(), 5, 'nothing runs after stop');
});

test('reconcileOnce waits for a run in progress: runs never overlap', async (t) => {
  const h = harness({ desired: { services: desiredTable().services.slice(0, 1) } });
  let inFlight = 0;
  let maxInFlight = 0;
  const dump = h.client.dump.bind(h.client);
  h.client.dump = async () => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((res) => setImmediate(res));
    inFlight--;
    return dump();
  };
  await Promise.all([h.r.reconcileOnce(), h.r.reconcileOnce(), h.r.reconcileOnce()]);
  t.is(maxInFlight, 1);
  t.is(h.client.applyCalls, 1);
});

test('a desired change between periodic runs is not drift', async (t) => {
  const h = harness({ desired: { services: desiredTable().services.slice(0, 1) } });
  h.r.start();
  await settle();
  h.setDesired({ services: desiredTable().services.slice(0, 2) });
  h.clock.advance(INTERVAL);
  await settle();
  t.like(h.events.filter((e) => e.type === 'ipvsReconciled')[1], { reason: 'periodic', ops: 2, drift: 0 });
  await h.r.stop();
});

// ---------------------------------------------------------------------------------------------------------
// Dry runs, timeouts, FULLNAT

test('a dry run dumps and diffs but applies nothing and owns nothing', async (t) => {
  const h = harness();
  const rep = await h.r.reconcileOnce({ dryRun: true });
  t.is(rep.ops.length, 8);
  t.true(rep.ops.every((o) => o.status === 'planned'));
  t.is(h.client.applyCalls, 0);
  t.deepEqual(h.owned.keys(), []);
  t.true(rep.ok);
});

test('timeouts are set only when they differ, 0 meaning leave that one', async (t) => {
  const h = harness({ desired: { services: [] }, timeouts: { tcp: 900, tcpFin: 0, udp: 60 } });
  const dry = await h.r.reconcileOnce({ dryRun: true });
  t.is(dry.timeouts.status, 'planned');
  const rep = await h.r.reconcileOnce();
  t.is(rep.timeouts.status, 'set');
  t.deepEqual(h.client.timeouts, { tcp: 900, tcpFin: 120, udp: 60 });
  t.is((await h.r.reconcileOnce()).timeouts.status, 'ok');
  t.is(h.client.calls.filter((c) => c.method === 'setTimeouts').length, 1);
  t.deepEqual(timeoutsFromConfig({ tcpMs: 900_000, tcpFinMs: undefined, udpMs: 300_000 }), { tcp: 900, tcpFin: 0, udp: 300 });
  t.is(timeoutsFromConfig(undefined), undefined);
});

test('the FULLNAT reconciler runs in the same run; its failure makes the run not ok', async (t) => {
  const base: FullnatReport = { action: 'replace', dryRun: false, rules: 1, reason: 'the table does not exist', sysctls: [], error: undefined };
  let report = base;
  const h = harness({ desired: { services: [] }, fullnat: async () => report });
  const rep = await h.r.reconcileOnce();
  t.true(rep.ok);
  t.deepEqual(rep.fullnat, base);
  t.true(h.events.some((e) => e.type === 'fullnatChanged'));
  report = { ...base, error: 'nft -f - exited 1' };
  const bad = await h.r.reconcileOnce();
  t.false(bad.ok);
  t.true(h.events.some((e) => e.type === 'fullnatFailed'));
});

// ---------------------------------------------------------------------------------------------------------
// Pure helpers

test('formatOp: one stable line per op kind', (t) => {
  const tun = dest('10.99.1.21', { fwd: 'tunnel', tunnel: { type: 'gue', port: 6080, flags: 1 }, upperThreshold: 100, lowerThreshold: 50 });
  const ops: IpvsOp[] = [
    { op: 'addService', service: { key: WEB, scheduler: 'sh', flags: 0x8 | 0x10 | 0x1 | 0x4, timeoutS: 300, netmask: 0xffffff00, peName: 'sip' } },
    { op: 'editService', service: { key: MARK6, scheduler: 'rr', flags: 0x20, timeoutS: 0, netmask: 128, peName: '' } },
    { op: 'delService', key: FOREIGN },
    { op: 'addDest', service: WEB, dest: tun },
    { op: 'editDest', service: WEB, dest: dest('10.99.1.22', { fwd: 'masq', weight: 0 }) },
    { op: 'delDest', service: MARK6, dest: { family: 6, address: 'fd00::21', port: 0 } },
  ];
  t.deepEqual(ops.map(formatOp), [
    '+ service TCP 10.99.0.100:80 sh flags sh-fallback,sh-port persistent 300s mask 255.255.255.0 pe sip ops',
    '~ service FWM 8 IPv6 rr flags flag-3',
    '- service UDP 10.0.0.1:53',
    '+ dest TCP 10.99.0.100:80 -> 10.99.1.21:80 tunnel gue:6080 csum w1 upper 100 lower 50',
    '~ dest TCP 10.99.0.100:80 -> 10.99.1.22:80 masq w0',
    '- dest FWM 8 IPv6 -> [fd00::21]:0',
  ]);
});

test('explainOpError: twos by kernel version, unknown schedulers, ERANGE, families', (t) => {
  const add = (scheduler: string, peName = ''): IpvsOp => ({ op: 'addService', service: { key: WEB, scheduler, flags: 0, timeoutS: 0, netmask: 0xffffffff, peName } });
  const ctx = (rel: string) => ({ kernelRelease: rel, failedServices: new Set<string>() });
  const enoent = new NetlinkError(2, 'addService', 'TCP 10.99.0.100:80');
  t.regex(explainOpError(add('twos'), enoent, ctx('6.1.0-27-amd64')), /^scheduler twos needs Linux >= 6\.2 \(this kernel is 6\.1\.0-27-amd64\)/);
  t.regex(explainOpError(add('twos'), enoent, ctx('6.6.0')), /^the kernel has no scheduler twos \(module ip_vs_twos\)/);
  t.regex(explainOpError(add('wlc', 'sip'), enoent, ctx('6.1.0')), /or persistence engine sip \(module ip_vs_pe_sip\)/);
  const addDest: IpvsOp = { op: 'addDest', service: WEB, dest: dest('10.99.1.21', { lowerThreshold: 9, upperThreshold: 1 }) };
  t.regex(explainOpError(addDest, new NetlinkError(34, 'addDest', 'x'), ctx('6.1.0')), /lower threshold above upper/);
  const mixed: IpvsOp = { op: 'addDest', service: MARK6, dest: dest('10.99.1.21', { fwd: 'tunnel' }) };
  t.regex(explainOpError(mixed, new NetlinkError(22, 'addDest', 'x'), ctx('6.1.0')), /sync daemon/);
});

test('tableFingerprint ignores order of services and destinations', (t) => {
  const a = desiredTable();
  const b: IpvsTable = { services: [...a.services].reverse().map((s) => ({ ...s, dests: [...s.dests].reverse() })) };
  t.is(tableFingerprint(a), tableFingerprint(b));
  const c = desiredTable();
  if (c.services[0]?.dests[0] !== undefined) c.services[0].dests[0].weight = 4;
  t.not(tableFingerprint(a), tableFingerprint(c));
});
