/**
 * Text hygiene (API.md, Conventions "Text"): no input may hold NUL, another C0 control or an unpaired
 * UTF-16 surrogate. PostgreSQL refuses NUL in text/jsonb (22P05) and lone surrogates in jsonb (22P02), and
 * such characters break logs and CSV exports, so they are refused at the edge with a 400 that names the field.
 * Tab, CR and LF are allowed only in free text meant for people: `note`, `reason` and metadata values.
 */

// eslint-disable-next-line no-control-regex
const C0 = /[\u0000-\u001f]/;
// eslint-disable-next-line no-control-regex
const C0_EXCEPT_WHITESPACE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/**
 * An id: 1-255 code points, none of them a control (C0, DEL, C1), a lone surrogate or a bidirectional
 * control (U+061C, U+200E/F, U+202A-E, U+2066-9), which would make an id display as another one in the
 * console, CSV exports and logs ("Trojan Source").
 */
const PRINTABLE_ID = /^[^\p{Cc}\p{Cs}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]{1,255}$/u;
/** A key JSON.parse keeps as an own property but that object spreads, schemas and merges drop or misread. */
const PROTO_KEY = '__proto__';

export const MULTILINE_FIELDS: ReadonlySet<string> = new Set(['note', 'reason']);

/** Why a string is not acceptable text, or null when it is. `multiline` allows tab, CR and LF. */
export function textProblem(value: string, multiline = false): string | null {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if ((multiline ? C0_EXCEPT_WHITESPACE : C0).test(value)) {
    return multiline ? 'must not contain control characters other than tab, CR and LF' : 'must not contain control characters';
  }
  if (LONE_SURROGATE.test(value)) return 'must not contain unpaired UTF-16 surrogates';
  return null;
}

/** Why a string is not an acceptable id (user, session, model id, key), or null. */
export function idProblem(value: string): string | null {
  return PRINTABLE_ID.test(value) ? null : 'must be 1-255 printable characters (no control characters, bidirectional controls or unpaired surrogates)';
}

/** How deep a body, query or params value may nest: deeper input is refused before any schema walks it. */
export const MAX_INPUT_DEPTH = 64;
/** The walk stops at this many issues: enough to report, and what it did not reach is unchecked. */
export const MAX_TEXT_ISSUES = 20;

export interface TextIssue {
  path: (string | number)[];
  message: string;
  /** The value nests deeper than MAX_INPUT_DEPTH here: the route's schema must not walk it (recursion). */
  tooDeep?: true;
}

/**
 * Every unacceptable string in a parsed JSON value or query/params object, keys included. Strings under a
 * `note` or `reason` field, and metadata values (not keys), may hold tab/CR/LF. Runs before the route's own
 * schema, so a route nobody taught about text hygiene is still covered.
 */
export function findTextIssues(value: unknown, path: (string | number)[] = [], depth = 0): TextIssue[] {
  const issues: TextIssue[] = [];
  // One path array is pushed and popped along the walk; an issue gets its own copy.
  walk(value, [...path], depth, issues);
  return issues;
}

function multilineAt(path: (string | number)[]): boolean {
  const last = path[path.length - 1];
  if (typeof last === 'string' && MULTILINE_FIELDS.has(last)) return true;
  return path.length >= 2 && path[0] === 'metadata';
}

function walk(value: unknown, path: (string | number)[], depth: number, issues: TextIssue[]): void {
  if (issues.length >= MAX_TEXT_ISSUES) return;
  if (depth > MAX_INPUT_DEPTH) {
    // Refused, not skipped: text below this level would go unchecked, and recursive code (a schema's
    // JSON.stringify, PostgreSQL's jsonb parser) must never see such a value.
    issues.push({ path: [...path], message: `must not nest more than ${MAX_INPUT_DEPTH} levels deep`, tooDeep: true });
    return;
  }
  if (typeof value === 'string') {
    const problem = textProblem(value, multilineAt(path));
    if (problem) issues.push({ path: [...path], message: problem });
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      walk(value[i], path, depth + 1, issues);
      path.pop();
    }
  } else if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      path.push(key);
      // A metadata key "__proto__" was dropped silently (a 201 that did not store what it acknowledged).
      const keyProblem = key === PROTO_KEY ? 'must not be __proto__' : textProblem(key);
      if (keyProblem) issues.push({ path: [...path], message: `key ${keyProblem}` });
      walk(record[key], path, depth + 1, issues);
      path.pop();
    }
  }
}
