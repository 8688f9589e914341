import { describe, expect, it } from 'vitest';

import { shellWords, splitOutsideBackticks, Token, tokenize } from '../src/tokenizer';

/** [type, text] pairs: what a reader sees. */
function view(text: string): [string, string][] {
  return tokenize(text).tokens.map(t => [t.type, text.slice(t.from, t.to)]);
}

function ofType(text: string, type: Token['type']): string[] {
  return view(text)
    .filter(([t]) => t === type)
    .map(([, s]) => s);
}

describe('plain cells', () => {
  it('has no tokens without a magnus magic', () => {
    expect(tokenize('import numpy as np\nx = 1\n')).toEqual({ magic: null, body: 'none', tokens: [] });
  });

  it('ignores other cell magics and look-alike names', () => {
    expect(tokenize('%%time\nx = 1').tokens).toEqual([]);
    expect(tokenize('%%magnus_stepper a\nx = 1').tokens).toEqual([]);
    expect(tokenize('%%magnus_nope a\nA: b.ipynb').magic).toBeNull();
    expect(tokenize('x = "%magnus_run"').tokens).toEqual([]);
  });

  it('tokenizes line magics with their arguments, at their offsets', () => {
    const text = 'x = 1\n  %magnus_run --workers 4 --background\n%magnus_yaml out/pipe.yaml\n';
    expect(view(text)).toEqual([
      ['magic', '%magnus_run'],
      ['flag', '--workers'],
      ['value', '4'],
      ['flag', '--background'],
      ['magic', '%magnus_yaml'],
      ['value', 'out/pipe.yaml']
    ]);
    const run = tokenize(text).tokens[0];
    expect([run.from, run.to]).toEqual([8, 19]);
  });

  it('reads the declaring magics in their line form, NAME first', () => {
    expect(view('%magnus_step "Ensemble Modelling" --notebook notebooks/ensemble.ipynb')).toEqual([
      ['magic', '%magnus_step'],
      ['name', '"Ensemble Modelling"'],
      ['flag', '--notebook'],
      ['value', 'notebooks/ensemble.ipynb']
    ]);
  });

  it('knows -p and --param of %magnus_run, and marks unknown flags', () => {
    expect(view('%magnus_run -p params.yaml --param seed=3 --fast')).toEqual([
      ['magic', '%magnus_run'],
      ['flag', '-p'],
      ['value', 'params.yaml'],
      ['flag', '--param'],
      ['value', 'seed=3'],
      ['error', '--fast']
    ]);
  });
});

