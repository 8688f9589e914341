import { describe, expect, it } from 'vitest';

import { exportYamlCode, runFromCode, shellQuote } from '../src/kernel';

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

describe('Run from here', () => {
  it('runs %magnus_run --from with the internal name as the magic splits it', () => {
    expect(runFromCode('Get_Features')).toBe('%magnus_run --from Get_Features');
    expect(runFromCode('Train Models.XGBoost.Train XGBoost')).toBe(
      "%magnus_run --from 'Train Models.XGBoost.Train XGBoost'"
    );
    expect(runFromCode("it's")).toBe(`%magnus_run --from 'it'"'"'s'`);
  });

  it('calls the magic directly for a name IPython would expand (a map placeholder)', () => {
    expect(runFromCode('per item.{item}.work')).toBe(
      `get_ipython().find_line_magic('magnus_run')("--from 'per item.{item}.work'")`
    );
  });
});
