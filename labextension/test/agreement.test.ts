import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { tokenize } from '../src/tokenizer';

interface ICase {
  magic: string;
  body: string;
  yaml: boolean;
  rejected: boolean | null;
}

interface ILineCase {
  line: string;
  rejected: boolean;
}

/** A case file of test/, with the kernel's verdicts checked against magnus_jupyter by tests/labextension_test. */
function cases<T>(name: string): T[] {
  return (JSON.parse(readFileSync(new URL(name, import.meta.url), 'utf8')) as { cases: T[] }).cases;
}

describe('the tokenizer agrees with the kernel', () => {
  it.each(cases<ICase>('./branch-cases.json'))('$magic: $body', ({ magic, body, yaml, rejected }) => {
    const flags = magic === 'magnus_map' ? ' --iterate-on xs --iterate-as x' : '';
    const cell = tokenize(`%%${magic} P${flags}\n${body}`);
    expect(cell.body).toBe(yaml ? 'yaml' : 'branches');
    if (rejected !== null) {
      const errors = cell.tokens.filter(t => t.type === 'error');
      expect(errors.length > 0).toBe(rejected);
    }
  });
});

describe("the tokenizer agrees with the magics' argument parsers", () => {
  it.each(cases<ILineCase>('./magic-line-cases.json'))('$line', ({ line, rejected }) => {
    // a body, so that a cell magic is not refused for having none; only the magic line counts
    const errors = tokenize(`${line}\nx`).tokens.filter(t => t.type === 'error' && t.to <= line.length);
    expect(errors.length > 0).toBe(rejected);
  });
});
