/**
 * What the extension asks of a notebook's kernel: is magnus_jupyter loaded, and
 * the code of the magics the commands run. No JupyterLab widgets here.
 */
import { Kernel } from '@jupyterlab/services';

/** True in a kernel where `%load_ext magnus_jupyter` has run. */
export const LOADED_EXPRESSION = "'magnus_jupyter' in get_ipython().extension_manager.loaded";

/**
 * Ask the kernel, silently (no output, no history, no execution count), whether
 * magnus_jupyter is loaded: the answer comes back as a user expression.
 * False for a kernel that cannot tell (not IPython, or an error).
 */
export async function isMagnusLoaded(kernel: Kernel.IKernelConnection): Promise<boolean> {
  const future = kernel.requestExecute({
    code: '',
    silent: true,
    store_history: false,
    allow_stdin: false,
    user_expressions: { magnus: LOADED_EXPRESSION }
  });
  const reply = await future.done;
  if (reply.content.status !== 'ok') {
    return false;
  }
  const result = reply.content.user_expressions['magnus'] as
    | { status?: string; data?: Record<string, unknown> }
    | undefined;
  return result?.status === 'ok' && result.data?.['text/plain'] === 'True';
}

/** `word` quoted for shlex.split, which is how the magics split their arguments. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}

/**
 * The code that writes the pipeline's YAML to `path`.
 *
 * `%magnus_yaml PATH` when the path is plain; otherwise the magic is called
 * directly, because IPython expands `$name` and `{expr}` in a `%` line and no
 * escaping survives every mix of them with quotes.
 */
export function exportYamlCode(path: string): string {
  const quoted = shellQuote(path);
  if (quoted === path) {
    return `%magnus_yaml ${path}`;
  }
  // A JSON string is a valid Python string literal.
  return `get_ipython().find_line_magic('magnus_yaml')(${JSON.stringify(quoted)})`;
}

/**
 * The code "Run from here" runs for a DAG node: `internal` is the step's internal name. A name with
 * `{` or `$` (a map's placeholder, `per item.{item}.work`) goes to the magic directly, unexpanded.
 */
export function runFromCode(internal: string): string {
  const line = `--from ${shellQuote(internal)}`;
  return /[{}$]/.test(internal)
    ? `get_ipython().find_line_magic('magnus_run')(${JSON.stringify(line)})`
    : `%magnus_run ${line}`;
}
