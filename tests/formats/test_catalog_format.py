"""The public catalog, defined once (formats.catalog): the service and training read it alike,
give each artist and genre the same code, and refuse a bad catalog with the same error."""
from __future__ import annotations

import re

import numpy as np
import pytest

from formats import FormatError
from formats import catalog as catalog_format

from formats_fixtures import ARTISTS, write_world


def test_service_and_training_give_every_artist_and_genre_the_same_code(tmp_path):
    from service.catalog import load_catalog as service_catalog
    from training.data.catalog import load_catalog as training_catalog
    world = write_world(tmp_path / "w")
    svc, trn = service_catalog(world / "public" / "tracks.json"), training_catalog(world)
    assert svc.artist.tolist() == trn.artist.tolist() == [2, 0, 1, 0, 2, 1, 3, 0]
    assert svc.genre.tolist() == trn.genre.tolist() == [2, 1, 2, 0, 1, 2, 0, 1]
    assert svc.artist_names == ["Amber", "Blue", "Cyan", "Dune"] and svc.genre_names == ["ambient", "jazz", "rock"]
    assert (trn.n_artists, trn.n_genres) == (4, 3)
    # the codes depend on the set of names only, not on the order a reader meets them
    codes, names = catalog_format.encode(ARTISTS[::-1])
    assert names == ["Amber", "Blue", "Cyan", "Dune"]
    assert [names[c] for c in codes] == ARTISTS[::-1]


def test_the_world_catalog_codes_agree(small_world):
    from service.catalog import load_catalog as service_catalog
    from training.data.catalog import load_catalog as training_catalog
    svc, trn = service_catalog(small_world / "public" / "tracks.json"), training_catalog(small_world)
    assert np.array_equal(svc.artist, trn.artist) and np.array_equal(svc.genre, trn.genre)
    assert len(svc.artist_names) == trn.n_artists and len(svc.genre_names) == trn.n_genres


BAD_CATALOGS = [
    ('{"track": 0, "artist": "a", "title": "t", "genre": "g"}\n{"track": 2, "artist": "a", "title": "t", "genre": "g"}\n',
     "line 2: expected track 1, tracks ordered 0..N-1"),
    ('{"track": 0, "artist": 7, "title": "t", "genre": "g"}\n', "line 1: field 'artist' must be a string"),
    ('{"track": 0, "artist": "a", "title": "t", "genre": "g", "popularity": -1}\n',
     "line 1: popularity must be a number >= 0"),
    ('{"track": 0, "artist": "a", "title": "t", "genre": "g"}\n\n{"track": 1, "artist": "a", "title"\n',
     "line 3: not valid JSON"),
    ('[0]\n', "line 1: not a JSON object"),
    (b'{"track": 0, "artist": "\xff", "title": "t", "genre": "g"}\n', "line 1: not UTF-8 text"),
]


@pytest.mark.parametrize("content, problem", BAD_CATALOGS)
def test_a_bad_catalog_gives_the_same_error_on_both_sides(tmp_path, content, problem):
    from service.catalog import ArtifactError, load_catalog as service_catalog
    from training.data.catalog import CatalogError, load_catalog as training_catalog
    path = tmp_path / "public" / "tracks.json"
    path.parent.mkdir()
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ArtifactError) as svc:
        service_catalog(path)
    with pytest.raises(CatalogError) as trn:
        training_catalog(tmp_path)
    for err, fix in ((svc, "python -m sim.world"), (trn, "regenerate the world")):
        assert problem in str(err.value) and str(path) in str(err.value) and fix in str(err.value)


def test_a_truncated_catalog_is_caught_on_both_sides(tmp_path):
    from service.catalog import ArtifactError, load_catalog as service_catalog
    from training.data.catalog import CatalogError, load_catalog as training_catalog
    world = write_world(tmp_path / "w", tracks=20)
    problem = "catalog has 8 tracks but world.json says 20 (truncated?)"
    with pytest.raises(ArtifactError, match=re.escape(problem)):
        service_catalog(world / "public" / "tracks.json")
    with pytest.raises(CatalogError, match=re.escape(problem)):
        training_catalog(world)


def test_the_catalog_path_never_leads_into_hidden(tmp_path):
    world = write_world(tmp_path / "w")
    assert catalog_format.catalog_path(world) == world / "public" / "tracks.json"
    (world / "hidden").mkdir()
    (world / "hidden" / "tracks.json").write_text("")
    with pytest.raises(FormatError, match="never hidden/"):
        catalog_format.catalog_path(world / "hidden" / "tracks.json")
    from training.data.catalog import CatalogError, load_catalog
    with pytest.raises(CatalogError, match="public catalog only"):
        load_catalog(world / "hidden" / "tracks.json")


