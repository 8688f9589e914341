import { describe, expect, it } from 'vitest';

import {
  CELL_PARAM,
  documentPageUrl,
  isActivationKey,
  isPlainClick,
  landingRequest,
  openFailure,
  openPath,
  opensInNewTab,
  parseLink,
  recordKernelPreference,
  resolvePath,
  takeAddressedRecord
} from '../src/open';

/** Attributes as the DOM hands them over (HTML entities already decoded). */
const attrs = (values: Record<string, string>) => ({
  getAttribute: (name: string): string | null => (name in values ? values[name] : null)
});

const NONE = { ctrlKey: false, metaKey: false, shiftKey: false, altKey: false };

describe('reading a magnus link', () => {
  it('reads the path, the kind and the failing cell of a failed notebook', () => {
    const link = parseLink(
      attrs({
        'data-magnus-path': '.catalog/run-1/Train.bad.train_bad_out.ipynb',
        'data-magnus-kind': 'notebook',
        'data-magnus-cell': '4'
      })
    );
    expect(link).toEqual({ path: '.catalog/run-1/Train.bad.train_bad_out.ipynb', kind: 'notebook', cell: 4 });
  });

  it('has no cell for a notebook that did not fail, nor for a log', () => {
    expect(parseLink(attrs({ 'data-magnus-path': 'out.ipynb', 'data-magnus-kind': 'notebook' }))?.cell).toBeNull();
    expect(
      parseLink(attrs({ 'data-magnus-path': 'a.execution.log', 'data-magnus-kind': 'log', 'data-magnus-cell': '2' }))
    ).toEqual({ path: 'a.execution.log', kind: 'log', cell: null });
  });

  it('ignores a cell that is not a whole number', () => {
    for (const bad of ['', '-1', '1.5', 'three', '2e3']) {
      expect(parseLink(attrs({ 'data-magnus-path': 'x.ipynb', 'data-magnus-cell': bad }))?.cell).toBeNull();
    }
    expect(parseLink(attrs({ 'data-magnus-path': 'x.ipynb', 'data-magnus-cell': ' 7 ' }))?.cell).toBe(7);
  });

  it('is no magnus link without a relative path', () => {
    expect(parseLink(attrs({}))).toBeNull();
    expect(parseLink(attrs({ 'data-magnus-path': '' }))).toBeNull();
    expect(parseLink(attrs({ 'data-magnus-path': '/etc/passwd' }))).toBeNull();
  });

  it('keeps names with spaces, quotes and non-ASCII letters as they are', () => {
    const path = `.catalog/r 1/Ünïcode "step"<b>_out.ipynb`;
    expect(parseLink(attrs({ 'data-magnus-path': path }))?.path).toBe(path);
  });
});

describe('resolving a link against the notebook that shows it', () => {
  it('joins the path to the notebook folder', () => {
    expect(resolvePath('notebooks/demo.ipynb', '.catalog/run/a_out.ipynb')).toBe('notebooks/.catalog/run/a_out.ipynb');
    expect(resolvePath('demo.ipynb', '.catalog/run/a_out.ipynb')).toBe('.catalog/run/a_out.ipynb');
    expect(resolvePath('a/b/c.ipynb', './x//y.log')).toBe('a/b/x/y.log');
  });

  it('follows .. up to the server root and no further', () => {
    expect(resolvePath('a/b/c.ipynb', '../d/e.ipynb')).toBe('a/d/e.ipynb');
    expect(resolvePath('a/b/c.ipynb', '../../e.ipynb')).toBe('e.ipynb');
    expect(resolvePath('a/b/c.ipynb', '../../../e.ipynb')).toBeNull();
    expect(resolvePath('c.ipynb', '../e.ipynb')).toBeNull();
    expect(resolvePath('a/c.ipynb', '..')).toBeNull();
  });
});

describe('which events the extension takes over', () => {
  it('takes a plain primary click only', () => {
    expect(isPlainClick({ ...NONE, button: 0 })).toBe(true);
    expect(isPlainClick({ ...NONE, button: 1 })).toBe(false); // middle click: a browser tab
    expect(isPlainClick({ ...NONE, button: 0, ctrlKey: true })).toBe(false);
    expect(isPlainClick({ ...NONE, button: 0, metaKey: true })).toBe(false);
    expect(isPlainClick({ ...NONE, button: 0, shiftKey: true })).toBe(false);
    expect(isPlainClick({ ...NONE, button: 0, altKey: true })).toBe(false);
  });

  it('takes Enter and Space without modifiers', () => {
    expect(isActivationKey({ ...NONE, key: 'Enter' })).toBe(true);
    expect(isActivationKey({ ...NONE, key: ' ' })).toBe(true);
    expect(isActivationKey({ ...NONE, key: 'Tab' })).toBe(false);
    expect(isActivationKey({ ...NONE, key: 'Enter', shiftKey: true })).toBe(false);
    expect(isActivationKey({ ...NONE, key: 'Enter', ctrlKey: true })).toBe(false);
  });
});

describe('why a file did not open', () => {
  it('names the file and the reason', () => {
    expect(openFailure('out/a.ipynb', new Error('Not Found'))).toBe('Cannot open out/a.ipynb: Not Found.');
  });

  it('points a run record that did not open at the server extension, not at allow_hidden', () => {
    const message = openFailure('nb/.catalog/run/a_out.ipynb', 'Forbidden');
    expect(message).toContain('Cannot open nb/.catalog/run/a_out.ipynb: Forbidden.');
    expect(message).toContain('jupyter server extension list');
    expect(message).not.toContain('allow_hidden');
  });

  it('tells how to open a file in another hidden folder', () => {
    const message = openFailure('nb/.secret/a.ipynb', 'Not Found');
    expect(message).toContain('Cannot open nb/.secret/a.ipynb: Not Found.');
    expect(message).toContain('--ContentsManager.allow_hidden=True');
  });
});

