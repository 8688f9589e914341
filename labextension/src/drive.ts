/**
 * The "magnus" drive: run records (executed notebooks and logs in `.catalog/` and
 * `.run_log_store/`) opened in Lab through magnus_jupyter's server extension
 * (magnus_jupyter/server.py), so a default Jupyter server, which refuses hidden paths,
 * still opens the DAG widget's links. Read-only: a record is what ran, never edited.
 *
 * Only type imports from JupyterLab, so the pure parts run in vitest under node;
 * index.ts hands in ServerConnection.makeRequest.
 */
import type { Contents, ServerConnection } from '@jupyterlab/services';
import type { ISignal } from '@lumino/signaling';

/** The drive's name: `magnus:<path>` opens `<path>` through it. */
export const DRIVE_NAME = 'magnus';

/** The server extension's read-only contents endpoint (magnus_jupyter/server.py). */
export const RECORDS_ROUTE = 'magnus-jupyter/api/contents';

/** The hidden folders runs write their records to; the server extension serves these only. */
export const RECORD_FOLDERS: readonly string[] = ['.catalog', '.run_log_store'];

/** Whether a server path is a run record: hidden parts, all of them magnus record folders. */
export function isRecordPath(path: string): boolean {
  const hidden = path.split('/').filter(part => part.startsWith('.'));
  return hidden.length > 0 && hidden.every(part => RECORD_FOLDERS.includes(part));
}

/**
 * Whether a document path (as a Lab context has it, a drive's name in front or not) is a run record:
 * `magnus:nb/.catalog/...` as much as `nb/.catalog/...` opened from a server that serves hidden files.
 */
export function isRecordDocument(path: string): boolean {
  return isRecordPath(path.replace(/^[^/:]+:/, ''));
}

/**
 * Why `path` is not a plain path to a run record below the server's root, or null when it is one.
 * The drive refuses these itself rather than leave them to the server: the browser resolves `..`
 * in a URL before it is sent, so `a/../../api/...` would reach another endpoint, not be refused.
 */
export function recordPathProblem(path: string): string | null {
  if (path.includes('\0')) {
    return 'it contains a NUL character';
  }
  if (path.includes('\\')) {
    return 'it contains a backslash (server paths are separated by /)';
  }
  if (path === '' || path.startsWith('/')) {
    return "it is not a path below the server's root";
  }
  const parts = path.split('/');
  if (parts.includes('..')) {
    return "it has a '..' part";
  }
  if (parts.some(part => part === '' || part === '.')) {
    return "it has an empty or '.' part";
  }
  if (!isRecordPath(path)) {
    return 'it is not in a .catalog or .run_log_store folder';
  }
  return null;
}

/** Why a record cannot be read, in words. */
function recordFailure(path: string, reason: string): string {
  return `Cannot read the run record ${path}: ${reason}`;
}

/** The endpoint URL of a record (each path part encoded, the slashes kept); throws for a path that is not one. */
export function recordUrl(baseUrl: string, path: string, content = true): string {
  const problem = recordPathProblem(path);
  if (problem !== null) {
    throw new Error(recordFailure(path, problem));
  }
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const parts = path.split('/').map(encodeURIComponent).join('/');
  return `${base}${RECORDS_ROUTE}/${parts}${content ? '' : '?content=0'}`;
}

/** Why a record is not saved, in words. */
export function readOnlyRefusal(path: string): string {
  return `${path} is a magnus run record (what ran), opened read-only: it is not saved. Copy it out of the run's folder to edit it.`;
}

/** The words of a refused request: the server extension's message, else the status. */
export function requestFailure(path: string, status: number, body: unknown): string {
  const message = (body as { message?: unknown } | null)?.message;
  return recordFailure(path, typeof message === 'string' && message ? message : `HTTP ${status}`);
}

/** A signal that never fires: nothing changes a record through this drive. */
const NEVER: ISignal<Contents.IDrive, Contents.IChangedArgs> = {
  connect: () => true,
  disconnect: () => false
};

/** How the drive reaches the server (ServerConnection.makeRequest in Lab). */
export type MakeRequest = (url: string, init: RequestInit, settings: ServerConnection.ISettings) => Promise<Response>;

/** The read-only drive over the server extension's endpoint. */
export class MagnusDrive implements Contents.IDrive {
  readonly name = DRIVE_NAME;
  readonly fileChanged = NEVER;

  constructor(
    readonly serverSettings: ServerConnection.ISettings,
    private readonly request: MakeRequest
  ) {}

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const url = recordUrl(this.serverSettings.baseUrl, localPath, options?.content !== false);
    const response = await this.request(url, { method: 'GET' }, this.serverSettings);
    const body: unknown = await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error(requestFailure(localPath, response.status, body));
    }
    return body as Contents.IModel;
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    return recordUrl(this.serverSettings.baseUrl, localPath);
  }

  async save(localPath: string): Promise<Contents.IModel> {
    throw new Error(readOnlyRefusal(localPath));
  }

  async newUntitled(): Promise<Contents.IModel> {
    throw new Error(readOnlyRefusal('This folder'));
  }

  async delete(localPath: string): Promise<void> {
    throw new Error(readOnlyRefusal(localPath));
  }

  async rename(oldLocalPath: string): Promise<Contents.IModel> {
    throw new Error(readOnlyRefusal(oldLocalPath));
  }

  async copy(localPath: string): Promise<Contents.IModel> {
    throw new Error(readOnlyRefusal(localPath));
  }

  async createCheckpoint(localPath: string): Promise<Contents.ICheckpointModel> {
    throw new Error(readOnlyRefusal(localPath));
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return []; // a record has no checkpoints: it is never saved
  }

  async restoreCheckpoint(localPath: string): Promise<void> {
    throw new Error(readOnlyRefusal(localPath));
  }

  async deleteCheckpoint(localPath: string): Promise<void> {
    throw new Error(readOnlyRefusal(localPath));
  }

  private _disposed = false;
}
