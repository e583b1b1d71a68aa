"""Options learned from the logs travel with the i2i lists: a recommender takes the value in
the `policy.json` beside its lists for a learnable option its config leaves unset; the config
wins; without the file the defaults apply; a malformed file stops the start-up naming it."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from service import botify
from service import recommenders as r
from service.artifacts import ArtifactError, Tables
from service.catalog import load_catalog
from service.recommenders.options import learnable, learned_values

from svc_fixtures import N_TRACKS, i2i_lists, write_catalog

POLICY = {"discount": 0.6, "first_artist_prior": 0.55, "fresh_start": 0.45}
DEFAULTS = {f.name: f.default for f in dataclasses.fields(r.SessionAware.Options) if f.name in POLICY}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return load_catalog(write_catalog(tmp_path_factory.mktemp("cat") / "tracks.json"))


def lists_folder(root, policy=None, raw=None):
    """A folder holding i2i.npy and, if given, policy.json (a dict, or `raw` text)."""
    root.mkdir(parents=True, exist_ok=True)
    table = np.full((N_TRACKS, 10), -1, dtype=np.int32)
    for t, recs in i2i_lists().items():
        table[t] = recs
    np.save(root / "i2i.npy", table, allow_pickle=False)
    if policy is not None:
        (root / "policy.json").write_text(json.dumps(policy))
    if raw is not None:
        (root / "policy.json").write_text(raw)
    return root / "i2i.npy"


def constants(rec):
    return {"discount": rec.discount, "first_artist_prior": rec.first_prior, "fresh_start": rec.fresh_start}


def build(catalog, tmp_path, **spec):
    return r.build("sa", {"kind": "session_aware", **spec}, catalog, tmp_path)


def test_session_aware_declares_its_three_constants_learnable():
    assert set(learnable(r.SessionAware.Options)) == set(POLICY)


def test_unset_learnable_options_take_the_learned_values_and_other_keys_are_left_alone(catalog, tmp_path):
    i2i = lists_folder(tmp_path / "v", {**POLICY, "explore_levels": [0.5, 0.02], "top": 3})
    rec = build(catalog, tmp_path, i2i=str(i2i))
    assert constants(rec) == POLICY
    assert len(rec.top) == 100          # `top` is not learnable: a policy.json cannot set it


def test_an_option_set_in_the_config_wins(catalog, tmp_path):
    i2i = lists_folder(tmp_path / "v", POLICY)
    rec = build(catalog, tmp_path, i2i=str(i2i), discount=0.9, fresh_start=0.7)
    assert constants(rec) == {"discount": 0.9, "first_artist_prior": 0.55, "fresh_start": 0.7}


def test_without_policy_json_the_defaults_apply(catalog, tmp_path):
    rec = build(catalog, tmp_path, i2i=str(lists_folder(tmp_path / "v")))
    assert constants(rec) == DEFAULTS
    # a policy.json without the key (another learner's parameters only) changes nothing
    rec = build(catalog, tmp_path, i2i=str(lists_folder(tmp_path / "w", {"explore_levels": [0.1]})))
    assert constants(rec) == DEFAULTS


def test_a_plugins_options_extending_session_awares_inherit_what_is_learnable(catalog, tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Options(r.SessionAware.Options):
        share: float = r.option(0.1, within="[0, 1]", learned=True, doc="a plugin's own learned option")

    got = learned_values(Options, {"i2i": str(lists_folder(tmp_path / "v", {**POLICY, "share": 0.3}))},
                         Tables(tmp_path, N_TRACKS).policy)
    assert got == {**POLICY, "share": 0.3}


@pytest.mark.parametrize("raw, problem", [("{not json", "malformed policy parameters"),
                                          ("[0.6]", "must be a JSON object")])
def test_a_malformed_policy_json_is_an_error_naming_the_file(catalog, tmp_path, raw, problem):
    i2i = lists_folder(tmp_path / "v", raw=raw)
    with pytest.raises(ArtifactError, match=problem) as e:
        build(catalog, tmp_path, i2i=str(i2i))
    assert str(tmp_path / "v" / "policy.json") in str(e.value)
    # a config that sets every learnable option still has the file read: a broken version is never served
    with pytest.raises(ArtifactError):
        build(catalog, tmp_path, i2i=str(i2i), discount=0.8)


def test_a_learned_value_out_of_range_names_the_file_and_the_key(catalog, tmp_path):
    i2i = lists_folder(tmp_path / "v", {"discount": 1.5})
    with pytest.raises(r.OptionError, match=r"policy\.json: 'discount' must be number in \(0, 1\]") as e:
        build(catalog, tmp_path, i2i=str(i2i))
    assert "recommender 'sa'" in str(e.value)


def test_the_service_uses_and_shows_the_learned_values(tmp_path):
    i2i = lists_folder(tmp_path / "v", POLICY)
    cfg = {"catalog": str(write_catalog(tmp_path / "tracks.json")), "seed": 1, "event_log": False,
           "session_store": {"kind": "memory", "ttl_seconds": 60},
           "recommenders": {"sa": {"kind": "session_aware", "i2i": str(i2i)},
                            "sa_set": {"kind": "session_aware", "i2i": str(i2i), "discount": 0.7},
                            "ctx": {"kind": "contextual", "i2i": str(i2i)}},
           "experiments": [{"name": "E", "arms": {"C": "ctx", "T1": "sa", "T2": "sa_set"}}]}
    path = tmp_path / "svc.yml"
    path.write_text(yaml.safe_dump(cfg))
    svc = botify.load(path, root=tmp_path)
    try:
        models = svc.status()["models"]
        assert models["sa"]["learned"] == POLICY
        assert svc.recommenders["sa"].discount == 0.6 and svc.recommenders["sa_set"].discount == 0.7
        assert models["sa_set"]["learned"] == {"first_artist_prior": 0.55, "fresh_start": 0.45}   # the config set one
        assert "learned" not in models["ctx"]            # contextual has no learnable option
    finally:
        svc.close()
