/**
 * A pure tokenizer for magnus cells: no DOM, no CodeMirror, only positions.
 *
 * It mirrors how the kernel reads a cell (magnus_jupyter/magics.py and
 * declare.py), so what is coloured as a mistake here is one there:
 *
 * - the magic line: `%%magnus_step NAME --flag VALUE ...` (shell-like words,
 *   argparse flags, also `--flag=VALUE` and unique prefixes of a flag);
 * - a `%%magnus_parallel` / `%%magnus_map` body: `BRANCH: STEP >> STEP`,
 *   STEP a notebook path (.ipynb), a `shell command` in backticks or a step
 *   name; `#` comment lines; or a YAML mapping of branch pipelines;
 * - a `%%magnus_step` body is Python and left alone;
 * - in any other cell, lines holding a line magic: `%magnus_run`, `%magnus_step NAME ...`.
 *
 * Offsets are UTF-16 indices into the cell's text, `from` inclusive and `to`
 * exclusive; no token spans two lines.
 *
 * Which magics exist and what their lines take comes from the magics' own
 * argument parsers (magics.generated.ts, see magnus_jupyter/magic_table.py).
 */

import { MAGIC_TABLE } from './magics.generated';

export type TokenType =
  | 'magic' // %%magnus_parallel, %magnus_run
  | 'name' // the NAME of a step or block
  | 'flag' // --next
  | 'value' // a flag's value, or a line magic's PATH
  | 'comment'
  | 'branch' // BRANCH in `BRANCH: STEP >> STEP`
  | 'punct' // the `:` after a branch, YAML's `:` and `-`
  | 'arrow' // >>
  | 'notebook' // a path ending in .ipynb
  | 'shell' // `a command` with its backticks
  | 'step' // the name of a declared step
  | 'yaml-key'
  | 'yaml-value'
  | 'error'; // what the kernel would reject

export interface Token {
  type: TokenType;
  from: number;
  to: number;
}

/** How the body (the lines after the magic line) of a cell is read. */
export type BodyKind = 'python' | 'branches' | 'yaml' | 'none';

export interface CellTokens {
  /** The cell magic without `%%` (`magnus_parallel`), or null in a plain cell. */
  magic: string | null;
  body: BodyKind;
  tokens: Token[];
}

/** How a magic's line is read: from its argument parser (magics.generated.ts). */
interface MagicSpec {
  line: boolean;
  cell: boolean;
  /** Flags that take a value. */
  values: readonly string[];
  /** Flags that take none. */
  switches: readonly string[];
  /** The allowed values of a flag, where argparse has `choices`. */
  choices: Readonly<Record<string, readonly string[]>>;
  /** Flags whose value argparse reads as an integer (`type=int`). */
  ints: readonly string[];
  /** How many positional words (NAME, PATH, RUN_ID) it needs, and takes at most (null: any number). */
  minPositional: number;
  maxPositional: number | null;
}

const TABLE: Readonly<Record<string, MagicSpec>> = MAGIC_TABLE;

function magicsWhere(kind: 'line' | 'cell'): Readonly<Record<string, MagicSpec>> {
  return Object.fromEntries(Object.entries(TABLE).filter(([, spec]) => spec[kind]));
}

/** `%%magnus_step`, `%%magnus_parallel`, `%%magnus_map`: the magics that declare from a cell. */
export const CELL_MAGICS = magicsWhere('cell');

/** Every magic usable on a line; the declaring ones too (`%magnus_step A --notebook a.ipynb`). */
export const LINE_MAGICS = magicsWhere('line');

const RESERVED_IN_BRANCH = ['.', '%'];