describe('the magic line', () => {
  it('splits a %%magnus_step line into name, flags and values', () => {
    const text = '%%magnus_step "Get Features" --returns n_rows,X --next Train\nimport numpy as np';
    expect(view(text)).toEqual([
      ['magic', '%%magnus_step'],
      ['name', '"Get Features"'],
      ['flag', '--returns'],
      ['value', 'n_rows,X'],
      ['flag', '--next'],
      ['value', 'Train']
    ]);
  });

  it('keeps a %%magnus_step body as Python: no tokens past the magic line', () => {
    const text = '%%magnus_step Train --shell\necho hi >> log.txt\nA: b.ipynb';
    const cell = tokenize(text);
    expect(cell).toMatchObject({ magic: 'magnus_step', body: 'python' });
    expect(cell.tokens.every(t => t.to <= text.indexOf('\n'))).toBe(true);
    expect(ofType(text, 'flag')).toEqual(['--shell']);
  });

  it('reads names as plain words or quoted with either quote', () => {
    expect(ofType("%%magnus_step Get Features --stub\n", 'name')).toEqual(['Get', 'Features']);
    expect(ofType("%%magnus_parallel 'Train Models'\nA: a.ipynb", 'name')).toEqual(["'Train Models'"]);
  });

  it('reads --flag=value and unique flag prefixes like argparse', () => {
    expect(view('%%magnus_map M --iterate-on=seeds --iterate-a seed\nx.ipynb')).toEqual([
      ['magic', '%%magnus_map'],
      ['name', 'M'],
      ['flag', '--iterate-on'],
      ['value', 'seeds'],
      ['flag', '--iterate-a'],
      ['value', 'seed'],
      ['notebook', 'x.ipynb']
    ]);
    // --ne is --next; --on is ambiguous? no: only --on-failure starts with --on
    expect(ofType('%%magnus_step A --ne B --on C\npass', 'flag')).toEqual(['--ne', '--on']);
    // --iterate is a prefix of both --iterate-on and --iterate-as
    expect(ofType('%%magnus_map M --iterate x\na.ipynb', 'error')).toEqual(['--iterate']);
  });

  it('checks --failure-policy against its choices', () => {
    expect(ofType('%%magnus_parallel P --failure-policy fail_fast\nA: a.ipynb', 'value')).toEqual(['fail_fast']);
    expect(ofType('%%magnus_parallel P --failure-policy sometimes\nA: a.ipynb', 'error')).toEqual(['sometimes']);
    expect(ofType('%%magnus_parallel P --failure-policy=nope\nA: a.ipynb', 'error')).toEqual(['nope']);
  });

  it('marks a flag of another magic, a missing value and an unclosed quote', () => {
    expect(ofType('%%magnus_parallel P --notebook x.ipynb\nA: a.ipynb', 'error')).toEqual(['--notebook']);
    expect(ofType('%%magnus_step A --next\npass', 'error')).toEqual(['--next']);
    expect(ofType('%%magnus_step A --next --stub\npass', 'error')).toEqual(['--next']);
    expect(ofType('%%magnus_step A --shell=yes\npass', 'error')).toEqual(['--shell=yes']);
    expect(view('%%magnus_step "Get Features --stub\npass')).toEqual([
      ['magic', '%%magnus_step'],
      ['error', '"Get Features --stub']
    ]);
  });

  it('marks the magic of a cell with nothing after the magic line, as IPython rejects it', () => {
    expect(view('%%magnus_step Done --stub')[0]).toEqual(['error', '%%magnus_step']);
    expect(view('%%magnus_step Done --stub\n')[0]).toEqual(['error', '%%magnus_step']);
    expect(view('%%magnus_step Done --stub\n\n')[0]).toEqual(['magic', '%%magnus_step']);
    expect(view('%%magnus_step Done --stub\npass')[0]).toEqual(['magic', '%%magnus_step']);
  });

  it('takes a negative number as a value, not a flag', () => {
    expect(ofType('%magnus_run --workers -1', 'value')).toEqual(['-1']);
  });

  it('allows blank lines before the cell magic, as IPython does', () => {
    const text = '\n  \n%%magnus_parallel P\nA: a.ipynb';
    const cell = tokenize(text);
    expect(cell.magic).toBe('magnus_parallel');
    expect(cell.tokens[0]).toEqual({ type: 'magic', from: 4, to: 21 });
  });
});

