import test from 'ava';
import fc from 'fast-check';
import { applyOps, diff, normalizeDestAttrs, normalizeServiceAttrs } from '../../src/ipvs/diff.ts';
import { destKeyString, serviceKeyString, type Dest, type IpvsOp, type IpvsTable, type Service, type ServiceKey } from '../../src/ipvs/model.ts';

const WEB: ServiceKey = { kind: 'addr', family: 4, protocol: 'tcp', address: '10.99.0.100', port: 80 };
const DNS: ServiceKey = { kind: 'addr', family: 4, protocol: 'udp', address: '10.99.0.100', port: 53 };
const MARK: ServiceKey = { kind: 'fwmark', family: 4, fwmark: 7 };

function dest(address: string, over: Partial<Dest> = {}): Dest {
  return { family: 4, address, port: 80, fwd: 'droute', weight: 1, upperThreshold: 0, lowerThreshold: 0, tunnel: { type: 'ipip', port: 0, flags: 0 }, ...over };
}

function service(key: ServiceKey, dests: Dest[], over: Partial<Service> = {}): Service {
  return { key, scheduler: 'wlc', flags: 0, timeoutS: 0, netmask: 0xffffffff, peName: '', dests, ...over };
}

const ALL = { mayDelete: () => true };
const NONE = { mayDelete: () => false };
function opServiceKey(o: IpvsOp): ServiceKey {
  return o.op === 'delService' ? o.key : o.op === 'addService' || o.op === 'editService' ? o.service.key : o.service;
}
const ops = (o: IpvsOp[]) => o.map((x) => `${x.op} ${serviceKeyString(opServiceKey(x))}${'dest' in x ? ` -> ${destKeyString(x.dest)}` : ''}`);

const CASES: Array<{ name: string; desired: Service[]; actual: Service[]; opts?: typeof ALL; expect: string[] }> = [
  { name: 'empty to empty: nothing', desired: [], actual: [], expect: [] },
  {
    name: 'new service: service first, then its dests',
    desired: [service(WEB, [dest('10.0.0.1'), dest('10.0.0.2')])],
    actual: [],
    expect: ['addService TCP 10.99.0.100:80', 'addDest TCP 10.99.0.100:80 -> 10.0.0.1:80', 'addDest TCP 10.99.0.100:80 -> 10.0.0.2:80'],
  },
  {
    name: 'identical tables: no ops',
    desired: [service(WEB, [dest('10.0.0.1')])],
    actual: [service(WEB, [dest('10.0.0.1', { activeConns: 5 })], { flags: 0x2 })],
    expect: [],
  },
  {
    name: 'one weight changed: exactly one SET_DEST',
    desired: [service(WEB, [dest('10.0.0.1', { weight: 5 }), dest('10.0.0.2')])],
    actual: [service(WEB, [dest('10.0.0.1'), dest('10.0.0.2')])],
    expect: ['editDest TCP 10.99.0.100:80 -> 10.0.0.1:80'],
  },
  {
    name: 'scheduler changed: SET_SERVICE, not delete + add',
    desired: [service(WEB, [dest('10.0.0.1')], { scheduler: 'rr' })],
    actual: [service(WEB, [dest('10.0.0.1')])],
    expect: ['editService TCP 10.99.0.100:80'],
  },
  {
    name: 'dest removed and another added: delete first, add last',
    desired: [service(WEB, [dest('10.0.0.3')])],
    actual: [service(WEB, [dest('10.0.0.1')])],
    expect: ['delDest TCP 10.99.0.100:80 -> 10.0.0.1:80', 'addDest TCP 10.99.0.100:80 -> 10.0.0.3:80'],
  },
  {
    name: 'service removed: one DEL_SERVICE (its dests go with it)',
    desired: [],
    actual: [service(WEB, [dest('10.0.0.1'), dest('10.0.0.2')])],
    expect: ['delService TCP 10.99.0.100:80'],
  },
  {
    name: 'a service tandem does not own is left alone',
    desired: [service(DNS, [])],
    actual: [service(WEB, [dest('10.0.0.1')]), service(DNS, [])],
    opts: NONE,
    expect: [],
  },
  {
    name: 'fwmark and addr services are distinct',
    desired: [service(MARK, [dest('10.0.0.1', { port: 0 })])],
    actual: [service(WEB, [])],
    expect: ['delService TCP 10.99.0.100:80', 'addService FWM 7', 'addDest FWM 7 -> 10.0.0.1:0'],
  },
  {
    name: 'tunnel attributes of a non-tunnel dest are ignored (the kernel reports zeros)',
    desired: [service(WEB, [dest('10.0.0.1', { tunnel: { type: 'gue', port: 6080, flags: 1 } })])],
    actual: [service(WEB, [dest('10.0.0.1')])],
    expect: [],
  },
  {
    name: 'tunnel type change on a tunnel dest is an edit',
    desired: [service(WEB, [dest('10.0.0.1', { fwd: 'tunnel', tunnel: { type: 'gue', port: 6080, flags: 1 } })])],
    actual: [service(WEB, [dest('10.0.0.1', { fwd: 'tunnel' })])],
    expect: ['editDest TCP 10.99.0.100:80 -> 10.0.0.1:80'],
  },
  {
    name: 'persistence off: the kernel reports netmask 0xffffffff, which equals the desired default',
    desired: [service(WEB, [], { netmask: 0xffffff00 })],
    actual: [service(WEB, [])],
    expect: [],
  },
  {
    name: 'persistence timeout changed: SET_SERVICE',
    desired: [service(WEB, [], { timeoutS: 300, netmask: 0xffffff00 })],
    actual: [service(WEB, [], { timeoutS: 360, netmask: 0xffffff00, flags: 1 })],
    expect: ['editService TCP 10.99.0.100:80'],
  },
];

