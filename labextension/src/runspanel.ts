/**
 * The "magnus runs" side panel: the runs of the current folder (the current document's, else the
 * file browser's), live while one runs; a run opens in a tab with its summary, DAG and timeline;
 * two selected runs open side by side; a failed run has a Retry that runs `%magnus_retry RUN_ID`
 * in the kernel of a notebook of that folder (the server stays read-only).
 *
 * The data comes from the server extension's read-only JSON (magnus_jupyter/server_runs.py). Its
 * HTML parts (the DAG, the timeline, the summary, the diff) are drawn there from escaped text; they
 * are parsed apart from the page and cleaned of anything that could run (scripts, event handlers,
 * links that are not relative paths) before they are shown. Links to a task's files open in a Lab
 * tab as the DAG widget's do (open.ts).
 *
 * Every control is a native button or checkbox with a label a screen reader says; changes of
 * status are announced in a polite live region.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import type { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import type { ServerConnection } from '@jupyterlab/services';
import { historyIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import type { MakeRequest } from './drive';
import { isActivationKey, isPlainClick, openLink, opensInNewTab, parseLink, resolvePath } from './open';
import {
  canRetry,
  changes,
  comparePair,
  diffUrl,
  failure,
  IDiffAnswer,
  IRunAnswer,
  IRunRow,
  IRunsAnswer,
  isListable,
  isSafeLink,
  pollDelay,
  retryCode,
  retryElsewhere,
  rowLabel,
  runFolderOf,
  runsUrl,
  runUrl,
  statusText,
  toggled,
  whenText
} from './runs';

export const PANEL_ID = 'magnus-runs-panel';
export const DETAIL_ID = 'magnus-runs-detail';
/** Milliseconds after a cell starts before the list is read: time for a run it starts to write its log. */
const STARTING_MS = 1500;

/** What the panel needs from the extension's plugin (index.ts). */
export interface IRunsPanelOptions {
  app: JupyterFrontEnd;
  tracker: INotebookTracker;
  fileBrowser: IDefaultFileBrowser | null;
  request: MakeRequest;
  /** Run code in the notebook's kernel, its output in the panel beside it (the commands' own). */
  runInKernel: (panel: NotebookPanel, code: string) => Promise<void>;
  /** Whether the notebook's kernel has magnus_jupyter loaded. */
  isLoaded: (panel: NotebookPanel) => boolean;
}

const DROPPED = 'script, iframe, object, embed, foreignObject, style, link, meta, base, form';

/** Server-drawn HTML as nodes of this page, with nothing left that could run or lead elsewhere. */
export function cleanNodes(markup: string): Node[] {
  const doc = new DOMParser().parseFromString(`<!DOCTYPE html><body>${markup}</body>`, 'text/html');
  doc.body.querySelectorAll(DROPPED).forEach(element => element.remove());
  for (const element of Array.from(doc.body.querySelectorAll('*'))) {
    for (const attribute of Array.from(element.attributes)) {
      const name = attribute.name.toLowerCase();
      const link = name === 'href' || name === 'xlink:href' || name === 'src' || name.endsWith('action');
      const script = /^\s*(javascript|vbscript|data):/i.test(attribute.value);
      if (name.startsWith('on') || script || (link && !isSafeLink(attribute.value))) {
        element.removeAttributeNode(attribute);
      }
    }
  }
  return Array.from(doc.body.childNodes).map(node => document.importNode(node, true));
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; label?: string } = {}
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) {
    node.className = props.className;
  }
  if (props.text !== undefined) {
    node.textContent = props.text;
  }
  if (props.label) {
    node.setAttribute('aria-label', props.label);
  }
  return node;
}

async function getJson<T>(options: IRunsPanelOptions, url: string, what: string): Promise<T> {
  const settings: ServerConnection.ISettings = options.app.serviceManager.serverSettings;
  const response = await options.request(url, { method: 'GET', cache: 'no-store' }, settings);
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(failure(what, response.status, body));
  }
  return body as T;
}

