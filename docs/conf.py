"""Sphinx configuration of the whiteboxdl documentation site (``make docs`` builds it into site/).

The API reference is generated from the docstrings (autodoc + napoleon, numpy style, type hints
in the signatures); the tutorials in ``docs/tutorials/`` are Python scripts that sphinx-gallery
runs during the build, so every figure on the site is produced by the code shown next to it.
``make docs`` runs ``sphinx-build -W --keep-going -n``: any warning, an unresolved reference into
whiteboxdl, or a tutorial that raises fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The tutorials train and attack small models in this process. One CPU thread: on a busy 2-core
# machine two spinning OpenMP threads can be many times slower than one (set OMP_NUM_THREADS to
# use more). Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

DOCS = Path(__file__).resolve().parent
if (DOCS.parent / "src").is_dir():  # document the source tree, not an installed copy
    sys.path.insert(0, str(DOCS.parent / "src"))
sys.path.insert(0, str(DOCS / "_ext"))

import whiteboxdl  # noqa: E402

project = "whiteboxdl"
author = "whiteboxdl developers"
copyright = "whiteboxdl developers, Apache-2.0"  # noqa: A001 (Sphinx's name)
release = version = whiteboxdl.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "whiteboxdl_docs",          # docs/_ext: the export table, figure scraper, reference checks
]

# Only the site's own sources: docs/ also holds the README's figures and recorded reports.
root_doc = "index"
exclude_patterns = ["figures", "stability"]
templates_path: list[str] = []

# ----------------------------------------------------------------------------- API reference
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource",
                           "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False    # not torch's generic ``Module.forward`` text
autoclass_content = "both"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True

# Strict references: every cross-reference into whiteboxdl must resolve. Names of other packages
# (torch, numpy, the standard library, ...) have no inventory offline (the build reaches no
# network), so references to them are rendered as plain text; ``whiteboxdl_docs`` decides which
# targets count as external (``external_roots``) and reports every other unresolved one.
nitpicky = True

# ----------------------------------------------------------------------------- tutorials
sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "_tutorials",
    "filename_pattern": r"/plot_",          # every tutorial runs; make docs-ci narrows this
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,         # a tutorial that raises fails the build
    "only_warn_on_example_error": False,
    "image_scrapers": ("matplotlib", "whiteboxdl_docs.png_scraper"),
    "doc_module": ("whiteboxdl",),          # link whiteboxdl names in the code to the API pages
    "backreferences_dir": None,
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
}

# ----------------------------------------------------------------------------- HTML
html_theme = "furo"
html_title = f"whiteboxdl {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False
