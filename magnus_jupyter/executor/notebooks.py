"""Notebook tasks: papermill, on a pre-started kernel, through a papermill engine of our own.

papermill does what it is good at — inject parameters after the cell tagged
``parameters``, write the executed copy after every cell, keep a failing
cell's error in it. Our engine (registered as ``magnus_jupyter``) only swaps
papermill's client for one that takes an already running kernel, prepares it
(cwd, environment, ``import magnus``), reports each completed cell, and — in
the same kernel, after the last cell — collects the variables named in
``returns`` and what the notebook left in its environment (``MAGNUS_PRM_`` /
``MAGNUS_TRACK_`` variables, as magnus reads them after a notebook) with the
catalog entries of its interaction-API calls. The notebook runs once.

Worker-only module: it imports papermill.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import time
from queue import Empty
from typing import Any

import nbformat
import papermill
from jupyter_client import KernelManager
from nbclient.exceptions import CellExecutionError
from nbclient.util import ensure_async, run_hook, run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.utils import merge_kwargs, remove_args

from . import context
from .runners import Outputs, Progress, TaskError, task_variables, written_outputs
from .task import TaskSpec

ENGINE_NAME = "magnus_jupyter"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # IPython's traceback colours

# Defined in the kernel after the notebook ran; the variables named in `returns` go through it.
_COLLECT_HELPER = """
def __magnus_json(value):
    import json
    def plain(obj):
        if hasattr(obj, "model_dump"):
            return obj.model_dump()
        if hasattr(obj, "tolist"):
            return obj.tolist()
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
    return json.dumps(value, default=plain)


def __magnus_writes():
    import json, os, sys
    written = {k: v for k, v in os.environ.items() if k.startswith(("MAGNUS_PRM_", "MAGNUS_TRACK_"))}
    api = sys.modules.get("magnus_jupyter.interaction")
    return json.dumps({"written": written, "data_catalog": api.drain_records() if api else []})
"""
_HIDE_OUR_FRAMES = """
try:
    __import__("magnus_jupyter.interaction").interaction.hide_our_frames()
except ImportError:  # a kernel of another Python: the API is not there either
    pass
"""
_WRITES = "magnus writes"  # the user expression's key: never a variable name, so never a `returns` name


class NotebookTaskError(TaskError):
    """A notebook task failed; the partial executed notebook is still where it was written."""

    def __init__(self, message: str, output_notebook: str | None = None) -> None:
        super().__init__(message)
        self.output_notebook = output_notebook

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.output_notebook))


class MagnusNotebookClient(PapermillNotebookClient):
    """papermill's client, plus kernel preparation, cell progress and ``returns`` collection."""

    def __init__(self, nb_man: Any, *, setup_code: str = "", returns: list[str] | None = None,
                 progress: Progress | None = None, collected: dict[str, Any] | None = None,
                 **kw: Any) -> None:
        super().__init__(nb_man, **kw)
        self.setup_code = setup_code
        self.returns = list(returns or [])
        self.progress = progress
        self.collected = collected if collected is not None else {}

    async def async_start_new_kernel_client(self) -> Any:
        """Connect to the already running kernel without jupyter_client's 0.2 s IOPub flush.

        ``wait_for_ready`` ends by draining IOPub until it stays quiet for 0.2 s, a
        fixed cost per notebook. Enough here: a ``kernel_info`` reply on shell
        plus any message on IOPub, which proves the subscription is live (nbclient
        ignores stray messages of other requests).
        """
        assert self.km is not None
        self.kc = self.km.client()
        await ensure_async(self.kc.start_channels())
        deadline = time.monotonic() + float(self.startup_timeout)
        while True:
            msg_id = self.kc.kernel_info()
            if await self._reply_on_shell(msg_id):
                try:
                    await ensure_async(self.kc.get_iopub_msg(timeout=0.05))
                    break
                except Empty:
                    pass  # the subscription is not live yet: ask again
            if not await ensure_async(self.km.is_alive()):
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {self.startup_timeout} seconds")
        self.kc.allow_stdin = False
        await run_hook(self.on_notebook_start, notebook=self.nb)
        return self.kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    async def _reply_on_shell(self, msg_id: str) -> bool:
        assert self.kc is not None
        try:
            while True:
                msg = await ensure_async(self.kc.get_shell_msg(timeout=1))
                if msg.get("parent_header", {}).get("msg_id") == msg_id:
                    return True
        except Empty:
            return False

    def papermill_execute_cells(self) -> None:
        """papermill's loop (stop at the first failing cell, keep its output) with our hooks around it."""
        if self.setup_code:
            reply = self._hidden(self.setup_code)
            if reply.get("status") != "ok":
                raise NotebookTaskError(f"could not prepare the kernel: {reply.get('ename')}: "
                                        f"{reply.get('evalue')}")
        total = len(self.nb.cells)
        failed = False
        for index, cell in enumerate(self.nb.cells):
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellExecutionError as ex:
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                failed = True
                break
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
                if self.progress is not None:
                    self.progress(index + 1, total)
        if not failed:
            self._collect()

    def _collect(self) -> None:
        """From the kernel that ran the notebook: each name in ``returns`` as JSON text (or why not), and
        its environment's writes with the interaction API's catalog entries."""
        expressions = {name: f"__magnus_json({name})" for name in self.returns}
        expressions[_WRITES] = "__magnus_writes()"
        reply = self._hidden(_COLLECT_HELPER, expressions)
        answer = reply.get("user_expressions", {}).get(_WRITES, {})
        if answer.get("status") == "ok":
            self.collected["writes"] = json.loads(ast.literal_eval(answer["data"]["text/plain"]))
        found: dict[str, Any] = {}
        for name in self.returns:
            answer = reply.get("user_expressions", {}).get(name, {})
            if answer.get("status") == "ok":
                text = ast.literal_eval(answer["data"]["text/plain"])
                found[name] = ("ok", json.loads(text))
            else:
                found[name] = ("error", answer.get("ename", "Error"), answer.get("evalue", ""))
        self.collected["returns"] = found

    async def _async_hidden(self, code: str,
                            user_expressions: dict[str, str] | None = None) -> dict[str, Any]:
        """Run code the notebook's reader never sees: silent, not in history, not in the output."""
        assert self.kc is not None
        msg_id = self.kc.execute(code, silent=True, store_history=False,
                                 user_expressions=user_expressions or {}, allow_stdin=False)
        reply = await self.async_wait_for_reply(msg_id)
        return dict(reply["content"]) if reply else {}

    _hidden = run_sync(_async_hidden)


