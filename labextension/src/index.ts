/**
 * magnus_jupyter in JupyterLab: magnus cells highlighted as what they are, and
 * "Run pipeline", "Show pipeline", "Export pipeline YAML…" in the command
 * palette and the notebook toolbar, run as magics in the notebook's kernel;
 * "Run from here" in a DAG node's context menu (`%magnus_run --from STEP`).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget, showErrorMessage } from '@jupyterlab/apputils';
import { EditorExtensionRegistry, IEditorExtensionRegistry } from '@jupyterlab/codemirror';
import { PageConfig } from '@jupyterlab/coreutils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookModel, INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { OutputArea, OutputAreaModel } from '@jupyterlab/outputarea';
import { ServerConnection } from '@jupyterlab/services';
import { CommandToolbarButton, downloadIcon, LabIcon, runIcon, treeViewIcon } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { DisposableSet } from '@lumino/disposable';

import { isRecordDocument, MagnusDrive } from './drive';
import { magnusHighlight } from './highlight';
import { exportYamlCode, isMagnusLoaded, runFromCode } from './kernel';
import {
  interceptLinks,
  landOnLinkedCell,
  notebookOf,
  openAddressed,
  OUTPUT_PANEL_PREFIX,
  recordKernelPreference,
  takeAddressedRecord
} from './open';
import { addRunsPanel } from './runspanel';

const PLUGIN_ID = 'magnus-jupyter-labextension:plugin';

interface IMagnusCommand {
  id: string;
  label: string;
  caption: string;
  icon: LabIcon;
}

const RUN: IMagnusCommand = {
  id: 'magnus:run-pipeline',
  label: 'Run pipeline',
  caption: "Run the notebook's declared magnus pipeline (%magnus_run)",
  icon: runIcon
};
const SHOW: IMagnusCommand = {
  id: 'magnus:show-pipeline',
  label: 'Show pipeline',
  caption: "Draw the notebook's declared magnus pipeline (%magnus_show)",
  icon: treeViewIcon
};
const EXPORT: IMagnusCommand = {
  id: 'magnus:export-yaml',
  label: 'Export pipeline YAML…',
  caption: "Write the notebook's declared pipeline as magnus YAML (%magnus_yaml PATH)",
  icon: downloadIcon
};
const COMMANDS = [RUN, SHOW, EXPORT];
const RUN_FROM = 'magnus:run-from-here';
/** What the DAG widget puts on a node "Run from here" can start at: the step's internal name. */
const STEP_ATTRIBUTE = 'data-magnus-step';

const NOT_LOADED = 'magnus_jupyter is not loaded in this notebook\'s kernel: run "%load_ext magnus_jupyter" first';
const NO_NOTEBOOK = 'Open a notebook to use magnus pipelines';
/** On the commands' palette items and toolbar buttons; style/base.css keys on it. */
const COMMAND_CLASS = 'jp-magnus-command';

/** Which notebooks' kernels have magnus_jupyter loaded, kept up to date. */
class LoadedState {
  constructor(private readonly changed: () => void) {}

  isLoaded(panel: NotebookPanel | null): boolean {
    return panel !== null && this._loaded.get(panel) === true;
  }

  /** Follow a notebook: ask its kernel now, after a kernel change or restart, and on request. */
  watch(panel: NotebookPanel): void {
    const context = panel.sessionContext;
    context.kernelChanged.connect(() => this.check(panel));
    context.statusChanged.connect((_, status) => {
      if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
        this._set(panel, false);
        this._stale.add(panel);
      } else if (status === 'idle' && this._stale.has(panel)) {
        this.check(panel);
      }
    });
    void context.ready.then(() => this.check(panel));
  }

  /** Ask the kernel again; the latest answer wins. */
  check(panel: NotebookPanel): void {
    this._stale.delete(panel);
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel) {
      this._set(panel, false);
      return;
    }
    const ticket = (this._tickets.get(panel) ?? 0) + 1;
    this._tickets.set(panel, ticket);
    isMagnusLoaded(kernel)
      .catch(() => false)
      .then(loaded => {
        if (this._tickets.get(panel) === ticket && !panel.isDisposed) {
          this._set(panel, loaded);
        }
      });
  }

  private _set(panel: NotebookPanel, loaded: boolean): void {
    if (this._loaded.get(panel) !== loaded) {
      this._loaded.set(panel, loaded);
      this.changed();
    }
  }

  private _loaded = new WeakMap<NotebookPanel, boolean>();
  private _stale = new WeakSet<NotebookPanel>();
  private _tickets = new WeakMap<NotebookPanel, number>();
}

