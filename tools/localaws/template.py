"""Evaluates a CloudFormation/SAM template for the local stack.

Resolves parameters, conditions, SAM Globals and the intrinsic functions (Ref, Fn::Sub,
Fn::GetAtt, Fn::If, Fn::Join, ...) against the physical ids that the provisioner records as it
creates resources, and orders resources so that every reference is created before its user.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterator


class TemplateError(Exception):
    """The template cannot be evaluated locally (bad reference, cycle, missing parameter...)."""


@dataclass
class Physical:
    """What CloudFormation would know about a created resource: its Ref value and attributes."""

    type: str
    ref: str
    attrs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"Type": self.type, "Ref": self.ref, **self.attrs}


class _NoValue:
    """AWS::NoValue: removes the enclosing key or list item."""


NO_VALUE = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}]+)\}")
# An API Gateway URL as templates build it (Fn::Sub / Fn::Join of the API's Ref): the local
# stack swaps scheme and host for its own servers when the id is one of its APIs.
_EXECUTE_API_URL = re.compile(r"\b(https|wss)://([A-Za-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com")


def _deep_merge_globals(globals_: Any, own: Any) -> Any:
    """SAM Globals semantics: maps merge, lists concatenate, the resource's scalars win."""
    if isinstance(globals_, dict) and isinstance(own, dict):
        merged = dict(globals_)
        for key, value in own.items():
            merged[key] = _deep_merge_globals(globals_[key], value) if key in globals_ else value
        return merged
    if isinstance(globals_, list) and isinstance(own, list):
        return globals_ + own
    return own


