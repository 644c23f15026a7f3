"""The base of every config object: typed, strict about unknown keys, and round-tripping through
dicts and JSON/YAML files, with errors that say which config was wrong."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from odqa.errors import OdqaError
from odqa.io.files import load_json


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    what: ClassVar[str] = "config"  # named in error messages

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict):
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise OdqaError(f"bad {cls.what}: {describe_errors(e)}") from None

    @classmethod
    def from_file(cls, path: str | Path):
        return cls.from_dict(load_config_file(path))


def describe_errors(error: ValidationError) -> str:
    """A pydantic validation error on one line: `field: problem; other.field: problem`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()))
        message = item.get("msg", "").removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def yaml_problem(error) -> str:
    """A PyYAML error on one line: `line L, column C: problem` (PyYAML's own text spans several
    lines and quotes the offending source)."""
    mark = getattr(error, "problem_mark", None)
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def load_config_file(path: str | Path) -> dict:
    """A JSON or YAML file holding one mapping."""
    path = Path(path)
    if not path.exists():
        raise OdqaError(f"config file not found: {path}")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise OdqaError("YAML configs need PyYAML (pip install pyyaml); or use JSON") from None
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise OdqaError(f"{path}: not valid YAML ({yaml_problem(e)})") from None
    else:
        data = load_json(path)
    if not isinstance(data, dict):
        raise OdqaError(f"{path}: expected a mapping of settings")
    return data
