"""The experiment is honest only if its boundaries hold.

- `sim/` imports nothing from `service/` or `training/`; those never import `sim`
  (they run the simulator as a command). `formats/`, the public file formats both of them
  share, imports none of the three.
- The simulator's hidden truth (`<world>/hidden/`: embeddings, user parameters) never
  reaches the service or training: a Python audit hook watches every file they open
  while the service serves sessions, training builds, fits and exports a model, and every
  learner (training/learning/learners: the embedding model, its peers, the artist learner)
  learns its lists.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_top_modules(package: str) -> dict[str, set[str]]:
    """Every top-level module each file of a package imports (absolute imports)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value).split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


@pytest.mark.parametrize("package, forbidden", [
    ("sim", {"service", "training"}),
    ("service", {"sim", "training"}),
    ("training", {"sim"}),
    ("formats", {"sim", "service", "training"}),
])
def test_packages_do_not_import_across_the_boundary(package: str, forbidden: set[str]) -> None:
    files = imported_top_modules(package)
    assert files, f"no Python files found under {package}/"
    offenders = {f: sorted(names & forbidden) for f, names in files.items() if names & forbidden}
    assert not offenders, f"{package}/ must not import {sorted(forbidden)}: {offenders}"


def test_the_import_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """Guard the guard: the checker must flag the forms of import it claims to see."""
    bad = REPO / "sim" / "_boundary_probe_tmp.py"
    bad.write_text("import service.botify\nfrom training.data.events import read_events\n")
    try:
        names = imported_top_modules("sim")["sim/_boundary_probe_tmp.py"]
    finally:
        bad.unlink()
    assert {"service", "training"} <= names


#: The project's own packages: an import circle among their modules fails the test below.
PACKAGES = ("formats", "sim", "service", "training", "studies", "benchmarks", "container")