class MagnusEngine(NBClientEngine):
    """papermill's nbclient engine, handing our client the pre-started kernel (``km``)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                 stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                                 execution_timeout: int | None = None, **kwargs: Any) -> Any:
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        return MagnusNotebookClient(nb_man, **final_kwargs).execute()


papermill_engines.register(ENGINE_NAME, MagnusEngine)


def output_path_for(spec: TaskSpec, notebook: str) -> str:
    """magnus' default when the engine gave none: ``<name>_out.ipynb`` next to the notebook."""
    if spec.notebook_output_path:
        return os.path.abspath(os.path.join(spec.cwd, spec.notebook_output_path))
    stem = notebook[: -len(".ipynb")] if notebook.endswith(".ipynb") else notebook
    return stem + "_out.ipynb"


def run_notebook(spec: TaskSpec, progress: Progress | None = None, kernels: Any = None) -> Outputs:
    """Execute the notebook once; return its outputs and the executed notebook's path."""
    notebook = os.path.abspath(os.path.join(spec.cwd, spec.command.strip()))
    if not os.path.isfile(notebook):
        raise TaskError(f"notebook not found: {notebook}")
    bad = [n for n in spec.returns if not n.isidentifier() or keyword.iskeyword(n)]
    if bad:
        raise TaskError(f"returns must name notebook variables; not identifiers: {', '.join(bad)}")
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:
        raise TaskError(f"cannot read notebook {notebook}: {type(exc).__name__}: {exc}") from None
    output = output_path_for(spec, notebook)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    kernelspec = nb.metadata.get("kernelspec", {})
    kernel_name = spec.kernel_name or kernelspec.get("name") or "python3"
    language = kernelspec.get("language") or nb.metadata.get("language_info", {}).get("name") or "python"

    if kernels is None:
        from .kernels import KernelPool

        kernels = KernelPool(warm=False, send=lambda message: None)
        owned = True
    else:
        owned = False
    try:
        km: KernelManager = kernels.take(kernel_name, cwd=spec.cwd)
        env = task_variables(spec)
        setup = f"__import__('os').chdir({spec.cwd!r}); __import__('os').environ.update({env!r})"
        shim = context.magnus_shim()
        if shim:
            setup += f"; __import__('sys').path.append({shim!r})"
        setup += _HIDE_OUR_FRAMES
        collected: dict[str, Any] = {}
        if spec.log_path:
            os.makedirs(os.path.dirname(os.path.abspath(spec.log_path)), exist_ok=True)
        with open(spec.log_path or os.devnull, "w", encoding="utf-8", errors="replace") as log:
            try:
                executed = papermill.execute_notebook(
                    nb, output, parameters={**spec.parameters, **spec.map_variable},
                    engine_name=ENGINE_NAME, kernel_name=kernel_name, language=language,
                    progress_bar=False, log_output=False, stdout_file=log, stderr_file=log,
                    km=km, setup_code=setup, returns=spec.returns, progress=progress, collected=collected,
                )
            except PapermillExecutionError as exc:
                raise NotebookTaskError(f"{_raised_where(nb, exc)} raised {exc.ename}: {exc.evalue}; "
                                        f"the executed notebook is at {output}", output) from None
            except TaskError as exc:
                raise NotebookTaskError(str(exc), output) from None
            except Exception as exc:
                raise NotebookTaskError(f"notebook execution failed: {type(exc).__name__}: {exc}", output) \
                    from None
    finally:
        if owned:
            kernels.close()
    returned = {k.lower(): v for k, v in _output_cells(executed, spec.output_cell_tag, output).items()}
    returned.update(_returned(collected.get("returns", {}), spec.returns, output))
    writes = collected.get("writes") or {}
    outputs = written_outputs(spec, writes.get("written") or {}, returned=returned,
                              data_catalog=writes.get("data_catalog"), what="values out of a notebook")
    outputs.notebook = output
    return outputs


