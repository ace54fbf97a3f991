"""Sphinx helpers of the whiteboxdl site: strict references, module pages, tutorial figures.

* **References.** ``nitpicky`` reports every reference Sphinx cannot resolve. Two kinds are
  settled here before Sphinx warns: a name that Python resolves to a documented whiteboxdl object
  under another dotted path (``whiteboxdl.pullbacks.mode.excitation_pullbacks`` is documented as
  ``whiteboxdl.pullbacks.excitation_pullbacks``; a docstring's ``:func:`fit``` in a module that
  imports ``fit``) links to that object's entry; a name of Python or another installed package
  is rendered as plain text (the build is offline: no inventory of theirs). Every other
  unresolved reference stays a warning, and ``-W`` fails the build.
* **Docstrings as the project writes them.** Types live in the signatures (type hints); the
  Parameters and Attributes sections say ``name : what it is``, and a paragraph may follow the
  entries. napoleon would read the text after the colon as a type and the paragraph as one more
  entry; :func:`project_docstrings` rewrites both before napoleon runs, and qualifies short
  references (``:func:`fit```) with the docstring's own module, as Python would read the name.
  A one-line attribute docstring with a colon (``#: The plan: ...``) stays text
  (:func:`attribute_text`).
* ``.. whiteboxdl-package:: NAME`` documents a package and the classes and functions it exports;
  ``.. whiteboxdl-module:: NAME`` documents a module except those (each object is documented
  once, under the path users import it from); ``.. whiteboxdl-exports::`` is the table of the
  lazy top-level exports, generated from ``whiteboxdl._EXPORTS``.
* :func:`png_scraper` — a sphinx-gallery image scraper for the PNG files whiteboxdl's plotting
  and report functions write (they save and close their figures and return the path): a PNG that
  a tutorial's code block wrote and holds in a variable is shown below that block.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import importlib.util
import inspect
import re
import shutil
import sys
from pathlib import Path
from typing import Any, TypeVar

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

PACKAGE = "whiteboxdl"


# ----------------------------------------------------------------------------- references
def import_dotted(path: str) -> Any:
    """The object a dotted path names, looked up as Python does (attributes first, then
    submodules), or ``None`` when it does not exist."""
    parts = path.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return None
    for i, part in enumerate(parts[1:], start=2):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            return None
    return obj


def is_external(target: str) -> bool:
    """Whether a reference target belongs to Python or another installed package."""
    root = target.lstrip("~.").split(".")[0]
    if root == PACKAGE:
        return False
    return hasattr(builtins, root) or root in sys.stdlib_module_names or (
        root.isidentifier() and importlib.util.find_spec(root) is not None)


def _defined_in_package(obj: Any) -> bool:
    """False for classes and functions defined outside whiteboxdl (``Tensor`` imported into a
    module); True for everything else (data has no home module to tell)."""
    home = getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isroutine(obj) \
        else None
    return home is None or home == PACKAGE or home.startswith(PACKAGE + ".")


def _documented(app: Sphinx) -> dict[tuple[int, str], tuple[str, str]]:
    """(id(object), its last name) -> (docname, anchor) of every documented whiteboxdl object."""
    cache = getattr(app, "_whiteboxdl_documented", None)
    if cache is None:
        cache = {}
        for name, entry in app.env.get_domain("py").objects.items():
            if entry.aliased or not name.startswith(PACKAGE + "."):
                continue
            obj = import_dotted(name)
            if obj is not None:
                cache.setdefault((id(obj), name.rpartition(".")[2]), (entry.docname, entry.node_id))
        app._whiteboxdl_documented = cache
    return cache


def _candidates(node: nodes.Element) -> list[str]:
    """The dotted paths a reference may mean, as Python would look them up from its context."""
    target = node["reftarget"].lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    paths = [target]
    if module:
        if cls:
            paths.append(f"{module}.{cls}.{target}")
        paths.append(f"{module}.{target}")
    return [p for p in paths if p.startswith(PACKAGE + ".")]


def resolve_reference(app: Sphinx, env, node: nodes.Element, contnode: nodes.Node):
    """``missing-reference``: link through Python's names, or mark external names as text."""
    if node.get("refdomain") != "py":
        return None
    documented = _documented(app)
    for path in _candidates(node):
        obj = import_dotted(path)
        key = (id(obj), path.rpartition(".")[2])
        if obj is not None and key in documented:
            docname, anchor = documented[key]
            return make_refnode(app.builder, node["refdoc"], docname, anchor, contnode)
        if obj is not None and (isinstance(obj, TypeVar) or path.rpartition(".")[2].startswith("_")
                                or not _defined_in_package(obj)):
            return contnode  # a type variable, a private helper, another package's object
    if is_external(node["reftarget"]):
        return contnode
    return None