def module_imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in the file: a function-level import
    is a dependency too). `from pkg import name` names the module `pkg.name` when that is a
    module, else `pkg` itself."""
    def module_of(path: Path) -> str:
        parts = list(path.relative_to(root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {module_of(p): p for pkg in packages if (root / pkg).is_dir() for p in sorted((root / pkg).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:      # `import a.b.c` of a name: its deepest module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    found.add(t)
        graph[mod] = found
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph: its strongly connected components of more than one module
    (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_no_import_circle_among_the_projects_modules() -> None:
    graph = module_imports(REPO)
    assert len(graph) > 50, f"only {len(graph)} modules found: is the checker looking in the right place?"
    circles = import_circles(graph)
    assert not circles, "modules that import each other in a circle (break it by moving what both need " \
                        f"into a module below them): {circles}"


def test_the_circle_checker_sees_a_circle(tmp_path: Path) -> None:
    """Guard the guard: a circle through a relative import, a function-level import and a
    `from package import module` is found; a one-way chain is not a circle."""
    pkg = tmp_path / "training"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from training.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import x\n")
    (pkg / "c.py").write_text("import training.a\nx = 1\n")
    (pkg / "d.py").write_text("from training import a\n")
    graph = module_imports(tmp_path, ("training",))
    assert graph["training.sub.b"] == {"training.c"} and graph["training.d"] == {"training.a"}
    assert import_circles(graph) == [["training.a", "training.c", "training.sub.b"]]
    (pkg / "c.py").write_text("x = 1\n")
    assert import_circles(module_imports(tmp_path, ("training",))) == []


GUARD = textwrap.dedent('''
    """Installed through PYTHONPATH by tests/test_boundaries.py: record any open() under hidden/."""
    import os, sys
    _hidden = os.environ.get("BOTIFY_HIDDEN_DIR")
    _report = os.environ.get("BOTIFY_HIDDEN_REPORT")
    if _hidden and _report:
        _hidden = os.path.realpath(_hidden)
        _busy = [False]
        def _hook(event, args):
            if _busy[0] or event not in ("open", "os.listdir", "os.scandir", "numpy.load"):
                return
            target = args[0] if args else None
            if not isinstance(target, (str, bytes, os.PathLike)):
                return
            try:
                path = os.path.realpath(os.fsdecode(target))
            except Exception:
                return
            if path == _hidden or path.startswith(_hidden + os.sep):
                _busy[0] = True
                try:
                    with open(_report, "a") as f:
                        f.write(event + " " + path + "\\n")
                finally:
                    _busy[0] = False
                raise PermissionError(f"the hidden truth is off limits here: {path}")
        sys.addaudithook(_hook)
''')

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import yaml
    from service.botify import load

    world, work = Path(sys.argv[1]), Path(sys.argv[2])
    tracks = [json.loads(l)["track"] for l in (world / "public" / "tracks.json").open()][:200]
    config = work / "service.yml"
    config.write_text(yaml.safe_dump({
        "catalog": str(world / "public" / "tracks.json"), "seed": 7,
        "event_log": {"dir": str(work / "log")}, "session_store": {"kind": "memory"},
        "recommenders": {"random": {"kind": "random"}, "sticky": {"kind": "sticky_artist"},
                         "toppop": {"kind": "toppop", "top": 50}},
        "experiments": [{"name": "PROBE", "arms": {"C": "random", "T1": "sticky", "T2": "toppop"}}],
    }))
    # the shared formats, read directly: the public catalog, the log the service writes
    from formats import catalog as catalog_format, events as event_format
    from formats.jsonl import read_jsonl
    assert sum(1 for _ in read_jsonl(catalog_format.catalog_path(world))) >= len(tracks)

    app = load(str(config))
    for user in range(60):
        track, time = tracks[user % len(tracks)], 1.0
        for step in range(6):
            track = app.recommend_next(user, track, time)
            time = 0.9 if step % 2 else 0.3
        app.end_session(user, track, time)
    close = getattr(app, "close", None)
    if close:
        close()

    assert event_format.log_files(work / "log")
    from formats.lists import read_lists

    from training.learning.train import main as train
    rc = train(["--log", str(work / "log"), "--world", str(world), "--max-epochs", "2",
                "--run-name", "boundary-probe"])
    assert rc in (0, None), rc
    from training.jobs.recommend import main as recommend
    rc = recommend(["--model", "challenger", "--k", "10", "--output", str(work / "i2i.jsonl")])
    assert rc in (0, None), rc
    assert read_lists(work / "i2i.jsonl", "track", 10**9, None).shape[1] == 10
    # every learner, trained and registered as a challenger would be, then its version fetched
    from training.learning.learn import main as learn
    for learner, extra in (("embedding", ["--config", "training/config/contrast.yml", "--set", "max_epochs=2"]),
                           ("cooccurrence", []), ("item2vec", ["--set", "epochs=2"]), ("artist", []), ("als", [])):
        rc = learn(["--learner", learner, *extra, "--log", str(work / "log"), "--world", str(world), "--k", "10"])
        assert rc == 0, learner
    from formats.learned import read
    from training.registry.versions import fetch
    assert read(fetch("challenger")).learner["learner"] == "als"
    print("probe done", flush=True)
''')


def test_service_and_training_never_open_the_hidden_truth(small_world: Path, tmp_path: Path) -> None:
    hidden = small_world / "hidden"
    assert hidden.is_dir() and any(hidden.iterdir()), "the small world should have its hidden truth on disk"
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD)
    report = tmp_path / "hidden-reads.txt"
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(guard_dir), str(REPO)]),
               BOTIFY_HIDDEN_DIR=str(hidden), BOTIFY_HIDDEN_REPORT=str(report),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
               BENTOML_HOME=str(tmp_path / "bentoml"))
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(small_world), str(work)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    reads = report.read_text() if report.exists() else ""
    assert not reads, f"service or training opened the hidden truth:\n{reads}"
    assert proc.returncode == 0 and "probe done" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (work / "i2i.jsonl").exists()


def test_the_guard_catches_a_read_of_the_hidden_truth(small_world: Path, tmp_path: Path) -> None:
    """Guard the guard: the same hook must fire when code does read hidden/."""
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(GUARD)
    report = tmp_path / "hidden-reads.txt"
    env = dict(os.environ, PYTHONPATH=str(guard_dir), BOTIFY_HIDDEN_DIR=str(small_world / "hidden"),
               BOTIFY_HIDDEN_REPORT=str(report))
    code = f"import numpy; numpy.load({json.dumps(str(small_world / 'hidden' / 'embeddings.npy'))})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "PermissionError" in proc.stderr
    assert "embeddings.npy" in report.read_text()
