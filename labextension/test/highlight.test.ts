import { EditorState } from '@codemirror/state';
import { describe, expect, it } from 'vitest';

import { LINE_CLASS, magnusHighlightField } from '../src/highlight';

/** Each decoration as [class, text]; line decorations as [class, line number]. */
function decorations(state: EditorState): [string, string | number][] {
  const out: [string, string | number][] = [];
  state.field(magnusHighlightField).between(0, state.doc.length, (from, to, deco) => {
    const cls = (deco.spec as { class: string }).class;
    out.push([cls, from === to ? state.doc.lineAt(from).number : state.sliceDoc(from, to)]);
  });
  return out;
}

describe('the CodeMirror highlight field', () => {
  it('decorates a %%magnus_parallel cell with magnus classes on every line', () => {
    const state = EditorState.create({
      doc: '%%magnus_parallel P\nXGBoost: a.ipynb >> `make`',
      extensions: [magnusHighlightField]
    });
    expect(decorations(state)).toEqual([
      [LINE_CLASS, 1],
      ['cm-magnus-magic', '%%magnus_parallel'],
      ['cm-magnus-name', 'P'],
      [LINE_CLASS, 2],
      ['cm-magnus-branch', 'XGBoost'],
      ['cm-magnus-punct', ':'],
      ['cm-magnus-notebook', 'a.ipynb'],
      ['cm-magnus-arrow', '>>'],
      ['cm-magnus-shell', '`make`']
    ]);
  });

  it('leaves the Python body of a %%magnus_step cell undecorated', () => {
    const state = EditorState.create({
      doc: '%%magnus_step "Get Features" --returns n\nn = 3 >> 1',
      extensions: [magnusHighlightField]
    });
    const lines = decorations(state).filter(([cls]) => cls === LINE_CLASS);
    expect(lines).toEqual([[LINE_CLASS, 1]]);
  });

  it('follows edits', () => {
    let state = EditorState.create({ doc: 'x = 1', extensions: [magnusHighlightField] });
    expect(decorations(state)).toEqual([]);
    state = state.update({ changes: { from: 0, insert: '%%magnus_map M\na.ipynb\n' } }).state;
    expect(decorations(state).map(([cls]) => cls)).toContain('cm-magnus-notebook');
    state = state.update({ changes: { from: 0, to: 2, insert: '#' } }).state;
    expect(decorations(state)).toEqual([]);
  });
});
