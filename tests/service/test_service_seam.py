"""The service's one seam to BentoML's and prometheus_client's internals (service/seam.py):
every private name is used there and nowhere else, and an untested version of either stops
the service at start with the fix."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from service import seam
from service.launch import ServiceProcess, ServiceStartError
from svc_fixtures import make_world

REPO = Path(__file__).resolve().parents[2]
# the service and the benchmarks' services (they serve the product's app)
SCANNED = sorted((REPO / "service").rglob("*.py")) + [
    REPO / "benchmarks" / name for name in ("bench_service.py", "trivial_bento.py", "service.py", "coldstart.py",
                                            "profile_service.py")]
SEAM = REPO / "service" / "seam.py"
ACCESSORS = ("getattr", "hasattr", "setattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str) -> list[str]:
    """Each use of another module's or object's private name in `source`: an import of a private
    module or name, `x._name` (x not self or cls), `getattr(x, "_name")` and its kin."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if any(map(_private, a.name.split(".")))]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if any(map(_private, module.split("."))) or any(_private(a.name) for a in node.names):
                found.append(f"from {'.' * node.level}{module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(ast.unparse(node))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ACCESSORS
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value)):
            found.append(ast.unparse(node))
    return found


def test_no_private_name_is_used_outside_the_seam() -> None:
    offenders = {str(p.relative_to(REPO)): uses for p in SCANNED if p != SEAM
                 for uses in [private_uses(p.read_text())] if uses}
    assert not offenders, f"private APIs belong in service/seam.py, with why: {offenders}"
    assert private_uses(SEAM.read_text())  # the seam is where they are, so the scan sees them


def test_the_scan_sees_each_form_of_private_use() -> None:
    source = textwrap.dedent("""
        import _bentoml_impl.server
        from bentoml._internal.configuration.containers import BentoMLContainer
        from prometheus_client import _private_helper
        child._sum.inc(1)
        hasattr(child, "_buckets")
        self._mine = cls._ours = os.__name__
    """)
    assert sorted(private_uses(source)) == sorted([
        "_bentoml_impl.server", "from bentoml._internal.configuration.containers import BentoMLContainer",
        "from prometheus_client import _private_helper", "child._sum", "hasattr(child, '_buckets')"])


def test_the_installed_versions_are_the_supported_ones() -> None:
    seam.check_versions()  # what importing service.seam did already
    assert seam.installed_version("bentoml") in seam.SUPPORTED["bentoml"]


@pytest.mark.parametrize("dist, version", [("bentoml", "1.4.41"), ("prometheus-client", "0.27.0"),
                                           ("bentoml", None)])
def test_an_unsupported_version_is_refused_with_the_fix(dist: str, version: str | None) -> None:
    installed = {**{d: v[0] for d, v in seam.SUPPORTED.items()}, dist: version}
    with pytest.raises(seam.UnsupportedVersion) as e:
        seam.check_versions(installed.get)
    message = str(e.value)
    supported = seam.SUPPORTED[dist][-1]
    assert f"installed: {version or 'none'}" in message and f"{dist} {supported}" in message
    assert f"pip install {dist}=={supported}" in message and "service/seam.py" in message


@pytest.mark.slow
def test_the_service_does_not_start_on_an_unsupported_bentoml(tmp_path: Path) -> None:
    # another BentoML installed: its package found first on PYTHONPATH, its dist-info beside it
    import bentoml

    site = tmp_path / "site"
    (site / "bentoml-1.5.0.dist-info").mkdir(parents=True)
    (site / "bentoml-1.5.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: bentoml\nVersion: 1.5.0\n")
    (site / "bentoml").symlink_to(Path(bentoml.__file__).parent)
    assert seam.installed_version("bentoml") in seam.SUPPORTED["bentoml"]
    config = make_world(tmp_path / "world")
    with pytest.raises(ServiceStartError) as e:
        with ServiceProcess(str(config), env={"PYTHONPATH": f"{site}:{REPO}"}, start_timeout=60):
            pass
    assert "installed: 1.5.0" in str(e.value) and "pip install bentoml==1.4.40" in str(e.value)