# ----------------------------------------------------------------------------- docstrings
#: Sections whose entries are ``name : description`` in this project.
ENTRY_SECTIONS = ("parameters", "other parameters", "attributes", "keyword arguments")
_NAMES = r"\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*"
_ENTRY = re.compile(rf"^(?P<indent>\s*)(?P<names>{_NAMES}) : (?P<text>.+)$")
_BARE_ENTRY = re.compile(rf"^\s*{_NAMES}\s*$")


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


_ROLE = re.compile(r":(?P<role>func|class|meth|attr|data|obj|exc|const):`(?P<tilde>~?)"
                   r"(?P<target>[A-Za-z_]\w*(?:\.\w+)*)`")


def _home_module(name: str, obj: Any) -> Any:
    """The module whose namespace a docstring's names live in: where ``obj`` is defined."""
    if inspect.ismodule(obj):
        return obj
    defined = getattr(getattr(obj, "fget", obj), "__module__", None)
    if isinstance(defined, str) and defined in sys.modules:
        return sys.modules[defined]
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        holder = import_dotted(".".join(parts[:i]))
        if inspect.ismodule(holder):
            return holder
        if inspect.isclass(holder):
            return sys.modules.get(holder.__module__)
    return None


def _qualify(line: str, module: Any) -> str:
    """Short references (``:func:`fit```) as full paths of the docstring's own module, when the
    module has that name: a docstring means what its module's names mean, wherever the object
    is documented (``train_semantic`` is documented under ``whiteboxdl.semantic``)."""
    namespace = vars(module)

    def full(match: re.Match) -> str:
        target = match["target"]
        first = target.split(".")[0]
        if target.startswith(PACKAGE + ".") or first not in namespace or is_external(first):
            return match[0]
        return f":{match['role']}:`~{module.__name__}.{target}`"

    return _ROLE.sub(full, line)


def project_docstrings(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                       lines: list[str]) -> None:
    """``autodoc-process-docstring``, before napoleon: see the module docstring."""
    module = _home_module(name, obj)
    if module is not None:
        lines[:] = [_qualify(line, module) for line in lines]
    section, base, out = None, "", []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and nxt.strip() and set(nxt.strip()) == {"-"}:
            section, base = line.strip().lower(), _indent(line)
        elif set(line.strip()) == {"-"}:
            pass
        elif section in ENTRY_SECTIONS and line.strip():
            entry = _ENTRY.match(line)
            if entry and _indent(line) == base:
                deeper = _indent(nxt) if nxt.strip() else ""
                body = deeper if len(deeper) > len(base) else base + "    "
                out += [base + entry["names"], body + entry["text"]]
                continue
            prose = _indent(line) == base and not _BARE_ENTRY.match(line)
            if prose and out and not out[-1].strip():
                out.append("")   # two blank lines end a numpy section: the paragraph is text
                section = None
        out.append(line)
    lines[:] = out


def attribute_text(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                   lines: list[str]) -> None:
    """``autodoc-process-docstring``, after napoleon: napoleon reads an attribute docstring's
    first line ``A: B`` as type ``A`` and text ``B``; here attribute types come from the
    annotations, so ``A: B`` is put back together as text."""
    if what not in ("attribute", "data", "property"):
        return
    typed = [i for i, line in enumerate(lines) if line.startswith(":type: ")]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if len(typed) == 1 and first is not None and first < typed[0]:
        text = lines.pop(typed[0])[len(":type: "):]
        lines[first] = f"{text}: {lines[first].lstrip()}"
        while lines and not lines[-1].strip():
            lines.pop()


def dataclass_signature(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                        signature: str | None, return_annotation: str | None):
    """``autodoc-process-signature``: a dataclass field's ``default_factory`` shows as the call
    (``list()``) instead of ``<factory>``, which is no Python and breaks the signature."""
    if signature and "<factory>" in signature and dataclasses.is_dataclass(obj):
        factories = [f.default_factory for f in dataclasses.fields(obj)
                     if f.default_factory is not dataclasses.MISSING]
        for factory in factories:
            label = getattr(factory, "__qualname__", "factory")
            label = f"{label}()" if label.isidentifier() else "..."
            signature = signature.replace("<factory>", label, 1)
        return signature, return_annotation
    return None


# ----------------------------------------------------------------------------- directives
def package_documents(package: str, name: str) -> bool:
    """Whether the page of ``package`` documents its export ``name``: the classes and functions
    of its ``__all__`` (autodoc leaves data to the module that defines it), except a name that is
    also a submodule's (``whiteboxdl.robustness.evaluate``), which the module's entry documents."""
    module = importlib.import_module(package)
    if name not in getattr(module, "__all__", ()) or package == PACKAGE:
        return False  # the top-level exports are a table of links, see ExportsTable
    if importlib.util.find_spec(f"{package}.{name}") is not None:
        return False
    return inspect.isclass(getattr(module, name)) or inspect.isroutine(getattr(module, name))