/** Tokens of one cell's text. */
export function tokenize(text: string): CellTokens {
  if (!text.includes('%magnus_')) {
    return { magic: null, body: 'none', tokens: [] };
  }
  const lines = splitLines(text);
  const first = lines.findIndex(l => l.text.trim() !== ''); // IPython drops leading blank lines
  const head = first >= 0 ? /^%%(magnus_[a-z]+)(?=\s|$)/.exec(lines[first].text) : null;
  if (!head || !(head[1] in CELL_MAGICS)) {
    return { magic: null, body: 'none', tokens: lineMagicTokens(lines) };
  }
  const magic = head[1];
  const line = lines[first];
  const tokens: Token[] = [{ type: 'magic', from: line.from, to: line.from + head[0].length }];
  tokens.push(...argumentTokens(line.text, line.from, CELL_MAGICS[magic], tokens[0], 'name'));
  const body = lines.slice(first + 1);
  if (body.length === 0 || (body.length === 1 && body[0].text === '')) {
    tokens[0].type = 'error'; // IPython: "%%magnus_step is a cell magic, but the cell body is empty"
  }
  if (magic === 'magnus_step') {
    return { magic, body: 'python', tokens };
  }
  if (looksLikeYaml(body)) {
    for (const l of body) {
      tokens.push(...yamlLineTokens(l.text, l.from));
    }
    return { magic, body: 'yaml', tokens };
  }
  tokens.push(...branchBodyTokens(body, magic === 'magnus_map'));
  return { magic, body: 'branches', tokens };
}

// ---- lines ---------------------------------------------------------------------------------

interface Line {
  text: string;
  from: number;
}

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  let from = 0;
  for (const raw of text.split('\n')) {
    lines.push({ text: raw.endsWith('\r') ? raw.slice(0, -1) : raw, from });
    from += raw.length + 1;
  }
  return lines;
}

/** `from`/`to` of `text` without its surrounding whitespace, shifted by `offset`; null when blank. */
function trimmed(text: string, offset: number): { from: number; to: number } | null {
  const start = text.length - text.trimStart().length;
  const end = text.trimEnd().length;
  return end > start ? { from: offset + start, to: offset + end } : null;
}

// ---- magic arguments -----------------------------------------------------------------------

interface Word {
  from: number; // relative to the line
  to: number;
  text: string; // without quotes, as shlex would give it
  closed: boolean; // false: a quote is not closed
}

/** Split like a POSIX shell (shlex.split), keeping where each word is. */
export function shellWords(line: string, start = 0): Word[] {
  const words: Word[] = [];
  let i = start;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) break;
    const from = i;
    let text = '';
    let closed = true;
    while (i < line.length && !/\s/.test(line[i])) {
      const c = line[i];
      if (c === '"' || c === "'") {
        const end = line.indexOf(c, i + 1);
        if (end < 0) {
          text += line.slice(i + 1);
          i = line.length;
          closed = false;
          break;
        }
        text += line.slice(i + 1, end);
        i = end + 1;
      } else if (c === '\\' && i + 1 < line.length) {
        text += line[i + 1];
        i += 2;
      } else {
        text += c;
        i++;
      }
    }
    words.push({ from, to: i, text, closed });
  }
  return words;
}

/** argparse's reading of a flag: exact, or a unique prefix of a known one (allow_abbrev). */
function resolveFlag(word: string, spec: MagicSpec): string | null {
  const known = [...spec.values, ...spec.switches];
  if (known.includes(word)) return word;
  const matches = word.startsWith('--') ? known.filter(f => f.startsWith(word)) : [];
  return matches.length === 1 ? matches[0] : null;
}

function isFlag(word: string): boolean {
  return word.startsWith('-') && word.length > 1 && !/^-\d/.test(word);
}

/** What Python's int() takes (argparse `type=int`), ASCII digits only. */
const INT = /^\s*[+-]?\d+(_\d+)*\s*$/;

/**
 * The words after `magic` (its token, marked an error when a required NAME or PATH is missing),
 * read like argparse: flags, their values, and positional words up to the magic's count. Words
 * after a flag cannot add to an earlier NAME (`A --stub B` leaves B unrecognized).
 */
