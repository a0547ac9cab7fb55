"""ComfyUI's `folder_paths` module, answered from Loom's `nodes.paths`.

Packs read and mutate `folder_names_and_paths` directly (to add a model kind such as
"ipadapter", or append a folder), so it is a real dict of `(list_of_paths, extensions)` kept in
step with Loom's configured folders. Folders a pack adds (through `add_model_folder_path` or by
editing the dict) are also handed to Loom's own folders, so built-in loaders list them too.

Locations that depend on Loom's configuration (`models_dir`, `output_directory`, ...) are module
attributes computed on access, so they follow `nodes.paths.configure()`.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from _loom_compat import missing_attribute, unsupported_function

from nodes import paths as _paths

supported_pt_extensions: set[str] = set(_paths.SUPPORTED_PT_EXTENSIONS)
base_path = str(_paths.REPO_ROOT)


def map_legacy(folder_name: str) -> str:
    return _paths.LEGACY_NAMES.get(folder_name, folder_name)


class _FolderMap(dict):
    """`folder_names_and_paths`: rebuilt from Loom's folders whenever they are reconfigured.

    Entries a pack added that Loom does not know are kept across a reconfiguration.
    """

    def __init__(self) -> None:
        super().__init__()
        self._folders: Any = None  # the Folders object the entries were built from (held, compared by identity)
        self._base_names: set[str] = set()

    def _sync(self) -> None:
        folders = _paths.folders()
        if folders is self._folders:
            return
        self._folders = folders
        for name in self._base_names:
            dict.pop(self, name, None)
        names = list(_paths.MODEL_FOLDERS) + [n for n in folders.extra if n not in _paths.MODEL_FOLDERS]
        self._base_names = set(names) | {"custom_nodes"}
        for name in names:
            dirs = [str(p) for p in folders.model_folder_paths(name)]
            dict.__setitem__(self, name, (dirs, set(folders.extensions(name))))
        dict.__setitem__(self, "custom_nodes", ([str(p) for p in folders.custom_nodes_dirs], set()))

    def __getitem__(self, key: str) -> Any:
        self._sync()
        return dict.__getitem__(self, map_legacy(key))

    def __setitem__(self, key: str, value: Any) -> None:
        self._sync()
        dict.__setitem__(self, map_legacy(key), value)

    def __contains__(self, key: object) -> bool:
        self._sync()
        return dict.__contains__(self, map_legacy(key) if isinstance(key, str) else key)

    def __iter__(self):
        self._sync()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._sync()
        return dict.__len__(self)

    def get(self, key: str, default: Any = None) -> Any:
        self._sync()
        return dict.get(self, map_legacy(key), default)

    def keys(self):
        self._sync()
        return dict.keys(self)

    def items(self):
        self._sync()
        return dict.items(self)

    def values(self):
        self._sync()
        return dict.values(self)

    def copy(self) -> dict:
        self._sync()
        return dict(self.items())


folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = _FolderMap()


def _push_to_loom() -> None:
    """Hand folders that packs added to Loom's own folder lists (called after each pack loads)."""
    folders = _paths.folders()
    for name, entry in folder_names_and_paths.items():
        if name == "custom_nodes" or not isinstance(entry, (tuple, list)) or not entry:
            continue
        known = set(folders.model_folder_paths(name))
        for p in entry[0]:
            path = Path(p)
            if path not in known:
                folders.extra.setdefault(name, []).append(path)
                known.add(path)
    folders._list_cache.clear()


# -- locations -----------------------------------------------------------------------------------
def get_output_directory() -> str:
    return str(_paths.folders().output_dir)


def get_input_directory() -> str:
    return str(_paths.folders().input_dir)


def get_temp_directory() -> str:
    return str(_paths.folders().temp_dir)


def get_user_directory() -> str:
    return str(_paths.folders().user_dir)


_DYNAMIC = {
    "models_dir": lambda: str(_paths.folders().models_dirs[0]),
    "output_directory": get_output_directory,
    "input_directory": get_input_directory,
    "temp_directory": get_temp_directory,
    "user_directory": get_user_directory,
}

_hint = "Loom's folders are set by `loom serve --data-dir/--models-dir`, not by packs"
set_output_directory = unsupported_function("folder_paths.set_output_directory", _hint)
set_input_directory = unsupported_function("folder_paths.set_input_directory", _hint)
set_temp_directory = unsupported_function("folder_paths.set_temp_directory", _hint)
set_user_directory = unsupported_function("folder_paths.set_user_directory", _hint)


