"""The README's Python examples run as written: every ```python block of README.md, then
those of docs/mixing.md (whose first repeats the README's "Wrap your dataset" example), in
order, in one namespace, in a scratch folder. The harness supplies only what the README
leaves to the reader (the run folder that the "Wrap your dataset" example names, and its
``epochs``), so an example that drifts from the API fails here, not in a newcomer's first
session. And every --flag the README, docs/*.md, recipes/README.md, benchmarks/README.md
and the recipes name is one that exists."""
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
MIXING = README.parent / "docs" / "mixing.md"
RESULTS = README.parent / "docs" / "results.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```\s*$", text, flags=re.M | re.S)


def test_python_blocks_are_found():
    blocks = python_blocks("intro\n```python\nx = 1\n```\ntext\n```bash\nls\n```\n```python\ny = 2\n```\n")
    assert blocks == ["x = 1\n", "y = 2\n"]


def test_readme_python_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    readme = python_blocks(README.read_text())
    # README.md: Python, Wrap your dataset; docs/mixing.md: Wrap your dataset (the same),
    # albumentations, BatchMixer
    assert len(readme) == 2, f"the README's Python examples changed ({len(readme)}): update the test"
    mixing = python_blocks(MIXING.read_text())
    assert len(mixing) == 3, f"docs/mixing.md's examples changed ({len(mixing)}): update the test"
    assert mixing[0] == readme[1], "docs/mixing.md's first example is no longer the README's"
    blocks = readme + mixing[1:]
    ns: dict = {"__name__": "readme"}

    exec(compile(blocks[0], "README.md: Python", "exec"), ns)
    assert "test accuracy" in capsys.readouterr().out
    model, test_set = ns["model"], ns["test_set"]
    assert ns["images"].shape == (3, *test_set.images.shape[1:])
    assert ns["images"].min() >= -1 and ns["images"].max() <= 1
    assert torch.equal(ns["same"].predict(test_set.images), model.predict(test_set.images))

    # "runs/my-run" stands for the reader's own run: the first example's is one
    shutil.copytree("runs/example", "runs/my-run")
    ns["epochs"] = 2
    exec(compile(blocks[1], "README.md: Wrap your dataset", "exec"), ns)
    mix, train_set = ns["mix"], ns["train_set"]
    assert len(mix) > len(train_set) and mix.is_synthetic(len(mix) - 1)
    assert ns["x"].shape[1:] == train_set.images.shape[1:]

    pytest.importorskip("albumentations")
    exec(compile(blocks[2], "docs/mixing.md: albumentations", "exec"), ns)
    x, y = ns["mix"][len(ns["mix"]) - 1]
    assert x.shape == train_set.images.shape[1:] and x.dtype == train_set.images.dtype

    loader = ns["loader"]
    with warnings.catch_warnings():              # the example's value_range is for the
        warnings.simplefilter("ignore")          # reader's images; digits are in [-1, 1]
        exec(compile(blocks[3], "docs/mixing.md: BatchMixer", "exec"), ns)
    assert len(ns["x"]) == len(ns["y"]) > 0 and ns["y"].min() >= 0
    assert ns["x"].shape[1:] == train_set.images.shape[1:]
    assert len(loader) > 0


FLAG = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9_-]*)")
OTHER_TOOLS = {"--nproc_per_node"}       # torchrun's, in docs/performance.md's DDP example


def known_flags() -> set[str]:
    """Every option of `ganaug train | sample | eval` and of the benchmark scripts."""
    import argparse

    from ganaug.cli_args import _parser

    parser = _parser()
    flags = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= set(sub._option_string_actions)
    for script in (README.parent / "benchmarks").glob("*.py"):
        flags |= set(re.findall(r"[\"'](--[a-z0-9][a-z0-9-]*)", script.read_text()))
    return flags | OTHER_TOOLS


def test_flag_pattern():
    text = "run `ganaug train --epochs 2 --no-download` then torchrun --nproc_per_node 2; x--y"
    assert FLAG.findall(text) == ["--epochs", "--no-download", "--nproc_per_node"]


@pytest.mark.parametrize("doc", ["README.md", "docs/*.md", "recipes/README.md", "recipes/*.yaml",
                                 "benchmarks/README.md", "benchmarks/recipes/*.yaml"])
def test_documented_flags_exist(doc):
    """Every --flag the documents name is one that ganaug or a benchmark script takes: a
    renamed or removed option cannot linger in the docs."""
    files = sorted(README.parent.glob(doc))
    assert files, doc
    known = known_flags()
    for f in files:
        unknown = sorted(set(FLAG.findall(f.read_text())) - known)
        assert not unknown, f"{f.name} names options that nothing takes: {unknown}"