function argumentTokens(
  line: string,
  offset: number,
  spec: MagicSpec,
  magic: Token,
  positional: TokenType
): Token[] {
  const tokens: Token[] = [];
  const words = shellWords(line, magic.to - offset);
  const at = (w: Word, type: TokenType, from = w.from, to = w.to): void => {
    tokens.push({ type: w.closed ? type : 'error', from: offset + from, to: offset + to });
  };
  let wanted: string | null = null; // a flag waiting for its value
  const value = (w: Word, flag: string, text: string, from: number): void => {
    const choices = spec.choices[flag];
    const wrong = (choices && !choices.includes(text)) || (spec.ints.includes(flag) && !INT.test(text));
    at(w, wrong ? 'error' : 'value', from);
  };
  let positionals = 0;
  let closed = false; // a flag came after positional words: an unbounded NAME takes no more
  let unknown = false; // the previous word is an unknown flag: the error is it, not its value
  for (const w of words) {
    if (wanted !== null && !(isFlag(w.text) && resolveFlag(w.text.split('=')[0], spec))) {
      value(w, wanted, w.text, w.from);
      wanted = null;
      continue;
    }
    if (unknown && !isFlag(w.text)) {
      at(w, 'value');
      unknown = false;
      continue;
    }
    unknown = false;
    if (wanted !== null) {
      tokens[tokens.length - 1].type = 'error'; // the previous flag got no value
      wanted = null;
    }
    if (!isFlag(w.text)) {
      const room = spec.maxPositional === null ? !closed : positionals < spec.maxPositional;
      at(w, room ? positional : 'error');
      positionals++;
      continue;
    }
    closed = positionals > 0;
    const eq = w.text.indexOf('=');
    const flag = resolveFlag(eq < 0 ? w.text : w.text.slice(0, eq), spec);
    if (flag === null) {
      at(w, 'error');
      unknown = eq < 0;
    } else if (eq < 0) {
      at(w, 'flag');
      if (spec.values.includes(flag)) wanted = flag;
    } else if (spec.values.includes(flag)) {
      const cut = line.indexOf('=', w.from);
      at(w, 'flag', w.from, cut);
      value(w, flag, w.text.slice(eq + 1), cut + 1);
    } else {
      at(w, 'error'); // --shell=yes: a switch takes no value
    }
  }
  if (wanted !== null) tokens[tokens.length - 1].type = 'error';
  if (positionals < spec.minPositional) magic.type = 'error';
  return tokens;
}

function lineMagicTokens(lines: Line[]): Token[] {
  const tokens: Token[] = [];
  for (const l of lines) {
    const m = /^(\s*)%(magnus_[a-z]+)(?=\s|$)/.exec(l.text);
    if (!m || !(m[2] in LINE_MAGICS)) continue;
    const start = m[1].length;
    const magic: Token = { type: 'magic', from: l.from + start, to: l.from + m[0].length };
    const positional = m[2] in CELL_MAGICS ? 'name' : 'value';
    tokens.push(magic, ...argumentTokens(l.text, l.from, LINE_MAGICS[m[2]], magic, positional));
  }
  return tokens;
}

// ---- branch lines --------------------------------------------------------------------------

/** Cut `text` at each `sep` that is not between backticks (like declare._split_outside_backticks). */
export function splitOutsideBackticks(text: string, sep: string): { parts: string[]; at: number[] } {
  const parts: string[] = [];
  const at: number[] = []; // where each separator starts
  let inTicks = false;
  let last = 0;
  for (let i = 0; i < text.length; ) {
    if (text[i] === '`') inTicks = !inTicks;
    if (!inTicks && text.startsWith(sep, i)) {
      parts.push(text.slice(last, i));
      at.push(i);
      i += sep.length;
      last = i;
    } else {
      i++;
    }
  }
  parts.push(text.slice(last));
  return { parts, at };
}

function stepType(part: string): TokenType {
  const t = part.trim();
  if (t.startsWith('`') && t.endsWith('`') && t.split('`').length === 3) {
    return t.slice(1, -1).trim() ? 'shell' : 'error';
  }
  if (t.includes('`')) return 'error'; // a shell STEP is one whole `command`
  return t.endsWith('.ipynb') ? 'notebook' : 'step';
}

/** The branch lines of a body; a repeated BRANCH, and a map's second line, are errors too. */
function branchBodyTokens(body: Line[], isMap: boolean): Token[] {
  const tokens: Token[] = [];
  const seen = new Set<string>();
  let lines = 0;
  for (const l of body) {
    const line = branchLineTokens(l.text, l.from, isMap);
    if (line.length === 0 || line[0].type === 'comment') {
      tokens.push(...line);
      continue;
    }
    lines++;
    if (isMap && lines > 1) {
      tokens.push({ type: 'error', ...trimmed(l.text, l.from)! }); // a map has one branch
      continue;
    }
    const branch = line.find(t => t.type === 'branch');
    if (branch) {
      const name = l.text.slice(branch.from - l.from, branch.to - l.from).split(/\s+/).join(' ');
      if (seen.has(name)) branch.type = 'error';
      seen.add(name);
    }
    tokens.push(...line);
  }
  return tokens;
}

