/**
 * The LVS driver with a fake clock, a fake checker and the recording fake IPVS client: a server that fails
 * `fall` checks leaves the kernel table at the next (triggered, not periodic) reconcile and returns after `rise`
 * passes; inhibit_on_failure sets weight 0 instead; losing the quorum puts the sorry server in and regaining it
 * takes it out; transitions are typed events with the checker's reason, logged, and counted by the metrics
 * subscribers; a checker that throws or a bad reply never stops the driver.
 */

import test from 'ava';
import { parseConfig } from '../../src/config/index.ts';
import type { TandemConfig } from '../../src/config/index.ts';
import { HealthMonitor } from '../../src/healthcheck/index.ts';
import type { CheckFn, CheckResult } from '../../src/healthcheck/index.ts';
import { MemoryOwnedStore } from '../../src/ipvs/index.ts';
import { FakeClock } from '../../src/lib/clock.ts';
import { MemoryLogger } from '../../src/lib/log.ts';
import { LvsDriver } from '../../src/lvs/index.ts';
import type { LvsEvent } from '../../src/lvs/index.ts';
import { createMetrics } from '../../src/metrics/index.ts';
import { FakeIpvsClient } from '../fakes/ipvs-client.ts';

const OK: CheckResult = { ok: true, reason: 'ok', detail: 'HTTP 200', durationMs: 2 };
const S503: CheckResult = { ok: false, reason: 'status', detail: 'HTTP 503 Service Unavailable', durationMs: 2 };
const REFUSED: CheckResult = { ok: false, reason: 'refused', detail: 'ECONNREFUSED', durationMs: 1 };

/** Reconcile interval of the tests: long, so only triggered runs happen within a test's few seconds. */
const RECONCILE_MS = 60_000;

function config(extra: string[] = [], check = '{ type: http, path: /healthz, interval: 1s, timeout: 500ms, rise: 2, fall: 3, jitter: 0 }'): TandemConfig {
  return parseConfig(
    [
      'node: { name: dirA, interface: eth0 }',
      'vrrp:',
      '  transport: { mode: unicast, source: 10.99.0.2, peers: [10.99.0.3] }',
      '  instances: [{ name: VI_1, vrid: 51, vips: [10.99.0.100] }]',
      'ipvs: { reconcile_interval: 60s }',
      'virtual_servers:',
      '  - name: web',
      '    address: 10.99.0.100',
      '    port: 80',
      '    forwarding: nat',
      `    health_check: ${check}`,
      ...extra,
      '    real_servers: [{ address: 10.99.1.21 }, { address: 10.99.1.22 }]',
    ].join('\n') + '\n',
    'test.yaml',
  );
}

