/**
 * Public surface of health checking: domain types and defaults, the checkers (one attempt each, only I/O), the
 * pure cores (rise/fall, scheduling, weights), shared probes and the HealthMonitor driver that emits
 * server_up / server_down / weight_changed / check_result events. Other folders import only this module.
 */

export * from './types.ts';
export { runCheck } from './check.ts';
export { checkTcp } from './checkers/tcp.ts';
export { checkHttp, buildRequest, httpSpecProblem, parseFeedback } from './checkers/http.ts';
export { HttpResponseParser, DEFAULT_MAX_HEAD_BYTES } from './checkers/http-parser.ts';
export type { HttpParseStatus, HttpParserOptions } from './checkers/http-parser.ts';
export { checkScript, exitOutcome } from './checkers/script.ts';
export { checkDns, judgeDnsReply } from './checkers/dns.ts';
export { decodeMessage, encodeQuery, RCODE_NAMES, RR_TYPES } from './checkers/dns-codec.ts';
export type { DnsMessage, DnsQuestion, DnsRecord, DnsDecodeReason } from './checkers/dns-codec.ts';
export { checkUdp } from './checkers/udp.ts';
export { checkSmtp } from './checkers/smtp.ts';
export { checkAgent, parseAgentReply } from './checkers/agent.ts';
export type { AgentReply } from './checkers/agent.ts';
export { compilePattern, matchBounded } from './checkers/match.ts';
export { initialRiseFall, observe } from './risefall.ts';
export type { RiseFallConfig, RiseFallState, RiseFallTransition } from './risefall.ts';
export { Scheduler, firstDelay, jitteredInterval, seededRandom } from './scheduler.ts';
export type { Attempt, CycleOutcome, Random, ScheduleSpec } from './scheduler.ts';
export { ProbeHub, probeKey, scheduleOf } from './probes.ts';
export type { ProbeListener } from './probes.ts';
export { MAX_IPVS_WEIGHT, defaultWeightPolicy, feedbackTarget, initialWeight, nextWeight } from './weights.ts';
export type { WeightPolicy, WeightState } from './weights.ts';
export { HealthMonitor } from './monitor.ts';
export type { HealthEvent, HealthEventType, MonitorDeps, WatchOptions, WatchStatus } from './monitor.ts';
