/**
 * One click from the DAG widget to what a task produced: a link in an output
 * area that carries `data-magnus-path` (the kernel-side widget puts it on every
 * linked SVG node and branch-bar link, magnus_jupyter/widget/picture.py) opens
 * its file in a Lab tab; a failed task's notebook opens at the failing cell
 * (`data-magnus-cell`), made active and scrolled into view. Enter and Space on a
 * focused link do the same. A modifier- or middle-click keeps the browser's own
 * behaviour (the plain `href`), as does a link that cannot be resolved.
 *
 * Run records live in hidden folders (`.catalog/`, `.run_log_store/`), which a default
 * Jupyter server's contents API refuses: those open read-only through the "magnus" drive
 * (drive.ts) unless the server itself serves them (started with allow_hidden), where they
 * open as any file. However a record opens, no kernel starts for it (index.ts).
 *
 * Notebook 7 runs these plugins in a shell that shows one document per browser tab: there a
 * link opens the document's page in a new tab, the failing cell in its URL (`?magnus-cell=N`),
 * and the plugin on that page lands on the cell once the notebook is open.
 *
 * Only type imports from JupyterLab, so the pure parts run in vitest under node.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import type { ISessionContext } from '@jupyterlab/apputils';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { IDisposable } from '@lumino/disposable';
import type { Widget } from '@lumino/widgets';

import { DRIVE_NAME, isRecordPath } from './drive';

/** What a magnus link asks for, read from its attributes. */
export interface IMagnusLink {
  /** The file, relative to the folder of the notebook that shows the widget. */
  path: string;
  kind: 'notebook' | 'log';
  /** Index of the failing cell in the executed notebook, or null. */
  cell: number | null;
}

/** Anything with attributes: an element, or a plain object in a test. */
export interface IAttributes {
  getAttribute(name: string): string | null;
}

/** The fields of a mouse or keyboard event the decision needs. */
export interface IModifiers {
  ctrlKey: boolean;
  metaKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
}

/** The selector of the links this module handles. */
export const LINK_SELECTOR = 'a[data-magnus-path]';

/** The id prefix of the panel beside a notebook with the commands' outputs (index.ts). */
export const OUTPUT_PANEL_PREFIX = 'magnus-output-';

/** The query parameter of a Notebook 7 page that carries the cell to land on. */
export const CELL_PARAM = 'magnus-cell';

/** A run record's kernel preference: no kernel, started or chosen; it is what ran, opened to read. */
export function recordKernelPreference(
  preference: ISessionContext.IKernelPreference
): ISessionContext.IKernelPreference {
  return { ...preference, shouldStart: false, canStart: false, autoStartDefault: false };
}

/** The page's configuration as JupyterLab's PageConfig keeps it (index.ts hands PageConfig in). */
export interface IPageOptions {
  getOption(name: string): string;
  setOption(name: string, value: string): string;
}

/**
 * The run record a Lab page's address names, taken out of the page's configuration; null when the
 * address names no record. While a record is the current tab, Lab's address is
 * `/lab/.../tree/magnus:<path>`; a reload (or the address shared) opens it.
 *
 * Works around a JupyterLab 4 bug: on load, the default file browser opens the address's
 * document (`treePath`) with `filebrowser:open-path`, which reads `.model` of the file browser
 * of the path's drive without checking that there is one; no file browser shows the magnus drive,
 * so every reload with a record current showed "Cannot open: Cannot read properties of
 * undefined (reading 'model')" (filebrowser-extension's getBrowserForPath returns undefined).
 * The file browser gets an empty `treePath` instead; the caller opens the record (openAddressed).
 */
export function takeAddressedRecord(page: IPageOptions): string | null {
  const path = page.getOption('treePath');
  if (!path.startsWith(`${DRIVE_NAME}:`)) {
    return null;
  }
  page.setOption('treePath', '');
  return path;
}

/** Whether the application shows one document per browser tab (Notebook 7), so a link opens a new tab. */
export function opensInNewTab(appName: string): boolean {
  return appName === 'Jupyter Notebook';
}