describe('where a link opens', () => {
  it('opens a run record through the magnus drive when the server does not serve it', () => {
    expect(openPath('nb/.catalog/run-1/a_out.ipynb', false)).toBe('magnus:nb/.catalog/run-1/a_out.ipynb');
    expect(openPath('.run_log_store/run-1.json', false)).toBe('magnus:.run_log_store/run-1.json');
  });

  it('keeps the plain path when the server serves hidden files, and for anything not a record', () => {
    expect(openPath('nb/.catalog/run-1/a_out.ipynb', true)).toBe('nb/.catalog/run-1/a_out.ipynb');
    expect(openPath('nb/out/a_out.ipynb', false)).toBe('nb/out/a_out.ipynb');
    expect(openPath('nb/.secret/a.ipynb', false)).toBe('nb/.secret/a.ipynb');
  });
});

describe('a run record never has a kernel', () => {
  it('neither starts nor may start one, whatever it preferred, and keeps the rest', () => {
    const preference = { name: 'python3', language: 'python', shouldStart: true, canStart: true, autoStartDefault: true };
    expect(recordKernelPreference(preference)).toEqual({
      name: 'python3',
      language: 'python',
      shouldStart: false,
      canStart: false,
      autoStartDefault: false
    });
    expect(recordKernelPreference({})).toMatchObject({ shouldStart: false, canStart: false });
  });
});

describe("a page whose address names a record: Lab's file browser never gets it", () => {
  /** A page configuration as PageConfig keeps one: options by name, '' when unset. */
  const pageOptions = (options: Record<string, string>) => ({
    options,
    getOption: (name: string): string => options[name] ?? '',
    setOption: (name: string, value: string): string => {
      const old = options[name] ?? '';
      options[name] = value;
      return old;
    }
  });

  it('takes a record on the magnus drive out of the tree path, to open it itself', () => {
    const page = pageOptions({ treePath: 'magnus:nb/.catalog/run-1/Train.bad_out.ipynb', mode: 'multiple-document' });
    expect(takeAddressedRecord(page)).toBe('magnus:nb/.catalog/run-1/Train.bad_out.ipynb');
    expect(page.options).toEqual({ treePath: '', mode: 'multiple-document' });
  });

  it('leaves any other address to Lab', () => {
    for (const treePath of ['', 'nb/driver.ipynb', 'nb/.catalog/run-1/a_out.ipynb', 'other:nb/magnus:x.ipynb']) {
      const page = pageOptions({ treePath });
      expect(takeAddressedRecord(page)).toBeNull();
      expect(page.options.treePath).toBe(treePath);
    }
  });
});

describe('Notebook 7: a link opens a page of its own that lands on the cell', () => {
  it('knows Notebook 7 by its name; JupyterLab opens tabs in place', () => {
    expect(opensInNewTab('Jupyter Notebook')).toBe(true);
    expect(opensInNewTab('JupyterLab')).toBe(false);
  });

  it("builds the notebook's page with the cell, a log's edit page without", () => {
    expect(documentPageUrl('http://h/base/', 'magnus:nb/.catalog/run 1/a#b_out.ipynb', 'notebook', 4)).toBe(
      `http://h/base/notebooks/magnus%3Anb/.catalog/run%201/a%23b_out.ipynb?${CELL_PARAM}=4`
    );
    expect(documentPageUrl('http://h', 'nb/out.ipynb', 'notebook', null)).toBe('http://h/notebooks/nb/out.ipynb');
    expect(documentPageUrl('http://h/', 'magnus:.catalog/r/a.execution.log', 'log', null)).toBe(
      'http://h/edit/magnus%3A.catalog/r/a.execution.log'
    );
  });

  it('reads back the path and the cell the page was opened for', () => {
    const url = new URL(documentPageUrl('http://h/base/', 'magnus:nb/.catalog/run 1/ü_out.ipynb', 'notebook', 3));
    expect(landingRequest(url.pathname, url.search, '/base/')).toEqual({
      path: 'magnus:nb/.catalog/run 1/ü_out.ipynb',
      cell: 3
    });
    expect(landingRequest('/notebooks/a.ipynb', `?token=x&${CELL_PARAM}=0`, '/')).toEqual({ path: 'a.ipynb', cell: 0 });
  });

  it('has nothing to land on for a page a link did not open', () => {
    expect(landingRequest('/notebooks/a.ipynb', '', '/')).toBeNull();
    expect(landingRequest('/notebooks/a.ipynb', `?${CELL_PARAM}=-1`, '/')).toBeNull();
    expect(landingRequest('/notebooks/a.ipynb', `?${CELL_PARAM}=two`, '/')).toBeNull();
    expect(landingRequest('/tree/a.ipynb', `?${CELL_PARAM}=1`, '/')).toBeNull();
    expect(landingRequest('/other/notebooks/a.ipynb', `?${CELL_PARAM}=1`, '/base/')).toBeNull();
    expect(landingRequest('/notebooks/%E0%A4%A.ipynb', `?${CELL_PARAM}=1`, '/')).toBeNull();
  });
});