/** The tab that shows one run or two compared; links in it open the run's files. */
class RunDetail extends Widget {
  constructor(private readonly options: IRunsPanelOptions) {
    super();
    this.addClass('jp-magnus-runs-detail');
    this.node.setAttribute('role', 'region');
    this.node.tabIndex = -1;
    this.node.addEventListener('click', event => {
      if (isPlainClick(event)) {
        this._follow(event);
      }
    });
    this.node.addEventListener('keydown', event => {
      if (isActivationKey(event)) {
        this._follow(event);
      }
    });
  }

  folder = '';
  /** The run shown, or null for a diff or nothing. */
  runId: string | null = null;

  showRun(folder: string, answer: IRunAnswer): void {
    this.folder = folder;
    this.runId = answer.run.run_id;
    this.node.setAttribute('aria-label', `magnus run ${answer.run.run_id}`);
    const parts: Node[] = [element('h2', { text: `run ${answer.run.run_id}`, className: 'jp-magnus-runs-title' })];
    const summary = element('section', { className: 'jp-magnus-runs-summary', label: 'summary' });
    summary.append(element('h3', { text: 'Summary' }), ...cleanNodes(answer.summary_html));
    const dag = element('section', { className: 'jp-magnus-runs-dag', label: 'DAG' });
    dag.append(element('h3', { text: 'DAG' }));
    if (answer.dag) {
      dag.append(...cleanNodes(answer.dag));
    } else {
      dag.append(element('p', { text: answer.dag_note }));
    }
    const timeline = element('section', { className: 'jp-magnus-runs-timeline', label: 'timeline' });
    timeline.append(element('h3', { text: 'Timeline' }), ...cleanNodes(answer.timeline));
    timeline.querySelector('svg')?.setAttribute('aria-label', `timeline of run ${answer.run.run_id}`);
    parts.push(summary, dag, timeline);
    this.node.replaceChildren(...parts);
  }

  showDiff(folder: string, answer: IDiffAnswer): void {
    this.folder = folder;
    this.runId = null;
    this.node.setAttribute('aria-label', `magnus runs ${answer.a} and ${answer.b} compared`);
    const diff = element('section', { className: 'jp-magnus-runs-diff', label: 'comparison' });
    diff.append(...cleanNodes(answer.html));
    this.node.replaceChildren(element('h2', { text: `${answer.a} ↔ ${answer.b}`, className: 'jp-magnus-runs-title' }), diff);
  }

  showError(message: string): void {
    const line = element('p', { className: 'jp-magnus-runs-error', text: message });
    line.setAttribute('role', 'alert');
    this.node.replaceChildren(line);
  }

  /** A link in a picture: open the run's file in a Lab tab (the DAG widget's links do the same). */
  private _follow(event: Event): void {
    const anchor = (event.target as Element | null)?.closest?.('a');
    if (!anchor || !this.node.contains(anchor)) {
      return;
    }
    const href = anchor.getAttribute('href') ?? anchor.getAttribute('xlink:href');
    const link =
      parseLink(anchor) ??
      (href && isSafeLink(href) ? { path: decodeURIComponent(href), kind: 'log' as const, cell: null } : null);
    event.preventDefault();
    event.stopPropagation();
    const path = link ? resolvePath(`${this.folder}/panel`, link.path) : null;
    if (link && path !== null) {
      openLink(this.options.app, link, path).catch(error => this.showOpenError(error));
    }
  }

  private showOpenError(error: unknown): void {
    const line = element('p', { className: 'jp-magnus-runs-error', text: String((error as Error)?.message ?? error) });
    line.setAttribute('role', 'alert');
    this.node.prepend(line);
  }
}