def _documented_by_parents(module_name: str) -> list[str]:
    """Names of ``module_name`` that the page of a parent package documents."""
    namespace = vars(importlib.import_module(module_name))
    parts, names = module_name.split("."), set()
    for i in range(1, len(parts)):
        parent = importlib.import_module(".".join(parts[:i]))
        names |= {n for n in namespace if package_documents(parent.__name__, n)
                  and getattr(parent, n) is namespace[n]}
    return sorted(names)


class PackagePage(SphinxDirective):
    """``.. whiteboxdl-package:: NAME``: ``automodule`` of a package and its ``__all__``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        skipped = [n for n in getattr(importlib.import_module(name), "__all__", ())
                   if not package_documents(name, n)]
        lines = [f".. automodule:: {name}"]
        if skipped:
            lines.append(f"   :exclude-members: {', '.join(skipped)}")
        return _parse(self, lines, name)


def _parse(directive: SphinxDirective, lines: list[str], source: str) -> list[nodes.Node]:
    container = nodes.container()
    directive.state.nested_parse(StringList(lines, source=source), 0, container)
    return container.children


class ModulePage(SphinxDirective):
    """``.. whiteboxdl-module:: NAME``: ``automodule`` without what a parent's page documents."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        lines = [f".. automodule:: {name}"]
        documented = _documented_by_parents(name)
        if documented:
            lines.append(f"   :exclude-members: {', '.join(documented)}")
        return _parse(self, lines, name)


def _summary(obj: Any) -> str:
    first = (inspect.getdoc(obj) or "").strip().split("\n\n")[0]
    return " ".join(first.split())


class ExportsTable(SphinxDirective):
    """``.. whiteboxdl-exports::``: every name ``import whiteboxdl`` offers, linked to its entry
    (each summary is read in its own module, so its references resolve as in its docstring)."""

    def _cell(self, text: str, module: str) -> nodes.entry:
        entry = nodes.entry()
        saved = self.env.ref_context.get("py:module")
        self.env.ref_context["py:module"] = module
        try:
            self.state.nested_parse(StringList([text], source=module), 0, entry)
        finally:
            self.env.ref_context["py:module"] = saved
        return entry

    def run(self) -> list[nodes.Node]:
        import whiteboxdl

        table, group = nodes.table(), nodes.tgroup(cols=2)
        table += group
        group += [nodes.colspec(colwidth=30), nodes.colspec(colwidth=70)]
        head, body = nodes.thead(), nodes.tbody()
        head += nodes.row("", *(nodes.entry("", nodes.paragraph(text=t))
                                for t in ("whiteboxdl.NAME", "what it is")))
        for name, target in whiteboxdl._EXPORTS.items():
            module, attr = target if isinstance(target, tuple) else (target, name)
            obj = getattr(importlib.import_module(module), attr)
            body += nodes.row("", self._cell(f":obj:`{name} <{module}.{attr}>`", module),
                              self._cell(_summary(obj), getattr(obj, "__module__", module)))
        group += [head, body]
        return [table]


# ----------------------------------------------------------------------------- figures
_shown: dict[str, set[tuple[str, int]]] = {}


def _png_paths(value: Any) -> list[Path]:
    if isinstance(value, dict):
        value = list(value.values())
    values = value if isinstance(value, (list, tuple)) else [value]
    return [Path(v) for v in values
            if isinstance(v, (str, Path)) and str(v).lower().endswith(".png") and Path(v).is_file()]


def png_scraper(block, block_vars: dict, gallery_conf: dict) -> str:
    """Copy the PNG files a code block wrote (held in a variable: a path, or a list / dict of
    paths) into the gallery and return the reST that shows them."""
    from sphinx_gallery.scrapers import figure_rst

    shown = _shown.setdefault(block_vars["src_file"], set())
    found = []
    for value in block_vars["example_globals"].values():
        for path in _png_paths(value):
            key = (str(path.resolve()), path.stat().st_mtime_ns)
            if key not in shown:
                shown.add(key)
                found.append(path)
    images = []
    for path, image_path in zip(found, block_vars["image_path_iterator"]):
        shutil.copyfile(path, image_path)
        images.append(image_path)
    return figure_rst(images, gallery_conf["src_dir"])


def setup(app: Sphinx) -> dict:
    app.connect("autodoc-process-docstring", project_docstrings, priority=400)
    app.connect("autodoc-process-docstring", attribute_text, priority=600)
    app.connect("autodoc-process-signature", dataclass_signature)
    app.connect("missing-reference", resolve_reference)
    app.add_directive("whiteboxdl-package", PackagePage)
    app.add_directive("whiteboxdl-module", ModulePage)
    app.add_directive("whiteboxdl-exports", ExportsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": False}