function branchLineTokens(text: string, offset: number, isMap: boolean): Token[] {
  const whole = trimmed(text, offset);
  if (!whole) return [];
  if (text.trim().startsWith('#')) return [{ type: 'comment', ...whole }];
  const tokens: Token[] = [];
  const colon = splitOutsideBackticks(text, ':').at[0] ?? -1;
  let rest = 0; // where the STEPs start
  if (colon >= 0 || !isMap) {
    const head = colon >= 0 ? text.slice(0, colon) : '';
    if (colon < 0 || !head.trim() || head.includes('`') || head.includes('>>')) {
      return [{ type: 'error', ...whole }]; // not `BRANCH: STEP >> STEP`
    }
    const name = trimmed(head, offset)!;
    const reserved = !isMap && RESERVED_IN_BRANCH.some(c => head.includes(c));
    tokens.push({ type: reserved ? 'error' : 'branch', ...name });
    tokens.push({ type: 'punct', from: offset + colon, to: offset + colon + 1 });
    rest = colon + 1;
  }
  const { parts, at } = splitOutsideBackticks(text.slice(rest), '>>');
  const arrows: Token[] = at.map(i => ({ type: 'arrow', from: offset + rest + i, to: offset + rest + i + 2 }));
  let from = rest;
  parts.forEach((part, i) => {
    const range = trimmed(part, offset + from);
    if (range) {
      tokens.push({ type: stepType(part), ...range });
    } else {
      // an empty STEP: blame the `>>` (or the `:`) next to it
      const blame = arrows[i - 1] ?? arrows[i] ?? tokens[tokens.length - 1];
      if (blame) blame.type = 'error';
    }
    from += part.length + 2;
  });
  tokens.push(...arrows);
  return tokens.sort((a, b) => a.from - b.from);
}

// ---- YAML bodies ---------------------------------------------------------------------------

const YAML_KEY = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s#"'{[\-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?=\s|$)/;

function isContent(l: Line): boolean {
  const t = l.text.trim();
  return t !== '' && !t.startsWith('#');
}

/**
 * The kernel takes a body as YAML when it parses to a mapping with a mapping as
 * a value. Branch lines never have one, so: a key at column 0 whose value is a
 * block mapping (the next content line is indented) or a flow mapping `{...}`.
 */
export function looksLikeYaml(body: Line[]): boolean {
  const content = body.filter(isContent);
  return content.some((l, i) => {
    const m = YAML_KEY.exec(l.text);
    if (!m) return false;
    const value = stripComment(l.text.slice(m[0].length)).trim();
    if (value.startsWith('{')) return true;
    const next = content[i + 1];
    return value === '' && next !== undefined && /^\s/.test(next.text);
  });
}

/** `text` up to a YAML comment (a `#` at the start or after a space, outside quotes). */
function stripComment(text: string): string {
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      return text.slice(0, i);
    }
  }
  return text;
}

function yamlLineTokens(text: string, offset: number): Token[] {
  const tokens: Token[] = [];
  const code = stripComment(text);
  const comment = trimmed(text.slice(code.length), offset + code.length);
  let i = code.length - code.trimStart().length;
  if (code.trim() === '---' || code.trim() === '...') {
    tokens.push({ type: 'punct', from: offset + i, to: offset + i + 3 });
    i = code.length;
  }
  for (let m = /^-(\s+|$)/.exec(code.slice(i)); m; m = /^-(\s+|$)/.exec(code.slice(i))) {
    tokens.push({ type: 'punct', from: offset + i, to: offset + i + 1 });
    i += m[0].length;
  }
  const key = YAML_KEY.exec(code.slice(i));
  if (key) {
    tokens.push({ type: 'yaml-key', from: offset + i, to: offset + i + key[1].length });
    tokens.push({ type: 'punct', from: offset + i + key[0].length - 1, to: offset + i + key[0].length });
    i += key[0].length;
  }
  const value = trimmed(code.slice(i), offset + i);
  if (value) {
    const v = code.slice(value.from - offset, value.to - offset).replace(/^["']|["']$/g, '');
    tokens.push({ type: v.endsWith('.ipynb') ? 'notebook' : 'yaml-value', ...value });
  }
  if (comment) tokens.push({ type: 'comment', ...comment });
  return tokens;
}