/** The side panel: the runs of the current folder. */
export class RunsPanel extends Widget {
  constructor(private readonly options: IRunsPanelOptions) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-magnus-runs');
    this.title.icon = historyIcon;
    this.title.caption = 'magnus runs';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'magnus runs');

    const head = element('div', { className: 'jp-magnus-runs-head' });
    this._heading = element('h2', { text: 'magnus runs', className: 'jp-magnus-runs-heading' });
    this._folderLine = element('p', { className: 'jp-magnus-runs-folder' });
    const refresh = element('button', { text: 'Refresh', className: 'jp-mod-styled jp-magnus-runs-refresh' });
    refresh.title = 'Read the runs again';
    refresh.addEventListener('click', () => void this.refresh());
    this._compare = element('button', { text: 'Compare', className: 'jp-mod-styled jp-magnus-runs-compare' });
    this._compare.disabled = true;
    this._compare.title = 'Select two runs to compare them';
    this._compare.addEventListener('click', () => void this.compare());
    const actions = element('div', { className: 'jp-magnus-runs-actions' });
    actions.append(refresh, this._compare);
    head.append(this._heading, this._folderLine, actions);
    this._list = element('ul', { className: 'jp-magnus-runs-list', label: 'runs, newest first' });
    this._empty = element('p', { className: 'jp-magnus-runs-empty' });
    this._warnings = element('ul', { className: 'jp-magnus-runs-warnings', label: 'run logs skipped' });
    this._live = element('div', { className: 'jp-magnus-runs-live' });
    this._live.setAttribute('aria-live', 'polite');
    this._live.setAttribute('role', 'status');
    this.node.append(head, this._live, this._empty, this._list, this._warnings);
  }

  /** The folder shown (a server path, '' for the root). */
  get folder(): string {
    return this._folder;
  }

  /** Follow a new current folder; read its runs when it changed. */
  setFolder(folder: string): void {
    if (folder === this._folder && this._rows !== null) {
      return;
    }
    this._folder = folder;
    this._rows = null;
    this._selected = [];
    this._folderLine.textContent = `in ${folder ? `${folder}/` : "the server's root"}`;
    this._list.replaceChildren();
    this._items.clear();
    if (this.isVisible) {
      void this.refresh();
    }
  }

  /** Read the list now (and plan the next read). */
  async refresh(): Promise<void> {
    window.clearTimeout(this._timer);
    const folder = this._folder;
    const ticket = ++this._ticket;
    if (!isListable(folder)) {
      this._show([], []);
      this._empty.textContent = `${folder}/ is hidden: runs are listed for visible folders only`;
      return;
    }
    let answer: IRunsAnswer;
    try {
      const base = this.options.app.serviceManager.serverSettings.baseUrl;
      answer = await getJson<IRunsAnswer>(this.options, runsUrl(base, folder), `the runs of ${folder || 'the root'}`);
    } catch (error) {
      if (ticket === this._ticket) {
        this._say(String((error as Error).message ?? error), true);
        this._plan(false);
      }
      return;
    }
    if (ticket !== this._ticket || folder !== this._folder) {
      return; // the folder changed meanwhile: that read is under way
    }
    const said = changes(this._rows, answer.runs);
    this._show(answer.runs, answer.warnings);
    if (said.length) {
      this._say(said.slice(0, 5).join('; '));
    }
    this._plan(answer.running);
    void this._updateDetail();
  }

  /** Open one run in the detail tab. */
  async open(runId: string): Promise<void> {
    const base = this.options.app.serviceManager.serverSettings.baseUrl;
    const detail = this._detailTab(`magnus run ${runId}`);
    try {
      const answer = await getJson<IRunAnswer>(this.options, runUrl(base, this._folder, runId), `run ${runId}`);
      detail.content.showRun(this._folder, answer);
      this._shown = { runId, row: this._row(runId) };
    } catch (error) {
      detail.content.showError(String((error as Error).message ?? error));
    }
  }

  /** Open the two selected runs side by side in the detail tab. */
  async compare(): Promise<void> {
    const pair = comparePair(this._rows ?? [], this._selected);
    if (pair === null) {
      return;
    }
    const [a, b] = pair;
    const base = this.options.app.serviceManager.serverSettings.baseUrl;
    const detail = this._detailTab(`magnus runs ${a} ↔ ${b}`);
    try {
      detail.content.showDiff(this._folder, await getJson<IDiffAnswer>(this.options, diffUrl(base, this._folder, a, b), `runs ${a} and ${b}`));
      this._shown = null;
    } catch (error) {
      detail.content.showError(String((error as Error).message ?? error));
    }
  }

  /** Retry a run in the kernel of a notebook of this folder (the current one first). */
  async retry(runId: string): Promise<void> {
    const { tracker } = this.options;
    const inFolder = (panel: NotebookPanel | null): boolean =>
      panel !== null && runFolderOf(panel.context.path) === this._folder && !!panel.sessionContext.session?.kernel;
    const current = tracker.currentWidget;
    const panel = inFolder(current) ? current : (tracker.find(p => inFolder(p)) ?? null);
    if (panel === null) {
      this._say(retryElsewhere(runId, this._folder), true);
      return;
    }
    this._say(`retrying run ${runId} in ${panel.context.path}: its output is beside the notebook`);
    try {
      await this.options.runInKernel(panel, retryCode(runId, this.options.isLoaded(panel)));
    } catch (error) {
      this._say(`Retry of ${runId} failed: ${String((error as Error).message ?? error)}`, true);
    }
    void this.refresh();
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onBeforeHide(): void {
    window.clearTimeout(this._timer);
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  private _plan(running: boolean): void {
    window.clearTimeout(this._timer);
    const delay = pollDelay(running, this.isVisible);
    if (delay !== null) {
      this._timer = window.setTimeout(() => void this.refresh(), delay);
    }
  }

  private _say(message: string, error = false): void {
    this._live.textContent = message;
    this._live.classList.toggle('jp-magnus-runs-error', error);
  }

  private _row(runId: string): IRunRow | undefined {
    return (this._rows ?? []).find(row => row.run_id === runId);
  }

  /** The rows, updated in place by run id: a focused button keeps its focus across refreshes. */
  private _show(rows: IRunRow[], warnings: string[]): void {
    this._rows = rows;
    const ids = new Set(rows.map(row => row.run_id));
    this._selected = this._selected.filter(id => ids.has(id));
    for (const [id, item] of this._items) {
      if (!ids.has(id)) {
        item.remove();
        this._items.delete(id);
      }
    }
    rows.forEach((row, index) => {
      const item = this._items.get(row.run_id) ?? this._newItem(row.run_id);
      this._fill(item, row);
      if (this._list.children[index] !== item) {
        this._list.insertBefore(item, this._list.children[index] ?? null);
      }
    });
    this._empty.textContent = rows.length ? '' : `no runs in ${this._folder ? `${this._folder}/` : "the server's root"} yet`;
    this._warnings.replaceChildren(...warnings.map(text => element('li', { text: `skipped: ${text}` })));
    this._compare.disabled = comparePair(rows, this._selected) === null;
  }

  private _newItem(runId: string): HTMLLIElement {
    const item = element('li', { className: 'jp-magnus-run' });
    item.dataset.run = runId;
    const pick = element('input');
    pick.type = 'checkbox';
    pick.className = 'jp-magnus-run-pick';
    pick.setAttribute('aria-label', `select run ${runId} to compare`);
    pick.addEventListener('change', () => {
      this._selected = toggled(this._selected, runId);
      this._syncPicks();
    });
    const open = element('button', { className: 'jp-magnus-run-open' });
    open.addEventListener('click', () => void this.open(runId));
    const retry = element('button', { text: 'Retry', className: 'jp-mod-styled jp-magnus-run-retry', label: `retry run ${runId}` });
    retry.title = `Run %magnus_retry ${runId} in a notebook of this folder`;
    retry.addEventListener('click', () => void this.retry(runId));
    item.append(pick, open, retry);
    this._items.set(runId, item);
    return item;
  }

  private _fill(item: HTMLLIElement, row: IRunRow): void {
    item.dataset.status = row.status;
    const open = item.querySelector<HTMLButtonElement>('.jp-magnus-run-open')!;
    open.setAttribute('aria-label', `${rowLabel(row)}: open`);
    open.title = row.note || row.message || rowLabel(row);
    const id = element('span', { className: 'jp-magnus-run-id', text: row.run_id });
    const status = element('span', { className: 'jp-magnus-run-status', text: statusText(row) });
    status.dataset.status = row.status;
    const when = element('span', { className: 'jp-magnus-run-when', text: whenText(row) });
    open.replaceChildren(id, status, when);
    item.querySelector<HTMLButtonElement>('.jp-magnus-run-retry')!.hidden = !canRetry(row);
    item.querySelector<HTMLInputElement>('.jp-magnus-run-pick')!.checked = this._selected.includes(row.run_id);
  }

  private _syncPicks(): void {
    for (const [id, item] of this._items) {
      item.querySelector<HTMLInputElement>('.jp-magnus-run-pick')!.checked = this._selected.includes(id);
    }
    this._compare.disabled = comparePair(this._rows ?? [], this._selected) === null;
    this._compare.title = this._compare.disabled ? 'Select two runs to compare them' : `Compare ${this._selected.join(' and ')}`;
  }

  /** The detail tab, made or brought forward. */
  private _detailTab(title: string): MainAreaWidget<RunDetail> {
    let detail = this._detail;
    if (!detail || detail.isDisposed) {
      detail = new MainAreaWidget({ content: new RunDetail(this.options) });
      detail.id = DETAIL_ID;
      detail.title.icon = historyIcon;
      detail.title.closable = true;
      this._detail = detail;
    }
    detail.title.label = title;
    detail.title.caption = title;
    if (!detail.isAttached) {
      this.options.app.shell.add(detail, 'main');
    }
    this.options.app.shell.activateById(detail.id);
    return detail;
  }

  /** A running run shown in the detail tab is drawn again when its row moved on. */
  private async _updateDetail(): Promise<void> {
    const shown = this._shown;
    if (!shown || !this._detail || this._detail.isDisposed || this._detail.content.runId !== shown.runId) {
      return;
    }
    const row = this._row(shown.runId);
    const before = shown.row;
    if (!row || (before && before.status === row.status && before.done === row.done && row.status !== 'RUNNING')) {
      return;
    }
    const base = this.options.app.serviceManager.serverSettings.baseUrl;
    try {
      const answer = await getJson<IRunAnswer>(this.options, runUrl(base, this._folder, shown.runId), `run ${shown.runId}`);
      if (this._detail.content.runId === shown.runId) {
        this._detail.content.showRun(this._folder, answer);
        this._shown = { runId: shown.runId, row };
      }
    } catch {
      // the list says what went wrong with the folder; the tab keeps the last picture
    }
  }

  private _folder = '';
  private _rows: IRunRow[] | null = null;
  private _selected: string[] = [];
  private _items = new Map<string, HTMLLIElement>();
  private _timer = 0;
  private _ticket = 0;
  private _detail: MainAreaWidget<RunDetail> | null = null;
  private _shown: { runId: string; row: IRunRow | undefined } | null = null;
  private readonly _heading: HTMLHeadingElement;
  private readonly _folderLine: HTMLParagraphElement;
  private readonly _compare: HTMLButtonElement;
  private readonly _list: HTMLUListElement;
  private readonly _empty: HTMLParagraphElement;
  private readonly _warnings: HTMLUListElement;
  private readonly _live: HTMLDivElement;
}

/**
 * Add the panel to Lab's left area and keep it on the current folder: the current document's
 * (a notebook, a run record), else the file browser's. Not in Notebook 7, whose pages show one
 * document each (%magnus_runs serves there).
 */
export function addRunsPanel(options: IRunsPanelOptions): RunsPanel | null {
  const { app, tracker, fileBrowser } = options;
  if (opensInNewTab(app.name)) {
    return null;
  }
  const panel = new RunsPanel(options);
  app.shell.add(panel, 'left', { rank: 700 });
  const follow = (): void => {
    const current = app.shell.currentWidget as (Widget & { context?: { path?: string } }) | null;
    const path = current?.context?.path;
    if (typeof path === 'string') {
      panel.setFolder(runFolderOf(path));
    } else if (fileBrowser) {
      panel.setFolder(fileBrowser.model.path.replace(/^[^/:]+:/, ''));
    }
  };
  app.shell.currentChanged?.connect(follow);
  fileBrowser?.model.pathChanged.connect(() => panel.setFolder(fileBrowser.model.path.replace(/^[^/:]+:/, '')));
  // a cell of a notebook in this folder may start a run (read the list once it had time to) or have
  // ended one (read it now)
  const inFolder = (notebook: unknown): boolean => {
    const owner = tracker.find(p => p.content === notebook);
    return !!owner && runFolderOf(owner.context.path) === panel.folder && panel.isVisible;
  };
  NotebookActions.executionScheduled.connect((_, { notebook }) => {
    if (inFolder(notebook)) {
      window.setTimeout(() => void panel.refresh(), STARTING_MS);
    }
  });
  NotebookActions.executed.connect((_, { notebook }) => {
    if (inFolder(notebook)) {
      void panel.refresh();
    }
  });
  void app.restored.then(follow);
  return panel;
}