for (const c of CASES) {
  test(`diff: ${c.name}`, (t) => {
    t.deepEqual(ops(diff({ services: c.desired }, { services: c.actual }, c.opts ?? ALL)), c.expect);
  });
}

test('diff: ops carry no PERSISTENT or HASHED bits (the codec derives PERSISTENT from the timeout)', (t) => {
  const o = diff({ services: [service(WEB, [], { timeoutS: 300, netmask: 0xffffff00, flags: 0x1 | 0x2 | 0x8 })] }, { services: [] }, ALL);
  const first = o[0];
  t.is(first?.op, 'addService');
  if (first?.op === 'addService') t.is(first.service.flags, 0x8);
});

// --- property: applying the diff to actual yields desired ----------------------------------------------

const addrArb = fc.constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4');
const destArb: fc.Arbitrary<Dest> = fc.record({
  address: addrArb,
  port: fc.constantFrom(80, 8080),
  fwd: fc.constantFrom('masq' as const, 'droute' as const, 'tunnel' as const),
  weight: fc.integer({ min: 0, max: 100 }),
  upperThreshold: fc.integer({ min: 0, max: 5 }),
  lowerThreshold: fc.integer({ min: 0, max: 5 }),
  tunnel: fc.record({ type: fc.constantFrom('ipip' as const, 'gue' as const, 'gre' as const), port: fc.constantFrom(0, 6080), flags: fc.constantFrom(0, 1, 2) }),
}).map((d) => ({ family: 4 as const, ...d }));
const keyArb: fc.Arbitrary<ServiceKey> = fc.oneof(
  fc.record({ protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const), port: fc.constantFrom(80, 443) }).map((k) => ({ kind: 'addr' as const, family: 4 as const, address: '10.99.0.100', ...k })),
  fc.integer({ min: 1, max: 3 }).map((m) => ({ kind: 'fwmark' as const, family: 4 as const, fwmark: m })),
);
const serviceArb: fc.Arbitrary<Service> = fc.record({
  key: keyArb,
  scheduler: fc.constantFrom('rr', 'wlc', 'sh'),
  flags: fc.constantFrom(0, 0x4, 0x8 | 0x10),
  timeoutS: fc.constantFrom(0, 300),
  netmask: fc.constantFrom(0xffffffff, 0xffffff00),
  peName: fc.constantFrom('', 'sip'),
  dests: fc.uniqueArray(destArb, { selector: (d) => destKeyString(d), maxLength: 4 }),
});
const tableArb: fc.Arbitrary<IpvsTable> = fc.uniqueArray(serviceArb, { selector: (s) => serviceKeyString(s.key), maxLength: 5 }).map((services) => ({ services }));

function canonical(t: IpvsTable): unknown {
  return t.services
    .map((s) => ({
      key: serviceKeyString(s.key),
      attrs: normalizeServiceAttrs(s),
      dests: s.dests.map((d) => ({ key: destKeyString(d), attrs: normalizeDestAttrs(d) })).sort((a, b) => a.key.localeCompare(b.key)),
    }))
    .sort((a, b) => a.key.localeCompare(b.key));
}

test('property: applying diff(desired, actual) to actual yields desired', (t) => {
  fc.assert(
    fc.property(tableArb, tableArb, (desired, actual) => {
      const after = applyOps(actual, diff(desired, actual, ALL));
      t.deepEqual(canonical(after), canonical(desired));
      // And a second diff finds nothing left to do.
      return diff(desired, after, ALL).length === 0;
    }),
    { numRuns: 1000 },
  );
});

test('property: services not owned are never touched', (t) => {
  fc.assert(
    fc.property(tableArb, tableArb, (desired, actual) => {
      const desiredKeys = new Set(desired.services.map((s) => serviceKeyString(s.key)));
      return diff(desired, actual, NONE).every((o) => desiredKeys.has(serviceKeyString(opServiceKey(o))));
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('property: every dest op targets a service that exists when it runs (order)', (t) => {
  fc.assert(
    fc.property(tableArb, tableArb, (desired, actual) => {
      const live = new Set(actual.services.map((s) => serviceKeyString(s.key)));
      for (const o of diff(desired, actual, ALL)) {
        if (o.op === 'addService') live.add(serviceKeyString(o.service.key));
        else if (o.op === 'delService') live.delete(serviceKeyString(o.key));
        else if (o.op === 'addDest' || o.op === 'editDest' || o.op === 'delDest') {
          if (!live.has(serviceKeyString(o.service))) return false;
        }
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass();
});