/** The Notebook 7 page of the document `path` (a notebook's or a file's), landing on `cell`. */
export function documentPageUrl(baseUrl: string, path: string, kind: IMagnusLink['kind'], cell: number | null): string {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const route = kind === 'notebook' ? 'notebooks' : 'edit';
  const query = kind === 'notebook' && cell !== null ? `?${CELL_PARAM}=${cell}` : '';
  return `${base}${route}/${path.split('/').map(encodeURIComponent).join('/')}${query}`;
}

/**
 * The notebook a Notebook 7 page was opened for by a magnus link, and its cell to land on:
 * read from the page's address (`pathname`, `search`) below the server's `basePath`; else null.
 */
export function landingRequest(
  pathname: string,
  search: string,
  basePath: string
): { path: string; cell: number } | null {
  const raw = new URLSearchParams(search).get(CELL_PARAM);
  const prefix = `${basePath.endsWith('/') ? basePath : `${basePath}/`}notebooks/`;
  if (raw === null || !/^\d+$/.test(raw) || !pathname.startsWith(prefix)) {
    return null;
  }
  try {
    const path = pathname.slice(prefix.length).split('/').map(decodeURIComponent).join('/');
    return path ? { path, cell: Number(raw) } : null;
  } catch {
    return null; // not a well-formed address: nothing to land on
  }
}

/** The link's request, or null when its attributes are not a usable magnus link. */
export function parseLink(element: IAttributes): IMagnusLink | null {
  const path = element.getAttribute('data-magnus-path');
  if (!path || path.startsWith('/')) {
    return null; // not a path relative to the notebook's folder
  }
  const kind = element.getAttribute('data-magnus-kind') === 'log' ? 'log' : 'notebook';
  const raw = element.getAttribute('data-magnus-cell');
  const cell = raw !== null && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : null;
  return { path, kind, cell: kind === 'notebook' ? cell : null };
}

/**
 * The server path of `relative` seen from the folder of the notebook at `notebookPath`
 * (both server paths, `/`-separated); null when it would leave the server's root.
 */