class Stack:
    """One local instance of the template: parameters, conditions and created resources."""

    def __init__(
        self,
        template: dict,
        *,
        parameters: dict[str, str] | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        stack_name: str = "local",
    ):
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.resources: dict[str, dict] = self._resources_with_globals()
        self.parameters = self._parameter_values(parameters or {})
        self.created: dict[str, Physical] = {}
        self._conditions: dict[str, bool] = {}
        # API id -> {"https": local base URL, "wss": local base URL}, filled by the provisioner.
        self.api_urls: dict[str, dict[str, str]] = {}

    # ----- parameters, globals, conditions -------------------------------------------------

    def _parameter_values(self, overrides: dict[str, str]) -> dict[str, Any]:
        declared = self.template.get("Parameters") or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"overrides for undeclared parameters: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default and no local override")
            allowed = spec.get("AllowedValues")
            if allowed and str(value) not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} not in AllowedValues {allowed}")
            if str(spec.get("Type", "String")).startswith(("List<", "CommaDelimitedList")):
                value = [v.strip() for v in str(value).split(",")] if isinstance(value, str) else value
            values[name] = value if isinstance(value, list) else str(value)
        return values

    def _resources_with_globals(self) -> dict[str, dict]:
        globals_ = self.template.get("Globals") or {}
        resources = copy.deepcopy(self.template.get("Resources") or {})
        for resource in resources.values():
            kind = resource.get("Type", "")
            if kind.startswith("AWS::Serverless::"):
                section = globals_.get(kind.removeprefix("AWS::Serverless::"))
                if section:
                    resource["Properties"] = _deep_merge_globals(
                        section, resource.get("Properties") or {}
                    )
        return resources

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self._eval_condition(conditions[name]))
        return self._conditions[name]

    def _eval_condition(self, expr: Any) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            (key, arg), = expr.items()
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._eval_condition(arg[0])
            if key == "Fn::And":
                return all(self._eval_condition(v) for v in arg)
            if key == "Fn::Or":
                return any(self._eval_condition(v) for v in arg)
        raise TemplateError(f"unsupported condition expression {expr!r}")

    def is_enabled(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    # ----- ordering ------------------------------------------------------------------------

    def creation_order(self) -> list[str]:
        """Enabled resources, each after everything it references (template order otherwise)."""
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(logical_id: str, path: list[str]) -> None:
            if state.get(logical_id) == "done":
                return
            if state.get(logical_id) == "visiting":
                raise TemplateError(f"reference cycle: {' -> '.join([*path, logical_id])}")
            state[logical_id] = "visiting"
            for dep in sorted(self.dependencies(logical_id)):
                visit(dep, [*path, logical_id])
            state[logical_id] = "done"
            order.append(logical_id)

        for logical_id in self.resources:
            if self.is_enabled(logical_id):
                visit(logical_id, [])
        return order

    def dependencies(self, logical_id: str) -> set[str]:
        resource = self.resources[logical_id]
        depends_on = resource.get("DependsOn") or []
        deps = set([depends_on] if isinstance(depends_on, str) else depends_on)
        deps |= set(self._referenced_names(resource.get("Properties") or {}))
        deps = {d for d in deps if d in self.resources and d != logical_id}
        disabled = [d for d in deps if not self.is_enabled(d)]
        if disabled:
            # Legal in CloudFormation only behind an Fn::If; locally we resolve lazily, so just
            # drop them from the ordering and let resolve() complain if one is really used.
            deps -= set(disabled)
        return deps

    def _referenced_names(self, value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for key, arg in value.items():
                if key == "Ref" and isinstance(arg, str):
                    yield arg
                elif key == "Fn::GetAtt":
                    yield (arg[0] if isinstance(arg, list) else str(arg).split(".")[0])
                elif key == "Fn::Sub":
                    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                    for var in _SUB_VAR.findall(text):
                        if not var.startswith("!") and var not in variables:
                            yield var.split(".")[0]
                    yield from self._referenced_names(variables)
                else:
                    yield from self._referenced_names(arg)
        elif isinstance(value, list):
            for item in value:
                yield from self._referenced_names(item)

    # ----- intrinsic functions -------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Deep-resolve intrinsic functions; AWS::NoValue entries are dropped."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._intrinsic(key, arg)
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        return value

    def _intrinsic(self, key: str, arg: Any) -> Any:
        handlers = {
            "Ref": self.ref,
            "Fn::GetAtt": self._fn_getatt,
            "Fn::Sub": self._fn_sub,
            "Fn::If": self._fn_if,
            "Fn::Join": lambda a: self.local_api_urls(
                self._str(a[0]).join(self._str(v) for v in self.resolve(a[1]))),
            "Fn::Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
            "Fn::Split": lambda a: self._str(self.resolve(a[1])).split(self._str(a[0])),
            "Fn::FindInMap": self._fn_find_in_map,
            "Fn::Base64": lambda a: base64.b64encode(self._str(self.resolve(a)).encode()).decode(),
            "Fn::ToJsonString": lambda a: json.dumps(self.resolve(a), separators=(",", ":")),
            "Fn::Equals": lambda a: self._eval_condition({"Fn::Equals": a}),
            "Fn::GetAZs": lambda a: [f"{self.region}{z}" for z in "abc"],
        }
        if key not in handlers:
            raise TemplateError(f"intrinsic {key} is not supported by the local stack")
        return handlers[key](arg)

    def _str(self, value: Any) -> str:
        value = self.resolve(value)
        if isinstance(value, (dict, list)):
            raise TemplateError(f"expected a string, got {value!r}")
        return str(value)

    def ref(self, name: Any) -> Any:
        name = self._str(name)
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:"
                            f"stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._physical(name).ref

    def local_api_urls(self, text: str) -> str:
        """`https://{api}.execute-api.{region}.amazonaws.com/...` -> the local server's URL
        (path kept), for the APIs the local stack serves; other text is returned unchanged.
        An HTTP API's https URL becomes its local HTTP server; a WebSocket API's wss URL its
        local WebSocket server, and its https URL (the @connections management endpoint, as
        `https://{api}.execute-api.{region}.amazonaws.com/{stage}`) the local management API."""

        def replace(match: re.Match) -> str:
            urls = self.api_urls.get(match.group(2)) or {}
            return urls.get(match.group(1), match.group(0))

        return _EXECUTE_API_URL.sub(replace, text)

    def _physical(self, logical_id: str) -> Physical:
        if logical_id in self.created:  # also resources SAM creates implicitly (ServerlessHttpApi)
            return self.created[logical_id]
        if logical_id not in self.resources:
            raise TemplateError(f"reference to unknown resource or parameter {logical_id!r}")
        if logical_id not in self.created:
            raise TemplateError(f"{logical_id} is referenced before it was created (disabled?)")
        return self.created[logical_id]

    def _fn_getatt(self, arg: Any) -> str:
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        physical = self._physical(self._str(logical_id))
        attribute = self._str(attribute)
        if attribute not in physical.attrs:
            raise TemplateError(
                f"{logical_id} ({physical.type}) has no attribute {attribute} locally; "
                f"known: {sorted(physical.attrs)}"
            )
        return physical.attrs[attribute]

    def _fn_sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        values = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match) -> str:
            var = match.group(1)
            if var.startswith("!"):
                return "${" + var[1:] + "}"  # ${!Literal} -> ${Literal}
            if var in values:
                return str(values[var])
            if "." in var and var.split(".")[0] in self.resources:
                return self._fn_getatt(var.split(".", 1))
            return self._str(self.ref(var))

        return self.local_api_urls(_SUB_VAR.sub(replace, text))

    def _fn_if(self, arg: Any) -> Any:
        name, if_true, if_false = arg
        return self.resolve(if_true if self.condition(name) else if_false)

    def _fn_find_in_map(self, arg: Any) -> Any:
        map_name, top, second = (self._str(v) for v in arg[:3])
        try:
            return self.resolve(self.template["Mappings"][map_name][top][second])
        except KeyError as exc:
            raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second}: no such key") from exc

    def outputs(self) -> dict[str, Any]:
        """Resolved Outputs whose Condition (if any) holds."""
        result = {}
        for name, spec in (self.template.get("Outputs") or {}).items():
            if spec.get("Condition") and not self.condition(spec["Condition"]):
                continue
            result[name] = self.resolve(spec["Value"])
        return result
