"""Wheel checks of the package's own Python source: native code loaded from paths taken from
environment variables (``os.add_dll_directory(os.environ["X"])``, ``ctypes.CDLL(...)``), read
with ast."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from harness.audit.model import Collector, WheelAudit, WheelCheck
from harness.probe_native import is_library

_LOADERS = {"add_dll_directory", "CDLL", "WinDLL", "OleDLL", "PyDLL", "LoadLibrary", "dlopen"}
_WINDOWS_WORDS = ("win32", "nt", "windows", "cygwin", "win")


def _env_var(node: ast.AST) -> str | None:
    """The variable name of ``os.environ[X]``, ``os.environ.get(X)``, ``os.getenv(X)``."""
    if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
        return ast.unparse(node.slice).strip("'\"")
    if isinstance(node, ast.Call) and node.args:
        func = ast.unparse(node.func)
        if func.endswith(("environ.get", "getenv", "environ.setdefault")):
            return ast.unparse(node.args[0]).strip("'\"")
    return None


def _is_windows_guard(test: ast.expr) -> bool:
    text = ast.unparse(test)
    if not any(word in text for word in ("sys.platform", "os.name", "platform.system")):
        return False
    constants = [n.value for n in ast.walk(test) if isinstance(n, ast.Constant)
                 and isinstance(n.value, str)]
    return any(c.lower() in _WINDOWS_WORDS or c.lower().startswith("win") for c in constants)


@dataclass(frozen=True, kw_only=True)
class EnvLoad:
    """A call loading native code (or adding a DLL directory) from an environment path."""

    line: int
    loader: str  # e.g. "os.add_dll_directory", "ctypes.CDLL"
    variable: str  # the environment variable the path comes from
    windows_only: bool  # inside an `if sys.platform == "win32"`-like block


def env_native_loads(source: str | bytes, filename: str = "<string>") -> list[EnvLoad]:
    """Native loads from environment-variable paths in one Python source (SyntaxError if it
    does not parse). Follows names assigned from the environment within the module."""
    text = source if isinstance(source, bytes) else source.encode("utf-8", "replace")
    if b"environ" not in text and b"getenv" not in text:  # every source _env_var knows
        return []  # names one of them: nothing to find, no parse (most files of a release)
    visitor = _EnvLoads()
    visitor.visit(ast.parse(source, filename=filename))
    return visitor.found


class _EnvLoads(ast.NodeVisitor):
    """Calls that load native code from a path taken from an environment variable."""

    def __init__(self) -> None:
        self.tainted: dict[str, str] = {}  # local name -> environment variable
        self.guarded = 0  # depth of `if <Windows>` blocks around the current node
        self.found: list[EnvLoad] = []

    def _source(self, node: ast.AST) -> str | None:
        for sub in ast.walk(node):
            if (var := _env_var(sub)) is not None:
                return var
            if isinstance(sub, ast.Name) and sub.id in self.tainted:
                return self.tainted[sub.id]
        return None

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        windows = _is_windows_guard(node.test)
        self.guarded += windows
        for stmt in node.body:
            self.visit(stmt)
        self.guarded -= windows
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assign(node.targets, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._assign([node.target], node.value)

    def _assign(self, targets: list[ast.expr], value: ast.expr) -> None:
        self.visit(value)
        if (var := self._source(value)) is not None:
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        self.tainted[name.id] = var

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _LOADERS:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if (var := self._source(arg)) is not None:
                    self.found.append(EnvLoad(line=node.lineno, loader=ast.unparse(func),
                                              variable=var, windows_only=self.guarded > 0))
                    break
        self.generic_visit(node)


def check_env_native_paths(wheel: WheelAudit, out: Collector) -> None:
    """Native code loaded from paths the user's environment names. A Windows-guarded load is
    a warning where it cannot run (a Linux or macOS wheel) or where it is only a fallback (a
    Windows wheel bundling every declared library); in a Windows wheel lacking one, the
    user's environment is where that library comes from: a blocker."""
    dist, files = wheel.dist, wheel.files
    windows_wheel = any(t.platform.startswith("win") for t in dist.tags)
    declared = wheel.options.bundled_libraries
    dlls = [n for n in files.names if n.lower().endswith(".dll")]
    missing = [lib for lib in declared if not any(is_library(n, lib) for n in dlls)]
    for name in files.names:
        if not name.endswith(".py") or ".dist-info/" in name:
            continue
        try:
            found = env_native_loads(files.data[name], name)
        except (SyntaxError, ValueError):
            continue
        for load in found:
            var = load.variable
            where = f"{name}:{load.line} calls {load.loader}() on a path from ${var}"
            fix = (f"ship the library inside the wheel and load it relative to the package "
                   f"(auditwheel/delvewheel repair) instead of reading ${var}")
            if load.windows_only and not windows_wheel:
                out.add("env-native-library-path-guarded", f"{where}, only on Windows: not "
                        "reachable from this wheel's platforms, but the Windows wheel will "
                        "depend on the user's environment", fix)
            elif load.windows_only and declared and not missing:
                out.add("env-native-library-path-guarded", f"{where}, only on Windows, and "
                        f"this wheel bundles {', '.join(declared)}: a fallback the bundled "
                        "copy makes unneeded", fix)
            elif load.windows_only and missing:
                out.add("env-native-library-path", f"{where}, and this Windows wheel does "
                        f"not bundle {', '.join(missing)}: it finds it only where ${var} "
                        "points, its import fails on a machine without it", fix)
            else:
                out.add("env-native-library-path", f"{where}: the package loads native code "
                        f"from wherever the user's environment points (and fails or loads a "
                        f"foreign copy where ${var} is unset or different)", fix)


CHECKS: dict[str, WheelCheck] = {
    "env-native-paths": check_env_native_paths,
}