/** A checker whose answer per address the test sets; `throws` makes it throw instead. */
function fakeChecker(): { check: CheckFn; set: (address: string, r: CheckResult | 'throw') => void } {
  const answers = new Map<string, CheckResult | 'throw'>();
  return {
    check: (target) => {
      const a = answers.get(target.address) ?? OK;
      if (a === 'throw') throw new Error('checker bug');
      return Promise.resolve(a);
    },
    set: (address, r) => answers.set(address, r),
  };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Advances the fake clock timer by timer, letting promises settle after each. */
async function runUntil(clock: FakeClock, target: number): Promise<void> {
  await settle();
  for (;;) {
    const next = clock.nextDeadline();
    if (next === undefined || next > target) break;
    clock.runUntil(next);
    await settle();
  }
  clock.runUntil(target);
  await settle();
}

function setup(c: TandemConfig) {
  const clock = new FakeClock();
  const checker = fakeChecker();
  const client = new FakeIpvsClient();
  const logger = new MemoryLogger();
  const monitor = new HealthMonitor({ clock, random: () => 0, check: checker.check });
  const driver = new LvsDriver({ config: c, clock, logger, client, owned: new MemoryOwnedStore(), monitor });
  const metrics = createMetrics({ processMetrics: false });
  monitor.events.on(metrics.observeHealth);
  driver.reconciler.events.on(metrics.observeIpvs);
  driver.events.on(metrics.observeLvs);
  const events: LvsEvent[] = [];
  driver.events.on((e) => events.push(e));
  const kernel = (): string[] => (client.table.services[0]?.dests ?? []).map((d) => `${d.address}:${d.weight}`).sort();
  const metric = async (name: string): Promise<string> => (await metrics.registry.getSingleMetricAsString(name)).split('\n').filter((l) => !l.startsWith('#')).join('\n');
  return { clock, checker, client, logger, driver, events, kernel, metric };
}

test('a failing server leaves IPVS at the triggered reconcile after fall checks, and returns after rise passes', async (t) => {
  const s = setup(config());
  s.driver.start();
  await runUntil(s.clock, 100);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1'], 'the first reconcile puts every server in');
  const runsAfterStart = s.client.applyCalls;
  s.checker.set('10.99.1.22', S503);
  // random 0: cycles start at 0, 1000, 2000, ...; the first failing one is at 1000, the third (t=3000) takes it down.
  await runUntil(s.clock, 2999);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1'], 'two failures are not enough');
  await runUntil(s.clock, 3000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1'], 'removed at once, not at the 60 s periodic run');
  t.is(s.client.applyCalls, runsAfterStart + 1);
  const down = s.events.filter((e) => e.type === 'realserver_state' && !e.initial);
  t.like(down[0], { type: 'realserver_state', virtualServer: 'web', realServer: '10.99.1.22:80', up: false, reason: 'status', detail: 'HTTP 503 Service Unavailable', at: 3000 });
  t.like(
    s.logger.records.find((r) => r.msg === 'real server down'),
    { level: 'warn', virtual_server: 'web', real_server: '10.99.1.22:80', reason: 'status', detail: 'HTTP 503 Service Unavailable', action: 'removed from IPVS' },
  );
  s.checker.set('10.99.1.22', OK);
  await runUntil(s.clock, 4000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1'], 'one pass is not enough (rise 2)');
  await runUntil(s.clock, 5000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1']);
  t.regex(await s.metric('tandem_realserver_up'), /tandem_realserver_up\{virtual_server="web",real_server="10\.99\.1\.22:80"\} 1/);
  t.regex(await s.metric('tandem_healthcheck_transitions_total'), /\{virtual_server="web",to="down",reason="status"\} 1/);
  t.regex(await s.metric('tandem_healthcheck_transitions_total'), /\{virtual_server="web",to="up",reason="ok"\} 1/);
  t.regex(await s.metric('tandem_healthcheck_checks_total'), /\{check="http",result="status"\} 3/);
  t.regex(await s.metric('tandem_ipvs_ops_total'), /\{kind="delDest"\} 1/);
  await s.driver.stop();
});

test('inhibit_on_failure: a failed server stays with weight 0 and gets its weight back', async (t) => {
  const s = setup(config(['    inhibit_on_failure: true']));
  s.driver.start();
  await runUntil(s.clock, 100);
  s.checker.set('10.99.1.21', REFUSED);
  await runUntil(s.clock, 3000);
  t.deepEqual(s.kernel(), ['10.99.1.21:0', '10.99.1.22:1']);
  t.like(
    s.logger.records.find((r) => r.msg === 'real server down'),
    { reason: 'refused', action: 'weight 0 (inhibit_on_failure)' },
  );
  s.checker.set('10.99.1.21', OK);
  await runUntil(s.clock, 5000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1']);
  t.regex(await s.metric('tandem_ipvs_ops_total'), /\{kind="editDest"\} 2/);
  await s.driver.stop();
});

test('quorum loss puts the sorry server in alone; regaining it takes the sorry server out', async (t) => {
  const s = setup(config(['    quorum: { min: 2 }', '    sorry_server: { address: 10.99.1.30 }']));
  s.driver.start();
  await runUntil(s.clock, 100);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1']);
  t.regex(await s.metric('tandem_virtual_server_quorum'), /\{virtual_server="web"\} 1/);
  s.checker.set('10.99.1.21', REFUSED);
  await runUntil(s.clock, 3000);
  t.deepEqual(s.kernel(), ['10.99.1.30:1'], 'up weight 1 < 2: the sorry server alone');
  t.like(s.events.find((e) => e.type === 'quorum' && e.changed), { held: false, upWeight: 1, min: 2, sorryActive: true, at: 3000 });
  t.truthy(s.logger.records.find((r) => r.msg === 'virtual server lost quorum' && r['action'] === 'sorry server in service'));
  t.regex(await s.metric('tandem_virtual_server_quorum'), /\{virtual_server="web"\} 0/);
  t.regex(await s.metric('tandem_virtual_server_sorry_active'), /\{virtual_server="web"\} 1/);
  s.checker.set('10.99.1.21', OK);
  await runUntil(s.clock, 5000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1']);
  t.regex(await s.metric('tandem_virtual_server_quorum_changes_total'), /to="lost"\} 1/);
  t.regex(await s.metric('tandem_virtual_server_quorum_changes_total'), /to="held"\} 1/);
  await s.driver.stop();
});

test('alpha: checked servers start down and enter after rise passes', async (t) => {
  const s = setup(config(['    alpha: true']));
  s.driver.start();
  await runUntil(s.clock, 100);
  t.deepEqual(s.kernel(), [], 'nothing proven yet');
  t.true(s.events.some((e) => e.type === 'realserver_state' && e.initial && !e.up));
  await runUntil(s.clock, 1000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1']);
  await s.driver.stop();
});

test('dynamic weights from the checks reach the kernel', async (t) => {
  const s = setup(config([], '{ type: agent, interval: 1s, jitter: 0, dynamic_weight: { smoothing: 1, max_step: 100, min_change: 1 } }'));
  s.driver.start();
  await runUntil(s.clock, 100);
  s.checker.set('10.99.1.22', { ok: true, reason: 'ok', detail: 'weight 7', durationMs: 1, weight: 7 });
  await runUntil(s.clock, 1000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:7']);
  t.regex(await s.metric('tandem_realserver_weight'), /real_server="10\.99\.1\.22:80"\} 7/);
  await s.driver.stop();
});

test('a checker that throws counts as a failed check and never stops the driver', async (t) => {
  const s = setup(config());
  s.driver.start();
  await runUntil(s.clock, 100);
  s.checker.set('10.99.1.22', 'throw');
  await runUntil(s.clock, 3000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1']);
  t.like(s.events.find((e) => e.type === 'realserver_state' && !e.initial), { up: false, reason: 'error' });
  t.regex(await s.metric('tandem_healthcheck_checks_total'), /\{check="http",result="error"\} 3/);
  s.checker.set('10.99.1.22', OK);
  await runUntil(s.clock, 5000);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1']);
  await s.driver.stop();
});

test('the periodic reconcile heals drift while health holds', async (t) => {
  const s = setup(config());
  s.driver.start();
  await runUntil(s.clock, 100);
  s.client.table.services = [];
  await runUntil(s.clock, RECONCILE_MS + 200);
  t.deepEqual(s.kernel(), ['10.99.1.21:1', '10.99.1.22:1']);
  t.regex(await s.metric('tandem_ipvs_drift_healed_total'), / 3$/m);
  await s.driver.stop();
});

test('an unreadable ca_file stops start with a message naming it', (t) => {
  const c = config([], '{ type: https, ca_file: /nonexistent/ca.pem }');
  const s = setup(c);
  const err = t.throws(() => s.driver.start());
  t.regex(err?.message ?? '', /cannot read ca_file \/nonexistent\/ca\.pem of virtual server web/);
});

test('a kernel refusal is counted by kind and errno and the other changes still apply', async (t) => {
  const s = setup(config());
  s.client.failOp = (op) => (op.op === 'addDest' && op.dest.address === '10.99.1.22' ? 34 : undefined);
  s.driver.start();
  await runUntil(s.clock, 100);
  t.deepEqual(s.kernel(), ['10.99.1.21:1']);
  t.regex(await s.metric('tandem_ipvs_op_errors_total'), /\{kind="addDest",error="ERANGE"\} 1/);
  t.regex(await s.metric('tandem_ipvs_reconciles_total'), /\{reason="start",result="error"\} 1/);
  await s.driver.stop();
});
