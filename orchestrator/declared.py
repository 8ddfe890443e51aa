"""Files marketers declare (journeys, reports, and what comes next): YAML read with the line
of every key, validated by a pydantic model, every problem reported as `file:line: key: what`.

Each kind of file keeps its own model and its own extra checks; the reading, the line index
and the error format live here once, so they read the same whatever the file is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Location = tuple[str | int, ...]
Model = TypeVar("Model", bound=BaseModel)
Item = TypeVar("Item")


@dataclass(frozen=True)
class FileError:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class FileLoadError(Exception):
    def __init__(self, errors: list[FileError], unreadable: bool = False) -> None:
        self.errors = errors
        self.unreadable = unreadable  # not the kind of file at all: unreadable, not YAML, not a mapping
        super().__init__("\n".join(str(e) for e in errors))


def line_index(node: yaml.Node, path: Location = (), index: dict | None = None) -> dict:
    """Map every key path in the document to its 1-based line."""
    index = {} if index is None else index
    index.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            index[path + (key,)] = key_node.start_mark.line + 1
            line_index(value_node, path + (key,), index)
            index[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            line_index(item, path + (position,), index)
    return index


def line_for(location: Location, lines: dict) -> int | None:
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            return lines[location[:end]]
    return None


def readable_key(location: Location) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def read_yaml_mapping(text: str, path: Path, what: str) -> tuple[dict[str, Any], dict]:
    """The document as a dict and its line index; `what` names the file kind in errors."""
    name = str(path)
    try:
        node = yaml.compose(text)
        source = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise FileLoadError(
            [FileError(name, line, "", f"not valid YAML: {getattr(error, 'problem', error)}")], unreadable=True
        ) from None
    if not isinstance(source, dict) or node is None:
        raise FileLoadError([FileError(name, 1, "", f"a {what} file is a YAML mapping")], unreadable=True)
    return source, line_index(node)


def validate_model(
    model: type[Model], source: dict[str, Any], lines: dict, path: Path, hidden_tag_prefix: str | None = None
) -> Model:
    """`model` from `source`, or every validation problem with its file, line and key.

    `hidden_tag_prefix` drops pydantic's discriminated-union tags (e.g. 'step:send') from the
    key paths: they are bookkeeping, not keys in the file."""
    try:
        return model.model_validate(source)
    except ValidationError as error:
        errors = []
        for item in error.errors():
            location = tuple(
                p
                for p in item["loc"]
                if not (hidden_tag_prefix and isinstance(p, str) and p.startswith(hidden_tag_prefix))
            )
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            errors.append(FileError(str(path), line_for(location, lines), readable_key(location), message))
        raise FileLoadError(errors) from None


def read_declared_text(path: Path) -> str:
    """The file's text; an unreadable file is a `FileLoadError` saying why, like any other problem."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise FileLoadError(
            [FileError(str(path), None, "", f"cannot read: {error.strerror}")], unreadable=True
        ) from None


def declared_files(directory: Path) -> list[Path]:
    """A folder's declared files (`*.yaml`, `*.yml`), sorted; none when there is no such folder."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []


@dataclass
class DeclaredFiles(Generic[Item]):
    loaded: dict[str, Item] = field(default_factory=dict)  # by id, in the order of the files
    errors: list[FileError] = field(default_factory=list)
    unreadable: set[Path] = field(default_factory=set)  # not files of this kind at all: unreadable, not YAML


def load_declared_files(
    paths: Iterable[Path], parse: Callable[[str, Path], Item], kind: str, id_of: Callable[[Item], str]
) -> DeclaredFiles[Item]:
    """Every file's problems with file, line and key; the items of the files that have none. An
    id declared a second time is an error on the later file."""
    files: DeclaredFiles[Item] = DeclaredFiles()
    where: dict[str, Path] = {}
    for path in dict.fromkeys(paths):
        try:
            item = parse(read_declared_text(path), path)
        except FileLoadError as error:
            files.errors.extend(error.errors)
            if error.unreadable:
                files.unreadable.add(path)
            continue
        item_id = id_of(item)
        if item_id in files.loaded:
            files.errors.append(
                FileError(str(path), None, "id", f"{kind} id '{item_id}' is also used by {where[item_id]}")
            )
            continue
        files.loaded[item_id], where[item_id] = item, path
    return files
