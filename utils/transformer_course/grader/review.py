"""Static review of a learner's cells: code that reaches into the grader is flagged for a person to read.

The run-time :class:`~transformer_course.grader.harness.Guard` catches what was
*replaced*; this scan catches code that *could* get around it (frame and
garbage-collector introspection, raw file descriptors, ctypes, dynamic code)
and the plain attempts (assigning to ``np.allclose``).  A flag costs no points
by itself: honest code sometimes uses ``inspect``; a person decides.
"""
from __future__ import annotations

import ast

from .settings import PROTECTED_PACKAGES

#: Modules whose import in an answer is worth a look, and why.
SUSPECT_MODULES = {
    "gc": "the garbage collector can reach the grader's own objects",
    "ctypes": "ctypes can rewrite memory and functions",
    "cffi": "cffi can rewrite memory and functions",
    "builtins": "the builtins are what the checks run on",
    "importlib": "re-importing or replacing modules changes what the checks use",
    "sys": None,                                    # sys itself is fine; its sharp parts are listed below
    "signal": "signals can stop or hang the grader",
    "subprocess": "another process can outlive or bypass the grader",
    "multiprocessing": "another process can outlive or bypass the grader",
    "socket": "there is no network to reach while grading",
    "marshal": "marshal builds code objects",
    "pickle": None,
    "types": None,
    "inspect": None,
}
#: Attribute names whose use reaches into frames, code objects or the interpreter.
SUSPECT_ATTRIBUTES = {
    "_getframe": "reads the grader's stack frames", "f_back": "walks up to the grader's stack frames",
    "f_globals": "reads another frame's globals", "f_locals": "reads another frame's variables",
    "f_builtins": "reads another frame's builtins", "tb_frame": "walks into a frame from a traceback",
    "gi_frame": "walks into a generator's frame", "cr_frame": "walks into a coroutine's frame",
    "__code__": "replaces or reads a function's code", "__globals__": "reaches a function's module globals",
    "__closure__": "reaches a function's captured variables", "__subclasses__": "enumerates every class",
    "__builtins__": "the builtins are what the checks run on", "setprofile": "installs a profiler",
    "settrace": "installs a tracer", "addaudithook": "installs an audit hook", "modules": None,
    "_exit": "ends the process without a result", "kill": "sends a signal", "killpg": "sends a signal",
    "fdopen": "opens a raw file descriptor", "dup2": "rewires file descriptors", "write": None,
    "ast_transformers": "rewrites the code of later cells", "input_transformers_post": "rewrites later cells",
    "input_transformers_cleanup": "rewrites later cells", "register": None, "events": None,
    "current_frames": "reads every thread's frames", "currentframe": "reads the grader's stack frames",
    "stack": None, "getouterframes": "reads the grader's stack frames",
    "getsource": "copies source code (the reference implementation's?)",
}
#: Calls that run code built at run time.
SUSPECT_CALLS = {"exec": "runs code built at run time", "eval": "runs code built at run time",
                 "compile": "builds code at run time", "__import__": "imports a module by a computed name",
                 "globals": None, "setattr": None, "delattr": None, "breakpoint": "starts a debugger"}


#: Settings that are meant to be assigned (``torch.backends.cudnn.deterministic = True``).
SETTABLE_PREFIXES = ("torch.backends.",)


def _settable(module: str, dotted: str, root: str) -> bool:
    full = module + dotted[len(root):]
    return full.startswith(SETTABLE_PREFIXES)


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> module it stands for, for every import in ``tree``."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def scan_source(source: str, modules: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """``(line, reason)`` for everything in ``source`` (Python, magics already removed) worth a person's look.

    ``modules``: names already bound to modules by earlier cells (updated in place).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    modules = {} if modules is None else modules
    modules.update(_imported_names(tree))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for m in mods:
                why = SUSPECT_MODULES.get(m.split(".")[0])
                if why:
                    found.append((line, f"imports {m}: {why}"))
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    why = SUSPECT_ATTRIBUTES.get(alias.name)
                    if why:
                        found.append((line, f"imports {alias.name} from {node.module}: {why}"))
        elif isinstance(node, ast.Attribute):
            why = SUSPECT_ATTRIBUTES.get(node.attr)
            if why is None and node.attr in ("modules", "write", "register", "stack", "events") \
                    and _root_name(node) in modules:
                mod = modules[_root_name(node)]
                if (node.attr, mod.split(".")[0]) in (("modules", "sys"), ("write", "os"), ("register", "atexit"),
                                                      ("stack", "inspect")):
                    why = {"modules": "reaches sys.modules, where the checks' modules live",
                           "write": "writes to a raw file descriptor", "register": "runs code at exit",
                           "stack": "reads the grader's stack frames"}[node.attr]
            if why:
                found.append((line, f"uses .{node.attr}: {why}"))
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            found.append((line, "uses __builtins__: the builtins are what the checks run on"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            why = SUSPECT_CALLS.get(name)
            if name in ("setattr", "delattr") and node.args:
                target = _root_name(node.args[0])
                if target in modules or target == "__builtins__":
                    why = f"changes an attribute of the module {modules.get(target, target)}"
            if why:
                found.append((line, f"calls {name}(): {why}"))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            flat = [e for t in targets for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t])]
            for t in flat:
                root = _root_name(t)
                if isinstance(t, ast.Attribute) and root in modules:
                    module = modules[root]
                    dotted = ast.unparse(t)
                    if module.split(".")[0] in PROTECTED_PACKAGES and not _settable(module, dotted, root):
                        found.append((line, f"assigns to {dotted}: replaces part of {module}, "
                                            "which the checks use"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for needle, why in (("/proc/", "reads the process's own memory or file descriptors"),
                                ("gradebook", "looks for the gradebook"), ("solutions/", "looks for the solutions")):
                if needle in node.value:
                    found.append((line, f"mentions {needle!r}: {why}"))
    return sorted(set(found))


def scan_cells(sources: list[tuple[int, str]]) -> list[str]:
    """Flags for a notebook: ``sources`` are ``(cell number, source)`` of the learner's code cells, in order."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        to_python = TransformerManager().transform_cell
    except Exception:  # noqa: BLE001 - IPython missing: plain Python only
        def to_python(s: str) -> str:
            return s
    modules: dict[str, str] = {}
    flags: list[str] = []
    for number, source in sources:
        try:
            python = to_python(source)
        except Exception:  # noqa: BLE001 - a cell IPython cannot read: the run will say so
            continue
        for line, reason in scan_source(python, modules):
            flags.append(f"cell {number}, line {line}: {reason}")
    return flags
