/**
 * The CodeMirror 6 side of the highlighting: the tokenizer's tokens become mark
 * decorations `cm-magnus-<type>`, and each line that holds one gets the line
 * class `cm-magnus-line`, under which style/base.css mutes the Python colours.
 * A `%%magnus_step` body has no tokens, so it keeps Python highlighting.
 */
import { EditorState, Extension, Range, StateField } from '@codemirror/state';
import { Decoration, DecorationSet, EditorView } from '@codemirror/view';

import { TokenType, tokenize } from './tokenizer';

export const LINE_CLASS = 'cm-magnus-line';

const lineDecoration = Decoration.line({ class: LINE_CLASS });
const marks = new Map<TokenType, Decoration>();

function mark(type: TokenType): Decoration {
  let decoration = marks.get(type);
  if (!decoration) {
    decoration = Decoration.mark({ class: `cm-magnus-${type}` });
    marks.set(type, decoration);
  }
  return decoration;
}

/** The decorations of a whole cell (cells are small: it is tokenized again on each change). */
export function magnusDecorations(state: EditorState): DecorationSet {
  const { tokens } = tokenize(state.doc.toString());
  if (tokens.length === 0) {
    return Decoration.none;
  }
  const ranges: Range<Decoration>[] = [];
  let lastLine = -1;
  for (const token of tokens) {
    const line = state.doc.lineAt(token.from);
    if (line.from !== lastLine) {
      ranges.push(lineDecoration.range(line.from));
      lastLine = line.from;
    }
    ranges.push(mark(token.type).range(token.from, token.to));
  }
  return Decoration.set(ranges, true);
}

export const magnusHighlightField = StateField.define<DecorationSet>({
  create: magnusDecorations,
  update: (decorations, tr) => (tr.docChanged ? magnusDecorations(tr.state) : decorations),
  provide: field => EditorView.decorations.from(field)
});

/** The editor extension to register. */
export function magnusHighlight(): Extension {
  return magnusHighlightField;
}