def _raised_where(nb: Any, exc: PapermillExecutionError) -> str:
    """Where a notebook raised, as its author sees it.

    A notebook generated from a ``%%magnus_step`` cell (declare.py: metadata
    ``magnus.step`` and ``magnus.line``, the cell line its body starts on) was
    one cell the person wrote: the line of that cell, from IPython's ``Cell
    In[N], line L`` in the traceback (the innermost, where it raised). Any other
    notebook: its cell, by index and execution count.
    """
    origin = nb.metadata.get("magnus") or {}
    first, step = origin.get("line"), origin.get("step")
    body = next((cell for cell in nb.cells if cell.get("id") == "body"), None)
    if not isinstance(first, int) or not step or body is None or body.source != exc.source:
        return f"cell {exc.cell_index} (execution count {exc.exec_count})"
    count = re.escape(str(exc.exec_count)) if exc.exec_count is not None else r"\d+"
    text = _ANSI.sub("", "\n".join(exc.traceback or []))
    lines = re.findall(rf"Cell In\[{count}\], line (\d+)", text)
    where = f"line {first + int(lines[-1]) - 1} of " if lines else ""
    return f"{where}the %%magnus_step {step!r} cell"


def _output_cells(nb: Any, tag: str, output: str) -> dict[str, Any]:
    """magnus 0.5: the stdout of cells tagged ``tag`` is a dict literal of parameter updates."""
    found: dict[str, Any] = {}
    for index, cell in enumerate(nb.cells):
        if tag not in cell.get("metadata", {}).get("tags", []):
            continue
        text = "".join("".join(out.get("text", "")) for out in cell.get("outputs", [])
                       if out.get("output_type") == "stream" and out.get("name") == "stdout").strip()
        if not text:
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise NotebookTaskError(f"cell {index} tagged {tag!r} must print a Python dict literal; "
                                    f"it printed {text[:200]!r} ({type(exc).__name__})", output) from None
        if not isinstance(value, dict):
            raise NotebookTaskError(f"cell {index} tagged {tag!r} must print a dict, not "
                                    f"{type(value).__name__}", output)
        found.update(value)
    return found


def _returned(collected: dict[str, Any], names: list[str], output: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        answer = collected.get(name)
        if answer is None:
            raise NotebookTaskError(f"returns: variable {name!r} was not collected", output)
        if answer[0] == "ok":
            values[name] = answer[1]
        elif answer[1] == "NameError":
            raise NotebookTaskError(f"returns names {name!r}, but the notebook never defines it", output)
        else:
            raise NotebookTaskError(f"returns: variable {name!r} cannot be returned: {answer[1]}: "
                                    f"{answer[2]} (values must be JSON-serialisable)", output)
    return values
