"""MkDocs hooks (mkdocs.yml ``hooks:``): the generated pages, made at every build.

- the command-line, config-key and Python API references (``tools/references.py``), so they
  never drift from the parser, ``schemas/config.json`` and ``mosaic.__all__``;
- the changelog page, from CHANGELOG.md at the repository root;
- docstrings use reST roles (``:func:`status```): the role name is dropped from the HTML.
"""

from __future__ import annotations

import re

import references  # tools/references.py: mkdocs puts a hook's folder on sys.path while loading it
from mkdocs.structure.files import File, Files

_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|exc|obj):(<code)")


def on_files(files: Files, config) -> Files:
    generated = {path: references.page(path) for path in references.PAGES}
    generated["changelog.md"] = (references.ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for path, text in generated.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=text))
    return files


def on_page_content(html: str, page, config, files) -> str:
    return _ROLE.sub(r"\1", html)