def get_directory_by_type(type_name: str) -> str | None:
    return {"output": get_output_directory, "input": get_input_directory,
            "temp": get_temp_directory}.get(type_name, lambda: None)()


def annotated_filepath(name: str) -> tuple[str, str | None]:
    for kind in ("output", "input", "temp"):
        suffix = f"[{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)].rstrip(" "), get_directory_by_type(kind)
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base_dir = annotated_filepath(name)
    base_dir = base_dir or default_dir or get_input_directory()
    return str(_paths.safe_join(base_dir, name))


def exists_annotated_filepath(name: str) -> bool:
    try:
        return os.path.exists(get_annotated_filepath(name))
    except _paths.UnsafePath:
        return False


# -- model folders --------------------------------------------------------------------------------
def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    folder_name = map_legacy(folder_name)
    if folder_name in folder_names_and_paths:
        dirs = folder_names_and_paths[folder_name][0]
        if full_folder_path in dirs:
            dirs.remove(full_folder_path)
        if is_default:
            dirs.insert(0, full_folder_path)
        else:
            dirs.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())
    _push_to_loom()


def get_folder_paths(folder_name: str) -> list[str]:
    return list(folder_names_and_paths[map_legacy(folder_name)][0])


def filter_files_extensions(files: Collection[str], extensions: Collection[str]) -> list[str]:
    """Files whose extension is listed; an empty collection of extensions lets everything through."""
    exts = {e.lower() for e in extensions}
    return sorted(f for f in files if not exts or os.path.splitext(f)[-1].lower() in exts)


def filter_files_content_types(files: list[str], content_types: Collection[str]) -> list[str]:
    """Files whose mime type's major part ("image", "video", "audio") is listed."""
    out = []
    for f in files:
        mime, _ = mimetypes.guess_type(f, strict=False)
        if mime and mime.split("/")[0] in content_types:
            out.append(f)
    return out


def recursive_search(directory: str, excluded_dir_names: list[str] | None = None) -> tuple[list[str], dict[str, float]]:
    """Every file under `directory` (relative paths) and the mtime of each folder visited."""
    if not os.path.isdir(directory):
        return [], {}
    excluded = set(excluded_dir_names or [])
    files: list[str] = []
    dirs: dict[str, float] = {}
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = [d for d in dirnames if d not in excluded]
        dirs[dirpath] = os.path.getmtime(dirpath)
        for f in filenames:
            files.append(os.path.relpath(os.path.join(dirpath, f), directory))
    return files, dirs


_list_cache: dict[str, tuple[tuple, list[str]]] = {}


def get_filename_list(folder_name: str) -> list[str]:
    folder_name = map_legacy(folder_name)
    dirs, exts = folder_names_and_paths[folder_name]
    if "folder" in exts:  # diffusers folders: Loom's own rule (a folder holding model_index.json)
        return _paths.get_filename_list(folder_name)
    stamp = tuple((d, os.path.getmtime(d)) for d in dirs if os.path.isdir(d))
    cached = _list_cache.get(folder_name)
    if cached and cached[0] == stamp and time.time() - max((s for _, s in stamp), default=0) > 1.0:
        return list(cached[1])
    names: set[str] = set()
    for d in dirs:
        files, _ = recursive_search(d, excluded_dir_names=[".git"])
        names.update(f.replace(os.sep, "/") for f in filter_files_extensions(files, exts))
    result = sorted(names)
    _list_cache[folder_name] = (stamp, result)
    return list(result)


def get_full_path(folder_name: str, filename: str) -> str | None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    for d in folder_names_and_paths[folder_name][0]:
        try:
            p = _paths.safe_join(d, filename)
        except _paths.UnsafePath:
            return None
        if p.is_file():
            return str(p)
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full = get_full_path(folder_name, filename)
    if full is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full


def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0
                        ) -> tuple[str, str, int, str, str]:
    folder, filename, counter, subfolder, prefix = _paths.get_save_image_path(
        filename_prefix, Path(output_dir), image_width, image_height)
    return str(folder), filename, counter, subfolder, prefix


_missing = missing_attribute("folder_paths")


def __getattr__(name: str) -> Any:
    if name in _DYNAMIC:
        return _DYNAMIC[name]()
    return _missing(name)