export function resolvePath(notebookPath: string, relative: string): string | null {
  const parts = notebookPath.split('/').filter(part => part !== '' && part !== '.');
  parts.pop(); // the notebook's own name: links are relative to its folder
  for (const part of relative.split('/')) {
    if (part === '' || part === '.') {
      continue;
    }
    if (part === '..') {
      if (parts.length === 0) {
        return null;
      }
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.length ? parts.join('/') : null;
}

/**
 * Where Lab opens the server path `path`: a run record the server's own contents API does
 * not serve goes through the read-only magnus drive; anything else opens as it is.
 */
export function openPath(path: string, serverServes: boolean): string {
  return isRecordPath(path) && !serverServes ? `${DRIVE_NAME}:${path}` : path;
}

/**
 * Why a link's file did not open, in words. A run record is served by magnus_jupyter's
 * server extension (server.py); any other hidden path only by a server started with allow_hidden.
 */
export function openFailure(path: string, error: unknown): string {
  const reason = (error instanceof Error ? error.message : String(error)).replace(/\.$/, '');
  const hidden = path.split('/').some(part => part.startsWith('.'));
  const hint = isRecordPath(path)
    ? ' Run records open through the magnus_jupyter server extension: check that' +
      ' `jupyter server extension list` shows magnus_jupyter enabled, then restart Jupyter.'
    : hidden
      ? ' It is in a hidden folder: start Jupyter with --ContentsManager.allow_hidden=True to open it in Lab.'
      : '';
  return `Cannot open ${path}: ${reason}.${hint}`;
}

/** A plain primary click: anything else (modifiers, middle button) keeps the browser's default. */
export function isPlainClick(event: IModifiers & { button: number }): boolean {
  return event.button === 0 && !event.ctrlKey && !event.metaKey && !event.shiftKey && !event.altKey;
}

/** Enter or Space without modifiers: the keys that activate a focused link here. */
export function isActivationKey(event: IModifiers & { key: string }): boolean {
  return (
    (event.key === 'Enter' || event.key === ' ') &&
    !event.ctrlKey &&
    !event.metaKey &&
    !event.shiftKey &&
    !event.altKey
  );
}

/** The magnus link an event is on, if it sits inside an output area. */
function linkOf(target: EventTarget | null): Element | null {
  if (!(target instanceof Element)) {
    return null;
  }
  const link = target.closest(LINK_SELECTOR);
  return link && link.closest('.jp-OutputArea') ? link : null;
}

function isNotebookPanel(widget: unknown): widget is NotebookPanel {
  const content = (widget as { content?: { activeCellIndex?: unknown; widgets?: unknown } } | null)?.content;
  return typeof content?.activeCellIndex === 'number' && Array.isArray(content.widgets);
}

/** The notebook that shows `element`: its own panel, or the one the output panel belongs to. */
export function notebookOf(element: Element, tracker: INotebookTracker): NotebookPanel | null {
  const panel = tracker.find(p => p.node.contains(element));
  if (panel) {
    return panel;
  }
  const side = element.closest(`[id^="${OUTPUT_PANEL_PREFIX}"]`);
  return side ? (tracker.find(p => p.id === side.id.slice(OUTPUT_PANEL_PREFIX.length)) ?? null) : null;
}

function notebookPathOf(element: Element, tracker: INotebookTracker): string | null {
  return notebookOf(element, tracker)?.context.path ?? null;
}

/** Whether a document of `path` is already open in the main area (so it may be stale on screen). */
function isOpen(app: JupyterFrontEnd, path: string): boolean {
  for (const widget of app.shell.widgets('main')) {
    if ((widget as Widget & { context?: { path?: string } }).context?.path === path) {
      return true;
    }
  }
  return false;
}

/** Whether the server's own contents API serves `path` (a record in a hidden folder: only with allow_hidden). */
async function serverServes(app: JupyterFrontEnd, path: string): Promise<boolean> {
  if (!isRecordPath(path)) {
    return true;
  }
  try {
    await app.serviceManager.contents.get(path, { content: false });
    return true;
  } catch {
    return false;
  }
}

/** How long a cell landed on is kept in view while its page settles, unless the reader moves first. */
const SETTLE_MS = 10_000;

/**
 * Keep `cell` centred while the notebook's content (`content`) changes size: scrollToItem reckons
 * with estimated heights, and outputs and fonts still render after it on a page that has just
 * opened (Notebook 7's), pushing the cell out of view. Ends at the reader's first wheel, key,
 * pointer or touch, or after SETTLE_MS.
 */
function keepInView(content: HTMLElement, cell: HTMLElement): void {
  const events = ['wheel', 'keydown', 'pointerdown', 'touchstart'];
  const observer = new ResizeObserver(() => cell.scrollIntoView({ block: 'center' })); // and once on observe
  const stop = (): void => {
    observer.disconnect();
    clearTimeout(timer);
    events.forEach(name => window.removeEventListener(name, stop, true));
  };
  const timer = setTimeout(stop, SETTLE_MS);
  events.forEach(name => window.addEventListener(name, stop, true));
  observer.observe(content);
}

/** Make `widget` the current document and its cell `cell` active, in command mode, scrolled into view. */
async function showCell(app: JupyterFrontEnd, widget: NotebookPanel, cell: number | null): Promise<void> {
  await widget.context.ready;
  await widget.revealed;
  app.shell.activateById(widget.id);
  const notebook = widget.content;
  if (cell === null || cell >= notebook.widgets.length) {
    return;
  }
  // not scrollToCell: it focuses the cell's editor, which puts the notebook in edit mode
  notebook.activeCellIndex = cell;
  notebook.deselectAll();
  await notebook.scrollToItem(cell, 'center');
  if (notebook.activeCell) {
    keepInView(notebook.viewportNode, notebook.activeCell.node);
  }
  notebook.mode = 'command';
  notebook.node.focus(); // a keyboard user lands on the failing cell, arrows move from there
}

/** Open the file in a Lab tab (a Notebook 7 page); a notebook at the failing cell, active and in view. */
export async function openLink(app: JupyterFrontEnd, link: IMagnusLink, serverPath: string): Promise<void> {
  const path = openPath(serverPath, await serverServes(app, serverPath));
  if (opensInNewTab(app.name)) {
    const url = documentPageUrl(app.serviceManager.serverSettings.baseUrl, path, link.kind, link.cell);
    if (window.open(url, '_blank') === null) {
      throw new Error(openFailure(serverPath, 'the browser did not open a new tab (a pop-up blocker?)'));
    }
    return; // the page lands on the cell itself (landOnLinkedCell)
  }
  const wasOpen = isOpen(app, path);
  let widget: unknown;
  try {
    // opened to read: no kernel (it would also mark the file changed)
    widget = await app.commands.execute('docmanager:open', { path, kernelPreference: { shouldStart: false } });
  } catch (error) {
    throw new Error(openFailure(serverPath, error));
  }
  if (!isNotebookPanel(widget)) {
    return; // a log (or any other file) just opens
  }
  await widget.context.ready;
  if (wasOpen && !widget.context.model.dirty) {
    await widget.context.revert(); // a re-run rewrote the file: show this run's cells
  }
  await showCell(app, widget, link.cell);
}

/**
 * Open the record a Lab page's address named (takeAddressedRecord) once Lab has restored its
 * tabs, as Lab opens any other address: the current tab, the record read-only with no kernel.
 */
export async function openAddressed(app: JupyterFrontEnd, path: string): Promise<void> {
  await app.restored;
  try {
    await app.commands.execute('docmanager:open', { path, kernelPreference: { shouldStart: false } });
  } catch (error) {
    throw new Error(openFailure(path.slice(DRIVE_NAME.length + 1), error));
  }
}

/**
 * On a Notebook 7 page opened by a magnus link (landingRequest), land on the linked cell
 * once that notebook has opened; elsewhere nothing.
 */
export function landOnLinkedCell(app: JupyterFrontEnd, tracker: INotebookTracker, report: (error: unknown) => void): void {
  const basePath = new URL(app.serviceManager.serverSettings.baseUrl, window.location.href).pathname;
  const request = landingRequest(window.location.pathname, window.location.search, basePath);
  if (request === null) {
    return;
  }
  let landed = false;
  const land = (panel: NotebookPanel): void => {
    if (!landed && panel.context.path === request.path) {
      landed = true;
      showCell(app, panel, request.cell).catch(report);
    }
  };
  tracker.widgetAdded.connect((_, panel) => land(panel));
  tracker.forEach(land);
}

/**
 * Intercept plain clicks and Enter/Space on magnus links in output areas. Window-level
 * capture listeners: they run before the notebook's own keyboard handling, which would
 * otherwise take Enter as "edit this cell".
 */
export function interceptLinks(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  report: (error: unknown) => void
): IDisposable {
  const handle = (event: Event, element: Element | null): void => {
    const link = element ? parseLink(element) : null;
    const notebook = element && link ? notebookPathOf(element, tracker) : null;
    const path = link && notebook !== null ? resolvePath(notebook, link.path) : null;
    if (!link || path === null) {
      return; // not ours to resolve: the plain href does what it can
    }
    event.preventDefault();
    event.stopPropagation();
    openLink(app, link, path).catch(report);
  };
  const onClick = (event: MouseEvent): void => {
    if (isPlainClick(event)) {
      handle(event, linkOf(event.target));
    }
  };
  const onKey = (event: KeyboardEvent): void => {
    if (isActivationKey(event)) {
      handle(event, linkOf(event.target));
    }
  };
  window.addEventListener('click', onClick, true);
  window.addEventListener('keydown', onKey, true);
  let disposed = false;
  return {
    get isDisposed() {
      return disposed;
    },
    dispose() {
      disposed = true;
      window.removeEventListener('click', onClick, true);
      window.removeEventListener('keydown', onKey, true);
    }
  };
}
