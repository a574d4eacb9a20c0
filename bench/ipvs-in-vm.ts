/**
 * The inside half of bench:ipvs (bench/ipvs.ts boots the VM and runs this file in it): programs the kernel's IPVS
 * with 1,000 TCP services x 10 real servers (11,000 objects) through tandem's netlink client and through
 * `ipvsadm -R`, then measures a one-weight change and full dumps of that table. Refuses to run outside the VM
 * (it flushes the IPVS table).
 *
 *   bash scripts/vm-run -- node --import tsx bench/ipvs-in-vm.ts
 *   SERVICES=1000 DESTS=10 RUNS=3 (environment, optional)
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { insideTandemVm } from '../src/lab/vm.ts';
import { createIpvsClient } from '../src/ipvs/netlink/index.ts';
import { diff } from '../src/ipvs/diff.ts';
import type { IpvsClient, IpvsOp, IpvsTable, Service } from '../src/ipvs/model.ts';

const SERVICES = Number(process.env['SERVICES'] ?? 1000);
const DESTS = Number(process.env['DESTS'] ?? 10);
const RUNS = Number(process.env['RUNS'] ?? 3);
const PORT = 80;

const mayDelete = (): boolean => true;

function serviceAddress(i: number): string {
  return `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}
function destAddress(i: number, k: number): string {
  return `10.2.${k}.${(i % 250) + 1}`;
}

/** The desired table: SERVICES TCP/IPv4 wlc services, each with DESTS direct-routing dests of weight 1. */
function desiredTable(): IpvsTable {
  const services: Service[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const s: Service = {
      key: { kind: 'addr', family: 4, protocol: 'tcp', address: serviceAddress(i), port: PORT },
      scheduler: 'wlc',
      flags: 0,
      timeoutS: 0,
      netmask: 0xffffffff,
      peName: '',
      dests: [],
    };
    for (let k = 0; k < DESTS; k++) {
      s.dests.push({
        family: 4,
        address: destAddress(i, k),
        port: PORT,
        fwd: 'droute',
        weight: 1,
        upperThreshold: 0,
        lowerThreshold: 0,
        tunnel: { type: 'ipip', port: 0, flags: 0 },
      });
    }
    services.push(s);
  }
  return { services };
}

/** The same table as `ipvsadm -S` text. */
function saveText(t: IpvsTable): string {
  const lines: string[] = [];
  for (const s of t.services) {
    if (s.key.kind !== 'addr') throw new Error('fwmark services are not generated');
    const vs = `${s.key.address}:${s.key.port}`;
    lines.push(`-A -t ${vs} -s ${s.scheduler}`);
    for (const d of s.dests) lines.push(`-a -t ${vs} -r ${d.address}:${d.port} -g -w ${d.weight}`);
  }
  return `${lines.join('\n')}\n`;
}

function objects(t: IpvsTable): number {
  return t.services.reduce((n, s) => n + 1 + s.dests.length, 0);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

const ms = (x: number): string => `${x.toFixed(1)} ms`;

/** Runs a command with `input` on stdin; resolves with its wall time (spawn to exit) in ms. Throws unless exit 0. */
function timedChild(argv: readonly [string, ...string[]], input: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => {
      const t = performance.now() - t0;
      if (code === 0) resolve(t);
      else reject(new Error(`${argv.join(' ')} exited ${String(code)}: ${err.trim().split('\n').slice(0, 5).join(' | ')}`));
    });
    child.stdin.end(input);
  });
}

async function flush(): Promise<void> {
  await timedChild(['ipvsadm', '-C'], '');
}

/** Checks the kernel's table holds exactly `want` objects (untimed, with its own client). */
async function expectObjects(want: number, what: string): Promise<void> {
  const c = await createIpvsClient();
  try {
    const n = objects(await c.dump());
    if (n !== want) throw new Error(`${what}: the kernel holds ${n} objects, expected ${want}`);
  } finally {
    c.close();
  }
}

function checkResults(results: readonly { ok: boolean }[], what: string): void {
  const bad = results.filter((r) => !r.ok).length;
  if (bad > 0) throw new Error(`${what}: ${bad} of ${results.length} ops failed`);
}

/** Cold programming through tandem: open, dump (empty), diff, apply — end to end. */
async function tandemCold(desired: IpvsTable): Promise<{ ms: number; ops: number; dumped: number }> {
  const t0 = performance.now();
  const client = await createIpvsClient();
  const actual = await client.dump();
  const ops = diff(desired, actual, { mayDelete });
  const results = await client.apply(ops);
  const t = performance.now() - t0;
  client.close();
  checkResults(results, 'tandem cold apply');
  return { ms: t, ops: ops.length, dumped: objects(actual) };
}

function line(label: string, runs: readonly number[]): string {
  return `  ${label.padEnd(34)} ${runs.map((r) => ms(r).padStart(10)).join(' ')}   median ${ms(median(runs))}`;
}

