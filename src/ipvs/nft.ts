/**
 * The FULLNAT host adapter: the only code in tandem that runs `nft`, plus the sysctl reads and writes FULLNAT
 * needs (/proc/sys). `nft -j list table` reads the table as JSON; `nft -f -` applies a script as one atomic
 * transaction (nftables commits a whole file or nothing). Decisions live in fullnat.ts.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ERROR_CODES, TandemError, messageOf } from '../lib/errors.ts';
import { FULLNAT_TABLE, type FullnatHost } from './fullnat.ts';

/** `nft` failed or could not run. */
export class NftError extends TandemError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES.netlink, message, options);
  }
}

/** How long one nft invocation may take; nft answers in milliseconds, a hang means a wedged netlink socket. */
const NFT_TIMEOUT_MS = 30_000;

interface NftResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runNft(nft: string, args: readonly string[], stdin: string | undefined): Promise<NftResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(nft, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), NFT_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new NftError(`cannot run ${nft}: ${messageOf(e)} (install nftables)`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === null ? 1 : 128), stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // nft exiting early surfaces through its exit code
    child.stdin.end(stdin ?? '');
  });
}

/** The /proc/sys path of a dotted sysctl name (`net.ipv4.vs.conntrack` -> /proc/sys/net/ipv4/vs/conntrack). */
export function sysctlPath(name: string, procSys = '/proc/sys'): string {
  return join(procSys, ...name.split('.'));
}

/**
 * Where nftables installs `nft`. Looked up there before PATH: under `npx` or npm scripts PATH starts with
 * node_modules/.bin, where `nft` is @vercel/nft (a dependency of ava), not nftables.
 */
export const NFT_PATHS = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', '/usr/local/sbin/nft'] as const;

/** The nftables binary: the first of NFT_PATHS that exists, else `nft` from PATH. */
export function findNft(exists: (path: string) => boolean = existsSync): string {
  return NFT_PATHS.find((p) => exists(p)) ?? 'nft';
}

/** The real FullnatHost: runs nftables' `nft` (see findNft unless `nft` is given) and reads / writes /proc/sys. */
export function createNftHost(opts: { nft?: string; procSys?: string } = {}): FullnatHost {
  const nft = opts.nft ?? findNft();
  const procSys = opts.procSys ?? '/proc/sys';
  const table = `${FULLNAT_TABLE.family} ${FULLNAT_TABLE.name}`;
  return {
    async listTable(): Promise<unknown> {
      let r: NftResult;
      try {
        r = await runNft(nft, ['-j', 'list', 'table', FULLNAT_TABLE.family, FULLNAT_TABLE.name], undefined);
      } catch (e) {
        // Without nft there can be no table; applying one (when FULLNAT is configured) then fails saying so.
        if (e instanceof NftError && e.cause !== undefined && typeof e.cause === 'object' && e.cause !== null && 'code' in e.cause && e.cause.code === 'ENOENT') return undefined;
        throw e;
      }
      if (r.code !== 0) {
        if (/No such file or directory/i.test(r.stderr)) return undefined;
        throw new NftError(`nft -j list table ${table} exited ${r.code}: ${r.stderr.trim()}`);
      }
      try {
        return JSON.parse(r.stdout) as unknown;
      } catch (e) {
        throw new NftError(`nft -j list table ${table} printed no JSON (${messageOf(e)}; exit ${r.code}, stdout ${JSON.stringify(r.stdout.slice(0, 200))}, stderr ${JSON.stringify(r.stderr.slice(0, 200))})`, { cause: e });
      }
    },
    async runScript(script: string): Promise<void> {
      const r = await runNft(nft, ['-f', '-'], script);
      if (r.code !== 0) throw new NftError(`nft -f - exited ${r.code}: ${r.stderr.trim()}\nscript:\n${script}`);
    },
    async readSysctl(name: string): Promise<string | undefined> {
      try {
        return (await readFile(sysctlPath(name, procSys), 'utf8')).trim();
      } catch (e) {
        if (typeof e === 'object' && e !== null && 'code' in e && e.code === 'ENOENT') return undefined;
        throw e;
      }
    },
    async writeSysctl(name: string, value: string): Promise<void> {
      await writeFile(sysctlPath(name, procSys), `${value}\n`);
    },
  };
}