describe('branch bodies', () => {
  const cell = [
    '%%magnus_parallel "Train Models" --next "Ensemble Modelling"',
    '# one line per branch',
    'XGBoost: notebooks/prepare_xgboost.ipynb >> notebooks/train_xgboost.ipynb',
    'RF model: `python train_rf.py --trees 10` >> Evaluate RF',
    '',
    'Quick:   Summarise  '
  ].join('\n');

  it('tokenizes branch names, >>, notebooks, shell commands, step names and comments', () => {
    expect(tokenize(cell)).toMatchObject({ magic: 'magnus_parallel', body: 'branches' });
    expect(view(cell).slice(4)).toEqual([
      ['comment', '# one line per branch'],
      ['branch', 'XGBoost'],
      ['punct', ':'],
      ['notebook', 'notebooks/prepare_xgboost.ipynb'],
      ['arrow', '>>'],
      ['notebook', 'notebooks/train_xgboost.ipynb'],
      ['branch', 'RF model'],
      ['punct', ':'],
      ['shell', '`python train_rf.py --trees 10`'],
      ['arrow', '>>'],
      ['step', 'Evaluate RF'],
      ['branch', 'Quick'],
      ['punct', ':'],
      ['step', 'Summarise']
    ]);
  });

  it('gives positions that slice back to the token and never cross a line', () => {
    for (const t of tokenize(cell).tokens) {
      expect(t.to).toBeGreaterThan(t.from);
      expect(cell.slice(t.from, t.to)).not.toContain('\n');
      expect(cell.slice(t.from, t.to).trim()).toBe(cell.slice(t.from, t.to));
    }
    const arrow = tokenize(cell).tokens.find(t => t.type === 'arrow')!;
    expect(cell.slice(arrow.from - 1, arrow.to + 1)).toBe(' >> ');
  });

  it('keeps `>>` and `:` inside backticks as part of the shell command', () => {
    expect(view('%%magnus_parallel P\nA: `echo a:b >> log` >> b.ipynb').slice(2)).toEqual([
      ['branch', 'A'],
      ['punct', ':'],
      ['shell', '`echo a:b >> log`'],
      ['arrow', '>>'],
      ['notebook', 'b.ipynb']
    ]);
  });

  it('does not treat # after a STEP as a comment (the kernel reads it as part of the name)', () => {
    expect(ofType('%%magnus_parallel P\nA: Train # later', 'step')).toEqual(['Train # later']);
  });

  it('marks what the kernel rejects', () => {
    const errors = (body: string): string[] => ofType(`%%magnus_parallel P\n${body}`, 'error');
    expect(errors('just a step.ipynb')).toEqual(['just a step.ipynb']); // no BRANCH:
    expect(errors(': a.ipynb')).toEqual([': a.ipynb']); // an empty BRANCH
    expect(errors('a.ipynb >> b: c')).toEqual(['a.ipynb >> b: c']); // >> before the colon
    expect(errors('v1.2: a.ipynb')).toEqual(['v1.2']); // '.' is reserved in names
    expect(errors('A: a.ipynb >> `echo hi')).toEqual(['`echo hi']); // unclosed backtick
    expect(errors('A: echo `hi`')).toEqual(['echo `hi`']); // half a shell STEP
    expect(errors('A: ``')).toEqual(['``']); // an empty command
    expect(errors('A: a.ipynb >>')).toEqual(['>>']); // an empty STEP after >>
    expect(errors('A: >> a.ipynb')).toEqual(['>>']); // an empty STEP before >>
    expect(errors('A:')).toEqual([':']); // no STEP at all
  });

  it('lets a map line go without a branch name, and allows . in a map branch', () => {
    const text = '%%magnus_map "Per seed" --iterate-on seeds --iterate-as seed\n`echo $seed` >> score.ipynb';
    expect(view(text).slice(-3)).toEqual([
      ['shell', '`echo $seed`'],
      ['arrow', '>>'],
      ['notebook', 'score.ipynb']
    ]);
    expect(ofType('%%magnus_map M\nv1.2: a.ipynb', 'branch')).toEqual(['v1.2']);
  });

  it('handles CRLF line ends', () => {
    expect(view('%%magnus_parallel P\r\nA: a.ipynb\r\n').slice(2)).toEqual([
      ['branch', 'A'],
      ['punct', ':'],
      ['notebook', 'a.ipynb']
    ]);
  });
});

