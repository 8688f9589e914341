/**
 * The "magnus runs" panel's pure parts: what it asks the server extension for
 * (magnus_jupyter/server_runs.py: read-only JSON of a folder's runs, one run, a
 * diff), which folder it shows, when it polls, how it words a run, what it selects
 * to compare, and the code a Retry runs in a notebook's kernel.
 *
 * Only type imports from JupyterLab, so these run in vitest under node; the
 * widgets are in runspanel.ts.
 */
import { isRecordPath } from './drive';

/** The server extension's run history endpoints, below the server's base URL. */
export const RUNS_ROUTE = 'magnus-jupyter/api';

/** Milliseconds between reads of the list while a run runs, and while the panel shows but none runs. */
export const POLL_RUNNING_MS = 2000;
export const POLL_IDLE_MS = 15000;

/** A run as the server lists it (magnus_jupyter.history.RunSummary). */
export interface IRunRow {
  run_id: string;
  status: string;
  log_status: string;
  start: string;
  end: string;
  duration: number | null;
  succeeded: number;
  failed: number;
  reused: number;
  done: number;
  total: number;
  original_run_id: string;
  tag: string;
  pipeline: string;
  message: string;
  path: string;
  note: string;
}

/** GET runs?folder=F */
export interface IRunsAnswer {
  folder: string;
  runs: IRunRow[];
  warnings: string[];
  running: boolean;
}

/** GET runs/RUN_ID?folder=F: the HTML parts are made by the server from escaped text. */
export interface IRunAnswer {
  folder: string;
  run: IRunRow;
  steps: unknown[];
  summary_html: string;
  dag: string;
  dag_note: string;
  timeline: string;
}

/** GET diff?folder=F&a=A&b=B */
export interface IDiffAnswer {
  folder: string;
  a: string;
  b: string;
  diff: unknown;
  html: string;
}

function endpoint(baseUrl: string, path: string, query: Record<string, string>): string {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  return `${base}${RUNS_ROUTE}/${path}?${new URLSearchParams(query).toString()}`;
}

/** The list of the runs of `folder` (a server path; '' for the root). */
export function runsUrl(baseUrl: string, folder: string): string {
  return endpoint(baseUrl, 'runs', { folder });
}

/** One run of `folder`. */
export function runUrl(baseUrl: string, folder: string, runId: string): string {
  return endpoint(baseUrl, `runs/${encodeURIComponent(runId)}`, { folder });
}

/** Runs `a` and `b` of `folder` compared. */
export function diffUrl(baseUrl: string, folder: string, a: string, b: string): string {
  return endpoint(baseUrl, 'diff', { folder, a, b });
}

/**
 * The run folder of a document at `path` (as a Lab context has it, a drive's name in front or not):
 * the folder a notebook is in; for a run record (`nb/.catalog/RUN/x_out.ipynb`), the folder that
 * holds its record folders.
 */
export function runFolderOf(path: string): string {
  const parts = path.replace(/^[^/:]+:/, '').split('/').filter(part => part !== '');
  const hidden = parts.findIndex(part => part.startsWith('.'));
  if (hidden >= 0 && isRecordPath(parts.join('/'))) {
    return parts.slice(0, hidden).join('/');
  }
  parts.pop();
  return parts.join('/');
}

/** Whether a folder path leads into hidden folders (the server lists runs of visible folders only). */
export function isListable(folder: string): boolean {
  return !folder.split('/').some(part => part.startsWith('.'));
}

/** How long until the list is read again: soon while a run runs, slowly while shown, else not at all. */
export function pollDelay(running: boolean, visible: boolean): number | null {
  if (running) {
    return POLL_RUNNING_MS;
  }
  return visible ? POLL_IDLE_MS : null;
}

/** A duration as people read it (as magnus-jupyter runs words it). */
export function seconds(value: number | null): string {
  if (value === null || !Number.isFinite(value)) {
    return '';
  }
  if (value < 10) {
    return `${value.toFixed(2)} s`;
  }
  if (value < 60) {
    return `${value.toFixed(1)} s`;
  }
  if (value < 3600) {
    return `${Math.floor(value / 60)} min ${String(Math.floor(value % 60)).padStart(2, '0')} s`;
  }
  return `${Math.floor(value / 3600)} h ${String(Math.floor((value % 3600) / 60)).padStart(2, '0')} min`;
}

/** The run's status as shown: a running run with its progress. */
export function statusText(row: IRunRow): string {
  return row.status === 'RUNNING' ? `RUNNING ${row.done}/${row.total}` : row.status;
}

