import { describe, expect, it } from 'vitest';

import {
  canRetry,
  changes,
  comparePair,
  diffUrl,
  failure,
  IRunRow,
  isListable,
  isRunId,
  isSafeLink,
  pollDelay,
  POLL_IDLE_MS,
  POLL_RUNNING_MS,
  retryCode,
  retryElsewhere,
  rowLabel,
  runFolderOf,
  runsUrl,
  runUrl,
  seconds,
  statusText,
  toggled,
  whenText
} from '../src/runs';

function row(run_id: string, status: string, extra: Partial<IRunRow> = {}): IRunRow {
  return {
    run_id,
    status,
    log_status: status,
    start: '2024-01-31 12:00:00.123456',
    end: '2024-01-31 12:00:12.000000',
    duration: 11.9,
    succeeded: 5,
    failed: status === 'FAIL' ? 1 : 0,
    reused: 0,
    done: 6,
    total: 6,
    original_run_id: '',
    tag: '',
    pipeline: 'nb/pipeline.yaml',
    message: '',
    path: `nb/.run_log_store/${run_id}.json`,
    note: '',
    ...extra
  };
}

describe('the endpoints', () => {
  it('ask for a folder, a run and a diff with every value encoded', () => {
    expect(runsUrl('http://h/base/', 'my nb/sub')).toBe('http://h/base/magnus-jupyter/api/runs?folder=my+nb%2Fsub');
    expect(runsUrl('http://h', '')).toBe('http://h/magnus-jupyter/api/runs?folder=');
    expect(runUrl('http://h/', 'nb', 'run#1')).toBe('http://h/magnus-jupyter/api/runs/run%231?folder=nb');
    expect(diffUrl('http://h/', 'nb', 'a&b', 'c')).toBe('http://h/magnus-jupyter/api/diff?folder=nb&a=a%26b&b=c');
  });

  it("word a refusal with the server's message, else the status and what may be missing", () => {
    expect(failure('run x', 404, { message: "magnus runs: run 'x': no run log" })).toBe(
      "Cannot read run x: magnus runs: run 'x': no run log"
    );
    expect(failure('the runs of nb', 404, null)).toContain('is the magnus_jupyter server extension enabled?');
    expect(failure('the runs of nb', 502, null)).toBe('Cannot read the runs of nb: HTTP 502');
  });
});

describe('the folder shown', () => {
  it("is the current notebook's folder", () => {
    expect(runFolderOf('nb/sub/analysis.ipynb')).toBe('nb/sub');
    expect(runFolderOf('analysis.ipynb')).toBe('');
  });

  it('is the run folder of a run record, through the magnus drive or not', () => {
    expect(runFolderOf('magnus:nb/.catalog/run-1/Train_out.ipynb')).toBe('nb');
    expect(runFolderOf('nb/.run_log_store/run-1.json')).toBe('nb');
    expect(runFolderOf('.catalog/run-1/a.execution.log')).toBe('');
  });

  it('is not listed when hidden', () => {
    expect(runFolderOf('.secret/x.ipynb')).toBe('.secret');
    expect(isListable('.secret')).toBe(false);
    expect(isListable('nb/.catalog')).toBe(false);
    expect(isListable('nb/sub')).toBe(true);
    expect(isListable('')).toBe(true);
  });
});

describe('polling', () => {
  it('is quick while a run runs, slow while the panel shows, off when hidden and idle', () => {
    expect(pollDelay(true, false)).toBe(POLL_RUNNING_MS);
    expect(pollDelay(true, true)).toBe(POLL_RUNNING_MS);
    expect(pollDelay(false, true)).toBe(POLL_IDLE_MS);
    expect(pollDelay(false, false)).toBeNull();
  });

  it('announces what changed: a status, a new run; nothing on the first read', () => {
    const before = [row('b', 'RUNNING', { done: 1, total: 3 }), row('a', 'FAIL')];
    const after = [row('c', 'RUNNING', { done: 0, total: 3 }), row('b', 'SUCCESS'), row('a', 'FAIL')];
    expect(changes(before, after)).toEqual(['new run c: RUNNING 0/3', 'run b: SUCCESS']);
    expect(changes(null, after)).toEqual([]);
    expect(changes(after, after)).toEqual([]);
  });
});