describe('YAML bodies', () => {
  const cell = [
    '%%magnus_parallel "Train Models"',
    'XGBoost:  # a branch pipeline',
    '  start_at: prepare',
    '  steps:',
    '    prepare:',
    '      type: task',
    '      command_type: notebook',
    '      command: "notebooks/prepare.ipynb"',
    '      next: success',
    '    success:',
    '      type: success',
    '  # done',
    '    fail: {type: fail}'
  ].join('\n');

  it('detects a mapping of branch pipelines and tokenizes keys, values and comments', () => {
    expect(tokenize(cell)).toMatchObject({ magic: 'magnus_parallel', body: 'yaml' });
    const tokens = view(cell);
    expect(tokens.slice(2, 9)).toEqual([
      ['yaml-key', 'XGBoost'],
      ['punct', ':'],
      ['comment', '# a branch pipeline'],
      ['yaml-key', 'start_at'],
      ['punct', ':'],
      ['yaml-value', 'prepare'],
      ['yaml-key', 'steps']
    ]);
    expect(ofType(cell, 'notebook')).toEqual(['"notebooks/prepare.ipynb"']);
    expect(ofType(cell, 'comment')).toEqual(['# a branch pipeline', '# done']);
    expect(ofType(cell, 'yaml-value')).toContain('{type: fail}');
    expect(ofType(cell, 'branch')).toEqual([]);
  });

  it('takes a flow mapping as YAML too', () => {
    expect(tokenize('%%magnus_parallel P\nA: {start_at: x, steps: {}}').body).toBe('yaml');
  });

  it('reads list items and quoted keys', () => {
    expect(view('%%magnus_map M\nbranch:\n  - "a key": 1  # one').slice(2)).toEqual([
      ['yaml-key', 'branch'],
      ['punct', ':'],
      ['punct', '-'],
      ['yaml-key', '"a key"'],
      ['punct', ':'],
      ['yaml-value', '1'],
      ['comment', '# one']
    ]);
  });

  it('keeps branch lines branch lines, even when they parse as a flat YAML mapping', () => {
    expect(tokenize('%%magnus_parallel P\nA: a.ipynb\nB: b.ipynb').body).toBe('branches');
    expect(tokenize('%%magnus_parallel P\nA: a.ipynb\n  B: b.ipynb').body).toBe('branches');
  });
});

describe('helpers', () => {
  it('splits words like shlex.split and keeps their extent', () => {
    const line = `a "b c" d'e f'g h\\ i`;
    expect(shellWords(line).map(w => [w.text, line.slice(w.from, w.to), w.closed])).toEqual([
      ['a', 'a', true],
      ['b c', '"b c"', true],
      ['de fg', "d'e f'g", true],
      ['h i', 'h\\ i', true]
    ]);
    expect(shellWords('x "open').map(w => w.closed)).toEqual([true, false]);
  });

  it('splits outside backticks only', () => {
    expect(splitOutsideBackticks('a >> `b >> c` >> d', '>>')).toEqual({
      parts: ['a ', ' `b >> c` ', ' d'],
      at: [2, 14]
    });
  });
});

describe('magics and flags come from the parsers (magics.generated.ts)', () => {
  it('knows --executor and --scheduler of %magnus_run', () => {
    expect(view('%magnus_run --executor dask --scheduler tcp://x:1')).toEqual([
      ['magic', '%magnus_run'],
      ['flag', '--executor'],
      ['value', 'dask'],
      ['flag', '--scheduler'],
      ['value', 'tcp://x:1']
    ]);
  });

  it('knows %magnus_retry, its RUN_ID and its flags', () => {
    expect(view('%magnus_retry')).toEqual([['magic', '%magnus_retry']]);
    expect(view('%magnus_retry 2024-01-01-abc --workers 2')).toEqual([
      ['magic', '%magnus_retry'],
      ['value', '2024-01-01-abc'],
      ['flag', '--workers'],
      ['value', '2']
    ]);
    expect(ofType('%magnus_retry --executor dask', 'error')).toEqual(['--executor']);
  });

  it('marks positional words a magic does not take, and a missing NAME or PATH', () => {
    expect(ofType('%magnus_show now', 'error')).toEqual(['now']);
    expect(ofType('%magnus_yaml a.yaml b.yaml', 'error')).toEqual(['b.yaml']);
    expect(view('%magnus_load')).toEqual([['error', '%magnus_load']]);
    expect(view('%%magnus_step --stub\npass')[0]).toEqual(['error', '%%magnus_step']);
    // argparse takes NAME's words before the first flag only
    expect(ofType('%%magnus_step Get --stub Features\npass', 'error')).toEqual(['Features']);
    expect(ofType('%%magnus_step --next B Get Features\npass', 'name')).toEqual(['Get', 'Features']);
  });

  it('marks a value argparse cannot read as an integer', () => {
    expect(ofType('%magnus_run --workers four', 'error')).toEqual(['four']);
    expect(ofType('%magnus_run --workers=2.5', 'error')).toEqual(['2.5']);
  });
});
