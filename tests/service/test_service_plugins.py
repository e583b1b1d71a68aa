"""A recommender from outside the project: one file on PYTHONPATH and one line of YAML
(`kind: module:Class`), served in-process and over HTTP like a built-in, its options read
and checked the same way; and the built-ins' options are documented from their dataclasses."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import requests
import yaml

from service.botify import load
from service.launch import ServiceProcess
from service.recommenders import KINDS, docs, recommender_class
from svc_fixtures import make_world

REPO = Path(__file__).resolve().parents[2]
PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass

    import numpy as np

    from service.recommenders import Context, RecommenderOptions, option


    class FirstListed:
        """The track `offset` places down the previous track's i2i list."""

        @dataclass(frozen=True)
        class Options(RecommenderOptions):
            i2i: np.ndarray = option(artifact="i2i", doc="the previous track's list")
            offset: int = option(0, within=">= 0", doc="how far down the list")

        def __init__(self, catalog, options: Options) -> None:
            self.i2i, self.offset = options.i2i, options.offset

        def recommend(self, ctx: Context) -> int:
            ctx.propensity = 1.0
            return int(self.i2i[ctx.prev, self.offset])


    class NoRecommend:
        pass
''')


@pytest.fixture
def plugin_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fixture world whose config serves the plugin (a module in tmp_path) beside Random."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "myrecs.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    config = make_world(tmp_path / "world")
    cfg = yaml.safe_load(config.read_text())
    cfg["recommenders"]["mine"] = {"kind": "myrecs:FirstListed", "i2i": cfg["recommenders"]["contextual"]["i2i"],
                                   "offset": 2}
    cfg["experiments"] = [{"name": "PLUGIN", "arms": {"C": "mine"}}]
    config.write_text(yaml.safe_dump(cfg))
    yield config
    sys.modules.pop("myrecs", None)


def _with(config: Path, **spec) -> Path:
    cfg = yaml.safe_load(config.read_text())
    cfg["recommenders"]["mine"].update(spec)
    config.write_text(yaml.safe_dump(cfg))
    return config


def test_a_plugin_is_served_in_process_and_logged(plugin_config: Path) -> None:
    core = load(plugin_config)
    assert core.recommend_next(1, 5, 1.0) == 8       # track 5's list is 6, 7, 8, ...: offset 2
    assert core.recommend_next(1, 8, 0.5) == 11
    core.end_session(1, 11, 0.5)
    core.close()
    lines = [json.loads(x) for f in (plugin_config.parent / "logs").glob("events-*.jsonl")
             for x in f.read_text().splitlines()]
    assert [(e["recommendation"], e["propensity"], e["experiments"]) for e in lines] == [
        (8, 1.0, {"PLUGIN": "C"}), (11, 1.0, {"PLUGIN": "C"}), (None, None, {"PLUGIN": "C"})]


@pytest.mark.parametrize("spec, message", [
    ({"offset": -1}, "'offset' must be integer >= 0, got -1"),
    ({"offset": "two"}, "'offset' must be integer >= 0, got 'two'"),
    ({"depth": 3}, "unknown option(s) ['depth']; allowed: ['i2i', 'offset']"),
    ({"kind": "myrecs:Missing"}, "module 'myrecs' has no 'Missing'"),
    ({"kind": "myrecs:NoRecommend"}, "is not a recommender"),
    ({"kind": "nowhere.mod:Rec"}, "cannot import 'nowhere.mod'"),
])
def test_a_bad_plugin_entry_is_a_config_error_naming_the_file(plugin_config: Path, spec: dict, message: str) -> None:
    with pytest.raises(ValueError) as e:
        load(_with(plugin_config, **spec))
    assert message in str(e.value) and str(plugin_config) in str(e.value) and "'mine'" in str(e.value)


@pytest.mark.parametrize("spec, message", [
    ({"kind": "session_aware", "i2i": "i2i.jsonl", "explore": 1.5}, "'explore' must be number in [0, 1), got 1.5"),
    ({"kind": "session_aware", "i2i": "i2i.jsonl", "strategy": "greedy"},
     "'strategy' must be `artists`, `seed`, got 'greedy'"),
    ({"kind": "session_aware", "i2i": "i2i.jsonl", "discount": True}, "'discount' must be number in (0, 1]"),
    ({"kind": "toppop", "top": 2.5}, "'top' must be integer >= 1, got 2.5"),
    ({"kind": "toppop", "tpo": 5}, "unknown option(s) ['tpo']; allowed: ['log', 'top']"),
    ({"kind": "contextual"}, "missing ['i2i']"),
    ({"kind": "contextual", "i2i": 7}, "'i2i' must name i2i lists"),
    ({"kind": "toppopp"}, "'kind' must be one of"),
])
def test_a_built_in_entry_is_checked_against_its_options(world: Path, spec: dict, message: str) -> None:
    cfg = yaml.safe_load(world.read_text())
    cfg["recommenders"]["session_aware"] = spec
    world.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError) as e:
        load(world, root=world.parent)
    assert message in str(e.value) and f"service config {world}: recommender 'session_aware'" in str(e.value)


def test_a_built_in_kind_is_a_plugin_with_a_short_name() -> None:
    # one mechanism: each built-in resolves by its import path too, to the same class
    for kind, cls in KINDS.items():
        assert recommender_class(f"{cls.__module__}:{cls.__qualname__}") is cls is recommender_class(kind)


def test_the_docs_show_the_options_as_the_dataclasses_declare_them() -> None:
    assert docs.main(["--check"]) == 0, "run python -m service.recommenders.docs"
    for path, (begin, make) in docs.BLOCKS.items():
        assert begin + "\n" + make() + "\n" + docs.END in path.read_text()
    assert "| `session_aware` | `explore` | number in [0, 1) | `0.0` |" in docs.options_table()


@pytest.mark.slow
def test_a_plugin_is_served_over_http(plugin_config: Path) -> None:
    plugins = plugin_config.parents[1] / "plugins"
    with ServiceProcess(str(plugin_config), env={"PYTHONPATH": f"{plugins}:{REPO}"}) as svc:
        r = requests.post(f"{svc.url}/next/3", json={"track": 5, "time": 1.0})
        assert r.status_code == 200 and r.json() == {"user": 3, "track": 8}


def test_the_readmes_plugin_example_serves_as_written(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "service" / "README.md").read_text()
    plugins = readme[readme.index("**Plugins**"):]
    code = plugins[plugins.index("```python\n") + 10:plugins.index("```\n", plugins.index("```python\n") + 10)]
    entry = plugins[plugins.index("Its config entry: `") + 19:]
    name, spec = next(iter(yaml.safe_load(entry[:entry.index("`")]).items()))
    (world.parent / "plugins").mkdir()
    (world.parent / "plugins" / f"{spec['kind'].split(':')[0]}.py").write_text(code)
    monkeypatch.syspath_prepend(str(world.parent / "plugins"))
    cfg = yaml.safe_load(world.read_text())
    cfg["recommenders"][name] = spec
    cfg["experiments"] = [{"name": "README", "arms": {"C": name}}]
    world.write_text(yaml.safe_dump(cfg))
    try:
        assert load(world).recommend_next(1, 5, 1.0) == 5 + spec["step"]
    finally:
        sys.modules.pop(spec["kind"].split(":")[0], None)
