"""mkdocs hooks (mkdocs.yml): the site's pages are the repository's own files.

README.md is the home page and docs/*.md the other pages, at their paths in the
repository (README.md becomes index.html, docs/cli.md docs/cli.html), together with
benchmarks/README.md and the benchmark results the pages link to
(benchmarks/results/*/*.md and .png). Every relative link therefore resolves the same
way on GitHub and in the site, and ``mkdocs build --strict`` fails on one that does
not. The theme's own files are kept as mkdocs found them.
"""

import glob
import os

from mkdocs.structure.files import File, Files

PAGES = ("README.md", "docs/*.md", "benchmarks/README.md", "benchmarks/results/*/*.md",
         "benchmarks/results/*/*.png")


def on_files(files, config):
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    docs = os.path.abspath(config.docs_dir)
    kept = [file for file in files if os.path.abspath(file.src_dir or "") != docs]
    for pattern in PAGES:
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            uri = os.path.relpath(path, root).replace(os.sep, "/")
            kept.append(File(uri, root, config.site_dir, config.use_directory_urls))
    return Files(kept)
