import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { tokenize } from '../src/tokenizer';

interface ICase {
  magic: string;
  body: string;
  yaml: boolean;
  rejected: boolean | null;
}

// The kernel's verdicts, checked against magnus_jupyter.declare by tests/labextension_test.
const { cases } = JSON.parse(readFileSync(new URL('./branch-cases.json', import.meta.url), 'utf8')) as {
  cases: ICase[];
};

describe('the tokenizer agrees with the kernel', () => {
  it.each(cases)('$magic: $body', ({ magic, body, yaml, rejected }) => {
    const flags = magic === 'magnus_map' ? ' --iterate-on xs --iterate-as x' : '';
    const cell = tokenize(`%%${magic} P${flags}\n${body}`);
    expect(cell.body).toBe(yaml ? 'yaml' : 'branches');
    if (rejected !== null) {
      const errors = cell.tokens.filter(t => t.type === 'error');
      expect(errors.length > 0).toBe(rejected);
    }
  });
});