def subcommand_flags() -> dict[str, set[str]]:
    """Each `ganaug` subcommand's own options."""
    import argparse

    from ganaug.cli_args import _parser

    return {name: set(sub._option_string_actions)
            for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def script_flags(script: Path) -> set[str]:
    """A benchmark script's options: its own and the shared ones of benchmarks/_common.py."""
    pattern = r"[\"'](--[a-z0-9][a-z0-9-]*)"
    return set(re.findall(pattern, script.read_text())) | set(
        re.findall(pattern, (script.parent / "_common.py").read_text()))


def misplaced_flags(text: str, subs: dict[str, set[str]]) -> list[str]:
    """Flags in a `ganaug SUB ...` or `python benchmarks/X.py ...` command line (joined over
    backslash-newlines, up to the end of its line or code span, a pipe, `;` or `&&`) that
    SUB or X does not take; a benchmark's `--extra=...` passes on `ganaug train` flags."""
    text = re.sub(r"\\\n\s*", " ", text)
    commands = re.compile(r"\bganaug\s+(" + "|".join(subs) + r")\b"
                          r"|\bpython3?\s+(benchmarks/\w+\.py)")
    found = []
    for m in commands.finditer(text):
        line = re.split(r"[`\n;|]|&&|--extra", text[m.end():])[0]
        if m.group(1):
            name, known = f"ganaug {m.group(1)}", subs[m.group(1)]
        else:
            path = README.parent / m.group(2)
            name, known = m.group(2), script_flags(path) if path.is_file() else set()
        found += [f"{name} {f}" for f in sorted(set(FLAG.findall(line)) - known)]
    return found


def test_misplaced_flags_are_found():
    subs = {"train": {"--epochs", "--out"}, "eval": {"--run"}}
    text = ("`ganaug eval --run r --epochs 3` and `ganaug train \\\n  --epochs 2 --run x`; "
            "ganaug train --epochs 1 && ganaug eval --run r --out y\n"
            "python benchmarks/objectives.py --epochs 3 --no-such-flag --extra=\"--run 1\"")
    assert misplaced_flags(text, subs) == ["ganaug eval --epochs", "ganaug train --run",
                                           "ganaug eval --out",
                                           "benchmarks/objectives.py --no-such-flag"]


@pytest.mark.parametrize("doc", ["README.md", "docs/*.md", "recipes/README.md", "recipes/*.yaml",
                                 "benchmarks/README.md", "benchmarks/recipes/*.yaml",
                                 "benchmarks/results/**/README.md", "recipes/results/**/README.md"])
def test_command_lines_use_their_own_commands_flags(doc):
    """A command line in the documents uses only flags that its own subcommand or script
    takes (the check above accepts a flag that any of them takes)."""
    subs = subcommand_flags()
    wrong = [f"{f.relative_to(README.parent)}: {bad}" for f in sorted(README.parent.glob(doc))
             for bad in misplaced_flags(f.read_text(), subs)]
    assert not wrong, f"flags on the wrong command: {wrong}"


LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS = ["README.md", "docs/*.md", "recipes/README.md", "benchmarks/README.md",
        "benchmarks/results/**/README.md", "recipes/results/**/README.md"]


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a markdown file's headings: lower case, punctuation other than
    '-' and '_' dropped, spaces to '-'."""
    anchors = set()
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_anchor_rule():
    assert heading_anchors("## The loss network's BatchNorm statistics (`recalibrate_bn`)") == {
        "the-loss-networks-batchnorm-statistics-recalibrate_bn"}
    assert heading_anchors("### When it helps: measured") == {"when-it-helps-measured"}


def test_document_links_resolve():
    """Every relative link in the documents points to a file or folder that exists, and a
    link to a heading (`file.md#anchor`, `#anchor`) to a heading that exists: moving a
    section or a results folder cannot leave a dead link behind."""
    root = README.parent
    files = sorted({f for doc in DOCS for f in root.glob(doc)})
    assert len(files) >= 8
    dead = []
    for f in files:
        for target in LINK.findall(f.read_text()):
            if re.match(r"[a-z]+:", target):                    # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (f.parent / path).resolve() if path else f
            if not dest.exists():
                dead.append(f"{f.relative_to(root)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest.read_text()):
                dead.append(f"{f.relative_to(root)}: {target} (no such heading)")
    assert not dead, "dead links:\n" + "\n".join(dead)


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_results_tables_match_the_benchmarks_page():
    """docs/results.md's tables, and the README's Results table, are headline copies of
    benchmarks/README.md's: every row of them is there too, word for word, so the pages
    cannot tell different numbers."""
    page = (README.parent / "benchmarks" / "README.md").read_text().splitlines()
    rows = table_rows(RESULTS.read_text())
    assert len(rows) > 30
    missing = [row for row in rows if row not in page]
    assert not missing, "docs/results.md rows not in benchmarks/README.md:\n" + "\n".join(missing)
    text = README.read_text()
    results = text[text.index("\n## Results\n"):text.index("\n## Reproducibility and resume\n")]
    rows = table_rows(results)
    assert len(rows) >= 5
    missing = [row for row in rows if row not in page]
    assert not missing, "README rows not in benchmarks/README.md:\n" + "\n".join(missing)
