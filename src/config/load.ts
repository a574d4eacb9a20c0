/**
 * Reading a configuration file: YAML text -> parsed document (with a LineCounter so every node maps back to
 * line:column) -> schema.ts -> TandemConfig. Everything that is wrong, YAML syntax included, is reported at once
 * in one ConfigError whose issues carry file, line, column (1-based), document path and a message.
 */

import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import { ConfigError, messageOf } from '../lib/errors.ts';
import type { ConfigIssue } from '../lib/errors.ts';
import { validateDocument } from './schema.ts';
import type { TandemConfig } from './types.ts';

/** Line and 1-based column of a source offset. */
function position(lc: LineCounter, offset: number): { line: number; column: number } {
  const { line, col } = lc.linePos(Math.max(0, offset));
  return { line: Math.max(1, line), column: Math.max(1, col) };
}

/** Issues sorted by position (stable, so issues at one spot keep the order they were found in). */
function sorted(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort((a, b) => a.issue.line - b.issue.line || a.issue.column - b.issue.column || a.i - b.i)
    .map((x) => x.issue);
}

/**
 * Parses and validates configuration text. `file` names the source in every issue and is stored as
 * `TandemConfig.file`. Throws ConfigError carrying every issue found (YAML syntax errors, or schema issues).
 */
export function parseConfig(text: string, file: string): TandemConfig {
  // A byte order mark is not content; dropping it keeps columns on the first line right.
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lc = new LineCounter();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(source, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, version: '1.2', merge: false });
  } catch (e) {
    throw new ConfigError([{ file, line: 1, column: 1, path: '', message: `the YAML parser failed: ${messageOf(e)}` }]);
  }
  const yamlIssues: ConfigIssue[] = [
    ...doc.errors.map((err) => ({ file, ...position(lc, err.pos[0]), path: '', message: `YAML syntax error: ${err.message}` })),
    ...doc.warnings.map((w) => ({ file, ...position(lc, w.pos[0]), path: '', message: `YAML problem: ${w.message}` })),
  ];
  if (yamlIssues.length > 0) throw new ConfigError(sorted(yamlIssues));
  const result = validateDocument(doc, file);
  if (!result.ok) {
    throw new ConfigError(sorted(result.issues.map((i) => ({ file, ...position(lc, i.offset), path: i.path, message: i.message }))));
  }
  return result.config;
}

/** Reads `file` (UTF-8) and parses it with parseConfig; an unreadable file is a ConfigError too. */
export function loadConfig(file: string): TandemConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([
      { file, line: 1, column: 1, path: '', message: `cannot read the configuration file: ${messageOf(e)}; check the path (e.g. --config /etc/tandem/tandem.yaml) and its permissions` },
    ]);
  }
  return parseConfig(text, file);
}
