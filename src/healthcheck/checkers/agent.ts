/**
 * Agent check in the style of HAProxy's agent-check: connect to the agent port, optionally send a line, read
 * one line (at most MAX_AGENT_LINE_BYTES, ended by LF or by the agent closing) made of words separated by
 * spaces or commas, with an optional `#` comment:
 *
 * - `up`, `ready`: up;  `down`, `fail`, `stopped`, `maint`: down (`status`);
 * - `drain`: up at 0 % of the configured weight;  `N%`: up at N % of it (`load`);
 * - `weight N`: up with the absolute weight N (`weight`).
 *
 * Unknown words are ignored (as HAProxy does), but a line with no known word is a bad reply.
 */

import type { CheckResult, CheckTarget, AgentCheckSpec } from '../types.ts';
import { LineReader, failure, pass, runStream, sanitize } from './common.ts';
import type { Outcome } from './common.ts';

/** An agent line is short; HAProxy reads at most a buffer, we keep far less. */
export const MAX_AGENT_LINE_BYTES = 512;

/** What an agent line says. */
export interface AgentReply {
  state?: 'up' | 'down';
  /** Percent of the configured weight (`drain` = 0). */
  load?: number;
  /** Absolute weight. */
  weight?: number;
  /** The comment after `#`, if any. */
  comment?: string;
}

const UP_WORDS = new Set(['up', 'ready']);
const DOWN_WORDS = new Set(['down', 'fail', 'stopped', 'maint']);

/** Parses one agent line; undefined when it contains no known word. */
export function parseAgentReply(line: string): AgentReply | undefined {
  const hash = line.indexOf('#');
  const body = (hash < 0 ? line : line.slice(0, hash)).trim().toLowerCase();
  const reply: AgentReply = {};
  if (hash >= 0) reply.comment = line.slice(hash + 1).trim();
  let known = false;
  const words = body.split(/[\s,]+/).filter((w) => w !== '');
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    if (UP_WORDS.has(w)) {
      if (reply.state !== 'down') reply.state = 'up';
      known = true;
    } else if (DOWN_WORDS.has(w)) {
      reply.state = 'down';
      known = true;
    } else if (w === 'drain') {
      reply.load = 0;
      known = true;
    } else if (/^\d{1,4}%$/.test(w)) {
      reply.load = Number(w.slice(0, -1));
      known = true;
    } else if (w === 'weight' && /^\d{1,6}$/.test(words[i + 1] ?? '')) {
      reply.weight = Number(words[i + 1]);
      known = true;
      i++;
    }
  }
  return known ? reply : undefined;
}

/** The outcome of an agent line. */
export function agentOutcome(line: string): Outcome {
  const r = parseAgentReply(line);
  const shown = sanitize(line.trim(), 100);
  if (r === undefined) return failure('bad_reply', `agent said ${JSON.stringify(shown)}`);
  if (r.state === 'down') return failure('status', `agent: ${shown}`);
  const extra: { weight?: number; load?: number } = {};
  if (r.weight !== undefined) extra.weight = r.weight;
  if (r.load !== undefined) extra.load = r.load;
  return pass(`agent: ${shown}`, extra);
}

/** One agent exchange. Never throws. */
export function checkAgent(target: CheckTarget, spec: Pick<AgentCheckSpec, 'send' | 'connectTimeoutMs' | 'readTimeoutMs' | 'timeoutMs'>, signal: AbortSignal): Promise<CheckResult> {
  const reader = new LineReader(MAX_AGENT_LINE_BYTES);
  return runStream(target, spec, signal, {
    onConnect(io) {
      if (spec.send !== '') io.write(spec.send);
      return undefined;
    },
    onData(chunk) {
      const r = reader.push(chunk);
      if ('tooLarge' in r) return failure('too_large', `agent line over ${MAX_AGENT_LINE_BYTES} bytes`);
      const line = r.lines[0];
      return line === undefined ? undefined : agentOutcome(line);
    },
    onEnd: () => (reader.rest() === '' ? failure('bad_reply', 'agent closed without a reply') : agentOutcome(reader.rest())),
  });
}
