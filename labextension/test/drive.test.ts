import { describe, expect, it } from 'vitest';

import type { ServerConnection } from '@jupyterlab/services';

import {
  isRecordDocument,
  isRecordPath,
  MagnusDrive,
  readOnlyRefusal,
  recordPathProblem,
  recordUrl,
  requestFailure
} from '../src/drive';

describe('which paths are run records', () => {
  it('takes paths whose hidden folders are all magnus record folders', () => {
    expect(isRecordPath('.catalog/run-1/Train.bad.train_bad_out.ipynb')).toBe(true);
    expect(isRecordPath('nb/.catalog/run-1/a.execution.log')).toBe(true);
    expect(isRecordPath('nb/.run_log_store/run-1.json')).toBe(true);
  });

  it('refuses plain paths and other hidden folders, also beside a record folder', () => {
    expect(isRecordPath('nb/out/a_out.ipynb')).toBe(false);
    expect(isRecordPath('nb/.ssh/id_rsa')).toBe(false);
    expect(isRecordPath('.catalog/run-1/.secret')).toBe(false);
    expect(isRecordPath('.git/.catalog/x')).toBe(false);
  });
});

describe('which documents are run records', () => {
  it('takes a record through the magnus drive or as a plain path, at any depth', () => {
    expect(isRecordDocument('magnus:nb/.catalog/run-1/a_out.ipynb')).toBe(true);
    expect(isRecordDocument('magnus:.catalog/run-1/a_out.ipynb')).toBe(true);
    expect(isRecordDocument('nb/.catalog/run-1/a_out.ipynb')).toBe(true);
    expect(isRecordDocument('.run_log_store/run-1.json')).toBe(true);
  });

  it('takes nothing else', () => {
    expect(isRecordDocument('nb/driver.ipynb')).toBe(false);
    expect(isRecordDocument('magnus:nb/driver.ipynb')).toBe(false);
    expect(isRecordDocument('RTC:.ssh/x.ipynb')).toBe(false);
  });
});

describe('the endpoint of a record', () => {
  it('encodes each part and keeps the slashes', () => {
    expect(recordUrl('http://h/base/', 'nb/.catalog/run 1/a#b.ipynb')).toBe(
      'http://h/base/magnus-jupyter/api/contents/nb/.catalog/run%201/a%23b.ipynb'
    );
    expect(recordUrl('http://h', '.catalog/x.log', false)).toBe(
      'http://h/magnus-jupyter/api/contents/.catalog/x.log?content=0'
    );
  });

  it("words a refusal with the server's message, or its status", () => {
    expect(requestFailure('.catalog/x', 403, { message: 'not in a .catalog folder' })).toBe(
      'Cannot read the run record .catalog/x: not in a .catalog folder'
    );
    expect(requestFailure('.catalog/x', 502, null)).toBe('Cannot read the run record .catalog/x: HTTP 502');
  });
});

describe('the drive is read-only', () => {
  const settings = { baseUrl: 'http://127.0.0.1:1/' } as ServerConnection.ISettings;
  const refuse = async (): Promise<Response> => {
    throw new Error('a refused write must not reach the server');
  };
  const drive = new MagnusDrive(settings, refuse);

  it('refuses to save, rename, delete or checkpoint a record, saying why', async () => {
    const path = '.catalog/run-1/a_out.ipynb';
    await expect(drive.save(path)).rejects.toThrow(readOnlyRefusal(path));
    await expect(drive.rename(path)).rejects.toThrow('read-only');
    await expect(drive.delete(path)).rejects.toThrow('read-only');
    await expect(drive.createCheckpoint(path)).rejects.toThrow('read-only');
    expect(await drive.listCheckpoints()).toEqual([]);
  });

  it('is named magnus, so magnus:<path> opens through it', () => {
    expect(drive.name).toBe('magnus');
  });
});

describe('the drive refuses escapes itself, before any request', () => {
  const settings = { baseUrl: 'http://127.0.0.1:1/base/' } as ServerConnection.ISettings;
  const hostile: [string, RegExp][] = [
    ['nb/.catalog/../../etc/passwd', /'\.\.' part/],
    ['.catalog/run-1/../../../api/contents/secret.txt', /'\.\.' part/],
    ['../.catalog/x.ipynb', /'\.\.' part/],
    ['.catalog/..', /'\.\.' part/],
    ['/etc/passwd', /not a path below/],
    ['/nb/.catalog/x.log', /not a path below/],
    ['', /not a path below/],
    ['nb\\.catalog\\..\\..\\x', /backslash/],
    ['.catalog/run-1/a\0.ipynb', /NUL/],
    ['.catalog//x.log', /empty or '\.' part/],
    ['.catalog/./x.log', /empty or '\.' part/],
    ['nb/secret.txt', /not in a \.catalog or \.run_log_store folder/]
  ];

  it.each(hostile)('refuses %j with the reason, and asks the server nothing', async (path, reason) => {
    const asked: string[] = [];
    const record = async (url: string): Promise<Response> => {
      asked.push(url);
      return new Response('{}', { status: 200 });
    };
    const drive = new MagnusDrive(settings, record);
    expect(recordPathProblem(path)).toMatch(reason);
    await expect(drive.get(path)).rejects.toThrow(reason);
    await expect(drive.get(path, { content: false })).rejects.toThrow(`Cannot read the run record ${path}: `);
    await expect(drive.getDownloadUrl(path)).rejects.toThrow(reason);
    expect(asked).toEqual([]);
  });

  it('asks the server for a plain record path, once', async () => {
    const asked: string[] = [];
    const record = async (url: string): Promise<Response> => {
      asked.push(url);
      return new Response(JSON.stringify({ path: 'nb/.catalog/run-1/a.log' }), { status: 200 });
    };
    const drive = new MagnusDrive(settings, record);
    expect(recordPathProblem('nb/.catalog/run-1/a.log')).toBeNull();
    await drive.get('nb/.catalog/run-1/a.log');
    expect(asked).toEqual(['http://127.0.0.1:1/base/magnus-jupyter/api/contents/nb/.catalog/run-1/a.log']);
  });
});
