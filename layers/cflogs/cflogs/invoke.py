"""Run a function of template.yaml in-process: the Docker-free twin of
`sam local invoke`. Reads Handler, CodeUri and Environment (Globals and the
function's own); the process environment wins over the template's values."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub ...) kept as dicts."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _tag)


def read_template(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=_TemplateLoader)  # noqa: S506 - safe loader subclass


@dataclass
class LambdaContext:
    function_name: str
    timeout_s: int = 60
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@dataclass
class Function:
    name: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout_s: int
    memory_mb: int


def _resolve(value, parameters: dict) -> str | None:
    """A literal, or a !Ref to a parameter with a default; anything else is unknown."""
    if isinstance(value, str | int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        default = parameters.get(value["Ref"], {}).get("Default")
        return None if default is None else str(default)
    return None


def find_function(template_path: Path, name: str) -> Function:
    template = read_template(template_path)
    resources = template.get("Resources", {})
    resource = resources.get(name)
    if not resource or resource.get("Type") != "AWS::Serverless::Function":
        functions = [
            k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"
        ]
        raise KeyError(
            f"no function {name!r} in {template_path}; functions: {', '.join(functions)}"
        )
    globals_ = template.get("Globals", {}).get("Function", {})
    props = {**globals_, **resource.get("Properties", {})}
    parameters = template.get("Parameters", {})
    env = {}
    for source in (globals_, resource.get("Properties", {})):
        for key, value in source.get("Environment", {}).get("Variables", {}).items():
            resolved = _resolve(value, parameters)
            if resolved is not None:
                env[key] = resolved
    return Function(
        name=name,
        handler=props["Handler"],
        code_dir=(template_path.parent / props["CodeUri"]).resolve(),
        environment=env,
        timeout_s=int(_resolve(props.get("Timeout", 3), parameters) or 3),
        memory_mb=int(_resolve(props.get("MemorySize", 128), parameters) or 128),
    )


def load_handler(function: Function):
    module_name, attribute = function.handler.rsplit(".", 1)
    path = function.code_dir / f"{module_name.replace('.', '/')}.py"
    unique = f"cflogs_function_{function.name}"
    spec = importlib.util.spec_from_file_location(unique, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    return getattr(module, attribute)


class Functions:
    """The template's functions, each loaded on first call (its template environment
    applied under the process environment) and then kept, as a warm Lambda keeps it."""

    def __init__(self, template_path: Path = Path("template.yaml")):
        self.template_path = template_path
        self._loaded: dict[str, tuple] = {}

    def __call__(self, name: str, event: dict):
        if name not in self._loaded:
            function = find_function(self.template_path, name)
            for key, value in function.environment.items():
                if value != "":
                    os.environ.setdefault(key, value)
            self._loaded[name] = (load_handler(function), function)
        handler, function = self._loaded[name]
        return handler(event, LambdaContext(function.name, function.timeout_s, function.memory_mb))


def invoke(name: str, event: dict, template_path: Path = Path("template.yaml")):
    """Invoke the function once, freshly loaded (a cold start), with the event;
    returns what the handler returns."""
    return Functions(template_path)(name, event)


def read_event(path: Path) -> dict:
    return json.loads(Path(path).read_text())
