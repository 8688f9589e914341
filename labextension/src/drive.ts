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

/** The endpoint URL of a record (each path part encoded, the slashes kept). */
export function recordUrl(baseUrl: string, path: string, content = true): string {
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
  const reason = typeof message === 'string' && message ? message : `HTTP ${status}`;
  return `Cannot read the run record ${path}: ${reason}`;
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
