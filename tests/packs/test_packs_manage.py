"""Installing and managing packs: git (file://, @ref), folders, zips, the manifest, enable/disable,
update, remove, requirements checked against Loom's own, install.py only when allowed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
from pack_helpers import TEST_DEP, commit_all, git, init_repo, loom_cli, node_code, write_pack

from nodes.custom_loader import MANIFEST_NAME, load_custom_nodes
from nodes.registry import NodeRegistry
from server.packs import deps, install, manifest, sources
from server.packs.status import list_packs


def loaded_nodes(cn_dir) -> set[str]:
    reg = NodeRegistry()
    load_custom_nodes(reg, dirs=[cn_dir])
    return set(reg.names())


@pytest.fixture
def git_pack(tmp_path):
    """A pack in a git repository: v1 (tagged) with one node."""
    repo = init_repo(write_pack(tmp_path / "src", "gitpack", node_code("GitNodeV1"),
                                pyproject__toml='[project]\nname = "gitpack"\nversion = "1.0.0"\n'))
    first = commit_all(repo, "v1")
    git(repo, "tag", "v1")
    return repo, first


def test_git_install_list_disable_enable_update_remove(cn_dir, git_pack):
    repo, first = git_pack
    result = install.install_pack(repo.as_uri())
    assert result.name == "gitpack" and result.entry["commit"] == first and result.entry["version"] == "1.0.0"
    assert (cn_dir / "gitpack" / "__init__.py").is_file()
    entry = json.loads((cn_dir / MANIFEST_NAME).read_text())["packs"]["gitpack"]
    assert entry["source"] == repo.as_uri() and entry["kind"] == "git" and entry["enabled"] and not entry["isolated"]
    assert entry["installed_at"]
    assert loaded_nodes(cn_dir) == {"GitNodeV1"}

    reg = NodeRegistry()
    load_custom_nodes(reg, dirs=[cn_dir])
    (row,) = list_packs(reg)
    assert (row["name"], row["version"], row["enabled"], row["node_count"], row["load_error"]) == \
        ("gitpack", "1.0.0", True, 1, None)
    assert row["load_seconds"] is not None

    install.set_enabled("gitpack", False)
    assert (cn_dir / "gitpack.disabled").is_dir() and not (cn_dir / "gitpack").exists()
    assert loaded_nodes(cn_dir) == set()
    assert list_packs()[0]["enabled"] is False
    install.set_enabled("gitpack", True)
    assert loaded_nodes(cn_dir) == {"GitNodeV1"}

    (repo / "__init__.py").write_text(node_code("GitNodeV2"))
    (repo / "pyproject.toml").write_text('[project]\nname = "gitpack"\nversion = "2.0.0"\n')
    second = commit_all(repo, "v2")
    updated = install.update_pack("gitpack")
    assert updated.entry["commit"] == second and updated.entry["version"] == "2.0.0" and updated.entry["updated_at"]
    assert loaded_nodes(cn_dir) == {"GitNodeV2"}
    assert "already up to date" in install.update_pack("gitpack").notes

    install.remove_pack("gitpack")
    assert not (cn_dir / "gitpack").exists() and manifest.read(cn_dir) == {}
    with pytest.raises(install.PackError, match="no pack named 'gitpack'"):
        install.remove_pack("gitpack")


def test_git_ref_is_checked_out_and_kept_on_update(cn_dir, git_pack):
    repo, first = git_pack
    (repo / "__init__.py").write_text(node_code("GitNodeV2"))
    commit_all(repo, "v2")
    result = install.install_pack(f"{repo.as_uri()}@v1", name="pinned")
    assert result.entry["ref"] == "v1" and result.entry["commit"] == first
    assert loaded_nodes(cn_dir) == {"GitNodeV1"}
    install.update_pack("pinned")
    assert loaded_nodes(cn_dir) == {"GitNodeV1"}  # a tag stays where it is
    with pytest.raises(install.PackError, match="already installed"):
        install.install_pack(repo.as_uri(), name="pinned")
    with pytest.raises(sources.SourceError, match="no-such-ref"):
        install.install_pack(f"{repo.as_uri()}@no-such-ref", name="other")
    assert not (cn_dir / "other").exists()


def test_folder_and_zip_sources(cn_dir, tmp_path):
    src = write_pack(tmp_path / "src", "folderpack", node_code("FolderNode"))
    install.install_pack(str(src))
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ZipPack-main/__init__.py", node_code("ZipNode"))
    install.install_pack(str(archive), name="zippack")
    assert loaded_nodes(cn_dir) == {"FolderNode", "ZipNode"}

    # update re-copies a folder source
    (src / "__init__.py").write_text(node_code("FolderNode2"))
    install.update_pack("folderpack")
    assert "FolderNode2" in loaded_nodes(cn_dir)

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.py", "x = 1")
    with pytest.raises(sources.SourceError, match="outside the pack"):
        install.install_pack(str(evil), name="evil")
    assert not (tmp_path / "outside.py").exists() and not (cn_dir / "evil").exists()
    with pytest.raises(sources.SourceError, match="not an existing folder"):
        install.install_pack(str(tmp_path / "nothing-here"))
    with pytest.raises(install.PackError, match="not a usable pack name"):
        install.install_pack(str(src), name="../escape")


def test_conflicting_requirement_is_refused_naming_the_package(cn_dir, tmp_path, pip_local):
    src = write_pack(tmp_path / "src", "oldnumpy", node_code("OldNumpyNode"), requirements__txt="numpy<2\n")
    with pytest.raises(deps.DependencyConflict) as info:
        install.install_pack(str(src))
    assert info.value.packages == ["numpy"]
    assert "numpy" in str(info.value) and "1.26.0" in str(info.value) and "--isolated" in str(info.value)
    assert list(cn_dir.iterdir()) == [] or [p.name for p in cn_dir.iterdir()] == [".loom-packs.lock"]
    import numpy

    assert not numpy.__version__.startswith("1.26")

    torch_pack = write_pack(tmp_path / "src", "oldtorch", node_code("T"), pyproject__toml=(
        '[project]\nname = "oldtorch"\nversion = "0.1"\ndependencies = ["torch<2"]\n'))
    with pytest.raises(deps.DependencyConflict, match="torch"):
        install.install_pack(str(torch_pack))

    missing = write_pack(tmp_path / "src", "missingdep", node_code("M"), requirements__txt="no-such-package-xyz\n")
    with pytest.raises(deps.PipError, match="no-such-package-xyz"):
        install.install_pack(str(missing))


def test_cli_install_list_disable_and_conflict(cn_dir, tmp_path, wheelhouse, git_pack):
    repo, _ = git_pack
    env = {"LOOM_CUSTOM_NODES_DIR": str(cn_dir)}
    done = loom_cli("nodes", "install", f"{repo.as_uri()}@v1", env=env)
    assert done.returncode == 0, done.stderr
    assert "installed gitpack" in done.stdout
    listing = loom_cli("nodes", "list", "--no-load", env=env)
    assert listing.returncode == 0 and "gitpack" in listing.stdout and "1.0.0" in listing.stdout
    assert f"{repo.as_uri()}@v1" in listing.stdout
    rows = json.loads(loom_cli("nodes", "list", "--json", "--no-load", env=env).stdout)
    assert rows[0]["name"] == "gitpack" and rows[0]["ref"] == "v1"
    assert loom_cli("nodes", "disable", "gitpack", env=env).returncode == 0
    assert (cn_dir / "gitpack.disabled").exists()

    bad = write_pack(tmp_path / "src", "needsold", node_code("N"), requirements__txt="numpy<2\n")
    done = loom_cli("nodes", "install", str(bad), "--no-index", "--find-links", str(wheelhouse), env=env)
    assert done.returncode == 3 and "numpy" in done.stderr and "refused" in done.stderr
    assert not (cn_dir / "needsold").exists()
    done = loom_cli("nodes", "remove", "nope", env=env)
    assert done.returncode == 1 and "no pack named 'nope'" in done.stderr


def test_install_script_runs_only_when_allowed(cn_dir, tmp_path):
    src = write_pack(tmp_path / "src", "scripted", node_code("S"),
                     install__py="open('ran.txt', 'w').write('yes')\n")
    result = install.install_pack(str(src))
    assert not (cn_dir / "scripted" / "ran.txt").exists()
    assert any("NOT run" in n for n in result.notes)
    install.remove_pack("scripted")
    result = install.install_pack(str(src), allow_scripts=True)
    assert (cn_dir / "scripted" / "ran.txt").read_text() == "yes"


def test_requirements_are_installed_into_loom_env(cn_dir, tmp_path, pip_local):
    """A satisfied requirement installs nothing; a new one is installed (and cleaned up here)."""
    satisfied = write_pack(tmp_path / "src", "satisfied", node_code("Sat"), requirements__txt="pyyaml\n# comment\n")
    result = install.install_pack(str(satisfied))
    assert not any("installed into" in n for n in result.notes)

    src = write_pack(tmp_path / "src", "withdep", node_code("WithDep"), requirements__txt=f"{TEST_DEP}==1.0.0\n")
    try:
        result = install.install_pack(str(src))
        assert any(f"{TEST_DEP}==1.0.0" in n for n in result.notes)
        check = subprocess.run([sys.executable, "-c", f"import {TEST_DEP}; print({TEST_DEP}.VALUE)"],
                               capture_output=True, text=True)
        assert check.stdout.strip() == "42"
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", TEST_DEP], capture_output=True)