/** When the run started (month-day hour:minute) and how long it took, as a row shows it. */
export function whenText(row: IRunRow): string {
  // a run's start is its first attempt's: a run whose first task still runs has none yet
  const start = row.start.slice(5, 16) || (row.status === 'RUNNING' ? 'first step running' : 'not started');
  return [start, seconds(row.duration)].filter(part => part !== '').join(' · ');
}

/** The run in words, for a screen reader: what a sighted reader takes from its row. */
export function rowLabel(row: IRunRow): string {
  const parts = [`run ${row.run_id}`, statusText(row)];
  if (row.start) {
    parts.push(`started ${row.start.slice(0, 19)}`);
  }
  const took = seconds(row.duration);
  if (took) {
    parts.push(row.status === 'RUNNING' ? `running for ${took}` : `took ${took}`);
  }
  parts.push(`${row.succeeded} succeeded, ${row.failed} failed, ${row.reused} reused`);
  if (row.original_run_id) {
    parts.push(`retry of ${row.original_run_id}`);
  }
  if (row.tag) {
    parts.push(`tag ${row.tag}`);
  }
  return parts.join(', ');
}

/** Whether a run can be retried: it ended without success (a dead orchestrator's run too). */
export function canRetry(row: IRunRow): boolean {
  return row.status === 'FAIL' || row.status === 'ABANDONED';
}

/** A run id the kernel's magics accept (magnus_jupyter.executor.runlog.check_run_id), so no quoting is needed. */
export function isRunId(runId: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(runId) && !runId.includes('..');
}

/** The code a Retry runs in the notebook's kernel. */
export function retryCode(runId: string, loaded: boolean): string {
  if (!isRunId(runId)) {
    throw new Error(`Cannot retry ${JSON.stringify(runId)}: not a run id`);
  }
  return `${loaded ? '' : '%load_ext magnus_jupyter\n'}%magnus_retry ${runId}`;
}

/** What to do when no notebook of the folder is open to run the retry in. */
export function retryElsewhere(runId: string, folder: string): string {
  const where = folder ? `in ${folder}/` : "in the server's root folder";
  return (
    `No notebook ${where} is open to retry run ${runId} in. Open one and press Retry again ` +
    `(it runs %magnus_retry ${runId} in its kernel), or run "magnus-jupyter retry ${runId}" in a terminal there.`
  );
}

/** The selection after toggling `runId`: at most two runs, the earlier choice giving way. */
export function toggled(selected: readonly string[], runId: string): string[] {
  if (selected.includes(runId)) {
    return selected.filter(id => id !== runId);
  }
  return [...selected, runId].slice(-2);
}

/** The two selected runs as [A, B], the older first (rows come newest first); null unless two are there. */
export function comparePair(rows: readonly IRunRow[], selected: readonly string[]): [string, string] | null {
  const order = selected
    .map(id => ({ id, at: rows.findIndex(row => row.run_id === id) }))
    .filter(item => item.at >= 0);
  if (order.length !== 2) {
    return null;
  }
  order.sort((x, y) => y.at - x.at);
  return [order[0].id, order[1].id];
}

/** What changed since the last list, in words, for the panel's live region (status changes, new runs). */
export function changes(before: readonly IRunRow[] | null, after: readonly IRunRow[]): string[] {
  if (before === null) {
    return [];
  }
  const old = new Map(before.map(row => [row.run_id, row.status]));
  const said: string[] = [];
  for (const row of after) {
    const was = old.get(row.run_id);
    if (was === undefined) {
      said.push(`new run ${row.run_id}: ${statusText(row)}`);
    } else if (was !== row.status) {
      said.push(`run ${row.run_id}: ${statusText(row)}`);
    }
  }
  return said;
}

/** Why a request failed, in words: the server extension's message, else the status. */
export function failure(what: string, status: number, body: unknown): string {
  const message = (body as { message?: unknown } | null)?.message;
  const hint =
    status === 404 && !(typeof message === 'string' && message)
      ? ' (is the magnus_jupyter server extension enabled? `jupyter server extension list`)'
      : '';
  return `Cannot read ${what}: ${typeof message === 'string' && message ? message : `HTTP ${status}`}${hint}`;
}

/**
 * Whether a link in a picture the server drew may stay: a relative path to a run's file (what the
 * DAG links to), never a script, another site or an absolute path.
 */
export function isSafeLink(href: string): boolean {
  const value = href.trim();
  return value !== '' && !/^[a-z][a-z0-9+.-]*:/i.test(value) && !value.startsWith('/') && !value.startsWith('\\');
}