async function main(): Promise<void> {
  if (!insideTandemVm()) {
    process.stderr.write('bench/ipvs-in-vm.ts flushes the IPVS table: it runs only inside the bench VM (npm run bench:ipvs)\n');
    process.exit(2);
  }
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  const ipvsadmVersion = await new Promise<string>((resolve) => {
    const c = spawn('ipvsadm', ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    c.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
    c.once('close', () => resolve(out.trim().split('\n')[0] ?? '?'));
    c.once('error', () => resolve('?'));
  });
  process.stdout.write(`node ${process.version}, kernel ${release()}, cpu "${cpuModel}", ${ipvsadmVersion}\n`);

  const desired = desiredTable();
  const total = objects(desired);
  const text = saveText(desired);
  process.stdout.write(`table: ${SERVICES} TCP IPv4 wlc services x ${DESTS} droute dests (weight 1) = ${total} objects; ipvsadm -R input ${text.split('\n').length - 1} lines\n\n`);

  // ---------------------------------------------------------------- 1. cold programming
  const tandemRuns: number[] = [];
  const ipvsadmRuns: number[] = [];
  const emptyRuns: number[] = [];
  let opsCount = 0;
  for (let r = 0; r < RUNS; r++) {
    await flush();
    const t = await tandemCold(desired);
    if (t.dumped !== 0) throw new Error(`the table was not empty before the cold run (${t.dumped} objects)`);
    opsCount = t.ops;
    await expectObjects(total, 'after tandem cold');
    tandemRuns.push(t.ms);

    await flush();
    ipvsadmRuns.push(await timedChild(['ipvsadm', '-R'], text));
    await expectObjects(total, 'after ipvsadm -R');

    await flush();
    emptyRuns.push(await timedChild(['ipvsadm', '-R'], ''));
    await expectObjects(0, 'after empty ipvsadm -R');
  }
  const tMed = median(tandemRuns);
  const aMed = median(ipvsadmRuns);
  const eMed = median(emptyRuns);
  process.stdout.write(`1. cold programming of ${total} objects (flushed with ipvsadm -C before every run; runs 1..${RUNS})\n`);
  process.stdout.write(`${line(`tandem (open+dump+diff+apply)`, tandemRuns)}   ${opsCount} netlink ops\n`);
  process.stdout.write(`${line('ipvsadm -R (child process)', ipvsadmRuns)}\n`);
  process.stdout.write(`${line('ipvsadm -R, empty input (start-up)', emptyRuns)}\n`);
  process.stdout.write(`  ratio ipvsadm/tandem (medians): ${(aMed / tMed).toFixed(2)}x`);
  process.stdout.write(`; minus ipvsadm start-up: ${((aMed - eMed) / tMed).toFixed(2)}x`);
  process.stdout.write(`  (goal >= 3x: ${aMed / tMed >= 3 ? 'met' : 'NOT met'})\n\n`);

  // ---------------------------------------------------------------- 2. one change
  // The last cold run ended with an empty table: program it once more through tandem (untimed).
  await flush();
  await tandemCold(desired);
  const client: IpvsClient = await createIpvsClient();
  try {
    // Warm the client once (untimed): a long-running daemon has its client open and its code hot.
    await client.dump();
    const changeRuns: number[] = [];
    const changeOps: number[] = [];
    const dumpRuns: number[] = [];
    const svc = desired.services[Math.floor(SERVICES / 2)] as Service;
    const dest = svc.dests[DESTS - 1];
    if (dest === undefined) throw new Error('no dest to change');
    for (let r = 0; r < RUNS; r++) {
      dest.weight = r + 2; // 1 -> 2 -> 3 -> 4: a real change every run
      const t0 = performance.now();
      const actual = await client.dump();
      const ops: IpvsOp[] = diff(desired, actual, { mayDelete });
      const results = await client.apply(ops);
      changeRuns.push(performance.now() - t0);
      checkResults(results, 'one change');
      changeOps.push(ops.length);
      if (ops.length !== 1 || ops[0]?.op !== 'editDest') throw new Error(`one weight change gave ${ops.length} ops: ${ops.map((o) => o.op).join(', ')}`);
    }
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      await client.dump();
      dumpRuns.push(performance.now() - t0);
    }
    process.stdout.write(`2. one dest weight changed in the ${total}-object table (client already open)\n`);
    process.stdout.write(`${line('dump + diff + apply', changeRuns)}   netlink ops applied per run: ${changeOps.join(', ')} (${(svc.key.kind === 'addr' ? svc.key.address : '?')}:${PORT} -> ${dest.address}:${dest.port} SET_DEST)\n`);
    process.stdout.write(`${line('dump alone', dumpRuns)}\n\n`);

    // ---------------------------------------------------------------- 3. full dump
    const fullRuns: number[] = [];
    const counts: string[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      const t = await client.dump();
      fullRuns.push(performance.now() - t0);
      const dests = t.services.reduce((n, s) => n + s.dests.length, 0);
      counts.push(`${t.services.length}+${dests}=${t.services.length + dests}`);
    }
    const freshRuns: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      const c = await createIpvsClient();
      const n = objects(await c.dump());
      freshRuns.push(performance.now() - t0);
      c.close();
      if (n !== total) throw new Error(`fresh dump saw ${n} objects`);
    }
    process.stdout.write(`3. full dump of the table (services+dests=objects per run: ${counts.join(', ')})\n`);
    process.stdout.write(`${line('dump(), client open', fullRuns)}\n`);
    process.stdout.write(`${line('open + dump(), new client', freshRuns)}\n`);
  } finally {
    client.close();
    await flush();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/ipvs-in-vm: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