function activate(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  editorExtensions: IEditorExtensionRegistry,
  palette: ICommandPalette | null,
  fileBrowser: IDefaultFileBrowser | null
): void {
  const { commands } = app;

  // Highlighting: every code editor gets it; only text with a magnus magic has tokens.
  editorExtensions.addExtension({
    name: 'magnus-jupyter:highlight',
    factory: options =>
      /markdown|gfm/.test(options.model.mimeType)
        ? null
        : EditorExtensionRegistry.createImmutableExtension(magnusHighlight())
  });

  // Run records in hidden folders, read-only through the server extension, for a default server (drive.ts).
  const contents = app.serviceManager.contents;
  contents.addDrive(new MagnusDrive(contents.serverSettings, ServerConnection.makeRequest));
  // DAG widget links: open a task's output in a Lab tab, at the failing cell (open.ts);
  // in Notebook 7 a new browser tab, whose page lands on the cell itself.
  const reportOpen = (error: unknown): void => void showErrorMessage('Open task output', error as Error);
  interceptLinks(app, tracker, reportOpen);
  landOnLinkedCell(app, tracker, reportOpen);
  // A page whose address names a record (a reload while a record was the current tab): taken from
  // Lab's file browser, which cannot open it (a JupyterLab bug, open.ts), and opened here. Plugins
  // activate before Lab routes the address, so the file browser never sees it.
  const addressed = takeAddressedRecord(PageConfig);
  if (addressed !== null) {
    openAddressed(app, addressed).catch(reportOpen);
  }

  const notifyAll = (): void => COMMANDS.forEach(c => commands.notifyCommandChanged(c.id));
  const state = new LoadedState(notifyAll);
  tracker.widgetAdded.connect((_, panel) => state.watch(panel));
  tracker.forEach(panel => state.watch(panel));
  tracker.currentChanged.connect(notifyAll);
  // A cell that may have loaded or unloaded the extension: ask again.
  NotebookActions.executed.connect((_, { notebook, cell }) => {
    const panel = tracker.find(p => p.content === notebook);
    if (panel && /magnus|load_ext/.test(cell.model.sharedModel.getSource())) {
      state.check(panel);
    }
  });

  /** The notebook a command is for: the one whose toolbar holds the button, else the current one. */
  const notebookFor = (args: ReadonlyPartialJSONObject): NotebookPanel | null => {
    const id = args['notebook'];
    return typeof id === 'string' ? (tracker.find(p => p.id === id) ?? null) : tracker.currentWidget;
  };

  // The outputs of the commands (the live DAG widget, the YAML) go to a panel beside the notebook.
  const outputs = new WeakMap<NotebookPanel, MainAreaWidget<OutputArea>>();
  const outputFor = (panel: NotebookPanel): OutputArea => {
    let widget = outputs.get(panel);
    if (!widget || widget.isDisposed) {
      const area = new OutputArea({
        model: new OutputAreaModel({ trusted: true }),
        rendermime: panel.content.rendermime // holds the notebook's ipywidgets renderer
      });
      area.addClass('jp-magnus-output');
      area.node.setAttribute('role', 'region');
      area.node.setAttribute('aria-label', `magnus output of ${panel.context.path}`);
      const created = new MainAreaWidget({ content: area });
      created.id = `${OUTPUT_PANEL_PREFIX}${panel.id}`;
      created.title.label = `magnus: ${panel.title.label}`;
      created.title.caption = `Output of the magnus commands for ${panel.context.path}`;
      created.title.closable = true;
      panel.disposed.connect(() => created.dispose());
      outputs.set(panel, created);
      widget = created;
    }
    if (!widget.isAttached) {
      // Beside the notebook, without taking focus: the keyboard and the Kernel menu stay with it.
      app.shell.add(widget, 'main', { mode: 'split-right', ref: panel.id, activate: false });
    }
    return widget.content;
  };

  const runMagic = async (panel: NotebookPanel, code: string): Promise<void> => {
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel) {
      throw new Error('This notebook has no kernel');
    }
    const area = outputFor(panel);
    area.model.clear();
    area.future = kernel.requestExecute({ code, silent: false, store_history: false, allow_stdin: false });
    await area.future.done;
  };

  const addCommand = (command: IMagnusCommand, code: (panel: NotebookPanel) => Promise<string | null>): void => {
    commands.addCommand(command.id, {
      label: command.label,
      caption: args => {
        const panel = notebookFor(args);
        return panel === null ? NO_NOTEBOOK : state.isLoaded(panel) ? command.caption : NOT_LOADED;
      },
      icon: command.icon,
      // Lab's modal palette hides disabled items and every caption: style/base.css shows ours
      // greyed with the reason, so "Run pipeline" is found and says why it cannot run yet.
      className: COMMAND_CLASS,
      isEnabled: args => state.isLoaded(notebookFor(args)),
      execute: async args => {
        const panel = notebookFor(args);
        if (!panel || !state.isLoaded(panel)) {
          return;
        }
        const source = await code(panel);
        if (source === null) {
          return;
        }
        try {
          await runMagic(panel, source);
        } catch (error) {
          await showErrorMessage(command.label, error as Error);
        }
      }
    });
    palette?.addItem({ command: command.id, category: 'magnus' });
  };

  // The "magnus runs" side panel (runspanel.ts): a Retry there runs %magnus_retry as these commands run theirs.
  addRunsPanel({
    app,
    tracker,
    fileBrowser,
    request: ServerConnection.makeRequest,
    runInKernel: runMagic,
    isLoaded: panel => state.isLoaded(panel)
  });

  addCommand(RUN, async () => '%magnus_run');
  addCommand(SHOW, async () => '%magnus_show');
  addCommand(EXPORT, async () => {
    const answer = await InputDialog.getText({
      title: 'Export pipeline YAML',
      label: "Path of the YAML file (relative to the kernel's working directory)",
      text: 'pipeline.yaml',
      okLabel: 'Export'
    });
    const path = answer.button.accept ? answer.value?.trim() : '';
    return path ? exportYamlCode(path) : null;
  });

  // "Run from here" on a DAG node: the step under the pointer, in the notebook the drawing belongs to.
  // The node is an SVG element, which Lab's contextMenuHitTest never offers (it tests HTML elements
  // only): the right click's own target is kept, before the menu opens.
  let stepTarget: Element | null = null;
  document.addEventListener(
    'contextmenu',
    event => {
      const node = event.target instanceof Element ? event.target.closest(`[${STEP_ATTRIBUTE}]`) : null;
      stepTarget = node?.closest('.jp-OutputArea') ? node : null;
    },
    true
  );
  const stepNode = (): Element | null => stepTarget;
  commands.addCommand(RUN_FROM, {
    label: 'Run from here',
    caption: 'Run this step and everything after it; what comes before is reused (%magnus_run --from STEP)',
    isEnabled: () => {
      const node = stepNode();
      return node !== null && state.isLoaded(notebookOf(node, tracker));
    },
    execute: async () => {
      const node = stepNode();
      const panel = node ? notebookOf(node, tracker) : null;
      const step = node?.getAttribute(STEP_ATTRIBUTE);
      if (!panel || !step || !state.isLoaded(panel)) {
        return;
      }
      try {
        await runMagic(panel, runFromCode(step));
      } catch (error) {
        await showErrorMessage('Run from here', error as Error);
      }
    }
  });
  app.contextMenu.addItem({ command: RUN_FROM, selector: `.jp-OutputArea [${STEP_ATTRIBUTE}]`, rank: 0 });

  // The same commands in each notebook's toolbar, bound to that notebook. A run record gets none,
  // and no kernel however it opens (a link, a tab Lab restores, a Notebook 7 page, the file browser):
  // its preference is set here, before the document's session starts.
  app.docRegistry.addWidgetExtension('Notebook', {
    createNew: (panel: NotebookPanel, context: DocumentRegistry.IContext<INotebookModel>) => {
      if (isRecordDocument(context.path)) {
        context.sessionContext.kernelPreference = recordKernelPreference(context.sessionContext.kernelPreference);
        return;
      }
      const buttons = new DisposableSet();
      for (const command of COMMANDS) {
        const button = new CommandToolbarButton({ commands, id: command.id, args: { notebook: panel.id } });
        button.addClass('jp-magnus-toolbar-button');
        const name = `magnus-${command.id.split(':')[1]}`;
        if (!panel.toolbar.insertBefore('spacer', name, button)) {
          panel.toolbar.addItem(name, button);
        }
        buttons.add(button);
      }
      return buttons;
    }
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'magnus cells highlighted; run, show and export the pipeline from the palette and toolbar.',
  autoStart: true,
  requires: [INotebookTracker, IEditorExtensionRegistry],
  optional: [ICommandPalette, IDefaultFileBrowser],
  activate
};

export default plugin;