describe('a run in words', () => {
  it('says a running run with its progress, and everything a row shows', () => {
    expect(statusText(row('a', 'RUNNING', { done: 3, total: 7 }))).toBe('RUNNING 3/7');
    expect(statusText(row('a', 'ABANDONED'))).toBe('ABANDONED');
    expect(rowLabel(row('b', 'FAIL', { original_run_id: 'a', tag: 'nightly' }))).toBe(
      'run b, FAIL, started 2024-01-31 12:00:00, took 11.9 s, 5 succeeded, 1 failed, 0 reused, retry of a, tag nightly'
    );
    expect(rowLabel(row('c', 'RUNNING', { start: '', duration: null }))).toBe(
      'run c, RUNNING 6/6, 5 succeeded, 0 failed, 0 reused'
    );
  });

  it('says when a run started and how long it took, or that its first step still runs', () => {
    expect(whenText(row('a', 'SUCCESS'))).toBe('01-31 12:00 · 11.9 s');
    expect(whenText(row('a', 'RUNNING', { start: '', duration: null }))).toBe('first step running');
    expect(whenText(row('a', 'PROCESSING', { start: '', duration: null }))).toBe('not started');
  });

  it('words durations as magnus-jupyter runs does', () => {
    expect(seconds(0.25)).toBe('0.25 s');
    expect(seconds(12.34)).toBe('12.3 s');
    expect(seconds(245)).toBe('4 min 05 s');
    expect(seconds(7380)).toBe('2 h 03 min');
    expect(seconds(null)).toBe('');
  });
});

describe('retry', () => {
  it('is offered for a failed or abandoned run only', () => {
    expect(canRetry(row('a', 'FAIL'))).toBe(true);
    expect(canRetry(row('a', 'ABANDONED'))).toBe(true);
    for (const status of ['SUCCESS', 'RUNNING', 'PROCESSING']) {
      expect(canRetry(row('a', status))).toBe(false);
    }
  });

  it('runs %magnus_retry, loading magnus_jupyter first where the kernel has not', () => {
    expect(retryCode('2024-01-31-abc', true)).toBe('%magnus_retry 2024-01-31-abc');
    expect(retryCode('run_1.b', false)).toBe('%load_ext magnus_jupyter\n%magnus_retry run_1.b');
  });

  it('refuses what is not a run id: nothing reaches the kernel that it would expand', () => {
    for (const bad of ['a b', '$HOME', '{x}', 'a..b', '-x', '', 'a\nget_ipython()', "a'"]) {
      expect(isRunId(bad)).toBe(false);
      expect(() => retryCode(bad, true)).toThrow('not a run id');
    }
  });

  it('says how to retry where no notebook of the folder is open', () => {
    expect(retryElsewhere('r1', 'nb')).toContain('No notebook in nb/ is open');
    expect(retryElsewhere('r1', '')).toContain("in the server's root folder");
    expect(retryElsewhere('r1', 'nb')).toContain('magnus-jupyter retry r1');
  });
});

describe('selecting runs to compare', () => {
  it('keeps at most two, the earlier choice giving way, and toggles off', () => {
    expect(toggled([], 'a')).toEqual(['a']);
    expect(toggled(['a'], 'b')).toEqual(['a', 'b']);
    expect(toggled(['a', 'b'], 'c')).toEqual(['b', 'c']);
    expect(toggled(['a', 'b'], 'a')).toEqual(['b']);
  });

  it('compares the older run (A) with the newer (B), whatever the order of choosing', () => {
    const rows = [row('new', 'SUCCESS'), row('mid', 'FAIL'), row('old', 'FAIL')];
    expect(comparePair(rows, ['new', 'old'])).toEqual(['old', 'new']);
    expect(comparePair(rows, ['old', 'mid'])).toEqual(['old', 'mid']);
    expect(comparePair(rows, ['new'])).toBeNull();
    expect(comparePair(rows, ['new', 'gone'])).toBeNull();
  });
});

describe('links in server-drawn pictures', () => {
  it('keep relative paths to a run’s files and drop anything else', () => {
    expect(isSafeLink('.catalog/run-1/Train_out.ipynb')).toBe(true);
    expect(isSafeLink('../nb/.run_log_store/run-1.json')).toBe(true);
    expect(isSafeLink('%3Cimg%3E.execution.log')).toBe(true);
    for (const bad of ['javascript:alert(1)', ' JavaScript:alert(1)', 'data:text/html,x', 'https://x.org',
                       '//x.org/a', '/etc/passwd', '\\\\host\\share', '']) {
      expect(isSafeLink(bad)).toBe(false);
    }
  });
});
