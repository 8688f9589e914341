import { describe, expect, it } from 'vitest';

import { exportYamlCode, shellQuote } from '../src/kernel';

describe('the code the commands run', () => {
  it('writes %magnus_yaml PATH for a plain path', () => {
    expect(exportYamlCode('pipeline.yaml')).toBe('%magnus_yaml pipeline.yaml');
    expect(exportYamlCode('out/v1-2_final.yaml')).toBe('%magnus_yaml out/v1-2_final.yaml');
  });

  it('calls the magic directly for a path IPython would expand or split', () => {
    expect(exportYamlCode('my pipe.yaml')).toBe(`get_ipython().find_line_magic('magnus_yaml')("'my pipe.yaml'")`);
    expect(exportYamlCode('$HOME/{x}.yaml')).toBe(
      `get_ipython().find_line_magic('magnus_yaml')("'$HOME/{x}.yaml'")`
    );
  });

  it('quotes a single quote the POSIX way', () => {
    expect(shellQuote("it's.yaml")).toBe(`'it'"'"'s.yaml'`);
    expect(exportYamlCode('a"b')).toBe(`get_ipython().find_line_magic('magnus_yaml')("'a\\"b'")`);
  });
});
